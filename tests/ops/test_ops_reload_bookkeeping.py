"""Reloads leave nothing behind: after many reloads (each a new version whose outbound channel is rebuilt),
the engine's bookkeeping (engine/ops/bookkeeping.py) holds what the running generation needs and no more:
one outcome-count part, one reconnect sample per outbound channel, the classification tags of the running
version only, and the retired generations are freed; the outcome counts over all generations stay whole.

Real engine (LiveEngine with the metrics `bsp run` uses), real client and counterpart on 127.0.0.1
(port 0), a real DuckDB ledger.  bench/soak.py found these growing by one entry per reload."""
from __future__ import annotations

import gc
from pathlib import Path

import orjson
import trio

from engine.ledger import open_ledger
from engine.ops.bookkeeping import bookkeeping
from engine.ops.gauges import EngineMetrics
from engine.ops.generation import ALIVE
from engine.ops.live import LiveEngine
from engine.ops.observe import Observer
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import CALL, compile_file, json_counterpart

RELOADS = 8


async def _ask(port: int, refs: list[str]) -> list[dict]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    out: list[dict] = []
    async with stream:
        await stream.send_all(b"".join(tx.frame(orjson.dumps({"ref": r})) for r in refs))
        with trio.fail_after(10):
            while len(out) < len(refs):
                out += [orjson.loads(f) for f in rx.feed(await stream.receive_some(65536))]
    return out


async def test_many_reloads_leave_one_generation_of_bookkeeping(nursery, tmp_path: Path) -> None:
    back = await json_counterpart(nursery, lambda req: {"status": "OK"})
    route = tmp_path / "pay.route"

    def text(n: int) -> str:
        return CALL % {"back": back, "timeout": f"{5 + n % 2}s", "reply": f'tag = "v{n}"'}

    route.write_text(text(0))
    registry = default_registry()
    program = compile_file(route, registry)
    before = set(map(id, ALIVE))
    metrics = EngineMetrics()
    sent = 0
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        eng = LiveEngine(registry, ledger, load=lambda: ([route], {}), observer=Observer(metrics), grace=5)
        metrics.watch(eng)
        async with trio.open_nursery() as inner:
            await inner.start(eng.run, program, None)
            port = eng.channels["front"].port
            for n in range(1, RELOADS + 1):
                got = await _ask(port, [f"r{n}-{i}" for i in range(3)])
                sent += len(got)
                assert {g["tag"] for g in got} == {f"v{n - 1}"}
                metrics.render()                      # a scrape: samples every outbound channel
                route.write_text(text(n))
                result = await eng.reload(source="test")
                assert result.ok, result.diagnostics
                assert "back" in result.plan["channels"]["changed"]
                with trio.fail_after(10):
                    while eng._retiring:              # the old generation closes once idle
                        await trio.sleep(0.01)
            got = await _ask(port, ["last"])
            sent += 1
            metrics.render()
            sizes = bookkeeping(eng)
            assert eng.stats.total == sent            # no outcome lost with the retired generations' parts
            assert sizes["engine.stats_parts"] == 2, sizes     # the retired total and the running one
            assert sizes["metrics.channel_connects"] == 1, sizes
            assert sizes["observer.route_tags"] == 1, sizes
            gc.collect()
            mine = [g for g in ALIVE if id(g) not in before]
            assert len(mine) == 1, sorted(g.number for g in mine)    # retired generations are freed
            eng.drain()
