"""Hostile peers on tcp listen / tcp connect / the MUX, on real loopback sockets: a counterpart that
closes every connection at once, connections reset under load, a flood of connections."""
from __future__ import annotations

import collections
import functools
import os
import random
import socket
import struct

import pytest
import trio

from engine.channels.base import ChannelError
from engine.channels.mux import MuxConnector
from engine.channels.pool import QUIET_REFUSED
from engine.channels.tcp_connect import TcpConnector
from engine.channels.tcp_listen import TcpListener
from engine.ops.health import circuit_state
from formats.framing import LengthPrefixFramer, make_framer
from formats.iso8583 import codec_for

ISO = codec_for("iso8583_1987_ascii")


async def serve(nursery, handler) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def slam(stream) -> None:
    """Accept, then close at once (an access list refusing us, a host at its connection limit)."""
    await stream.aclose()


# ------------------------------------------------------------------ reconnect storms

async def test_pool_backs_off_when_the_counterpart_closes_every_connection_at_once(nursery) -> None:
    """It used to reconnect in a tight loop (thousands of connections a second, a warning each), and
    every call was sent into a connection about to die (kind lost: in doubt).  A connection closed with
    nothing written on it is no refusal by itself (a counterpart closing idle connections does that too,
    test_mux_idle_close.py): the calls tell, and then it backs off: at most one call per connection of the
    pool is sent to die, the others fail at once (unreachable, not in doubt)."""
    port = await serve(nursery, slam)
    ch = MuxConnector("issuer", {"address": f"127.0.0.1:{port}", "framing": "length2", "pool": 2, "timeout": 1})
    await nursery.start(ch.run)
    kinds: collections.Counter = collections.Counter()
    last = None
    with trio.move_on_after(0.5):
        while True:
            (last,) = await ch.request_many([b"x"])
            kinds[last.kind] += 1
            await trio.sleep(0.001)
    assert ch.pool.connects <= 30, ch.pool.connects        # back-off 0.05s doubling: a handful each
    assert kinds["lost"] <= 2 and kinds["unreachable"] > 20, kinds
    assert ch.pool.down and ch.pool.refusing
    assert f"channel issuer: the counterpart at 127.0.0.1:{port} closed the connection before any answer" in str(last)
    assert "access list" in str(last)


async def test_fifo_connect_backs_off_when_the_counterpart_closes_every_connection_at_once(nursery) -> None:
    port = await serve(nursery, slam)
    c = TcpConnector("biller", {"address": f"127.0.0.1:{port}", "framing": "length4", "timeout": 1})
    await nursery.start(c.run)
    kinds: collections.Counter = collections.Counter()
    last = None
    with trio.move_on_after(0.5):
        while True:
            (last,) = await c.request_many([b"x"])
            kinds[last.kind] += 1
            await trio.sleep(0.001)
    assert c.connects <= 15, c.connects
    assert kinds["unreachable"] > kinds["lost"], kinds     # fail at once while backing off, not sent to die
    assert "closed the connection before any answer" in str(last)


async def refused_again(c, bound: float = 3.0) -> None:
    """Until the channel opened another connection after its back-off, saw it closed at once, and backs off
    again (``bsp status``: circuit open): a refusal seen, so a call made now fails at once, unsent.  Bounded: a
    channel that took that close for an idle one (up, reconnecting at the next call) never gets there."""
    n = c.connects
    with trio.move_on_after(bound):
        while not (c.connects > n and circuit_state(c) == "open"):
            await trio.sleep(0.005)


