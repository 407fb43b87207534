"""tcp listen with TLS at max_connections, over real loopback sockets and real TLS (certificates from
engine/certs.py): a connection still in its TLS handshake holds a slot, so peers that open TCP connections
and never complete TLS would fill the room and lock the mainframe out for handshake_timeout.  At the cap,
the connection longest in its handshake makes room first, before any established one (engine/channels/
conn_room.py).

Time is a ``MockClock`` moved by hand; its ``autojump_threshold`` only ends a test that would hang (the
clock then jumps to the next deadline: handshake_timeout here)."""
from __future__ import annotations

import re
import ssl

import pytest
import trio
import trio.testing

from conftest_tls import PKI, pki  # noqa: F401  (fixture)
from engine.channels.tcp_listen import TcpListener
from engine.tls import client_context
from formats.framing import LengthPrefixFramer

F = LengthPrefixFramer(2)


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=1.0)


class Upper:
    async def handle(self, conn, frames):
        return [f.upper() for f in frames]

    async def framing_error(self, conn, err):
        return None


async def start(nursery, p: PKI, cap: int) -> TcpListener:
    lst = TcpListener("mainframe", {"address": "127.0.0.1:0", "framing": "length2", "max_connections": cap,
                                    "cert": str(p.server_cert), "key": str(p.server_key), "ca": str(p.ca),
                                    "client_cert": "required", "handshake_timeout": "30s"})
    await nursery.start(lst.serve, Upper())
    return lst


def mainframe_context(p: PKI) -> ssl.SSLContext:
    return client_context(str(p.ca), str(p.client_cert), str(p.client_key))


async def tls_connect(lst: TcpListener, ctx: ssl.SSLContext) -> trio.SSLStream:
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", lst.port, ssl_context=ctx,
                                                 https_compatible=False)
    await stream.do_handshake()
    return stream


async def ask(s: trio.abc.Stream, text: bytes) -> bytes | None:
    await s.send_all(F.frame(text))
    rx = LengthPrefixFramer(2)
    while True:
        data = await s.receive_some(65536)
        if not data:
            return None
        got = rx.feed(data)
        if got:
            return got[0]


async def closed(s: trio.SocketStream) -> bool:
    try:
        return await s.receive_some(100) == b""
    except trio.BrokenResourceError:        # closed with a reset: also closed
        return True


def peer_of(s: trio.SocketStream) -> str:
    return "127.0.0.1:%d" % s.socket.getsockname()[1]


async def test_peers_that_never_complete_tls_cannot_lock_the_mainframe_out(nursery, clock, pki: PKI,
                                                                          caplog) -> None:
    lst = await start(nursery, pki, cap=3)
    silent = []
    for _ in range(3):                      # open TCP, never send a ClientHello: the room is full
        silent.append(await trio.open_tcp_stream("127.0.0.1", lst.port))
        await trio.testing.wait_all_tasks_blocked(0.05)     # accepted: waiting for a ClientHello
        clock.jump(1)
    t0 = trio.current_time()
    with trio.fail_after(5):                # mock seconds: without room it waits handshake_timeout (30s)
        mainframe = await tls_connect(lst, mainframe_context(pki))
        assert await ask(mainframe, b"m1") == b"M1"
    assert trio.current_time() == t0        # served at once, not when the handshakes time out
    assert await closed(silent[0])          # the longest in its handshake made room
    assert lst.evicted == 1 and lst.capped == 0 and lst.gate.tls_failures == 0
    assert re.search(rf"channel mainframe: 3 connections open \(max_connections\): closing the connection from "
                     rf"{peer_of(silent[0])}, in its TLS handshake for 3.0s \(the longest\), to accept a new "
                     rf"peer; if the counterparts need more connections at once, raise max_connections of "
                     rf"channel mainframe", caplog.text)
    for s in (*silent, mainframe):
        await trio.aclose_forcefully(s)


async def test_a_connection_in_its_handshake_makes_room_before_an_idle_established_one(nursery, clock,
                                                                                     pki: PKI) -> None:
    lst = await start(nursery, pki, cap=2)
    ctx = mainframe_context(pki)
    established = await tls_connect(lst, ctx)
    assert await ask(established, b"a1") == b"A1"     # idle from now: the oldest
    clock.jump(60)
    silent = await trio.open_tcp_stream("127.0.0.1", lst.port)
    await trio.testing.wait_all_tasks_blocked(0.05)
    clock.jump(1)
    with trio.fail_after(5):
        newcomer = await tls_connect(lst, ctx)
        assert await ask(newcomer, b"n1") == b"N1"
    assert await closed(silent)
    assert await ask(established, b"a2") == b"A2"     # idle 61s, but it proved its certificate: kept
    assert lst.evicted == 1
    for s in (silent, established, newcomer):
        await trio.aclose_forcefully(s)
