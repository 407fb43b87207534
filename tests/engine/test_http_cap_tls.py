"""The HTTP server (``http listen`` channels and the admin API) over TLS at max_connections, over real
loopback sockets and real TLS (certificates from engine/certs.py): a connection still in its TLS handshake
holds a slot, so peers that open TCP connections and never complete TLS would fill the server and lock the
real callers out for handshake_timeout.  At the cap, the connection longest in its handshake makes room
first, before any idle one (engine/channels/conn_room.py, engine/http/room.py).

Time is a ``MockClock`` moved by hand; its ``autojump_threshold`` only ends a test that would hang (the
clock then jumps to the next deadline: handshake_timeout here)."""
from __future__ import annotations

import re
import ssl
from functools import partial

import pytest
import trio
import trio.testing

from conftest_tls import PKI, pki  # noqa: F401  (fixture)
from engine.admin import AdminApp, TokenAuth, serve_admin
from engine.http import HTTPLimits, Request, Response, Router, serve_http
from engine.tls import client_context, server_context

TOKEN = "t" * 32
GET = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=1.0)


def router() -> Router:
    r = Router()

    @r.route("GET", "/hello")
    async def hello(request: Request) -> Response:
        return Response.json({"hello": "world"})

    return r


def server_ctx(p: PKI) -> ssl.SSLContext:
    return server_context(p.server_cert, p.server_key, ca=p.ca, client_cert="required")


def caller_ctx(p: PKI) -> ssl.SSLContext:
    return client_context(str(p.ca), str(p.client_cert), str(p.client_key))


async def tls_connect(port: int, ctx: ssl.SSLContext) -> trio.SSLStream:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx, https_compatible=True)
    await stream.do_handshake()
    return stream


async def ask(s: trio.abc.Stream, request: bytes = GET) -> bytes:
    await s.send_all(request)
    out = b""
    while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
        data = await s.receive_some(65536)
        if not data:
            break
        out += data
    return out


async def closed(s: trio.SocketStream) -> bool:
    try:
        return await s.receive_some(100) == b""
    except trio.BrokenResourceError:        # closed with a reset: also closed
        return True


def peer_of(s: trio.SocketStream) -> str:
    return "127.0.0.1:%d" % s.socket.getsockname()[1]


async def fill_with_silent_peers(port: int, clock: trio.testing.MockClock, n: int) -> list[trio.SocketStream]:
    silent = []
    for _ in range(n):                      # open TCP, never send a ClientHello
        silent.append(await trio.open_tcp_stream("127.0.0.1", port))
        await trio.testing.wait_all_tasks_blocked(0.05)     # accepted: waiting for a ClientHello
        clock.jump(1)
    return silent


async def test_peers_that_never_complete_tls_cannot_lock_the_callers_out(nursery, clock, pki: PKI, caplog) -> None:
    port = await nursery.start(partial(serve_http, router(), "127.0.0.1", 0, server_ctx(pki),
                                       limits=HTTPLimits(max_connections=3, handshake_timeout=30)))
    silent = await fill_with_silent_peers(port, clock, 3)
    t0 = trio.current_time()
    with trio.fail_after(5):                # mock seconds: without room it waits handshake_timeout (30s)
        caller = await tls_connect(port, caller_ctx(pki))
        assert (await ask(caller)).startswith(b"HTTP/1.1 200 ")
    assert trio.current_time() == t0        # served at once, not when the handshakes time out
    assert await closed(silent[0])          # the longest in its handshake made room
    assert re.search(rf"HTTP server on 127.0.0.1:{port}: 3 connections open \(max_connections\): closing the "
                     rf"connection from {peer_of(silent[0])}, in its TLS handshake for 3.0s \(the longest\), to "
                     rf"accept a new peer", caplog.text), caplog.text
    for s in (*silent, caller):
        await trio.aclose_forcefully(s)


async def test_a_connection_in_its_handshake_makes_room_before_an_idle_established_one(nursery, clock,
                                                                                     pki: PKI) -> None:
    port = await nursery.start(partial(serve_http, router(), "127.0.0.1", 0, server_ctx(pki),
                                       limits=HTTPLimits(max_connections=2, idle_timeout=600,
                                                         handshake_timeout=30)))
    established = await tls_connect(port, caller_ctx(pki))
    assert (await ask(established)).startswith(b"HTTP/1.1 200 ")     # idle from now: the oldest
    clock.jump(60)
    silent = await fill_with_silent_peers(port, clock, 1)
    with trio.fail_after(5):
        newcomer = await tls_connect(port, caller_ctx(pki))
        assert (await ask(newcomer)).startswith(b"HTTP/1.1 200 ")
    assert await closed(silent[0])
    assert (await ask(established)).startswith(b"HTTP/1.1 200 ")     # idle 61s, but it proved itself: kept
    for s in (*silent, established, newcomer):
        await trio.aclose_forcefully(s)


async def test_the_admin_api_is_not_locked_out_by_peers_that_never_complete_tls(nursery, clock, pki: PKI,
                                                                               caplog) -> None:
    app = AdminApp(None, TokenAuth(TOKEN))      # type: ignore[arg-type]  # /health asks no backend
    port = await nursery.start(partial(serve_admin, app, "127.0.0.1", 0, server_ctx(pki),
                                       limits=HTTPLimits(max_connections=2, handshake_timeout=30)))
    silent = await fill_with_silent_peers(port, clock, 2)
    t0 = trio.current_time()
    with trio.fail_after(5):
        admin = await tls_connect(port, caller_ctx(pki))
        assert (await ask(admin, HEALTH)).startswith(b"HTTP/1.1 200 ")
    assert trio.current_time() == t0
    assert await closed(silent[0])
    # not a channel: no metric (the /metrics it would be read from is this server), one warning
    assert re.search(rf"admin API on 127.0.0.1:{port}: 2 connections open \(its limit, fixed\): closing the "
                     rf"connection from {peer_of(silent[0])}, in its TLS handshake for 2.0s \(the longest\), to "
                     rf"accept a new peer; .*admin.listen", caplog.text), caplog.text
    for s in (*silent, admin):
        await trio.aclose_forcefully(s)