@pytest.mark.parametrize("mux", [False, True])
async def test_sparse_calls_to_a_counterpart_closing_every_connection_at_once_are_not_sent_to_die(
        nursery, mux: bool) -> None:
    """A connection closed with nothing written on it is taken for an idle close (no refusal), but not
    once the counterpart refused a call and has answered nothing since: the reconnect after each back-off,
    closed at once, used to look idle, so the channel looked up and each next call was written into a
    connection about to die (every one `lost`, in doubt).  Now only the first is (the first written, on
    the MUX): each next call, made once the reconnect after a back-off was closed at once, fails at once, not
    sent.  (A call made while that reconnect is being opened, or before its close is read, is written or queued
    on it as on any open connection, and ends lost or not sent: no sign of a refusal was seen yet.  Left to
    chance under load, a sparse call landed there now and then: each call here waits for the close to be seen.)"""
    port = await serve(nursery, slam)
    opts = {"address": f"127.0.0.1:{port}", "framing": "length4", "timeout": 1, "reconnect_max": 0.2}
    c = MuxConnector("biller", {**opts, "pool": 1}) if mux else TcpConnector("biller", opts)
    await nursery.start(c.run)
    # the calls before a refusal is seen: each written before the close was read (lost: in doubt), or closed before
    # the writer got to it (not sent).  On tcp connect the first close is a refusal either way; on the MUX one
    # closed before anything was written on it is an idle close (the pool's first connection, opened at the start,
    # too) until QUIET_REFUSED of them in a row: a call written is one, so at most one call is lost
    before = []
    while True:
        with trio.fail_after(5):
            (first,) = await c.request_many([b"x"])
        before.append(first.kind)
        if not mux or c.pool.refusing or len(before) == QUIET_REFUSED:
            break
    assert set(before) <= {"lost", "unreachable"} and before.count("lost") <= 1, before
    assert not mux or c.pool.refusing, before
    for _ in range(7):
        await refused_again(c)
        with trio.fail_after(5):
            (last,) = await c.request_many([b"x"])
        assert last.kind == "unreachable", last
        assert "closed the connection before any answer" in str(last), last


async def test_a_connection_that_answered_reconnects_at_once_after_a_loss(nursery) -> None:
    """The back-off above is only for connections closed before any answer."""
    async def answer_once(stream):
        f = LengthPrefixFramer(2)
        data = await stream.receive_some(65536)
        await stream.send_all(b"".join(f.frame(b"re:" + p) for p in f.feed(data)))
        await stream.aclose()

    port = await serve(nursery, answer_once)
    ch = MuxConnector("issuer", {"address": f"127.0.0.1:{port}", "framing": "length2", "pool": 1, "timeout": 2})
    await nursery.start(ch.run)
    with trio.fail_after(5):
        for i in range(5):
            assert await ch.request(b"%d" % i) == b"re:%d" % i
            while ch.pool.connects < i + 2:          # the close seen, the slot reconnected
                await trio.sleep(0.005)
    assert ch.pool.last_error == ""                  # never backed off, never called the host refusing


# ------------------------------------------------------------------ resets under load

def resetting_counterpart(seen: collections.Counter, *, iso: bool):
    """Answers in order (shuffled per chunk when ``iso``: keys match them), and after 20..200 frames
    sends a torn reply and resets the connection (SO_LINGER 0)."""
    rng = random.Random(7)

    async def handler(stream):
        f = LengthPrefixFramer(2)
        budget = rng.randint(20, 200)
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            out = []
            for p in f.feed(data):
                seen[p] += 1
                budget -= 1
                if iso:
                    v = ISO.decode(p)
                    v.update({"t": "0210", "39": "00"})
                    out.append(f.frame(ISO.encode(v)))
                else:
                    out.append(f.frame(b"re:" + p))
                if budget <= 0:
                    blob = b"".join(out)
                    await stream.send_all(blob[:-3])
                    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    stream.socket.close()
                    return
            if iso:
                rng.shuffle(out)
            if out:
                await stream.send_all(b"".join(out))

    return handler


def iso_request(i: int) -> bytes:
    return ISO.encode({"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000",
                       "7": "0101120000", "11": f"{i:06d}", "41": "TERM0001", "49": "978"})


@pytest.mark.parametrize("mode", ["fifo", "pool", "iso"])
async def test_resets_under_load_resolve_every_call_and_never_cross_replies(nursery, mode: str) -> None:
    seen: collections.Counter = collections.Counter()
    port = await serve(nursery, resetting_counterpart(seen, iso=mode == "iso"))
    opts = {"address": f"127.0.0.1:{port}", "framing": "length2", "timeout": 5}
    if mode == "fifo":
        ch = TcpConnector("c", opts)
    else:
        ch = MuxConnector("c", {**opts, "pool": 3, **({"match": "iso8583"} if mode == "iso" else {})})
        ch.use_codecs(ISO)
    await nursery.start(ch.run)
    payloads = [iso_request(i) if mode == "iso" else b"p%05d" % i for i in range(1200)]
    results: dict[bytes, object] = {}

    async def batch(ps):
        for p, r in zip(ps, await ch.request_many(ps)):
            results[p] = r

    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            for k in range(0, len(payloads), 4):
                n.start_soon(batch, payloads[k:k + 4])
                if k % 40 == 0:
                    await trio.sleep(0.001)
    assert len(results) == len(payloads)                       # every call resolved
    answered = 0
    for p, r in results.items():
        if isinstance(r, ChannelError):
            assert r.kind in ("lost", "unreachable"), r
            continue
        answered += 1
        if mode == "iso":
            assert ISO.decode(r)["11"] == ISO.decode(p)["11"]
        else:
            assert r == b"re:" + p                              # never another call's reply
    assert answered > len(payloads) // 2
    assert max(seen.values()) == 1                              # nothing sent twice
    assert ch.connects >= 3


