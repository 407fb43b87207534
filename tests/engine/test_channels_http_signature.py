"""Message signatures on http listen / http call, over real loopback HTTP with the engine and a real
DuckDB ledger.  The tests compute and check signatures with hashlib/hmac (or cryptography's CMAC), not
with the engine's own code, so that a wrong signature on either side fails them."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from engine.channels.http_call import HttpConnector
from engine.channels.http_listen import HttpListener
from engine.deadletter import retry
from engine.http import Response, Router, serve_http
from engine.ledger_query import query_dead_letters
from kit import REPO, Client, compile_text, deals, exchange_refs, running

SECRET = "partner-secret-7f3a"          # the shared secret, as a partner hands it out
WRONG = "someone-elses-secret"

LISTEN = '''
format Pay = json
format Ack = json

channel api = http listen {
    address    = "127.0.0.1:0"
    path       = "/payments/{id}"
    signature_header  = "X-Signature"
    signature_key_env = "BSP_TEST_PARTNER_KEY"
    %s
}

route pay {
    receive from api as Pay
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Ack { status = "OK"  ref = msg.ref }
}
'''

STRIPE_LIKE = '''signature_prefix  = "sha256="
    signature_timestamp_header = "X-Timestamp"
    signature_max_age = 2m'''


@pytest.fixture(autouse=True)
def partner_key(monkeypatch) -> None:
    monkeypatch.setenv("BSP_TEST_PARTNER_KEY", SECRET)


def hmac_hex(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def signed(body: bytes, *, secret: str = SECRET, ts: int | None = None, prefix: str = "sha256=") -> dict[str, str]:
    """The headers a partner sends: X-Timestamp and X-Signature over TIMESTAMP.body."""
    ts = int(time.time()) if ts is None else ts
    return {"content-type": "application/json", "X-Timestamp": str(ts),
            "X-Signature": prefix + hmac_hex(secret, b"%d." % ts + body)}


def reply_is_signed(r: httpx.Response) -> bool:
    ts = r.headers["x-timestamp"]
    assert abs(int(ts) - time.time()) < 60
    return hmac.compare_digest(r.headers["x-signature"], "sha256=" + hmac_hex(SECRET, ts.encode() + b"." + r.content))


async def test_listen_serves_signed_requests_and_refuses_the_others(tmp_path: Path) -> None:
    prog = compile_text(tmp_path, LISTEN % STRIPE_LIKE)
    ledger = tmp_path / "l.duckdb"
    good = b'{"ref": "G1", "amount": 10}'
    async with running(prog, ledger) as sb:
        url = f"http://127.0.0.1:{sb.channel('api').port}/payments/1"
        async with httpx.AsyncClient() as c:
            r = await c.post(url, content=good, headers=signed(good))
            assert r.status_code == 200 and r.json() == {"status": "OK", "ref": "G1"}, r.text
            assert reply_is_signed(r)

            tampered = b'{"ref": "T1", "amount": 10000}'
            headers = signed(b'{"ref": "T1", "amount": 10}')           # signed, then the amount changed
            missing = {"content-type": "application/json", "X-Timestamp": str(int(time.time()))}
            prefix = signed(b'{"ref": "P1", "amount": 1}', prefix="sha1=")
            stale = signed(b'{"ref": "S1", "amount": 1}', ts=int(time.time()) - 600)
            other_key = signed(b'{"ref": "K1", "amount": 1}', secret=WRONG)
            cases = [
                (tampered, headers, "X-Signature does not verify over the 30-byte body and X-Timestamp"),
                (b'{"ref": "M1", "amount": 1}', missing, "no X-Signature header: the message is not signed"),
                (b'{"ref": "P1", "amount": 1}', prefix, "X-Signature does not start with 'sha256='"),
                (b'{"ref": "S1", "amount": 1}', stale, "X-Timestamp is 60"),
                (b'{"ref": "K1", "amount": 1}', other_key, "signed with another key"),
                (b'{"ref": "H1", "amount": 1}', {**signed(b'{"ref": "H1", "amount": 1}'), "X-Signature": "sha256=zz"},
                 "X-Signature is not hex"),
                (b'{"ref": "N1", "amount": 1}', {k: v for k, v in signed(b'{"ref": "N1", "amount": 1}').items()
                                                  if k != "X-Timestamp"}, "no X-Timestamp header"),
            ]
            for body, hdrs, why in cases:
                r = await c.post(url, content=body, headers=hdrs)
                assert r.status_code == 401, (why, r.status_code, r.text)
                p = r.json()
                assert r.headers["content-type"] == "application/problem+json"
                assert p["kind"] == "unauthenticated" and p["code"] == "63" and p["deal_status"] == "rejected"
                assert why in p["detail"] and "channel api" in p["detail"], (why, p["detail"])
                assert reply_is_signed(r)                               # the 401 is signed too
            # the next good request is still served, on the same connection
            again = b'{"ref": "G2", "amount": 20}'
            r = await c.post(url, content=again, headers=signed(again))
            assert r.status_code == 200 and r.json()["ref"] == "G2" and reply_is_signed(r)
            # an answer of the server itself (405, no route involved) is signed as well
            r = await c.get(url)
            assert r.status_code == 405 and reply_is_signed(r)
        assert sb.channel("api").unauthenticated == len(cases)
    rows = deals(ledger)
    served = [d for d in rows if d["status"] == "committed"]
    assert sorted(d["reference"] for d in served) == ["G1", "G2"]
    refused = [d for d in rows if d["status"] == "rejected"]
    assert len(refused) == len(cases)
    for d, (_, _, why) in zip(refused, cases):
        assert d["route"] == "(unauthenticated)" and d["deal_type"] == "UNAUTHENTICATED"
        assert d["response_code"] == "63" and d["reference"] is None          # no route ran
        assert d["reason"].startswith("unauthenticated: channel api: ") and why in d["reason"], d["reason"]
        assert "POST /payments/1 from 127.0.0.1:" in d["reason"]
    everything = "\n".join(str(v) for d in rows for v in d.values())
    expected_tampered = hmac_hex(SECRET, headers["X-Timestamp"].encode() + b"." + tampered)
    assert SECRET not in everything and expected_tampered not in everything
    letters = query_dead_letters(ledger, with_raw=True)
    assert len(letters) == len(cases)
    assert {bytes(r["raw"]) for r in letters} == {body for body, _, _ in cases}     # nothing lost, as received
    assert {r["error_kind"] for r in letters} == {"unauthenticated"} and {r["channel"] for r in letters} == {"api"}
    # a retry would run the request without the signature it lacked: refused, nothing injected
    injected: list[bytes] = []

    async def injector(channel: str, raw: bytes) -> str:
        injected.append(raw)
        return "committed"
    res = await retry(letters[0], injector)
    assert not res.ok and res.outcome.startswith("refused: the message failed authentication") and injected == []


async def test_listen_base64_key_file_cmac_and_an_on_error_reply(tmp_path: Path) -> None:
    key = bytes(range(16))
    (tmp_path / "partner.key").write_text(key.hex().upper() + "\n")
    opts = (f'signature_algorithm = "cmac-aes"\n    signature_key_file = "{tmp_path / "partner.key"}"\n'
            f'    signature_encoding = "base64"')
    text = (LISTEN % opts).replace('    signature_key_env = "BSP_TEST_PARTNER_KEY"\n', "")
    text = text.replace("    %s\n}", "}").replace(
        opts + "\n}", opts + '\n    on error reply Ack {\n        status = "ERR"\n        code = error.code\n    }\n}')
    prog = compile_text(tmp_path, text)

    def sig(body: bytes) -> str:
        c = cmac.CMAC(algorithms.AES(key))
        c.update(body)
        return base64.b64encode(c.finalize()).decode()

    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        url = f"http://127.0.0.1:{sb.channel('api').port}/payments/9"
        async with httpx.AsyncClient() as c:
            body = b'{"ref": "B1", "amount": 5}'
            r = await c.post(url, content=body, headers={"X-Signature": sig(body)})
            assert r.status_code == 200 and r.json()["ref"] == "B1", r.text
            assert r.headers["x-signature"] == sig(r.content) and "x-timestamp" not in r.headers
            hexed = base64.b64decode(sig(body)).hex()          # the right MAC, written in hex: not base64
            r = await c.post(url, content=body, headers={"X-Signature": hexed})
            assert r.status_code == 401 and r.json() == {"status": "ERR", "code": "63"}   # the channel's error reply
            assert r.headers["x-signature"] == sig(r.content)
            short = base64.b64encode(base64.b64decode(sig(body))[:8]).decode()   # a cut MAC is not accepted
            r = await c.post(url, content=body, headers={"X-Signature": short})
            assert r.status_code == 401
    reasons = [d["reason"] for d in deals(ledger) if d["status"] == "rejected"]
    assert len(reasons) == 2
    # hex digits are base64 characters too: the 32 hex digits read as 24 bytes, not a 16-byte CMAC
    assert "X-Signature holds 24 bytes; a cmac-aes signature has 16" in reasons[0]
    assert "X-Signature holds 8 bytes; a cmac-aes signature has 16" in reasons[1]


# ---------------------------------------------------------------------------------------- http call
FRONT_CALL = '''
format Req = json
format Ack = json
format Post = json

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Ack {
        code = error.code
        kind = error.kind
    }
}

channel partner = http call {
    url = "%s"
    timeout = 2s
    signature_header  = "X-Signature"
    signature_key_env = "BSP_TEST_PARTNER_KEY"
    signature_prefix  = "sha256="
    signature_timestamp_header = "X-Timestamp"
    %s
}

route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call post = partner as Post reply Ack { reference = msg.ref  amount = msg.amount }
    reply Ack { code = "00"  confirmation = post.confirmation }
}
'''


async def partner_api(nursery, seen: list) -> int:
    """A partner's API: it checks each request's signature itself, and signs its answers (not those of
    reference UNSIGNED; BADSIG gets a signature made with another key; STALE one made 10 minutes ago)."""
    router = Router()

    @router.route("POST", "/payments")
    async def pay(request):
        ts = request.header("x-timestamp") or ""
        ok = (abs(int(ts or 0) - time.time()) < 60 and hmac.compare_digest(
            request.header("x-signature") or "", "sha256=" + hmac_hex(SECRET, ts.encode() + b"." + request.body)))
        seen.append((request.json()["reference"], ok))
        if not ok:
            return Response.problem(401, "bad signature")
        ref = request.json()["reference"]
        answer = Response.json({"confirmation": "C-" + ref})
        at = int(time.time()) - (600 if ref == "STALE" else 0)
        key = WRONG if ref == "BADSIG" else SECRET
        if ref != "UNSIGNED":
            answer.headers += [("X-Timestamp", str(at)),
                               ("X-Signature", "sha256=" + hmac_hex(key, b"%d." % at + answer.body))]
        return answer

    return await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0))


async def call_through(tmp_path: Path, port: int, extra: str, refs: list[str]) -> tuple[list, list]:
    return await exchange_refs(tmp_path, FRONT_CALL % (f"http://127.0.0.1:{port}/payments", extra), refs)


async def test_call_signs_requests_and_verifies_answers_when_asked(tmp_path: Path, nursery) -> None:
    seen: list = []
    port = await partner_api(nursery, seen)
    refs = ["A1", "UNSIGNED", "BADSIG", "STALE", "A2"]
    replies, rows = await call_through(tmp_path, port, "signature_verify_answer = true", refs)
    assert sorted(seen) == sorted((r, True) for r in refs)   # every request carried a good signature
    assert replies == [{"code": "00", "confirmation": "C-A1"}, {"code": "63", "kind": "unauthenticated"},
                       {"code": "63", "kind": "unauthenticated"}, {"code": "63", "kind": "unauthenticated"},
                       {"code": "00", "confirmation": "C-A2"}]
    by_ref = {d["reference"]: d for d in rows}
    url = f"http://127.0.0.1:{port}/payments"
    assert by_ref["UNSIGNED"]["reason"].startswith(f"unauthenticated: call post: channel partner: POST {url} "
                                                   f"answered 200 without a good signature: no X-Signature header")
    assert "does not verify" in by_ref["BADSIG"]["reason"]
    assert "X-Timestamp is 600s old" in by_ref["STALE"]["reason"]
    # the partner answered: it may have done it, so an answer that cannot be trusted fails the deal (in doubt)
    assert [by_ref[r]["status"] for r in refs] == ["committed", "failed", "failed", "failed", "committed"]


async def test_call_without_verify_answer_takes_unsigned_answers(tmp_path: Path, nursery) -> None:
    seen: list = []
    port = await partner_api(nursery, seen)
    replies, _ = await call_through(tmp_path, port, "", ["UNSIGNED"])
    assert seen == [("UNSIGNED", True)] and replies == [{"code": "00", "confirmation": "C-UNSIGNED"}]


async def test_call_signs_with_the_wrong_key_and_the_partner_refuses(tmp_path: Path, nursery, monkeypatch) -> None:
    monkeypatch.setenv("BSP_TEST_PARTNER_KEY", WRONG)
    seen: list = []
    port = await partner_api(nursery, seen)
    replies, _ = await call_through(tmp_path, port, "", ["W1"])
    assert seen == [("W1", False)] and replies == [{"code": "05", "kind": "refused"}]


# ---------------------------------------------------------------------------------------- options
def test_options_are_checked_with_the_channel_and_option_named(tmp_path: Path, monkeypatch) -> None:
    base = {"address": "127.0.0.1:0", "signature_header": "X-Signature"}
    (tmp_path / "latin1.key").write_bytes(b"s\xe9cret-S3KR1T\n")        # not UTF-8: refused, never quoted
    cases = [
        ({}, "option signature_header is set but there is no key; give signature_key_env"),
        ({"signature_key_env": "A", "signature_key_file": "/k"}, "give signature_key_env or signature_key_file, "
                                                                  "not both"),
        ({"signature_key_env": "BSP_TEST_PARTNER_KEY", "signature_algorithm": "hmac-sha265"},
         "option signature_algorithm: unknown MAC algorithm 'hmac-sha265'; did you mean 'hmac-sha256'?"),
        ({"signature_key_env": "BSP_TEST_PARTNER_KEY", "signature_encoding": "b64"},
         "option signature_encoding: expected hex or base64"),
        ({"signature_key_env": "BSP_TEST_NOT_SET_KEY"}, "option signature_key_env: environment variable "
                                                         "BSP_TEST_NOT_SET_KEY is not set"),
        ({"signature_key_file": str(tmp_path / "none.key")}, "option signature_key_file: cannot read secret file"),
        ({"signature_key_file": str(tmp_path / "latin1.key")}, "is not UTF-8 text"),
        ({"signature_key_env": "BSP_TEST_PARTNER_KEY", "signature_algorithm": "retail-des"},
         "option signature_key_env: a retail-des key is written in hex digits"),
        ({"signature_key_env": "BSP_TEST_PARTNER_KEY", "signature_max_age": 60},
         "option signature_max_age needs signature_timestamp_header"),
        ({"signature_key_env": "BSP_TEST_PARTNER_KEY", "signature_timestamp_header": "x-signature"},
         "option signature_timestamp_header: x-signature is already the signature_header"),
        ({"signature_key_env": "BSP_TEST_PARTNER_KEY", "signature_header": "X Sig"},
         "option signature_header: expected a header name"),
        ({"signature_header": None, "signature_key_env": "BSP_TEST_PARTNER_KEY"},
         "option signature_key_env needs signature_header"),
    ]
    for opts, msg in cases:
        with pytest.raises(ValueError) as ei:
            HttpListener("api", {**base, **opts})
        assert "channel api: " in str(ei.value) and msg in str(ei.value), str(ei.value)
        assert SECRET not in str(ei.value) and "S3KR1T" not in str(ei.value)
    monkeypatch.setenv("BSP_TEST_PARTNER_KEY", "not hex but secret text")
    with pytest.raises(ValueError) as ei:
        HttpListener("api", {**base, "signature_key_env": "BSP_TEST_PARTNER_KEY", "signature_algorithm": "cmac-aes"})
    assert "not hex but secret" not in str(ei.value)                          # a bad key is never quoted
    with pytest.raises(ValueError, match="channel b: option signature_verify_answer needs signature_header"):
        HttpConnector("b", {"url": "http://127.0.0.1:1/x", "signature_verify_answer": True})
    c = HttpConnector("b", {"url": "http://127.0.0.1:1/x", "signature_header": "X-Sig",
                            "signature_key_env": "BSP_TEST_PARTNER_KEY"})
    assert c.signature is not None and "secret" not in repr(c.signature)


def test_bsp_check_checks_signature_options_without_the_key(tmp_path: Path, monkeypatch) -> None:
    from dsl.load import compile_paths
    from engine.registry import default_registry
    monkeypatch.delenv("BSP_TEST_PARTNER_KEY")

    def errors(opts: str, text: str = LISTEN) -> list[str]:
        (tmp_path / "a.route").write_text(text % opts)
        res = compile_paths([tmp_path / "a.route"], default_registry())
        return [f"{d.pos.line}:{d.code} {d.message} | {d.help}" for d in res.diagnostics if d.severity == "error"]

    assert errors(STRIPE_LIKE) == []                                           # the variable is not needed
    by_file = LISTEN.replace('    signature_key_env = "BSP_TEST_PARTNER_KEY"\n', "")
    assert errors('signature_key_file = "/nowhere/partner.key"', by_file) == []        # nor the file
    got = errors('signature_algorithm = "hmac-sha265"')
    assert len(got) == 1 and got[0].startswith("10:E046 option `signature_algorithm`") and "did you mean" in got[0] \
        and "hmac-sha256" in got[0], got
    got = errors('signature_key_file = "k.key"')
    assert len(got) == 1 and got[0].startswith("10:E055 channel api: option signature_key_file: give "
                                               "signature_key_env or signature_key_file, not both"), got
    got = errors('signature_encoding = "base32"')
    assert len(got) == 1 and "base64" in got[0], got


def test_a_missing_key_variable_is_one_line_at_start(tmp_path: Path) -> None:
    (tmp_path / "r.route").write_text(LISTEN % "")
    env = {k: v for k, v in os.environ.items() if k != "BSP_TEST_PARTNER_KEY"}
    p = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(tmp_path / "r.route"),
                        "--ledger", str(tmp_path / "l.duckdb")], cwd=str(REPO), env=env,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "ExceptionGroup" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, p.stderr
    assert "r.route:" in lines[0] and "channel api: option signature_key_env: environment variable " \
        "BSP_TEST_PARTNER_KEY is not set" in lines[0], p.stderr


async def test_reply_headers_hook_signs_server_errors(nursery) -> None:
    """The server's own refusals (413 here: a body over max_body) carry the signature too."""
    from engine.http import HTTPLimits
    router = Router()

    @router.route("POST", "/x")
    async def x(request):
        return Response.json({})

    sign = lambda body: [("x-signature", hmac_hex(SECRET, body))]  # noqa: E731
    port = await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0, limits=HTTPLimits(max_body=10),
                                                 reply_headers=sign))
    async with httpx.AsyncClient() as c:
        r = await c.post(f"http://127.0.0.1:{port}/x", content=b"x" * 100)
    assert r.status_code == 413 and r.headers["x-signature"] == hmac_hex(SECRET, r.content)
    await trio.sleep(0)


