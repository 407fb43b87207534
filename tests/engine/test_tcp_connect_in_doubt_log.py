"""What a ``tcp connect`` channel logs when a connection ends with calls waiting: they fail **in doubt** (sent,
they may have reached the counterpart; their error kind is ``lost``).  Until 2026-11-28 the line said
``N call(s) waiting for a reply fail (lost)``, which a first-day reader of ``make demo`` took for the demo
summary's "lost" (a request never answered, which must be 0); a close with no call waiting said ``0 call(s)
... fail (lost)``.  The kind itself stays ``lost`` (route files match it, dead letters and the metric
``bsp_channel_errors_total{kind="lost"}`` keep it).  Real loopback sockets; MockClock for the timeout."""
from __future__ import annotations

import functools
import logging

import trio

from engine.channels.tcp_connect import TcpConnector
from formats.framing import LengthPrefixFramer

IN_DOUBT = "in doubt (sent, they may have reached the counterpart: error kind lost)"


async def _counterpart(nursery, *, close_on: bytes = b"", skip: bytes = b"\x00") -> int:
    """Answers each request ``re:`` + it, in order; closes the connection on reading one that starts with
    ``close_on``, never answers one that starts with ``skip``."""
    async def handler(stream) -> None:
        f = LengthPrefixFramer(4)
        try:
            async with stream:
                while data := await stream.receive_some(65536):
                    out = []
                    for req in f.feed(data):
                        if close_on and req.startswith(close_on):
                            return
                        if not req.startswith(skip):
                            out.append(f.frame(b"re:" + req))
                    if out:
                        await stream.send_all(b"".join(out))
        except trio.BrokenResourceError:
            return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


def _lines(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bsp.channel.tcp"]


async def test_a_connection_broken_with_a_call_waiting_says_the_call_is_in_doubt(nursery, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bsp.channel.tcp")
    port = await _counterpart(nursery, close_on=b"X")
    c = TcpConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4"})
    await nursery.start(c.run)
    assert await c.request_many([b"K1"], 10.0) == [b"re:K1"]
    (r,) = await c.request_many([b"X1"], 10.0)            # read, then the connection closed: no answer
    assert r.kind == "lost", r                           # the kind is kept (routes, dead letters, metrics)
    warned = [m for lvl, m in _lines(caplog) if lvl == logging.WARNING]
    assert warned == [f"channel back: connection to 127.0.0.1:{port} lost (closed by the counterpart); 1 call(s) "
                      f"waiting for a reply fail {IN_DOUBT}; reconnecting"], _lines(caplog)
    assert not any("(lost)" in m for _, m in _lines(caplog)), _lines(caplog)


async def test_a_connection_closed_with_no_call_waiting_puts_nothing_in_doubt(nursery, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bsp.channel.tcp")
    closing = trio.Event()

    async def handler(stream) -> None:            # answers one request, then closes the connection idle
        f = LengthPrefixFramer(4)
        async with stream:
            data = await stream.receive_some(65536)
            await stream.send_all(b"".join(f.frame(b"re:" + req) for req in f.feed(data)))
            closing.set()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    c = TcpConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4"})
    await nursery.start(c.run)
    assert await c.request_many([b"K1"], 10.0) == [b"re:K1"]
    await closing.wait()
    with trio.fail_after(10):
        while c.connects < 2:                      # it reconnects at once (it had been answered on)
            await trio.sleep(0.01)
    lost = [(lvl, m) for lvl, m in _lines(caplog) if " lost (" in m]
    assert lost == [(logging.INFO, f"channel back: connection to 127.0.0.1:{port} lost (closed by the "
                                   f"counterpart); no call was waiting for a reply; reconnecting")], _lines(caplog)


async def test_the_calls_failed_by_a_close_after_a_timeout_are_said_in_doubt(nursery, autojump_clock,
                                                                            caplog) -> None:
    caplog.set_level(logging.INFO, logger="bsp.channel.tcp")
    port = await _counterpart(nursery, skip=b"D")
    c = TcpConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4"})
    await nursery.start(c.run)
    got: dict[bytes, object] = {}

    async def call(ref: bytes, limit: float) -> None:
        (got[ref],) = await c.request_many([ref], limit)

    async with trio.open_nursery() as n:
        n.start_soon(call, b"D1", 1.0)
        await trio.sleep(0.5)
        n.start_soon(call, b"D2", 10.0)           # written behind D1: in doubt once the connection is closed
    assert (getattr(got[b"D1"], "kind", None), getattr(got[b"D2"], "kind", None)) == ("timeout", "lost"), got
    with trio.fail_after(10):                     # said once the connection's task has closed it
        while not (closed := [m for lvl, m in _lines(caplog) if lvl == logging.WARNING and " closed: " in m]):
            await trio.sleep(0.01)
    [line] = closed
    assert line.startswith(f"channel back: connection to 127.0.0.1:{port} closed: ") and line.endswith(
        f"; 1 other call(s) waiting for a reply on it failed {IN_DOUBT}"), line
    assert not any("(lost)" in m for _, m in _lines(caplog)), _lines(caplog)