# ------------------------------------------------------------------ connection floods

class Upper:
    async def handle(self, conn, frames):
        return [f.upper() for f in frames]

    async def framing_error(self, conn, err):
        return b"BAD"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
async def test_a_flood_of_idle_connections_makes_room_keeps_serving_and_leaks_no_fd(nursery) -> None:
    """600 peers that connect and send nothing, at max_connections = 50: each new one takes the slot of
    the connection idle longest (closed at once), the channel never holds more than 50, a client that
    sends its request is served in the middle of the flood, and every socket is released."""
    lst = TcpListener("front", {"address": "127.0.0.1:0", "framing": "length2", "max_connections": 50})
    await nursery.start(lst.serve, Upper())
    f = make_framer("length2")
    early = await trio.open_tcp_stream("127.0.0.1", lst.port)     # served before the flood, then idle
    await early.send_all(f.frame(b"one"))
    assert await early.receive_some(100) == f.frame(b"ONE")
    base = open_fds()
    flood = []
    for _ in range(600):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", lst.port))
        except BlockingIOError:
            pass
        flood.append(s)
    with trio.fail_after(10):
        assert await early.receive_some(100) == b""               # idle longest: closed first, with a FIN
        late = await trio.open_tcp_stream("127.0.0.1", lst.port)  # behind the flood in the backlog
        await late.send_all(f.frame(b"two"))
        assert await late.receive_some(100) == f.frame(b"TWO")
        assert lst.evicted >= 50 and lst.capped == 0
        assert len(lst.room.open) <= 50 and lst.room.free >= 0
        for s in flood:
            s.close()
        await late.aclose()
        while open_fds() > base - 1 or lst.room.free < 50:          # early's socket is still ours
            await trio.sleep(0.05)
    await early.aclose()


# ------------------------------------------------------------------ slowloris

class Recorder(Upper):
    def __init__(self) -> None:
        self.errors: list[str] = []

    async def framing_error(self, conn, err):
        self.errors.append(str(err))
        return b"BAD"


async def read_frames(stream, n: int) -> list[bytes]:
    f, out = make_framer("length2"), []
    while len(out) < n:
        data = await stream.receive_some(65536)
        assert data, f"closed after {len(out)} of {n} frames"
        out.extend(f.feed(data))
    return out


@pytest.mark.parametrize("trickle", [False, True])
async def test_a_stalled_or_trickled_frame_is_cut_by_default(nursery, autojump_clock, trickle: bool) -> None:
    """A length prefix and then nothing (or a byte every 20s) used to hold the connection and its
    max_connections slot for ever unless idle_timeout was set: 1000 such peers shut the listener."""
    h = Recorder()
    lst = TcpListener("front", {"address": "127.0.0.1:0", "framing": "length2"})
    await nursery.start(lst.serve, h)
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    start = trio.current_time()
    await s.send_all(b"\x00\x10")

    async def trickler():
        for _ in range(5):
            await trio.sleep(20)
            try:
                await s.send_all(b"x")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    with trio.fail_after(300):                   # virtual time (autojump): without the limit, it waits for ever
        async with trio.open_nursery() as n:
            if trickle:
                n.start_soon(trickler)
            assert await read_frames(s, 1) == [b"BAD"]
            assert 30 <= trio.current_time() - start < 31
            assert await s.receive_some(10) == b""
            n.cancel_scope.cancel()
    assert "no complete length2 frame within 30s of its first byte" in h.errors[0], h.errors
    await s.aclose()


