"""One wording for a counterpart's outage, whichever part of an outbound channel saw it (engine/outage_log.py):
`[outage start: PEER since T]` on the line saying what failed, `[outage reminder: ...]` at most once a minute
with the count since the start, `[outage end: PEER down Ns, M ... failed]` on the line saying it is back.  An
operator greps `[outage ` and reads every outage of every channel.  Real loopback sockets, MockClock."""
from __future__ import annotations

import functools
import logging
import re

import trio

from engine.channels.http_call import HttpConnector
from engine.channels.mux import MuxConnector
from engine.channels.tcp_connect import TcpConnector
from engine.metrics import Metrics
from engine.ops.calls import observe_calls
from formats.framing import LengthPrefixFramer


async def _serve(nursery, handler, port: int = 0) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, port, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def _echo(stream) -> None:
    f = LengthPrefixFramer(4)
    while data := await stream.receive_some(65536):
        await stream.send_all(b"".join(f.frame(req) for req in f.feed(data)))


def _outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "[outage " in r.getMessage()]


async def test_a_tcp_connect_outage_is_a_start_a_reminder_a_minute_and_an_end(nursery, autojump_clock, caplog,
                                                                             held_port) -> None:
    """Before: one warning when it went down and one when it came back, nothing in between: a counterpart down
    for an hour was one line an hour old, and the operator could not tell it was still being tried."""
    port = held_port.port                         # bound, not listening: connects are refused
    c = TcpConnector("biller", {"address": f"127.0.0.1:{port}", "framing": "length4", "reconnect_max": "2s"})
    await nursery.start(c.run)
    caplog.set_level(logging.WARNING, logger="bsp")
    (r,) = await c.request_many([b"a"], 1.0)
    assert getattr(r, "kind", None) == "unreachable", r
    await trio.sleep(150)                         # two and a half minutes down (MockClock), retried every 2s
    await _serve(nursery, _echo, held_port.release())
    while not c._connected:
        await trio.sleep(0.1)
    lines = _outage_lines(caplog)
    assert lines[0].startswith(f"channel biller: cannot connect to 127.0.0.1:{port}")
    assert f"[outage start: 127.0.0.1:{port} since " in lines[0]
    reminders = [x for x in lines if "[outage reminder: " in x]
    assert len(reminders) == 2, lines             # at 60s and 120s, not one per attempt (~75)
    assert all(x.startswith("channel biller: still failing: ") and "connect attempt(s) in the last 6" in x
               for x in reminders), reminders
    ends = [x for x in lines if "[outage end: " in x]
    assert len(ends) == 1 and ends[0].startswith(f"channel biller: connected to 127.0.0.1:{port} again after")
    n = int(re.search(r"down [\d.]+s, (\d+) connect attempt\(s\) failed\]$", ends[0]).group(1))
    assert n > 30, ends                           # every attempt of the outage counted
    assert len(lines) == 4, lines


async def test_a_tcp_connect_refused_by_a_counterpart_closing_each_connection_says_it_once(
        nursery, autojump_clock, caplog) -> None:
    """A counterpart that accepts each connection and closes it before any answer (an access list refusing this
    client).  Before: every reconnect (each reconnect_max) was a warning 'connected ... again after ...s down',
    a line every 2s for as long as it refused, and no line saying it refused; now the refusal is said once,
    reminded once a minute, and its end is the first answer."""
    refusing = [True]

    async def slam(stream) -> None:
        if refusing[0]:
            await stream.aclose()
            return
        await _echo(stream)

    port = await _serve(nursery, slam)
    c = TcpConnector("biller", {"address": f"127.0.0.1:{port}", "framing": "length4", "reconnect_max": "2s"})
    await nursery.start(c.run)
    caplog.set_level(logging.WARNING, logger="bsp")
    for _ in range(3):                            # a call is lost: closed before any answer, a refusal
        await c.request_many([b"x"], 1.0)
        await trio.sleep(1)
    await trio.sleep(90)                          # a minute and a half of refusals (MockClock)
    again = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "again" in r.getMessage()]
    assert again == [], again
    refused = [x for x in _outage_lines(caplog) if "closed the connection before any answer" in x]
    assert len(refused) == 1 and f"[outage start: 127.0.0.1:{port} since " in refused[0], _outage_lines(caplog)
    assert len([x for x in _outage_lines(caplog) if "[outage reminder: " in x]) == 1

    refusing[0] = False
    with trio.fail_after(30):
        while not isinstance((await c.request_many([b"y"], 1.0))[0], bytes):
            await trio.sleep(0.5)
    ends = [x for x in _outage_lines(caplog) if "[outage end: " in x]
    assert len(ends) == 1 and f"connected to 127.0.0.1:{port} again and answering after" in ends[0], ends


