"""A counterpart that keeps dropping the connection with calls waiting flaps: `bsp status` says so for a
`pool` / MUX channel as for a plain `tcp connect` (engine/ops/health.py ``flapping``).  The connections the
engine closes itself after a timeout (first-in first-out replies out of step) are no drops of the counterpart:
they do not count.  Real loopback sockets, MockClock."""
from __future__ import annotations

import functools

import trio

from engine.channels.mux import MuxConnector
from engine.channels.tcp_connect import TcpConnector
from engine.ops.health import flapping
from formats.framing import LengthPrefixFramer


async def _counterpart(nursery, *, drop_second: bool) -> int:
    """Answers ``re:`` + each request in order; ``drop_second``: closes each connection on its second request;
    else never answers a request starting with D (and keeps the connection)."""
    async def handler(stream) -> None:
        f = LengthPrefixFramer(4)
        seen = 0
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    for req in f.feed(data):
                        seen += 1
                        if drop_second and seen == 2:
                            return
                        if not req.startswith(b"D"):
                            await stream.send_all(f.frame(b"re:" + req))
            except trio.BrokenResourceError:
                return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def test_a_pool_whose_counterpart_keeps_dropping_the_connection_is_flapping(nursery, autojump_clock) -> None:
    port = await _counterpart(nursery, drop_second=True)
    c = MuxConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4", "pool": 1})
    await nursery.start(c.run)
    assert flapping(c) is None
    for i in range(3):
        (ok,) = await c.request_many([b"K%d" % i], 5.0)
        (lost,) = await c.request_many([b"L%d" % i], 5.0)
        assert ok == b"re:K%d" % i and lost.kind == "lost", (ok, lost)
        await trio.sleep(0.2)                    # reconnected
    assert flapping(c) == {"lost_connections": 3, "lost_calls": 3, "window_s": 60}
    await trio.sleep(61)                         # a minute without a drop: over
    assert flapping(c) is None


async def test_connections_closed_by_the_engine_after_a_timeout_are_not_flapping(nursery, autojump_clock) -> None:
    port = await _counterpart(nursery, drop_second=False)
    for c in (MuxConnector("mux", {"address": f"127.0.0.1:{port}", "framing": "length4", "pool": 1}),
              TcpConnector("tcp", {"address": f"127.0.0.1:{port}", "framing": "length4"})):
        await nursery.start(c.run)
        for i in range(4):
            async with trio.open_nursery() as n:      # D times out with DK waiting behind it: DK fails lost
                n.start_soon(c.request_many, [b"D%d" % i], 1.0)
                await trio.sleep(0.1)
                n.start_soon(c.request_many, [b"DK%d" % i], 5.0)
            await trio.sleep(3)
        assert c.resets == 4, c.name
        assert flapping(c) is None, c.name
