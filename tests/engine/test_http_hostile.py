"""Attacks on the HTTP server (engine/http/server.py) over real sockets: what a penetration test found open.

Request smuggling through obsolete line folding, chunk framing that costs the engine CPU out of proportion
to the body, and the admin API quoting a token sent without its scheme back in its 401."""
from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio

from engine.admin.app import AdminApp, serve_admin
from engine.admin.auth import NamedToken, TokenAuth
from engine.http import HTTPLimits, Request, Response, Router, serve_http

SECRET = "s3cr3t-token-0123456789abcdef"


def _router(seen: list[Request]) -> Router:
    router = Router()

    @router.route("POST", "/size")
    async def size(request: Request) -> Response:
        seen.append(request)
        return Response.json({"size": len(request.body)})

    @router.route("GET", "/ping")
    async def ping(request: Request) -> Response:
        seen.append(request)
        return Response.json({"ok": True})

    return router


@pytest.fixture
async def server(nursery):
    seen: list[Request] = []
    port = await nursery.start(partial(serve_http, _router(seen), "127.0.0.1", 0,
                                       limits=HTTPLimits(max_body=1 << 20, max_header=4096)))
    return port, seen


async def _exchange(port: int, data: bytes, *, chunks: int = 1) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        try:
            await stream.send_all(data)
        except trio.BrokenResourceError:       # the server answered and closed before all was sent
            pass
        out = b""
        with trio.fail_after(5):
            try:
                while chunk := await stream.receive_some(65536):
                    out += chunk
            except trio.BrokenResourceError:
                pass
    return out


@pytest.mark.parametrize("head", [
    # a proxy that does not unfold sees no Transfer-Encoding: no body, and the chunks below as the next request
    b"POST /size HTTP/1.1\r\nHost: x\r\nX-Note: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
    b"POST /size HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n\tb\r\nContent-Length: 0\r\n\r\n",
])
async def test_a_folded_header_line_is_refused_and_closed(server, head):
    port, seen = server
    out = await _exchange(port, head + b"0\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1 ") == 1
    assert b"obsolete line folding" in out and b"connection: close" in out.lower()
    assert seen == []


async def test_a_folded_line_in_a_pipelined_request_is_refused_too(server):
    port, seen = server
    out = await _exchange(port, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"GET /ping HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 ") == 1 and out.count(b"HTTP/1.1 400 ") == 1 and len(seen) == 1


