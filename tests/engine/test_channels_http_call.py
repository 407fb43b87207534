"""http.call on real loopback sockets: JSON out and back, secrets, and every counterpart fault."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import trio

from conftest_tls import pki  # noqa: F401  (fixture)
from engine.channels.http_call import HttpConnector, HttpReply
from engine.http import Response, Router, serve_http
from kit import Client, compile_text, deals, exchange_refs, running

# the front channel both routes below answer on (its error replies carry the code and the kind)
FRONT = '''
format Req = json
format Ack = json

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Ack {
        code = error.code
        kind = error.kind
    }
}
'''

ROUTE = FRONT + '''
format Post = json

channel biller = http call {
    url = "%s"
    timeout = 2s
    auth_bearer_env = "BSP_TEST_BILLER_TOKEN"
    headers = ["X-Api-Key:env:BSP_TEST_BILLER_KEY", "Accept:application/json"]
}

route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call post = biller as Post reply Ack {
        reference = msg.ref
        amount    = msg.amount
    } expect post.status == "OK"
    reply Ack { code = "00"  confirmation = post.confirmation }
}
'''


@pytest.fixture(autouse=True)
def secrets(monkeypatch) -> None:
    monkeypatch.setenv("BSP_TEST_BILLER_TOKEN", "tok-123")
    monkeypatch.setenv("BSP_TEST_BILLER_KEY", "key-456")


async def biller(nursery, seen: list) -> int:
    router = Router()

    @router.route("POST", "/payments")
    async def pay(request):
        body = request.json()
        seen.append((request.header("authorization"), request.header("x-api-key"), body))
        if body["reference"] == "SLOW":
            await trio.sleep(10)
        if body["reference"] == "BOOM":
            return Response.problem(503, "biller down for maintenance")
        if body["reference"] == "JUNK":
            return Response(200, [("content-type", "application/json")], b"<html>not json")
        return Response.json({"status": "OK", "confirmation": "C-" + body["reference"]})

    return await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0))


async def exchange(tmp_path: Path, url: str, refs: list[str]) -> tuple[list, list]:
    return await exchange_refs(tmp_path, ROUTE % url, refs, amount="10.25")


async def test_call_json_with_secrets_from_env(tmp_path: Path, nursery) -> None:
    seen: list = []
    port = await biller(nursery, seen)
    replies, rows = await exchange(tmp_path, f"http://127.0.0.1:{port}/payments", ["A1", "A2"])
    assert replies == [{"code": "00", "confirmation": "C-A1"}, {"code": "00", "confirmation": "C-A2"}]
    assert seen[0][:2] == ("Bearer tok-123", "key-456")
    assert str(seen[0][2]["amount"]) == "10.25"               # money stays exact on the wire
    assert [r["status"] for r in rows] == ["committed", "committed"]


async def test_counterpart_faults_fail_the_deal_with_a_clear_reason(tmp_path: Path, nursery) -> None:
    seen: list = []
    port = await biller(nursery, seen)
    replies, rows = await exchange(tmp_path, f"http://127.0.0.1:{port}/payments", ["BOOM", "JUNK", "SLOW", "OK1"])
    assert [r.get("kind") for r in replies] == ["refused", "failed", "timeout", None]
    assert replies[1] == {"code": "96", "kind": "failed"}      # 200 but the body is not JSON
    assert replies[3] == {"code": "00", "confirmation": "C-OK1"}
    by_ref = {r["reference"]: r for r in rows}
    assert by_ref["BOOM"]["status"] == "failed" and "answered HTTP 503" in by_ref["BOOM"]["reason"]
    assert "biller down for maintenance" in by_ref["BOOM"]["reason"]
    assert "is not valid Ack" in by_ref["JUNK"]["reason"]
    assert "timeout" in by_ref["SLOW"]["reason"] and "within 2s" in by_ref["SLOW"]["reason"]
    assert by_ref["OK1"]["status"] == "committed"


async def test_endpoint_down_is_unreachable(tmp_path: Path, dead_port: int) -> None:
    port = dead_port
    replies, rows = await exchange(tmp_path, f"http://127.0.0.1:{port}/payments", ["D1"])
    assert replies == [{"code": "91", "kind": "unreachable"}]
    assert rows[0]["status"] == "failed" and f"127.0.0.1:{port}" in rows[0]["reason"]


async def test_garbage_answer_is_lost(tmp_path: Path, nursery) -> None:
    async def garbage(stream):
        await stream.receive_some(65536)
        await stream.send_all(b"\x00\x01 this is not HTTP at all\r\n\r\n")
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, garbage, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    replies, rows = await exchange(tmp_path, f"http://127.0.0.1:{port}/payments", ["G1"])
    assert replies == [{"code": "91", "kind": "lost"}]
    assert "did not answer valid HTTP" in rows[0]["reason"]


async def test_reply_carries_status_and_headers(nursery) -> None:
    port = await biller(nursery, [])
    c = HttpConnector("b", {"url": f"http://127.0.0.1:{port}/payments"})
    await nursery.start(c.run)
    (r,) = await c.request_many([b'{"reference": "H1"}'], 5)
    assert isinstance(r, HttpReply) and r.status == 200 and r.headers["content-type"] == "application/json"


def test_secrets_never_literal(tmp_path: Path, monkeypatch) -> None:
    base = {"url": "http://127.0.0.1:1/x"}
    with pytest.raises(ValueError, match="looks secret but its value is written in the route file"):
        HttpConnector("b", {**base, "headers": ["X-Api-Key:abc123"]})
    with pytest.raises(ValueError, match="environment variable NOPE_NOT_SET is not set"):
        HttpConnector("b", {**base, "auth_bearer_env": "NOPE_NOT_SET"})
    token = tmp_path / "token"
    token.write_text("file-token\n")
    c = HttpConnector("b", {**base, "auth_bearer_file": str(token), "headers": ["Accept:text/plain"]})
    assert c.headers["authorization"] == "Bearer file-token" and c.headers["Accept"] == "text/plain"
    with pytest.raises(ValueError, match="option url"):
        HttpConnector("b", {"url": "biller:80"})
    with pytest.raises(ValueError, match=r"option ca \(TLS, like ca / cert / key\) needs an https:// url, not http://"):
        HttpConnector("b", {**base, "ca": str(token)})


ROUTE_LOOKUP = FRONT + '''
format Acct = json

channel core = http call {
    url           = "%s"
    method        = "POST"
    timeout       = 2s
    answer_status = ["2xx", "404"]
}

route lookup {
    receive from front as Req
    deal LOOKUP { ref = msg.ref  amount = 0  currency = "EUR" }
    call acct = core as Req reply Acct { id = msg.ref }
    validate {
        http_status(acct) != 404 else reject "14" "no such account"
    }
    reply Ack {
        code   = "00"
        status = http_status(acct)
        name   = coalesce(acct.name, "-")
        type   = coalesce(http_header(acct, "Content-Type"), "-")
    }
}
'''


async def core_api(nursery) -> int:
    router = Router()

    @router.route("POST", "/accounts")
    async def find(request):
        ident = request.json()["id"]
        if ident == "GONE":
            return Response.problem(404, "no account GONE")
        if ident == "EMPTY":
            return Response(204, [], b"")
        if ident == "DOWN":
            return Response.problem(500, "core is down")
        return Response.json({"name": "Holder of " + ident})

    return await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0))


async def test_answer_status_takes_a_404_as_the_answer_and_routes_read_it(tmp_path: Path, nursery) -> None:
    port = await core_api(nursery)
    prog = compile_text(tmp_path, ROUTE_LOOKUP % f"http://127.0.0.1:{port}/accounts")
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        for ref in ("A1", "GONE", "EMPTY", "DOWN"):
            await c.send(b'{"ref": "%s"}' % ref.encode())
        replies = await c.recv_json(4)
        await c.aclose()
    assert replies[0] == {"code": "00", "status": 200, "name": "Holder of A1", "type": "application/json"}
    assert replies[1] == {"code": "14", "kind": "rejected"}              # a business answer, not a failure
    assert replies[2] == {"code": "00", "status": 204, "name": "-", "type": "-"}     # no body: an empty answer
    assert replies[3] == {"code": "05", "kind": "refused"}               # 500 is not taken
    by_ref = {r["reference"]: r for r in deals(ledger)}
    assert by_ref["GONE"]["status"] == "rejected" and "rejected: no such account" in by_ref["GONE"]["reason"]
    assert by_ref["DOWN"]["status"] == "failed" and "answered HTTP 500" in by_ref["DOWN"]["reason"]


def test_answer_status_is_checked(tmp_path: Path) -> None:
    base = {"url": "http://127.0.0.1:1/x"}
    assert HttpConnector("b", {**base, "answer_status": ["4xx", 302]}).accept == (frozenset({4}), frozenset({302}))
    with pytest.raises(ValueError, match=r"option answer_status: '2XY' is not an HTTP status or class"):
        HttpConnector("b", {**base, "answer_status": ["2XY"]})
    with pytest.raises(ValueError, match="an empty list takes no answer"):
        HttpConnector("b", {**base, "answer_status": []})


def test_bsp_check_knows_http_status_and_answer_status(tmp_path: Path) -> None:
    from dsl.load import compile_source
    from engine.registry import default_registry

    src = (ROUTE_LOOKUP % "http://127.0.0.1:1/accounts").replace('["2xx", "404"]', '["2xx", "4o4"]')
    src = src.replace("http_status(acct) != 404", "http_status(msg) != 404")
    src += '''
channel mf = tcp connect {
    address = "127.0.0.1:1"
}

route other {
    receive from front as Req when msg.kind == "X"
    call host = mf as Req { id = msg.ref }
    reply Ack { code = "00"  status = http_status(host) }
}
'''
    r = compile_source(src, default_registry(plugins=False), tmp_path / "main.route")
    got = [(d.code, d.pos.line, d.pos.col, d.message) for d in r.diagnostics if d.is_error]
    lines = src.splitlines()
    e055 = [g for g in got if g[0] == "E055"]
    assert len(e055) == 1 and "'4o4' is not an HTTP status or class" in e055[0][3]
    assert lines[e055[0][1] - 1].strip().startswith("answer_status")          # pointed at the option
    e072 = sorted((g for g in got if g[0] == "E072"), key=lambda g: g[1])
    assert len(e072) == 2, got
    assert "the argument must be the name of a `call` step" in e072[0][3]
    assert lines[e072[0][1] - 1][e072[0][2] - 1:].startswith("msg)")
    assert "call `host` goes to channel `mf` (tcp connect), which answers without an HTTP status" in e072[1][3]


async def test_an_answer_over_max_reply_is_not_read_and_fails_the_call(nursery) -> None:
    """A counterpart cannot make the engine hold an answer of any size: declared too big, or streamed past
    the limit (chunked, no Content-Length), the body is not read on and the call is refused."""
    async def big(stream, chunked: bool):
        await stream.receive_some(65536)
        if chunked:
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                  b"transfer-encoding: chunked\r\n\r\n")
            chunk = b"x" * 4096
            try:
                for _ in range(1000):           # 4 MB, past the limit, and then the body's end
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await stream.send_all(b"0\r\n\r\n")
            except trio.BrokenResourceError:    # the engine hung up past max_reply
                pass
        else:
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                  b"content-length: 5000000000\r\n\r\n{")
        await stream.aclose()

    for chunked in (False, True):
        listeners = await nursery.start(functools.partial(trio.serve_tcp, functools.partial(big, chunked=chunked),
                                                          0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        c = HttpConnector("b", {"url": f"http://127.0.0.1:{port}/payments", "max_reply": 65536})
        await nursery.start(c.run)
        (r,) = await c.request_many([b'{"reference": "B1"}'], 5)
        assert not isinstance(r, HttpReply) and r.kind == "refused", r
        assert "answered 200 with a body over max_reply (65536 bytes" in str(r)
        assert ("Content-Length 5000000000" in str(r)) is not chunked
    small = await biller(nursery, [])
    c = HttpConnector("s", {"url": f"http://127.0.0.1:{small}/payments", "max_reply": 65536})
    await nursery.start(c.run)
    (r,) = await c.request_many([b'{"reference": "S1"}'], 5)
    assert isinstance(r, HttpReply) and r.status == 200


def test_max_reply_must_be_a_positive_byte_count() -> None:
    from engine.channels.options import ChannelConfigError
    with pytest.raises(ChannelConfigError, match="option max_reply: expected a positive number of bytes, got 0"):
        HttpConnector("b", {"url": "http://127.0.0.1:1/x", "max_reply": 0})


async def test_a_call_that_gets_no_connection_in_time_was_not_sent_so_it_is_unreachable(nursery) -> None:
    """With every pooled connection busy for the whole timeout, a call never leaves the engine: it must fail
    as `unreachable` (nothing to undo), not as a `timeout` whose call is in doubt and gets compensated."""
    heads: list[bytes] = []

    async def hang(stream):
        heads.append(await stream.receive_some(65536))
        await trio.sleep_forever()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, hang, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    c = HttpConnector("biller", {"url": f"http://127.0.0.1:{port}/pay", "max_connections": 1})
    await nursery.start(c.run)
    with trio.fail_after(5):
        first, second = await c.request_many([b'{"n": 1}', b'{"n": 2}'], 0.3)
    kinds = sorted([first.kind, second.kind])                      # type: ignore[union-attr]
    assert kinds == ["timeout", "unreachable"], (first, second)
    refused = first if first.kind == "unreachable" else second     # type: ignore[union-attr]
    assert "not sent: all 1 connections (max_connections) stayed busy for 0.3s" in str(refused)
    assert len(heads) == 1                                          # the counterpart saw one request


async def test_tls_failures_say_why_with_the_channel_and_url(nursery, pki) -> None:
    from engine.tls import server_context
    ctx = server_context(pki.server_cert, pki.server_key, None, "none")
    tls_port = await nursery.start(functools.partial(serve_http, Router(), "127.0.0.1", 0, ctx))
    plain_port = await nursery.start(functools.partial(serve_http, Router(), "127.0.0.1", 0))
    cases = [
        (f"https://localhost:{tls_port}/x", {}, "CERTIFICATE_VERIFY_FAILED"),          # our test CA: not a system root
        (f"https://localhost:{tls_port}/x", {"ca": str(pki.stranger_ca)}, "`ca` must hold the CA"),
        (f"https://127.0.0.1:{plain_port}/x", {}, "does not speak TLS on this port"),
    ]
    for url, opts, why in cases:
        c = HttpConnector("biller", {"url": url, **opts})
        await nursery.start(c.run)
        (r,) = await c.request_many([b"{}"], 5)
        assert not isinstance(r, HttpReply) and r.kind == "unreachable", r
        assert str(r).startswith(f"channel biller: cannot connect to {url}: ") and why in str(r), str(r)
        assert "tls = true" not in str(r) and "_ssl.c" not in str(r), str(r)


async def test_a_redirect_is_not_followed_and_the_reason_says_where_it_pointed(nursery) -> None:
    hits: list[str] = []
    router = Router()

    @router.route("POST", "/old")
    async def old(request):
        hits.append("old")
        return Response(302, [("location", "/new")], b"")

    @router.route("POST", "/new")
    async def new(request):
        hits.append("new")
        return Response.json({"status": "OK"})

    port = await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0))
    c = HttpConnector("biller", {"url": f"http://127.0.0.1:{port}/old"})
    await nursery.start(c.run)
    (r,) = await c.request_many([b"{}"], 5)
    assert not isinstance(r, HttpReply) and r.kind == "refused"
    assert "answered HTTP 302: a redirect to /new, not followed" in str(r) and "answer_status" in str(r), str(r)
    assert hits == ["old"]                                          # a POST is never sent on to another URL
    taken = HttpConnector("biller", {"url": f"http://127.0.0.1:{port}/old", "answer_status": ["2xx", "302"]})
    await nursery.start(taken.run)
    (r,) = await taken.request_many([b"{}"], 5)
    assert isinstance(r, HttpReply) and r.status == 302 and r.headers["location"] == "/new"


async def test_the_counterparts_certificate_expiry_is_read_once_per_connection(nursery, tmp_path, caplog) -> None:
    """An https call notes the certificate the counterpart presented (gauge role peer, ``peer_cert``), and
    warns once when it expires within 30 days (a server certificate of 20 days)."""
    from types import SimpleNamespace

    from engine.certs import new_ca
    from engine.metrics import Metrics
    from engine.tls import server_context
    ca = new_ca("short-lived test CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True, days=20).write(
        tmp_path / "server")
    pki = SimpleNamespace(ca=ca_pem, server_cert=cert, server_key=key)
    router = Router()

    @router.route("POST", "/x")
    async def ok(request):
        return Response(200, [("content-type", "application/json")], b"{}")

    port = await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0,
                                                 server_context(pki.server_cert, pki.server_key, None, "none")))
    c = HttpConnector("biller", {"url": f"https://localhost:{port}/x", "ca": str(pki.ca)})
    metrics = Metrics()
    c.attach_metrics(metrics)
    await nursery.start(c.run)
    assert c.peer_cert is None
    for _ in range(3):
        (r,) = await c.request_many([b"{}"], 5)
        assert isinstance(r, HttpReply) and r.status == 200, r
    from cryptography import x509
    after = x509.load_pem_x509_certificate(pki.server_cert.read_bytes()).not_valid_after_utc.timestamp()
    assert c.peer_cert.not_after == after and c.peer_cert.subject == "CN=localhost"
    assert metrics.value("bsp_tls_cert_expiry_timestamp_seconds",
                         {"channel": "biller", "role": "peer", "subject": "CN=localhost"}) == after
    said = [r.getMessage() for r in caplog.records if "counterpart's certificate" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"channel biller: the counterpart's certificate at "
                                                 f"https://localhost:{port}/x (subject CN=localhost) expires on ")


def test_a_bearer_token_and_a_header_secret_read_by_the_channel_are_scrubbed_from_the_log(tmp_path, monkeypatch) -> None:
    """Every secret a channel option reads (``read_secret``: a bearer token from a file, a header from a
    variable) is masked in every log line from then on, whatever code path would print it."""
    from engine.channels.http_call import HttpConnector
    from engine.ops.logs import setup_logging

    scrub = setup_logging("warning", "text")
    try:
        token = tmp_path / "biller.token"
        token.write_text("bearer-secret-7f3a9c2e51\n")
        token.chmod(0o600)
        monkeypatch.setenv("BILLER_KEY", "header-secret-5b8d0e4f17")
        HttpConnector("biller", {"url": "http://127.0.0.1:9/pay", "auth_bearer_file": str(token),
                                 "headers": ["X-Api-Key:env:BILLER_KEY"]})
        line = "sent Authorization: Bearer bearer-secret-7f3a9c2e51, X-Api-Key: header-secret-5b8d0e4f17"
        assert scrub(line) == "sent Authorization: Bearer ***, X-Api-Key: ***"
    finally:
        setup_logging("warning", "text")


async def test_an_answer_in_a_declared_charset_other_than_utf8_is_read_in_that_charset(tmp_path: Path, nursery) -> None:
    """A counterpart has acted on the request before its answer arrives: an answer whose Content-Type
    declares latin-1 (or UTF-16) is read in that charset, not refused and not misread as UTF-8."""
    router = Router()
    answers = {
        "L1": ("application/json; charset=ISO-8859-1", '{"name": "Zoë Müller"}'.encode("latin-1")),
        "W1": ("application/json; charset=windows-1252", '{"name": "Café – ok"}'.encode("cp1252")),
        "U16": ("application/json; charset=utf-16", '{"name": "Łukasz"}'.encode("utf-16")),
        "X1": ("text/xml; charset=iso-8859-1", b"<a/>"),          # XML: left to its own declaration
    }

    @router.route("POST", "/accounts")
    async def find(request):
        ctype, body = answers[request.json()["id"]]
        return Response(200, [("content-type", ctype)], body)

    port = await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0))
    c = HttpConnector("core", {"url": f"http://127.0.0.1:{port}/accounts"})
    await nursery.start(c.run)
    got = await c.request_many([b'{"id": "%s"}' % k.encode() for k in answers], 5)
    assert [bytes(r) for r in got[:3]] == ['{"name": "Zoë Müller"}'.encode(), '{"name": "Café – ok"}'.encode(),
                                           '{"name": "Łukasz"}'.encode()]
    assert bytes(got[3]) == b"<a/>" and got[0].headers["content-type"] == "application/json; charset=ISO-8859-1"
    prog = compile_text(tmp_path, ROUTE_LOOKUP % f"http://127.0.0.1:{port}/accounts")
    async with running(prog, tmp_path / "l.duckdb") as sb:
        client = await Client.open(sb.channel("front").port)
        await client.send(b'{"ref": "L1"}')
        (reply,) = await client.recv_json(1)
        await client.aclose()
    assert reply["name"] == "Zoë Müller" and reply["code"] == "00"
