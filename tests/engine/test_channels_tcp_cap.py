"""tcp listen at max_connections, on real loopback sockets: a new peer takes the slot of the connection
idle longest; a connection with a request in flight is never closed for it; with every connection busy,
the new peer waits until one ends or falls idle.

Time is a ``MockClock`` moved by hand (``clock.jump``), so "idle longest" is set by the test, not by
sleeps; its ``autojump_threshold`` only ends a test that would hang (a real second with nothing to do)."""
from __future__ import annotations

import logging
import re

import pytest
import trio
import trio.testing

from engine.channels.conn_room import STALL
from engine.channels.tcp_listen import TcpListener
from engine.metrics import Metrics
from formats.framing import LengthPrefixFramer

F = LengthPrefixFramer(2)


@pytest.fixture
def clock():
    c = trio.testing.MockClock(autojump_threshold=1.0)
    return c


class Counterpart:
    """Upper-cases each frame; a frame ``slow...`` waits for ``release`` (a slow counterpart)."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.waiting = 0

    async def handle(self, conn, frames):
        out = []
        for f in frames:
            if f.startswith(b"slow"):
                self.waiting += 1
                await self.release.wait()
            out.append(f.upper())
        return out

    async def framing_error(self, conn, err):
        return b"BAD"


async def until(cond) -> None:
    """Let the engine run (its socket events included) until ``cond()``; no clock time passes."""
    for _ in range(2000):
        if cond():
            return
        await trio.testing.wait_all_tasks_blocked(0.001)
    raise AssertionError("condition not reached")


async def connect(lst: TcpListener) -> trio.SocketStream:
    n = lst.connections
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    await until(lambda: lst.connections > n)                  # accepted and served by the channel
    return s


async def receive(s: trio.SocketStream) -> bytes:
    """The next bytes; a wait of a real second ends it (the clock then jumps to this deadline)."""
    with trio.fail_after(60):
        return await s.receive_some(1000)


async def ask(s: trio.SocketStream, text: bytes) -> bytes:
    await s.send_all(F.frame(text))
    rx = LengthPrefixFramer(2)
    while True:
        data = await receive(s)
        assert data, f"closed instead of answering {text!r}"
        got = rx.feed(data)
        if got:
            await trio.testing.wait_all_tasks_blocked()   # the engine's writer has taken note, at this time
            return got[0]


async def closed(s: trio.SocketStream) -> bool:
    """True when the engine closed ``s`` (a FIN: end of stream, nothing more sent)."""
    return await receive(s) == b""


def peer_of(s: trio.SocketStream) -> str:
    return "127.0.0.1:%d" % s.socket.getsockname()[1]


async def start(nursery, handler, **opts) -> TcpListener:
    lst = TcpListener("front", {"address": "127.0.0.1:0", "framing": "length2", "max_connections": 3, **opts})
    await nursery.start(lst.serve, handler)
    return lst


async def test_at_the_cap_the_connection_idle_longest_makes_room(nursery, clock, caplog) -> None:
    lst = await start(nursery, Counterpart())
    silent = await connect(lst)                  # connects and never sends: idle since t=0
    clock.jump(10)
    b = await connect(lst)
    assert await ask(b, b"b1") == b"B1"          # idle since t=10
    clock.jump(10)
    c = await connect(lst)
    assert await ask(c, b"c1") == b"C1"          # idle since t=20
    clock.jump(10)
    assert await ask(b, b"b2") == b"B2"          # b answered again: idle since t=30
    clock.jump(10)

    d = await trio.open_tcp_stream("127.0.0.1", lst.port)      # t=40, 3 connections open: the cap
    assert await closed(silent)                                # idle 40s: the longest
    assert await ask(d, b"d1") == b"D1"                        # the new peer is served
    assert lst.evicted == 1 and lst.capped == 0
    assert re.search(rf"channel front: 3 connections open \(max_connections\): closing connection \d+ from "
                     rf"{peer_of(silent)}, idle for 40.0s \(the longest\), to accept a new peer", caplog.text)

    e = await trio.open_tcp_stream("127.0.0.1", lst.port)      # next: c (idle since 20), not b (since 30)
    assert await closed(c)
    assert await ask(e, b"e1") == b"E1"
    assert await ask(b, b"b3") == b"B3"                        # b and d are still served
    assert await ask(d, b"d2") == b"D2"
    assert lst.evicted == 2
    for s in (silent, b, c, d, e):
        await s.aclose()


async def test_a_connection_with_a_request_in_flight_is_never_closed_for_room(nursery, clock, caplog) -> None:
    h = Counterpart()
    lst = await start(nursery, h)
    a = await connect(lst)
    assert await ask(a, b"a1") == b"A1"          # a is the oldest ...
    clock.jump(10)
    b = await connect(lst)
    assert await ask(b, b"b1") == b"B1"
    clock.jump(10)
    c = await connect(lst)
    clock.jump(10)
    await a.send_all(F.frame(b"slow-a"))         # ... but now waits for a slow counterpart
    await until(lambda: h.waiting == 1)
    clock.jump(10)

    d = await trio.open_tcp_stream("127.0.0.1", lst.port)
    assert await closed(b)                       # idle longest of those with nothing in flight
    assert await ask(d, b"d1") == b"D1"
    e = await trio.open_tcp_stream("127.0.0.1", lst.port)
    assert await closed(c)
    assert await ask(e, b"e1") == b"E1"
    assert lst.evicted == 2

    h.release.set()                              # a's request is answered on its connection
    rx = LengthPrefixFramer(2)
    assert rx.feed(await receive(a)) == [b"SLOW-A"]
    assert await ask(a, b"a2") == b"A2"
    assert peer_of(a) not in caplog.text
    for s in (a, b, c, d, e):
        await s.aclose()


async def test_with_every_connection_busy_a_new_peer_waits_for_one_to_fall_idle(nursery, clock, caplog) -> None:
    h = Counterpart()
    lst = await start(nursery, h)
    busy = [await connect(lst) for _ in range(3)]
    for i, s in enumerate(busy):
        await s.send_all(F.frame(b"slow%d" % i))
        clock.jump(1)
    await until(lambda: h.waiting == 3)
    d = await trio.open_tcp_stream("127.0.0.1", lst.port)
    await d.send_all(F.frame(b"d1"))
    await until(lambda: lst.capped == 1)         # nothing idle: accepting pauses, nobody is closed
    assert lst.evicted == 0 and lst.connections == 3
    assert ("channel front: all 3 connections (max_connections) are busy (3 with a request being handled or "
            "answered) and none can be closed to make room: accepting pauses, new peers wait unanswered in the OS "
            "backlog (128 at most, option backlog; beyond it the system drops their connects) until a connection "
            "ends or falls idle; if the counterparts need more connections at once, raise max_connections of "
            "channel front") in caplog.text

    h.release.set()                              # every request answered; the first idle makes room
    replies = []
    for i, s in enumerate(busy):
        rx = LengthPrefixFramer(2)
        replies.append(rx.feed(await receive(s)))
    assert replies == [[b"SLOW0"], [b"SLOW1"], [b"SLOW2"]]    # answered before any close
    rx = LengthPrefixFramer(2)
    assert rx.feed(await receive(d)) == [b"D1"]
    assert lst.evicted == 1 and lst.connections == 4
    for s in (*busy, d):
        await s.aclose()


class Big(Counterpart):
    """As ``Counterpart``; a frame ``big`` gets a 60,000-byte reply."""

    async def handle(self, conn, frames):
        out = await super().handle(conn, [f for f in frames if f != b"big"])
        return [b"x" * 60000 if f == b"big" else out.pop(0) for f in frames]


async def not_reading(lst: TcpListener) -> trio.SocketStream:
    """A client with a small receive buffer that asks for 3 MB of replies and reads none of them."""
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", lst.port))
    s = trio.SocketStream(sock)
    await s.send_all(F.frame(b"big") * 50)
    return s


async def test_a_client_that_reads_none_of_its_replies_makes_room_after_the_stall_bound(nursery, clock,
                                                                                        caplog) -> None:
    h = Big()
    lst = await start(nursery, h, max_connections=2)
    metrics = Metrics()
    lst.attach_metrics(metrics)
    busy = await connect(lst)
    await busy.send_all(F.frame(b"slow-1"))               # a request waiting for a slow counterpart
    await until(lambda: h.waiting == 1)
    clock.jump(1)
    deaf = await not_reading(lst)
    await until(lambda: any(a.sending is not None for a in lst.room.open))     # its send is blocked
    sent_at = trio.current_time()

    d = await trio.open_tcp_stream("127.0.0.1", lst.port)
    await d.send_all(F.frame(b"d1"))
    await until(lambda: lst.capped == 1)                  # nothing can go yet: accepting pauses
    assert lst.evicted == 0
    assert "(1 with a request being handled or answered, 1 whose client has not taken its replies yet " \
           "(closed for room after 10s))" in caplog.text
    clock.jump(STALL)                                     # its client has taken nothing for 10s: it goes
    rx = LengthPrefixFramer(2)
    assert rx.feed(await receive(d)) == [b"D1"]
    assert trio.current_time() == sent_at + STALL
    assert lst.evicted == 1
    assert re.search(rf"channel front: 2 connections open \(max_connections\): closing connection \d+ from "
                     rf"{peer_of(deaf)}, whose client has taken no reply for 10.0s \(the longest\), to accept a "
                     rf"new peer; its replies not taken are lost to it \(the deals are recorded\)", caplog.text)
    assert "retired, and the client took no reply" not in caplog.text
    got = 0
    while data := await deaf.receive_some(65536):       # what was on its way, then the end
        got += len(data)
    assert got < 50 * 60002                               # the replies it did not take are gone
    h.release.set()                                       # the busy connection was never touched
    assert rx.feed(await receive(busy)) == [b"SLOW-1"]
    assert metrics.value("bsp_channel_evictions_total", {"channel": "front", "reason": "unread"}) == 1
    assert metrics.value("bsp_channel_capped_total", {"channel": "front"}) == 1
    for s in (busy, deaf, d):
        await s.aclose()


async def test_evictions_and_pauses_are_counted_in_the_metrics(nursery, clock) -> None:
    h = Counterpart()
    lst = await start(nursery, h, max_connections=1)
    metrics = Metrics()
    lst.attach_metrics(metrics)
    a = await connect(lst)
    b = await trio.open_tcp_stream("127.0.0.1", lst.port)       # a is idle: it goes
    assert await closed(a)
    assert await ask(b, b"b1") == b"B1"
    await b.send_all(F.frame(b"slow-b"))
    await until(lambda: h.waiting == 1)
    c = await trio.open_tcp_stream("127.0.0.1", lst.port)       # b is busy: accepting pauses
    await until(lambda: lst.capped == 1)
    assert metrics.value("bsp_channel_evictions_total", {"channel": "front", "reason": "idle"}) == 1
    assert metrics.value("bsp_channel_capped_total", {"channel": "front"}) == 1
    text = metrics.render().decode()
    assert 'bsp_channel_evictions_total{channel="front",reason="idle"} 1.0' in text
    metrics.forget(channels=["front"])                          # a reload removed the channel
    assert "bsp_channel_evictions_total{" not in metrics.render().decode()
    h.release.set()
    for s in (a, b, c):
        await s.aclose()


def room_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            and r.getMessage().startswith("channel front:")
            and ("connections open" in r.getMessage() or "closed for room since" in r.getMessage())]


async def test_a_peer_reconnecting_in_a_loop_at_the_cap_is_logged_once_then_counted(nursery, clock, caplog) -> None:
    # before: one warning per connect (each closes the connection idle longest: the previous one)
    caplog.set_level(logging.WARNING)
    h = Big()
    lst = await start(nursery, h, max_connections=2)
    busy = await connect(lst)
    await busy.send_all(F.frame(b"slow-1"))               # never closed for room
    await until(lambda: h.waiting == 1)
    n = 40
    prev = await connect(lst)
    for _ in range(n):                                    # a peer reconnecting in a loop
        s = await trio.open_tcp_stream("127.0.0.1", lst.port)
        assert await closed(prev)
        assert await ask(s, b"x") == b"X"
        await prev.aclose()
        prev = s
    assert lst.evicted == n
    lines = room_lines(caplog)
    assert len(lines) == 1, lines                         # the first in full, with what to change
    assert re.search(r"channel front: 2 connections open \(max_connections\): closing connection \d+ from "
                     r"127.0.0.1:\d+, idle for 0.0s \(the longest\), to accept a new peer; set idle_timeout to "
                     r"close idle connections sooner; if the counterparts need more connections at once, raise "
                     r"max_connections of channel front", lines[0]), lines
    # another reason within the window is logged at once, in full
    deaf = await not_reading(lst)                         # takes prev's slot (idle: counted)
    assert await closed(prev)
    await until(lambda: any(a.sending is not None for a in lst.room.open))
    d = await trio.open_tcp_stream("127.0.0.1", lst.port)
    await d.send_all(F.frame(b"d1"))
    clock.jump(STALL)
    rx = LengthPrefixFramer(2)
    assert rx.feed(await receive(d)) == [b"D1"]
    lines = room_lines(caplog)
    assert len(lines) == 2 and re.search(r"closing connection \d+ from 127.0.0.1:\d+, whose client has taken no "
                                         r"reply for [\d.]+s \(the longest\)", lines[1]), lines
    assert "counted, not logged" not in lines[1]
    # at the stop, the count not yet written, naming the last peer and why
    h.release.set()
    for s in (busy, deaf, d, prev):
        await s.aclose()
    lst.stop_accepting()
    await until(lambda: len(room_lines(caplog)) == 3)
    last = room_lines(caplog)[2]         # n + 1 idle ones closed (the loop's, then deaf's), the first logged
    assert re.match(rf"channel front: {n:,} more idle connections closed for room since \d\d:\d\d:\d\d \(counted, "
                    r"not logged one by one\), last from 127.0.0.1:\d+: idle for 0.0s \(the longest\), to accept "
                    r"a new peer; set idle_timeout", last), last
