"""What the on-call operator reads in the log (default level: warning) when an outbound counterpart goes
wrong and comes back: a counterpart that answers past the channel's timeout is logged once, naming the
channel and the counterpart and saying what to do, and once when it answers again; a counterpart that could
not be reached is logged when it is back at the level its outage was (it used to be at info, so at the
default level the log said it went down and never that it came back).  Real loopback sockets, MockClock."""
from __future__ import annotations

import functools
import logging

import trio

from engine.channels.tcp_connect import TcpConnector
from engine.metrics import Metrics
from engine.ops.calls import observe_calls
from formats.framing import LengthPrefixFramer


async def _serve(nursery, handler, port: int = 0) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, port, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


def _warnings(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


async def test_a_slow_counterpart_is_logged_once_when_it_times_out_and_once_when_it_answers_again(
        nursery, autojump_clock, caplog) -> None:
    delay = [5.0]                                 # seconds (MockClock) before each reply: past the 1s timeout

    async def slow(stream) -> None:
        f = LengthPrefixFramer(4)
        while data := await stream.receive_some(65536):
            for req in f.feed(data):
                await trio.sleep(delay[0])
                await stream.send_all(f.frame(b"ok:" + req))

    port = await _serve(nursery, slow)
    c = TcpConnector("biller", {"address": f"127.0.0.1:{port}", "framing": "length4"})
    observe_calls(c, Metrics())
    await nursery.start(c.run)
    caplog.set_level(logging.WARNING, logger="bsp")
    for ref in (b"a", b"b", b"c"):
        (r,) = await c.request_many([ref], 1.0)
        assert getattr(r, "kind", None) == "timeout", r
        await trio.sleep(2)         # each timeout closes the connection; from the second on the channel rests first
    down = _warnings(caplog, "(timeout)")
    assert len(down) == 1, down                   # once per streak, not once per call
    assert down[0].startswith(f"channel biller: no reply from 127.0.0.1:{port} within 1s (timeout)"), down
    assert "bsp deals --flagged --live" in down[0] and "timeout" in down[0]
    assert _warnings(caplog, "answers again") == []

    delay[0] = 0.0
    await trio.sleep(20)                          # (their connections were closed: no late reply comes)
    (r,) = await c.request_many([b"d"], 30.0)
    assert r == b"ok:d"
    back = _warnings(caplog, "answers again")
    assert len(back) == 1 and back[0].startswith("channel biller: answers again") and "3 call(s)" in back[0], back
    (r,) = await c.request_many([b"e"], 30.0)
    assert r == b"ok:e" and len(_warnings(caplog, "answers again")) == 1 and len(_warnings(caplog, "(timeout)")) == 1


async def test_a_counterpart_back_after_an_outage_is_logged_at_the_level_of_its_outage(
        nursery, autojump_clock, caplog, held_port) -> None:
    port = held_port.port                         # bound, not listening: connects are refused
    c = TcpConnector("biller", {"address": f"127.0.0.1:{port}", "framing": "length4", "reconnect_max": "1s"})
    await nursery.start(c.run)
    caplog.set_level(logging.WARNING, logger="bsp")
    (r,) = await c.request_many([b"a"], 1.0)
    assert getattr(r, "kind", None) == "unreachable", r
    assert len(_warnings(caplog, "cannot connect")) == 1

    async def echo(stream) -> None:
        f = LengthPrefixFramer(4)
        while data := await stream.receive_some(65536):
            await stream.send_all(b"".join(f.frame(req) for req in f.feed(data)))

    await _serve(nursery, echo, held_port.release())
    while not c._connected:                       # it reconnects by itself (back-off), without a call
        await trio.sleep(0.1)
    back = _warnings(caplog, "again after")
    assert len(back) == 1, [(r.levelname, r.getMessage()) for r in caplog.records]
    assert back[0].startswith(f"channel biller: connected to 127.0.0.1:{port} again after"), back
    assert "bsp dead retry --live" in back[0] and "--reason 'channel biller:'" in back[0]


async def test_a_pool_logs_each_connection_down_once_and_when_it_is_open_again(nursery, autojump_clock,
                                                                              caplog, held_port) -> None:
    """A MUX (`pool`) retried each connection every reconnect_max with a warning each time: a minute of outage
    of a pool of 3 wrote ~90 lines, and its end only at info."""
    from engine.channels.mux import MuxConnector

    port = held_port.port                         # bound, not listening: connects are refused
    caplog.set_level(logging.WARNING, logger="bsp")
    ch = MuxConnector("issuer", {"address": f"127.0.0.1:{port}", "framing": "length4", "pool": 3,
                                 "reconnect_max": "2s"})
    await nursery.start(ch.run)
    await trio.sleep(60)                          # a minute of outage (MockClock)
    down = _warnings(caplog, "cannot connect")
    assert len(down) == 3, down                   # one per connection of the pool, not one per attempt
    assert all(f"cannot connect to 127.0.0.1:{port}" in d and "retrying every 2s at most" in d for d in down), down

    async def echo(stream) -> None:
        f = LengthPrefixFramer(4)
        while data := await stream.receive_some(65536):
            await stream.send_all(b"".join(f.frame(req) for req in f.feed(data)))

    await _serve(nursery, echo, held_port.release())
    while len(ch.pool.conns) < 3:
        await trio.sleep(0.1)
    back = _warnings(caplog, "open again after")
    assert len(back) == 3 and all(f"to 127.0.0.1:{port} open again after" in b for b in back), back


async def test_a_pool_refused_by_a_counterpart_that_closes_each_connection_warns_once(nursery, autojump_clock,
                                                                                     caplog) -> None:
    """A counterpart that accepts each connection and closes it before any answer (an access list refusing this
    client): the slot backs off, and its reason counted the closes (`3 times in a row`, `4 times in a row`, ...),
    so each attempt's reason was new and each was a warning again: one line every reconnect_max for as long as
    it lasts, the flood the once-per-outage rule is there to stop."""
    from engine.channels.mux import MuxConnector

    refusing = [True]

    async def slam(stream) -> None:
        f = LengthPrefixFramer(4)
        if refusing[0]:
            await stream.aclose()
            return
        while data := await stream.receive_some(65536):
            await stream.send_all(b"".join(f.frame(req) for req in f.feed(data)))

    port = await _serve(nursery, slam)
    caplog.set_level(logging.WARNING, logger="bsp")
    ch = MuxConnector("issuer", {"address": f"127.0.0.1:{port}", "framing": "length4", "pool": 1,
                                 "reconnect_max": "2s", "timeout": "1s"})
    await nursery.start(ch.run)
    for _ in range(4):                            # calls make the idle-closed slot reconnect, until it is refused
        await ch.request_many([b"x"])
        await trio.sleep(1)
    await trio.sleep(60)                          # a minute of refusals (MockClock)
    refused = _warnings(caplog, "closed the connection before any answer")
    assert 1 <= len(refused) <= 2, refused        # the refusal (and a change of its reason), not one per attempt
    assert not _warnings(caplog, "open again"), _warnings(caplog, "open again")   # opened, refused: not back

    refusing[0] = False                           # the counterpart lets this client in again
    with trio.fail_after(30):
        while not isinstance((await ch.request_many([b"x"]))[0], bytes):
            await trio.sleep(0.5)
    back = _warnings(caplog, "open again")
    assert len(back) == 1 and f"to 127.0.0.1:{port} open again and answering after" in back[0], back
