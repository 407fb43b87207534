"""tcp.listen / tcp.connect on real loopback sockets."""
from __future__ import annotations

import functools
import logging
import socket

import pytest
import trio
import trio.testing

from engine.channels.base import CallTimeout, ConnectionLost, Unreachable
from engine.channels.tcp_connect import TcpConnector
from engine.channels.tcp_listen import TcpListener
from formats.framing import LengthPrefixFramer


class Echo:
    """An ExchangeHandler: upper-cases each frame; records batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.errors: list[str] = []

    async def handle(self, conn, frames):
        self.batches.append(len(frames))
        return [f.upper() if f != b"silent" else None for f in frames]

    async def framing_error(self, conn, err):
        self.errors.append(str(err))
        return b"BAD FRAME"


async def start_listener(nursery, handler, **opts):
    lst = TcpListener("inbound", {"address": "127.0.0.1:0", **opts})
    await nursery.start(lst.serve, handler)
    return lst


async def read_frames(stream, framer, n):
    out = []
    while len(out) < n:
        data = await stream.receive_some(65536)
        assert data, f"connection closed after {len(out)} of {n} frames"
        out.extend(framer.feed(data))
    return out


async def test_listen_answers_in_order_one_write_per_chunk(nursery) -> None:
    h = Echo()
    lst = await start_listener(nursery, h, framing="length2")
    stream = await trio.open_tcp_stream("127.0.0.1", lst.port)
    assert stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    f = LengthPrefixFramer(2)
    await stream.send_all(b"".join(f.frame(b"msg%d" % i) for i in range(50)))
    got = await read_frames(stream, f, 50)
    assert got == [b"MSG%d" % i for i in range(50)]
    assert sum(h.batches) == 50
    await stream.aclose()


async def test_listen_no_reply_for_none_and_many_connections(nursery) -> None:
    h = Echo()
    lst = await start_listener(nursery, h, framing="length4")
    f = LengthPrefixFramer(4)
    streams = [await trio.open_tcp_stream("127.0.0.1", lst.port) for _ in range(5)]
    for i, s in enumerate(streams):
        await s.send_all(f.frame(b"silent") + f.frame(b"c%d" % i))
    for i, s in enumerate(streams):
        assert await read_frames(s, LengthPrefixFramer(4), 1) == [b"C%d" % i]
        await s.aclose()


async def test_oversized_frame_gets_error_reply_and_close(nursery) -> None:
    h = Echo()
    lst = await start_listener(nursery, h, framing="length2", max_frame=16)
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    f = LengthPrefixFramer(2)
    await s.send_all(f.frame(b"ok") + b"\x00\x20" + b"x" * 32)
    rx = LengthPrefixFramer(2)
    got = await read_frames(s, rx, 2)
    assert got == [b"OK", b"BAD FRAME"]
    assert await s.receive_some(10) == b""   # closed by the engine
    assert "limit of 16" in h.errors[0] and "byte 4" in h.errors[0]
    # the listener still serves others
    s2 = await trio.open_tcp_stream("127.0.0.1", lst.port)
    await s2.send_all(f.frame(b"again"))
    assert await read_frames(s2, LengthPrefixFramer(2), 1) == [b"AGAIN"]
    await s.aclose()
    await s2.aclose()


async def test_truncated_frame_at_close_is_reported(nursery) -> None:
    h = Echo()
    lst = await start_listener(nursery, h, framing="length2")
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    await s.send_all(b"\x00\x10abc")
    await s.send_eof()
    assert await read_frames(s, LengthPrefixFramer(2), 1) == [b"BAD FRAME"]
    assert "closed inside a frame" in h.errors[0]
    await s.aclose()


async def test_stop_accepting_finishes_read_requests(nursery) -> None:
    gate = trio.Event()

    class Slow(Echo):
        async def handle(self, conn, frames):
            await gate.wait()
            return await super().handle(conn, frames)

    lst = await start_listener(nursery, Slow(), framing="length2")
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    f = LengthPrefixFramer(2)
    await s.send_all(f.frame(b"inflight"))
    await trio.testing.wait_all_tasks_blocked()
    lst.stop_accepting()
    gate.set()
    assert await read_frames(s, LengthPrefixFramer(2), 1) == [b"INFLIGHT"]
    assert await s.receive_some(10) == b""
    await s.aclose()
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", lst.port)


# ------------------------------------------------------------------ tcp.connect

async def counterpart(nursery, reply=lambda p: b"re:" + p, width=4, drop_after=None, delay=0.0):
    """A real TCP server answering each frame, in order, on one connection."""
    state = {"conns": 0, "frames": 0, "chunks": 0}

    async def handler(stream):
        state["conns"] += 1
        f = LengthPrefixFramer(width)
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            state["chunks"] += 1
            out = []
            for p in f.feed(data):
                state["frames"] += 1
                if drop_after is not None and state["frames"] > drop_after:
                    await stream.send_all(b"".join(out))
                    await stream.aclose()
                    return
                r = reply(p)
                if r is not None:
                    out.append(f.frame(r))
            if delay:
                await trio.sleep(delay)
            if out:
                await stream.send_all(b"".join(out))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1], state


async def start_connector(nursery, port, **opts):
    c = TcpConnector("biller", {"address": f"127.0.0.1:{port}", "framing": "length4", **opts})
    await nursery.start(c.run)
    return c


async def test_connect_pipelines_on_one_connection(nursery) -> None:
    port, state = await counterpart(nursery)
    c = await start_connector(nursery, port)
    results: dict[int, list] = {}

    async def caller(i):
        results[i] = await c.request_many([b"%d-%d" % (i, j) for j in range(20)], 5)

    async with trio.open_nursery() as n:
        for i in range(10):
            n.start_soon(caller, i)
    for i in range(10):
        assert results[i] == [b"re:%d-%d" % (i, j) for j in range(20)]
    assert state["conns"] == 1 and c.connects == 1
    assert c.sends < 200           # coalesced: far fewer writes than requests


async def test_connect_unreachable_fails_fast(nursery) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                       # nothing listens there
    c = await start_connector(nursery, port)
    (r,) = await c.request_many([b"x"], 5)
    assert isinstance(r, Unreachable) and r.kind == "unreachable"
    assert f"127.0.0.1:{port}" in str(r)
    (r2,) = await c.request_many([b"y"], 5)     # during back-off: at once, same reason
    assert isinstance(r2, Unreachable)


async def test_connect_timeout_keeps_fifo_matching(nursery, autojump_clock) -> None:
    answers = {b"slow": None}
    port, _ = await counterpart(nursery, reply=lambda p: answers.get(p, b"re:" + p))
    c = await start_connector(nursery, port)
    (r,) = await c.request_many([b"slow"], 1.0)
    assert isinstance(r, CallTimeout) and "within 1s" in str(r)


async def test_connect_lost_then_reconnects(nursery) -> None:
    port, state = await counterpart(nursery, drop_after=3)
    c = await start_connector(nursery, port)
    res = await c.request_many([b"a", b"b", b"c", b"d"], 5)
    assert res[:3] == [b"re:a", b"re:b", b"re:c"]
    assert isinstance(res[3], ConnectionLost) and "lost" in str(res[3])
    state["frames"] = -100
    assert await c.request(b"e", 5) == b"re:e"
    assert c.connects == 2


async def test_bad_frame_from_a_peer_is_logged_with_channel_and_peer(nursery, caplog) -> None:
    """A 2 GB length prefix: the error reply, the connection closed, and a warning naming the
    channel, the connection and the peer (it used to be in the ledger only, never in the log)."""
    h = Echo()
    lst = await start_listener(nursery, h, framing="length4")
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    me = "%s:%s" % s.socket.getsockname()[:2]
    with caplog.at_level(logging.WARNING, logger="bsp.channel"):
        await s.send_all(b"\x7f\xff\xff\xff" + b"x" * 64)
        assert await read_frames(s, LengthPrefixFramer(4), 1) == [b"BAD FRAME"]
        assert await s.receive_some(10) == b""
    (line,) = [r.getMessage() for r in caplog.records if "closing the connection" in r.getMessage()]
    assert line.startswith("channel inbound: connection ") and f"from {me}:" in line
    assert "2147483647 payload bytes" in line
    await s.aclose()


async def test_connect_reply_nobody_asked_for_is_logged_and_counted(nursery, caplog) -> None:
    """A counterpart that answers twice: the stray reply closes the connection (the stream is out of
    step), which is logged and counted; the channel reconnects at once and the next call gets its own
    answer."""
    async def twice(stream):
        f = LengthPrefixFramer(4)
        while data := await stream.receive_some(65536):
            await stream.send_all(b"".join(f.frame(b"re:" + p) * (2 if p == b"twice" else 1) for p in f.feed(data)))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, twice, 0, host="127.0.0.1"))
    c = await start_connector(nursery, listeners[0].socket.getsockname()[1])
    with caplog.at_level(logging.INFO, logger="bsp.channel.tcp"):
        assert await c.request(b"twice", 5) == b"re:twice"
        with trio.fail_after(10):
            while c.unmatched == 0 or c.connects < 2 or not c._connected:
                await trio.sleep(0.01)
        assert await c.request(b"next", 5) == b"re:next"
    assert c.unmatched == 1 and c.connects == 2
    assert any("channel biller: connection to 127.0.0.1:" in r.getMessage()
               and "a reply nobody asked for" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_max_connections_must_be_positive() -> None:
    from engine.channels.options import ChannelConfigError
    with pytest.raises(ChannelConfigError, match="option max_connections: expected a positive whole number, got 0"):
        TcpListener("inbound", {"address": "127.0.0.1:0", "max_connections": 0})