async def test_a_pool_and_a_timeout_streak_use_the_same_tags(nursery, autojump_clock, caplog, held_port) -> None:
    port = held_port.port
    caplog.set_level(logging.WARNING, logger="bsp")
    ch = MuxConnector("issuer", {"address": f"127.0.0.1:{port}", "framing": "length4", "pool": 2,
                                 "reconnect_max": "2s"})
    await nursery.start(ch.run)
    await trio.sleep(65)                          # past a minute: one reminder per connection
    await _serve(nursery, _echo, held_port.release())
    while len(ch.pool.conns) < 2:
        await trio.sleep(0.1)
    lines = _outage_lines(caplog)
    for slot in (1, 2):
        peer = f"127.0.0.1:{port} (connection {slot} of 2)"
        assert sum(f"[outage start: {peer} since " in x for x in lines) == 1, lines
        assert sum(f"[outage reminder: {peer} down " in x for x in lines) == 1, lines
        assert sum(f"[outage end: {peer} down " in x for x in lines) == 1, lines

    async def slow(stream) -> None:
        f = LengthPrefixFramer(4)
        while data := await stream.receive_some(65536):
            for req in f.feed(data):
                await trio.sleep(5)
                await stream.send_all(f.frame(b"ok:" + req))

    caplog.clear()
    sport = await _serve(nursery, slow)
    c = TcpConnector("biller", {"address": f"127.0.0.1:{sport}", "framing": "length4"})
    observe_calls(c, Metrics())
    await nursery.start(c.run)
    for _ in range(40):                           # 40 calls, one every 2s, each past its 1s timeout
        await c.request_many([b"a"], 1.0)
        await trio.sleep(1)
    lines = _outage_lines(caplog)
    assert lines[0].startswith(f"channel biller: no reply from 127.0.0.1:{sport} within 1s (timeout)")
    assert f"[outage start: 127.0.0.1:{sport} since " in lines[0]
    assert len(lines) == 2 and lines[1].startswith("channel biller: still failing: ") \
        and f"[outage reminder: 127.0.0.1:{sport} down 6" in lines[1], lines


async def test_an_http_call_never_logs_the_credentials_of_its_url(nursery, caplog, held_port) -> None:
    """A URL may carry a user and password, or a token in its query: they were in every error, log line and
    dead letter reason naming the URL (and in bsp status)."""
    caplog.set_level(logging.DEBUG)
    port = held_port.port
    c = HttpConnector("biller", {"url": f"http://alice:s3cr3t@127.0.0.1:{port}/pay?api_key=k3y&x=1",
                                 "connect_timeout": 1})
    await nursery.start(c.run)
    (r,) = await c.request_many([b"{}"], 30)
    assert r.kind == "unreachable"
    said = [rec.getMessage() for rec in caplog.records] + [str(r), c.address]
    assert not [x for x in said if "s3cr3t" in x or "k3y" in x or "alice" in x], said
    assert f"cannot connect to http://***@127.0.0.1:{port}/pay?api_key=***&x=1" in str(r)
    assert f"[outage start: http://***@127.0.0.1:{port}/pay?api_key=***&x=1 since " in _outage_lines(caplog)[0]
