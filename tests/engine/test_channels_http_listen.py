"""http.listen on real loopback sockets: bodies, status mapping, path params, TLS + access list."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trio

from conftest_tls import pki  # noqa: F401  (fixture)
from engine.channels.http_listen import HttpListener
from engine.tls import client_context
from kit import compile_text, deals, running

ROUTE = '''
format Pay = json
format Ack = json

channel api = http listen {
    address    = "127.0.0.1:0"
    path       = "/payments/{id}"
    %s
}

route pay {
    receive from api as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Ack { status = "OK"  ref = msg.ref  amount = msg.amount }
}
'''


def url(sb, path="/payments/77", scheme="http") -> str:
    return f"{scheme}://127.0.0.1:{sb.channel('api').port}{path}"


async def test_json_in_reply_out_and_every_outcome(tmp_path: Path) -> None:
    prog = compile_text(tmp_path, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        async with httpx.AsyncClient() as c:
            r = await c.post(url(sb), content=b'{"ref": "P1", "amount": 120.50}',
                             headers={"content-type": "application/json"})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/json"
            assert r.json() == {"status": "OK", "ref": "P1", "amount": "120.50"} or \
                r.json() == {"status": "OK", "ref": "P1", "amount": 120.50}
            bad = await c.post(url(sb), content=b'{"ref": "P2", "amount": ',
                               headers={"content-type": "application/json"})
            assert bad.status_code == 400
            assert bad.headers["content-type"] == "application/problem+json"
            p = bad.json()
            assert p["status"] == 400 and p["kind"] == "malformed" and p["deal_status"] == "rejected"
            assert "not a valid Pay" in p["detail"]
            assert ".route:" not in p["detail"] and str(tmp_path) not in bad.text   # no server path for a client
            rej = await c.post(url(sb), json={"ref": "P3", "amount": 0})
            assert rej.status_code == 422 and rej.json()["code"] == "13"
            form = await c.post(url(sb), data={"ref": "P4", "amount": "5"})
            # the form arrives as an object (decoded, not malformed); its values are text, so `msg.amount > 0`
            # compares text with a number.  The route reads Pay, JSON with a numeric amount: the client sent
            # the wrong shape, its error to fix (422, rejected, 30, naming the field), not the engine's (until
            # 2026-11-27: 500 "internal", which paged an operator and told the client nothing; dsl/inbound.py)
            assert form.status_code == 422, form.text
            p = form.json()
            assert (p["kind"], p["code"], p["deal_status"]) == ("rejected", "30", "rejected")
            assert p["detail"] == "amount: expected a number, got text '5'", p
            assert (await c.get(url(sb))).status_code == 405
            assert (await c.post(url(sb, "/other"), json={})).status_code == 404
    rows = deals(ledger)
    by_ref = {r["reference"]: r for r in rows if r["reference"]}
    assert by_ref["P1"]["status"] == "committed" and by_ref["P1"]["amount"] == Decimal("120.50")
    assert [r["status"] for r in rows].count("rejected") >= 2
    assert any("malformed" in (r["reason"] or "") for r in rows)


async def test_a_body_of_the_wrong_shape_is_the_clients_error_naming_the_field(tmp_path: Path) -> None:
    """A JSON list or a bare string where the route reads an object's fields is a malformed body (400, 30); a
    field of the wrong shape (text where the route reads an object's field, text compared with a number) a
    rejected request (422, 30); each names the field, what was expected and what came, never the route file
    (the deal's reason has its place).  A failure on the route's own values stays 500."""
    text = ROUTE % ""
    text = text.replace('msg.amount > 0 else reject "13" "invalid amount"',
                        'msg.amount > 0 else reject "13" "invalid amount"\n'
                        '        msg.payer.name != "" else reject "30" "payer name missing"\n'
                        '        msg.ref != "BUG" or http.method.verb == "POST" else reject "99" "never"')
    prog = compile_text(tmp_path, text)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        async with httpx.AsyncClient() as c:
            sent = [await c.post(url(sb), json=body) for body in (
                [{"ref": "L1", "amount": 1}], "just text", {"ref": "S1", "amount": 1, "payer": "ACME"},
                {"ref": "S2", "amount": [1], "payer": {"name": "A"}}, {"ref": "BUG", "amount": 1, "payer": {"name": "A"}})]
    got = [(r.status_code, r.json().get("kind"), r.json().get("code"), r.json().get("detail")) for r in sent]
    assert got[:4] == [
        (400, "malformed", "30", "the request: expected an object (with field 'amount'), got a list of 1"),
        (400, "malformed", "30", "the request: expected an object (with field 'amount'), got text 'just text'"),
        (422, "rejected", "30", "payer: expected an object (with field 'name'), got text 'ACME'"),
        (422, "rejected", "30", "amount: expected a number, got a list of 1"),
    ], got
    assert got[4][:3] == (500, "internal", "96")      # http.method is the engine's text: the route's bug
    assert all(".route" not in r.text for r in sent)
    rows = deals(ledger)
    assert sorted(r["status"] for r in rows) == ["failed"] + ["rejected"] * 4
    assert all(f"(at {tmp_path}/test.route:" in r["reason"] for r in rows), [r["reason"] for r in rows]


async def test_status_map_option_and_error_reply_body(tmp_path: Path) -> None:
    text = ROUTE % 'status_map = ["rejected:409"]\n    on error reply Ack {\n        status = "ERR"\n        code = error.code\n    }'
    prog = compile_text(tmp_path, text)
    async with running(prog, tmp_path / "l.duckdb") as sb:
        async with httpx.AsyncClient() as c:
            r = await c.post(url(sb), json={"ref": "X", "amount": -1})
            assert r.status_code == 409
            assert r.json() == {"status": "ERR", "code": "13"}


async def test_route_sees_path_params_query_and_headers(tmp_path: Path) -> None:
    text = ROUTE % ""
    text = text.replace(
        'reply Ack { status = "OK"  ref = msg.ref  amount = msg.amount }',
        'reply Ack { status = "OK"  ref = msg.ref  amount = msg.amount\n'
        '            id = http.params.id  mode = http.query.mode\n'
        '            agent = http.headers["x-agent"]  method = http.method }')
    prog = compile_text(tmp_path, text)
    async with running(prog, tmp_path / "l.duckdb") as sb:
        async with httpx.AsyncClient() as c:
            r = await c.post(url(sb, "/payments/ab%2Fc?mode=fast"), json={"ref": "Q", "amount": 1},
                             headers={"X-Agent": "teller-7"})
            assert r.status_code == 200
            got = r.json()
            assert (got["id"], got["mode"], got["agent"], got["method"]) == ("ab/c", "fast", "teller-7", "POST")


def test_http_is_only_in_scope_for_http_listen_routes(tmp_path: Path) -> None:
    text = """
format Pay = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route r { receive from front as Pay  reply Pay { id = http.params.id } }
"""
    with pytest.raises(AssertionError, match="http"):
        compile_text(tmp_path, text)


async def test_tls_with_client_certificate_access_list(tmp_path: Path, pki) -> None:
    tls = (f'cert = "{pki.server_cert}"\n    key = "{pki.server_key}"\n    ca = "{pki.ca}"\n'
           f'    client_cert = "required"\n    allow = ["cn:MAINFRAME01"]')
    prog = compile_text(tmp_path, ROUTE % tls)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        ok = client_context(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
        async with httpx.AsyncClient(verify=ok) as c:
            r = await c.post(url(sb, scheme="https").replace("127.0.0.1", "localhost"),
                             json={"ref": "T1", "amount": 3})
            assert r.status_code == 200
        intruder = client_context(ca=pki.ca, cert=pki.intruder_cert, key=pki.intruder_key)
        async with httpx.AsyncClient(verify=intruder) as c:
            r = await c.post(url(sb, scheme="https").replace("127.0.0.1", "localhost"),
                             json={"ref": "T2", "amount": 3})
            assert r.status_code == 403 and "INTRUDER" in r.json()["detail"]
        # no client certificate: the handshake fails, the engine keeps serving
        stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", sb.channel("api").port,
                                                     ssl_context=client_context(ca=pki.ca, server_hostname="localhost"))
        got = b""
        try:
            await stream.send_all(b"POST /payments/1 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            got = await stream.receive_some(1000)
        except trio.BrokenResourceError:
            pass
        assert b"200" not in got
        await trio.aclose_forcefully(stream)
        assert sb.channel("api").refused == 1
    assert [r["reference"] for r in deals(ledger)] == ["T1"]


def test_config_errors_name_channel_and_option(pki) -> None:
    cases = [
        ({"path": "payments"}, "option path"),
        ({"status_map": ["rejected:42"]}, "status_map: entry 1"),
        ({"allow": ["cn:X"]}, "no client certificate is asked for"),
        ({"client_cert": "required"}, "need `cert`"),
        ({"cert": "/nonexistent.pem", "key": "/k.pem"}, "does not exist"),
    ]
    for opts, msg in cases:
        with pytest.raises(ValueError) as ei:
            HttpListener("api", {"address": "127.0.0.1:0", **opts})
        assert "channel api" in str(ei.value) and msg in str(ei.value), str(ei.value)


async def test_drain_closes_the_listening_socket_and_idle_connections(tmp_path: Path) -> None:
    """Retired (a drain), the channel stops accepting at once and an idle keep-alive connection ends cleanly;
    it used to keep accepting and answer new requests 503 on connections kept alive
    (tests/ops/test_ops_reload_http_retire.py: under load, across a reload and a drain)."""
    prog = compile_text(tmp_path, ROUTE % "")
    async with running(prog, tmp_path / "l.duckdb") as sb:
        ch = sb.channel("api")
        stream = await trio.open_tcp_stream("127.0.0.1", ch.port)
        body = b'{"ref": "D1", "amount": 1}'
        await stream.send_all(b"POST /payments/77 HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                              b"content-length: %d\r\n\r\n" % len(body) + body)
        got = b""
        with trio.fail_after(5):
            while b"D1" not in got:
                got += await stream.receive_some(65536)
        assert got.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in got.lower()
        ch.stop_accepting()
        with trio.fail_after(5):
            assert await stream.receive_some(65536) == b""          # a clean end (FIN), not a reset
        await stream.aclose()
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", ch.port)        # no longer listening


def test_bsp_check_refuses_bad_options_without_reading_tls_files(tmp_path: Path) -> None:
    """`bsp check` runs the channel's own option checks; it does not read the certificates (they may
    be production secrets, absent from where routes are checked): junk files pass."""
    from dsl.load import compile_paths
    from engine.registry import default_registry
    (tmp_path / "server.pem").write_text("not a certificate")
    (tmp_path / "server.key").write_text("not a key")

    def errors(tls: str) -> list[str]:
        (tmp_path / "a.route").write_text(ROUTE % tls)
        res = compile_paths([tmp_path / "a.route"], default_registry())
        return [f"{d.pos.line}:{d.code} {d.message}" for d in res.diagnostics if d.severity == "error"]

    tls = 'cert = "server.pem"\n    key = "server.key"'
    assert errors(tls) == []
    assert errors(tls + '\n    allow = ["cn:MAINFRAME01"]') == [
        "10:E055 channel api: option allow has certificate rules but no client certificate is asked for; "
        "add cert, key, ca and client_cert = \"required\""]


async def test_tls_handshake_failures_are_logged_naming_the_channel_and_why(tmp_path: Path, pki, caplog) -> None:
    """A client the TLS handshake refuses leaves a warning an admin can act on: the channel, the peer and
    what to fix (it used to be an INFO line naming neither the channel nor a cause)."""
    tls = f'cert = "{pki.server_cert}"\n    key = "{pki.server_key}"\n    ca = "{pki.ca}"\n    client_cert = "required"'
    prog = compile_text(tmp_path, ROUTE % tls)
    clients = [
        ("a certificate of another CA", client_context(ca=pki.ca, cert=pki.stranger_cert, key=pki.stranger_key),
         "the client's certificate does not chain to `ca`"),
        ("no certificate", client_context(ca=pki.ca), "the client sent no certificate, and client_cert = required"),
        ("plain HTTP", None, "the client speaks plain HTTP, not TLS"),
    ]
    async with running(prog, tmp_path / "l.duckdb") as sb:
        port = sb.channel("api").port
        for label, ctx, why in clients:
            caplog.clear()
            if ctx is None:
                stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
            else:
                ctx.check_hostname = False
                stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx)
            try:
                await stream.send_all(b"POST /payments/1 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
                with trio.fail_after(5):
                    assert b"200" not in await stream.receive_some(1000)
            except trio.BrokenResourceError:
                pass
            finally:
                await trio.aclose_forcefully(stream)
            with trio.fail_after(5):
                while not any("TLS handshake" in r.getMessage() for r in caplog.records):
                    await trio.sleep(0.01)
            (line,) = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
            assert line.levelname == "WARNING", (label, line)
            assert line.getMessage().startswith("channel api: TLS handshake with 127.0.0.1:"), (label, line.getMessage())
            assert why in line.getMessage(), (label, line.getMessage())
        assert sb.channel("api").tls_failures == 3


async def test_a_form_body_that_does_not_parse_is_a_recorded_malformed_deal(tmp_path: Path) -> None:
    """A body the channel cannot decode is a rejected deal with its dead letter, whatever the format: a
    broken form was answered 400 but left no trace in the ledger."""
    from engine.ledger_query import query_dead_letters
    prog = compile_text(tmp_path, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    bad = b"ref=F1&amount=\xff"
    async with running(prog, ledger) as sb:
        async with httpx.AsyncClient() as c:
            r = await c.post(url(sb), content=bad, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400, r.text
    p = r.json()
    assert (p["kind"], p["deal_status"], p["code"]) == ("malformed", "rejected", "30")
    assert "channel api: request body is not a valid urlencoded form" in p["detail"]
    (row,) = deals(ledger)
    assert row["status"] == "rejected" and "not a valid urlencoded form" in row["reason"]
    assert [bytes(x["raw"]) for x in query_dead_letters(ledger, with_raw=True)] == [bad]


async def test_malformed_detail_names_no_route_file_even_in_a_folder_with_spaces(tmp_path: Path) -> None:
    # the format's place is the failure's ``where`` (the deal's reason), never part of the detail a client
    # reads, whatever the route file's path looks like
    folder = tmp_path / "my routes (prod)"
    folder.mkdir()
    prog = compile_text(folder, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        async with httpx.AsyncClient() as c:
            bad = await c.post(url(sb), content=b'{"ref": "P2", "amount": ',
                               headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not a valid Pay: " in bad.json()["detail"], bad.text
    assert "my routes" not in bad.text and ".route" not in bad.text
    (row,) = [r for r in deals(ledger) if r["status"] == "rejected"]
    assert row["reason"].startswith("malformed: request of ") and "not a valid Pay: " in row["reason"]
    assert f"(at {folder}/test.route:" in row["reason"], row["reason"]


def _read_to_tls_end(port: int, ca: Path, request: bytes | None) -> tuple[bytes, str]:
    """A blocking Python ssl client that does not forgive a ragged EOF (``suppress_ragged_eofs=False``):
    sends ``request`` (or nothing), reads until the connection ends; ``(bytes, "close_notify")`` for a
    clean TLS close, ``(bytes, "ragged: ...")`` for a bare FIN."""
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as s:
        if request is not None:
            s.sendall(request)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ssl.SSLEOFError as exc:
                return got, f"ragged: {exc}"
            if not chunk:
                return got, "close_notify"
            got += chunk


async def test_tls_connections_end_with_close_notify(tmp_path: Path, pki) -> None:
    """Over TLS the server ends a connection with a TLS close_notify, not a bare FIN (a strict client
    reads that as a possible truncation attack): after an answer with `Connection: close`, and when a
    keep-alive connection stays idle past `idle_timeout`."""
    tls = f'cert = "{pki.server_cert}"\n    key = "{pki.server_key}"\n    idle_timeout = 200ms'
    prog = compile_text(tmp_path, ROUTE % tls)
    async with running(prog, tmp_path / "l.duckdb") as sb:
        port = sb.channel("api").port
        body = b'{"ref": "T1", "amount": 3}'
        request = (b"POST /payments/1 HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
                   b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        got, end = await trio.to_thread.run_sync(_read_to_tls_end, port, pki.ca, request)
        assert got.startswith(b"HTTP/1.1 200 ") and b'"ref":"T1"' in got.replace(b" ", b"")
        assert end == "close_notify"
        got, end = await trio.to_thread.run_sync(_read_to_tls_end, port, pki.ca, None)    # idle_timeout
        assert got == b"" and end == "close_notify"


async def test_every_recorded_answer_names_its_deal_and_the_others_none(tmp_path: Path) -> None:
    """`Bsp-Deal-Id` on every answer to a request recorded as a deal (a reply, problem details, where it is
    also `deal_id`): the id a caller quotes and `bsp deals show` takes. A 404 / 405 records nothing: no id."""
    prog = compile_text(tmp_path, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        async with httpx.AsyncClient() as c:
            ok = await c.post(url(sb), json={"ref": "D1", "amount": 5})
            bad = await c.post(url(sb), content=b'{"ref": ', headers={"content-type": "application/json"})
            rej = await c.post(url(sb), json={"ref": "D2", "amount": 0})
            lost = [await c.get(url(sb)), await c.post(url(sb, "/other"), json={})]
    assert (ok.status_code, bad.status_code, rej.status_code) == (200, 400, 422)
    assert bad.json()["deal_id"] == bad.headers["bsp-deal-id"] and rej.json()["deal_id"] == rej.headers["bsp-deal-id"]
    assert [(r.status_code, "bsp-deal-id" in r.headers) for r in lost] == [(405, False), (404, False)]
    rows = {r["deal_id"]: r for r in deals(ledger)}
    assert rows[ok.headers["bsp-deal-id"]]["reference"] == "D1"
    assert rows[rej.headers["bsp-deal-id"]]["status"] == "rejected"      # validate runs before its deal step here
    assert rows[bad.headers["bsp-deal-id"]]["deal_type"] == "MALFORMED"


def test_max_connections_must_be_a_positive_whole_number() -> None:
    from engine.channels.options import ChannelConfigError
    for bad in (0, -1, "10", 1.5, True):
        with pytest.raises(ChannelConfigError, match=r"channel api: option max_connections: expected a positive "
                                                     r"whole number, got"):
            HttpListener("api", {"address": "127.0.0.1:0", "max_connections": bad})
    assert HttpListener("api", {"address": "127.0.0.1:0", "max_connections": 3}).limits.max_connections == 3


async def test_handshake_timeout_closes_a_silent_tls_peer(tmp_path: Path, pki, caplog) -> None:
    """``handshake_timeout`` (as on tcp listen, one option spec): a peer that opens TCP and never starts TLS
    is closed once it has passed, logged naming the channel and the bound.  It used to be fixed at 10s: no
    option (an unknown option in `bsp check`), a silent peer held its slot 10s whatever the configuration."""
    tls = f'cert = "{pki.server_cert}"\n    key = "{pki.server_key}"\n    handshake_timeout = 500ms'
    prog = compile_text(tmp_path, ROUTE % tls)
    async with running(prog, tmp_path / "l.duckdb") as sb:
        ch = sb.channel("api")
        assert ch.limits.handshake_timeout == 0.5
        stream = await trio.open_tcp_stream("127.0.0.1", ch.port)
        started = trio.current_time()
        with trio.fail_after(5):                       # wall clock: well under the old fixed 10s
            try:
                assert await stream.receive_some(100) == b""
            except trio.BrokenResourceError:           # closed with a reset: also closed
                pass
        waited = trio.current_time() - started
        await stream.aclose()
        assert waited >= 0.45, waited                  # not before the bound (a real clock never fires early)
        with trio.fail_after(5):
            while not any("no handshake within 0.5s" in r.getMessage() for r in caplog.records):
                await trio.sleep(0.01)
        assert ch.tls_failures == 1


def test_handshake_timeout_is_checked_as_on_tcp_listen(tmp_path: Path) -> None:
    """`bsp check` names a bad ``handshake_timeout`` (no unit, or not above 0) as it does on tcp listen."""
    from dsl.load import compile_paths
    from engine.registry import default_registry
    (tmp_path / "server.pem").write_text("not a certificate")
    (tmp_path / "server.key").write_text("not a key")
    tcp = 'format Pay = json\nchannel api = tcp listen {\n    address = "127.0.0.1:0"\n    framing = length2\n    %s\n}\n'

    def errors(text: str) -> list[str]:
        (tmp_path / "a.route").write_text(text)
        res = compile_paths([tmp_path / "a.route"], default_registry())
        return [f"{d.code} {d.message}" for d in res.diagnostics if d.severity == "error"]

    tls = 'cert = "server.pem"\n    key = "server.key"\n    '
    assert errors(ROUTE % (tls + "handshake_timeout = 2s")) == []
    zero = errors(ROUTE % (tls + "handshake_timeout = 0s"))
    assert zero == ["E055 channel api: option handshake_timeout: expected a duration above 0 (e.g. "
                    "handshake_timeout = 10s), got 0s"], zero
    assert errors(tcp % (tls + "handshake_timeout = 0s")) == zero        # the same check on tcp listen
    bare = errors(ROUTE % (tls + "handshake_timeout = 5"))
    assert len(bare) == 1 and "handshake_timeout" in bare[0] and "write a unit" in bare[0], bare
    assert errors(tcp % (tls + "handshake_timeout = 5")) == [bare[0].replace("(http listen)", "(tcp listen)")]
    assert HttpListener("api", {"address": "127.0.0.1:0"}).limits.handshake_timeout == 10.0


async def test_plain_http_on_the_tls_port_is_answered_400_naming_https(tmp_path: Path, pki, caplog) -> None:
    """Plain HTTP sent to a TLS channel's port is answered as nginx answers it: 400, problem details saying
    to use https://HOST:PORT, `Connection: close`; no deal.  It used to close without a word (curl: exit 52,
    "empty reply from server").  A TLS client on the same port is served as before."""
    tls = f'cert = "{pki.server_cert}"\n    key = "{pki.server_key}"'
    prog = compile_text(tmp_path, ROUTE % tls)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        port = sb.channel("api").port
        async with httpx.AsyncClient() as c:
            r = await c.post(f"http://127.0.0.1:{port}/payments/1", json={"ref": "H1", "amount": 1})
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["connection"] == "close"
        assert r.json()["detail"] == f"this port speaks HTTPS: use https://127.0.0.1:{port}"
        async with httpx.AsyncClient(verify=client_context(ca=pki.ca)) as c:
            ok = await c.post(f"https://localhost:{port}/payments/1", json={"ref": "H2", "amount": 1})
        assert ok.status_code == 200, ok.text
        assert sb.channel("api").tls_failures == 1
    assert [r["reference"] for r in deals(ledger)] == ["H2"]         # the plain request left no deal
    assert any("plain HTTP sent to the TLS port" in r.getMessage() for r in caplog.records)


async def test_a_problem_about_a_request_field_names_it_in_field(tmp_path: Path) -> None:
    """A rejection caused by one request field (a value of the wrong shape, a field left out) carries the
    field's path as the problem's `field` member, for a program to point at; a failure that knows no field
    (a body that is not an object, a validate rule's own refusal) carries none."""
    text = (ROUTE % "").replace('msg.amount > 0 else reject "13" "invalid amount"',
                                'msg.amount > 0 else reject "13" "invalid amount"\n'
                                '        msg.payer.name != "" else reject "30" "payer name missing"')
    prog = compile_text(tmp_path, text)
    async with running(prog, tmp_path / "l.duckdb") as sb:
        async with httpx.AsyncClient() as c:
            sent = [await c.post(url(sb), json=body) for body in (
                {"ref": "F1", "amount": 1, "payer": "ACME"},             # text where an object is read
                {"ref": "F2", "amount": [1], "payer": {"name": "A"}},     # a list where a number is read
                {"ref": "F3", "payer": {"name": "A"}},                    # amount left out
                [{"ref": "F4", "amount": 1}],                             # not an object: no field
                {"ref": "F5", "amount": -1, "payer": {"name": "A"}})]     # the rule's own refusal: no field
    got = [(r.status_code, r.json().get("field")) for r in sent]
    assert got == [(422, "payer"), (422, "amount"), (422, "amount"), (400, None), (422, None)], \
        [(r.status_code, r.json()) for r in sent]
    assert sent[2].json()["detail"] == "amount: expected a number, got nothing (absent or null)"


async def test_a_content_type_the_format_does_not_read_is_answered_415(tmp_path: Path) -> None:
    """`check_content_type` (on by default): a body declared of a type the route's format does not read is
    answered 415 naming the types it reads, recorded as a rejected deal of kind malformed with its dead
    letter.  The known trap, curl -d sending JSON with its default form type, is named as such (read as a
    form, the route got one field named after the whole JSON text).  JSON, a `+json` type, a real form and a
    request without Content-Type are read as before; `check_content_type = false` reads any type."""
    from engine.ledger_query import query_dead_letters
    prog = compile_text(tmp_path, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    body = b'{"ref": "C1", "amount": 1, "note": "a=b"}'
    async with running(prog, ledger) as sb:
        async with httpx.AsyncClient() as c:
            async def post(ctype: str | None, content: bytes = body) -> httpx.Response:
                return await c.post(url(sb), content=content, headers={"content-type": ctype} if ctype else {})
            curl = await post("application/x-www-form-urlencoded")
            text = await post("text/plain; charset=utf-8")
            fine = [await post("application/json; charset=UTF-8", body.replace(b"C1", b"J1")),
                    await post("application/vnd.bank+json", body.replace(b"C1", b"J2")),
                    await post(None, body.replace(b"C1", b"J3")),
                    await post("application/x-www-form-urlencoded", b"ref=J4&amount=1")]
    for r in (curl, text):
        assert r.status_code == 415, r.text
        p = r.json()
        assert (p["kind"], p["deal_status"], p["code"]) == ("malformed", "rejected", "30"), p
        assert p["accepted"] == ["application/json", "application/*+json", "application/x-www-form-urlencoded"]
        assert r.headers["bsp-deal-id"] == p["deal_id"]
    assert "the body is JSON but its Content-Type says a form" in curl.json()["detail"]
    assert text.json()["detail"] == ("channel api: Content-Type text/plain is not read here: send application/json "
                                     "or application/*+json or application/x-www-form-urlencoded")
    assert [r.status_code for r in fine[:3]] == [200, 200, 200], [r.text for r in fine]
    assert fine[3].status_code == 422 and fine[3].json()["field"] == "amount"     # a form: text, read as before
    rows = {r["deal_id"]: r for r in deals(ledger)}
    assert rows[curl.json()["deal_id"]]["status"] == "rejected"
    assert body in [bytes(x["raw"]) for x in query_dead_letters(ledger, with_raw=True)]
    prog = compile_text(tmp_path, ROUTE % "check_content_type = false")
    async with running(prog, tmp_path / "l2.duckdb") as sb:
        async with httpx.AsyncClient() as c:
            r = await c.post(url(sb), content=b'{"ref": "O1", "amount": 1}', headers={"content-type": "text/plain"})
    assert r.status_code == 200, r.text


async def test_json_declared_in_another_charset_is_refused_415_naming_utf8_not_misread(tmp_path: Path) -> None:
    """JSON is UTF-8 (RFC 8259): a body declared `charset=iso-8859-1` was read as UTF-8 anyway, so the Latin-1
    bytes of "Ã©" became "é" in the deal without a word, and a UTF-16 body failed as "not JSON".  Now the
    declared charset is refused with a 415 naming charset=utf-8 (a rejected deal of kind malformed, as any
    Content-Type the route does not read); UTF-8 declared or not is read as before.  A form whose %-escapes
    are Latin-1 (%E9) is refused by the field's place instead of reaching the route as U+FFFD."""
    prog = compile_text(tmp_path, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    latin1 = '{"ref": "L1", "amount": 1, "note": "Ã©"}'.encode("latin-1")
    assert latin1.decode("utf-8") == '{"ref": "L1", "amount": 1, "note": "é"}'     # the silent misreading
    async with running(prog, ledger) as sb:
        async with httpx.AsyncClient() as c:
            async def post(ctype: str, content: bytes) -> httpx.Response:
                return await c.post(url(sb), content=content, headers={"content-type": ctype})
            misread = await post("application/json; charset=iso-8859-1", latin1)
            wide = await post("application/json; charset=utf-16", '{"ref": "L2", "amount": 1}'.encode("utf-16"))
            fine = await post("application/json; charset=utf-8", '{"ref": "L3", "amount": 1, "note": "é"}'.encode())
            form = await post("application/x-www-form-urlencoded", b"ref=L4&note=M%FCller&amount=1")
    for r, charset in ((misread, "iso-8859-1"), (wide, "utf-16")):
        assert r.status_code == 415, r.text
        p = r.json()
        assert (p["kind"], p["deal_status"], p["code"]) == ("malformed", "rejected", "30"), p
        assert p["detail"] == (f"channel api: Content-Type declares charset={charset}, but JSON is UTF-8 (RFC 8259) "
                               f"and the body is read as UTF-8 only: send the body in UTF-8 with charset=utf-8 "
                               f"(or no charset)")
    assert fine.status_code == 200, fine.text
    assert form.status_code == 400 and form.json()["kind"] == "malformed", form.text
    assert ("field 2 (bytes 7..19) has %-escapes that are not UTF-8" in form.json()["detail"]
            and "ller" not in form.json()["detail"]), form.json()
    rows = deals(ledger)
    assert not [r for r in rows if r["reference"] == "L1"]          # never recorded as a deal about "é"
    assert {r["reference"] for r in rows if r["status"] == "committed"} == {"L3"}