async def test_spaces_inside_header_values_and_a_body_with_newlines_are_not_folding(server):
    port, seen = server
    body = b"a\r\n b\n\tc"
    out = await _exchange(port, b"POST /size HTTP/1.1\r\nHost: x\r\nX-A: one  two\t three\r\n"
                                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    assert out.startswith(b"HTTP/1.1 200 ") and b'"size":8' in out


async def test_one_byte_chunks_are_refused_before_they_cost_the_body_limit(server):
    # 1 MiB in 1-byte chunks is 6 MiB on the wire and a million h11 events (about a second of CPU per request)
    port, seen = server
    head = b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    out = await _exchange(port, head + b"1\r\na\r\n" * 200_000 + b"0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b"framing" in out and seen == []


async def test_chunk_extensions_cannot_stream_without_a_body(server):
    port, seen = server
    head = b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    out = await _exchange(port, head + (b"1;" + b"e" * 3000 + b"\r\na\r\n") * 400 + b"0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b"framing" in out and seen == []


async def test_ordinary_chunked_bodies_still_pass(server):
    port, seen = server
    head = b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    # 16-byte chunks (a client writing small pieces), with an extension each and a trailer
    out = await _exchange(port, head + b"10;n=1\r\n" + b"x" * 16 + b"\r\n" * 1 + (b"10\r\n" + b"y" * 16 + b"\r\n") * 4000
                          + b"0\r\nX-Trailer: 1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and b'"size":64016' in out


class _Backend:
    async def status(self):
        return {"ok": True}


@pytest.fixture
async def admin(nursery):
    app = AdminApp(_Backend(), TokenAuth(None, tokens=[NamedToken("ops", SECRET)]))
    port = await nursery.start(partial(serve_admin, app, "127.0.0.1", 0))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        yield client


async def test_a_token_sent_without_its_scheme_is_not_quoted_back(admin):
    r = await admin.get("/status", headers={"authorization": SECRET})
    assert r.status_code == 401 and r.json()["reason"] == "malformed"
    assert SECRET not in r.text and "Bearer" in r.json()["detail"]
    r = await admin.get("/status", headers={"authorization": f"{SECRET} x"})
    assert r.status_code == 401 and SECRET not in r.text
    r = await admin.get("/status", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401 and "'Basic'" in r.json()["detail"] and "dXNlcjpwYXNz" not in r.text
    r = await admin.get("/status", headers={"authorization": f"Bearer {SECRET}"})
    assert r.status_code == 200


CHANNEL_ROUTE = '''
format Pay = json
format Ack = json

channel api = http listen {
    address = "127.0.0.1:0"
    path    = "/payments"
}

route pay {
    receive from api as Pay
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Ack { status = "OK" }
}
'''


async def test_http_listen_logs_a_bad_request_without_its_bytes_and_counts_a_flood(tmp_path, caplog):
    # a smuggling probe left no trace: no deal (nothing was read) and no log line
    from kit import compile_text, running

    prog = compile_text(tmp_path, CHANNEL_ROUTE)
    async with running(prog, tmp_path / "l.duckdb") as sb:
        port = sb.channel("api").port
        caplog.clear()
        for _ in range(3):
            out = await _exchange(port, b"POST /payments HTTP/1.1\r\nHost: x\r\n"
                                        b"Authorization : Bearer 4111111111111111\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 400 ")
        out = await _exchange(port, b"POST /payments HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 ")
        assert sb.channel("api").bad_requests == 4
    lines = [r.getMessage() for r in caplog.records if "bad HTTP request" in r.getMessage()]
    assert len(lines) == 2, lines         # the first in full, the rest counted (said when the channel stops)
    assert "channel api: bad HTTP request from 127.0.0.1:" in lines[0] and "400 illegal header line" in lines[0]
    assert "3 more bad HTTP requests (400)" in lines[1] and "both Content-Length and Transfer-Encoding" in lines[1]
    assert not any("4111111111111111" in r.getMessage() for r in caplog.records)


async def test_the_admin_api_logs_bad_requests_once_then_counts_them(admin, caplog):
    port = int(str(admin.base_url).rsplit(":", 1)[1].rstrip("/"))
    caplog.clear()
    for _ in range(5):
        out = await _exchange(port, b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer " +
                              SECRET.encode() + b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 ")
    lines = [r.getMessage() for r in caplog.records if "bad HTTP request" in r.getMessage()]
    assert lines == ["admin: bad HTTP request from 127.0.0.1: 400 illegal header line; answered and closed"]
    assert not any(SECRET in r.getMessage() for r in caplog.records)


async def test_admin_answers_are_not_cached_nor_sniffed(admin):
    for r in (await admin.get("/status", headers={"authorization": f"Bearer {SECRET}"}),
              await admin.get("/status"), await admin.get("/health"), await admin.get("/nowhere/<b>x</b>")):
        assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("head", [
    b"POST /size HTTP/1.1\r\nHost: x\r\nX-Note: a\nTransfer-Encoding: chunked\r\n\r\n",    # one header to a proxy
    b"POST /size HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n",
    b"POST /size HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\n",
])
async def test_a_head_line_ending_in_a_bare_lf_is_refused_and_closed(server, head):
    port, seen = server
    out = await _exchange(port, head + b"0\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1 ") == 1 and b"bare LF" in out
    assert seen == []