async def test_an_untrusted_answer_is_compensated_as_in_doubt(tmp_path: Path, nursery) -> None:
    """The partner answered, so it may have booked the payment: a keyed, compensating route cancels it,
    as after a timeout.  A refused (401) cancel would show as a failed compensation, not as none."""
    seen: list = []
    port = await partner_api(nursery, seen)
    extra = "signature_verify_answer = true"
    text = (FRONT_CALL % (f"http://127.0.0.1:{port}/payments", extra)).replace(
        '    call post = partner as Post reply Ack { reference = msg.ref  amount = msg.amount }\n',
        '    call post = partner as Post reply Ack { reference = msg.ref  amount = msg.amount }\n'
        '        compensate call partner as Post reply Ack { reference = msg.ref  amount = 0 }\n').replace(
        'deal PAY { ref = msg.ref ', 'deal PAY { key = msg.ref  ref = msg.ref ')
    assert "compensate call partner" in text and "key = msg.ref" in text
    prog = compile_text(tmp_path, text)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        for ref in ("A1", "BADSIG"):
            await c.send(b'{"ref": "%s", "amount": 1.5}' % ref.encode())
        replies = await c.recv_json(2)
        await c.aclose()
    assert replies == [{"code": "00", "confirmation": "C-A1"}, {"code": "63", "kind": "unauthenticated"}]
    # BADSIG was posted, then cancelled (the compensation, amount 0); A1 was posted once
    assert sorted(r for r, _ in seen) == ["A1", "BADSIG", "BADSIG"]
    by_ref = {d["reference"]: d for d in deals(ledger)}
    assert by_ref["BADSIG"]["status"] == "failed"
    steps = [s for s in table_rows(ledger, "SELECT s.step, s.kind FROM deal_steps s JOIN deals d USING (deal_id) "
                                           "WHERE d.reference = 'BADSIG' ORDER BY s.seq")]
    assert ("post.compensate", "compensate") in steps, steps