async def test_a_quiet_link_and_a_steady_pipeline_are_not_cut(nursery, autojump_clock) -> None:
    """frame_timeout limits time inside one frame only: hours of quiet between frames, and a peer whose
    every chunk ends inside the next frame for minutes, are served."""
    h = Recorder()
    lst = TcpListener("front", {"address": "127.0.0.1:0", "framing": "length2"})
    await nursery.start(lst.serve, h)
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    f = make_framer("length2")
    await trio.sleep(4 * 3600)
    wire = b"".join(f.frame(b"m%03d" % i) for i in range(40))
    step = 5                                     # every chunk ends inside a frame
    for k in range(0, len(wire), step):
        await s.send_all(wire[k:k + step])
        await trio.sleep(10)                     # 10s between chunks: ~9 minutes in all
    assert await read_frames(s, 40) == [b"M%03d" % i for i in range(40)]
    assert h.errors == []
    await s.aclose()


def test_frame_timeout_options() -> None:
    from engine.channels.options import ChannelConfigError
    assert TcpListener("a", {"address": "127.0.0.1:0"}).frame_timeout == 30
    assert TcpListener("a", {"address": "127.0.0.1:0", "frame_timeout": "0s"}).frame_timeout == 0
    assert TcpListener("a", {"address": "127.0.0.1:0", "framing": "eof"}).frame_timeout == 0
    with pytest.raises(ChannelConfigError, match="channel a: options idle_timeout and frame_timeout"):
        TcpListener("a", {"address": "127.0.0.1:0", "frame_timeout": -1})


# ------------------------------------------------------------------ a counterpart that never answers

async def test_fifo_calls_beyond_max_in_flight_are_not_sent_and_not_in_doubt(nursery, autojump_clock) -> None:
    """A counterpart that accepts and never answers: each call times out (in doubt: it was sent); once
    max_in_flight calls wait, a further call is not sent, so it must not be `timeout` (which makes a
    transaction reverse or compensate a request the counterpart never saw)."""
    got: list[bytes] = []

    async def mute(stream):
        f = LengthPrefixFramer(4)
        while data := await stream.receive_some(65536):
            got.extend(f.feed(data))

    port = await serve(nursery, mute)
    c = TcpConnector("biller", {"address": f"127.0.0.1:{port}", "framing": "length4", "max_in_flight": 2})
    await nursery.start(c.run)
    first: list = []

    async def two() -> None:
        first.extend(await c.request_many([b"a", b"b"], 10.0))

    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            n.start_soon(two)
            await trio.sleep(0.1)                    # a and b written, waiting for their replies
            (r,) = await c.request_many([b"c"], 1.0)
    assert [x.kind for x in first] == ["timeout", "timeout"]
    assert r.kind == "unreachable" and "request not sent" in str(r) and "max_in_flight" in str(r), r
    assert got == [b"a", b"b"]


@pytest.mark.parametrize("kind", ["fifo", "pool"])
async def test_requests_never_written_when_the_connection_breaks_are_not_in_doubt(nursery, kind: str) -> None:
    """A counterpart that stops reading, then resets: the request being written is in doubt (lost);
    the one still queued behind it was never written, so it fails unsent (unreachable). It used to be
    `lost` too, and a transaction would reverse or compensate a request the counterpart never saw."""
    reset = trio.Event()

    async def stuck(stream):
        await reset.wait()
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()

    port = await serve(nursery, stuck)
    opts = {"address": f"127.0.0.1:{port}", "framing": "length4", "max_frame": 1 << 26, "timeout": 30}
    ch = TcpConnector("biller", opts) if kind == "fifo" else MuxConnector("biller", {**opts, "pool": 1})
    await nursery.start(ch.run)
    results: dict[str, object] = {}

    async def ask(name: str, payload: bytes) -> None:
        (results[name],) = await ch.request_many([payload])

    with trio.fail_after(20):
        if kind == "pool":
            while not ch.pool.connected:
                await trio.sleep(0.01)
        async with trio.open_nursery() as n:
            n.start_soon(ask, "big", b"x" * (1 << 25))      # fills the socket buffers: the write blocks
            await trio.sleep(0.3)
            n.start_soon(ask, "small", b"queued")
            await trio.sleep(0.1)
            reset.set()
    assert results["big"].kind == "lost", results["big"]
    assert results["small"].kind == "unreachable", results["small"]
    assert "request not sent" in str(results["small"]) and "lost" in str(results["small"])
