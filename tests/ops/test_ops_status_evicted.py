"""`bsp status` shows a `tcp listen` channel at its `max_connections`: `evicted` (connections closed, idle
longest, to make room for a new peer) and `capped` (accepting paused, every connection busy), so an admin
sees the cap reached without reading the log (engine/ops/backend.py; docs/operations.md); `/metrics` counts
them too (`bsp_channel_evictions_total`, `bsp_channel_capped_total`).

Real engine (LiveEngine), real loopback connections, a real DuckDB ledger."""
from __future__ import annotations

from pathlib import Path

import trio

from engine.ops.backend import EngineBackend
from formats.framing import LengthPrefixFramer
from opskit import live

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2  max_connections = 1 }
route echo {
    receive from front as J
    reply J { ref = msg.ref }
}
"""


async def test_status_counts_connections_evicted_at_the_cap(tmp_path: Path, caplog) -> None:
    path = tmp_path / "echo.route"
    path.write_text(ROUTE)
    async with live([path], tmp_path / "l.duckdb") as eng:
        port = eng.channels["front"].port
        backend = EngineBackend(eng, eng.observer)
        before = (await backend.status())["channels"]["front"]
        idle = await trio.open_tcp_stream("127.0.0.1", port)             # holds the only slot, says nothing
        with trio.fail_after(10):                                         # a guard, not a timing
            while (await backend.status())["channels"]["front"]["connections"] < 1:
                await trio.sleep(0.01)
            new = await trio.open_tcp_stream("127.0.0.1", port)          # at the cap: the idle one makes room
            f = LengthPrefixFramer(2)
            await new.send_all(f.frame(b'{"ref":"N1"}'))
            got: list[bytes] = []
            while not got:
                got = f.feed(await new.receive_some(4096))
            assert await idle.receive_some(10) == b""                     # closed by the engine
        after = (await backend.status())["channels"]["front"]
        await new.aclose()
        await idle.aclose()
    assert (before["evicted"], before["capped"]) == (0, 0), before
    assert (after["evicted"], after["capped"]) == (1, 0), after
    assert got == [b'{"ref":"N1"}'], got
    # the same in /metrics, by reason; the warning names where max_connections is declared
    assert eng.observer.metrics.value("bsp_channel_evictions_total", {"channel": "front", "reason": "idle"}) == 1
    assert "raise max_connections of channel front (%s:3:" % path in caplog.text, caplog.text


HTTP_ROUTE = """
format J = json
channel api = http listen {
    address = "127.0.0.1:0"
    max_connections = 1
}
route echo {
    receive from api as J
    reply J { ref = msg.ref }
}
"""


async def test_http_listen_counts_connections_evicted_at_the_cap(tmp_path: Path, caplog) -> None:
    """The same for an `http listen` channel: a caller's connection kept open and silent makes room for a
    new one, counted in `bsp status` and /metrics under the channel, the warning names max_connections."""
    path = tmp_path / "api.route"
    path.write_text(HTTP_ROUTE)
    async with live([path], tmp_path / "l.duckdb") as eng:
        port = eng.channels["api"].port
        backend = EngineBackend(eng, eng.observer)
        before = (await backend.status())["channels"]["api"]
        idle = await trio.open_tcp_stream("127.0.0.1", port)             # holds the only slot, says nothing
        with trio.fail_after(10):                                         # a guard, not a timing
            while not eng.channels["api"].room.open:
                await trio.sleep(0.01)
            new = await trio.open_tcp_stream("127.0.0.1", port)          # at the cap: the idle one makes room
            body = b'{"ref":"N1"}'
            await new.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            answer = b""
            while not answer.endswith(b"}"):
                answer += await new.receive_some(4096)
            assert await idle.receive_some(10) == b""                     # closed by the engine
        after = (await backend.status())["channels"]["api"]
        await new.aclose()
        await idle.aclose()
    assert (before["evicted"], before["capped"]) == (0, 0), before
    assert (after["evicted"], after["capped"]) == (1, 0), after
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"ref":"N1"}'), answer
    assert eng.observer.metrics.value("bsp_channel_evictions_total", {"channel": "api", "reason": "idle"}) == 1
    assert ("channel api: 1 connections open (max_connections): closing the connection from 127.0.0.1:"
            in caplog.text), caplog.text
    assert "raise max_connections of channel api (%s:5:" % path in caplog.text, caplog.text


PER_CLIENT_ROUTE = """
format J = json
channel api = http listen {
    address = "127.0.0.1:0"
    max_connections_per_client = 1
}
route echo {
    receive from api as J
    reply J { ref = msg.ref }
}
"""


async def test_http_listen_counts_connections_over_the_cap_per_client(tmp_path: Path) -> None:
    """`max_connections_per_client` declared in a route file: a second connection from the same address is
    closed as accepted, counted as `client_refused` in `bsp status` and in /metrics."""
    path = tmp_path / "api.route"
    path.write_text(PER_CLIENT_ROUTE)
    async with live([path], tmp_path / "l.duckdb") as eng:
        port = eng.channels["api"].port
        backend = EngineBackend(eng, eng.observer)
        before = (await backend.status())["channels"]["api"]
        held = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(10):                                         # a guard, not a timing
            while not eng.channels["api"].clients.open:
                await trio.sleep(0.01)
            over = await trio.open_tcp_stream("127.0.0.1", port)
            try:
                assert await over.receive_some(10) == b""                 # closed at once, unread
            except trio.BrokenResourceError:
                pass
        after = (await backend.status())["channels"]["api"]
        await over.aclose()
        await held.aclose()
    assert (before["client_refused"], after["client_refused"]) == (0, 1), after
    assert eng.observer.metrics.value("bsp_channel_client_refused_total", {"channel": "api"}) == 1