def table_rows(ledger: Path, sql: str) -> list[tuple]:
    import duckdb
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def test_an_answer_timestamp_in_other_digits_is_unauthenticated_not_a_crash(tmp_path: Path, nursery) -> None:
    """httpx reads a UTF-8 header value as text: a time written in Arabic-Indic digits passed a ``\\d``
    check, then broke the signature check (UnicodeEncodeError: the deal failed as ``internal``)."""
    body = b'{"confirmation": "C-U1"}'

    async def counterpart(stream: trio.SocketStream) -> None:       # a raw HTTP/1.1 answer, bytes as written
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        ts = "\u0661\u0667\u0669\u0665\u0666\u0667\u0668\u0661\u0669\u0665".encode()
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                              b"x-timestamp: %s\r\nx-signature: sha256=%s\r\nconnection: close\r\n\r\n%s"
                              % (len(body), ts, b"0" * 64, body))
        await stream.aclose()

    (listener,) = await nursery.start(functools.partial(trio.serve_tcp, counterpart, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    replies, rows = await call_through(tmp_path, port, "signature_verify_answer = true", ["U1"])
    assert replies == [{"code": "63", "kind": "unauthenticated"}]
    (d,) = rows
    assert d["status"] == "failed" and "X-Timestamp" in d["reason"] and "is not a Unix time" in d["reason"], d["reason"]


async def test_a_repeated_signature_or_time_header_is_refused(tmp_path: Path) -> None:
    """Two X-Signature (or X-Timestamp) field lines: the channel read the first, a proxy or the route's
    ``http.headers`` (the last one wins there) may read another; such a request is refused, and the next
    one on the same connection is served."""
    prog = compile_text(tmp_path, LISTEN % STRIPE_LIKE)
    ledger = tmp_path / "l.duckdb"

    def request(body: bytes, headers: list[tuple[str, str]]) -> bytes:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
        return (b"POST /payments/1 HTTP/1.1\r\nhost: bank\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n%s\r\n%s" % (len(body), head, body))

    def lines(body: bytes) -> list[tuple[str, str]]:
        return [(k, v) for k, v in signed(body).items() if k != "content-type"]

    b1, b2, b3 = (b'{"ref": "%s", "amount": 1}' % r for r in (b"R1", b"R2", b"R3"))
    (ts1, sig1), (ts2, _), (ts3, sig3) = lines(b1), lines(b2), lines(b3)
    data = (request(b1, [ts1, sig1, ("X-Signature", "sha256=" + "0" * 64)])      # the good one first
            + request(b2, [ts2, ("X-Timestamp", "1"), *lines(b2)[1:]])
            + request(b3, [ts3, sig3]))
    async with running(prog, ledger) as sb:
        stream = await trio.open_tcp_stream("127.0.0.1", sb.channel("api").port)
        got = b""
        with trio.fail_after(10):
            await stream.send_all(data)
            while got.count(b"HTTP/1.1 ") < 3 or not got.endswith(b"}"):
                got += await stream.receive_some(65536)
        await stream.aclose()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", got)
    assert statuses == [b"401", b"401", b"200"], got
    assert b"X-Signature appears 2 times; a signed message carries it once" in got
    assert b"X-Timestamp appears 2 times" in got and b'{"status":"OK","ref":"R3"}' in got
    assert [(d["status"], d["reference"]) for d in deals(ledger)] == [("rejected", None), ("rejected", None),
                                                                      ("committed", "R3")]


def test_a_signature_key_file_with_a_byte_order_mark_gives_the_secret(tmp_path: Path) -> None:
    """A BOM at the start of the key file (a Windows editor) was kept in the secret: every request then
    failed to verify, with nothing to say why."""
    key = tmp_path / "partner.key"
    key.write_bytes(b"\xef\xbb\xbf" + SECRET.encode() + b"\r\n")
    listener = HttpListener("api", {"address": "127.0.0.1:0", "signature_header": "X-Signature",
                                    "signature_key_file": str(key)})
    body = b'{"ref": "B1"}'
    assert listener.signature.key == SECRET.encode()
    headers = {"x-signature": hmac_hex(SECRET, body)}
    assert listener.signature.check(lambda name: headers.get(name.lower()), body) is None


HTTP_FRONT_CALL = FRONT_CALL.replace('''channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Ack {
        code = error.code
        kind = error.kind
    }
}''', '''channel front = http listen {
    address = "127.0.0.1:0"
    path    = "/pay"
}''')


async def test_a_counterpart_answer_that_does_not_verify_is_502_to_the_caller_not_401(tmp_path: Path,
                                                                                          nursery) -> None:
    """The caller's request was fine; the bank's counterpart answered without a good signature (the deal
    failed in doubt).  A 401 would tell the caller to fix its own signature: the channel answers 502, the
    problem's kind still says what happened.  A caller's own bad signature stays 401 (the test above)."""
    seen: list = []
    port = await partner_api(nursery, seen)
    prog = compile_text(tmp_path, HTTP_FRONT_CALL % (f"http://127.0.0.1:{port}/payments",
                                                     "signature_verify_answer = true"))
    async with running(prog, tmp_path / "l.duckdb") as sb:
        url = f"http://127.0.0.1:{sb.channel('front').port}/pay"
        async with httpx.AsyncClient() as c:
            good = await c.post(url, content=b'{"ref": "A1", "amount": 10.00}')
            bad = await c.post(url, content=b'{"ref": "UNSIGNED", "amount": 10.00}')
    assert good.status_code == 200 and good.json() == {"code": "00", "confirmation": "C-A1"}, good.text
    assert bad.status_code == 502, bad.text
    problem = bad.json()
    assert problem["kind"] == "unauthenticated" and problem["deal_status"] == "failed", problem
