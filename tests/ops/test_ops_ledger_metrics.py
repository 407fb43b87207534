"""A full disk under the ledger on /metrics: `bsp_ledger_storage_failing{what,kind}` while a ledger file
cannot be written (what `bsp status` lists in ledger.faults), gone once it works again, and
`bsp_ledger_pending` (acknowledged deals not in DuckDB yet).  Before, the only way to alert on it was the
log or `bsp status` (docs said so): /metrics had nothing.  A real engine on a journaled ledger whose next
journal segment cannot be made (a directory in its way: EISDIR, as a full disk refuses it)."""
from __future__ import annotations

import re
from pathlib import Path

import trio

from engine.journal import journal_dir, open_journaled_ledger
from engine.ops.gauges import EngineMetrics
from engine.ops.live import LiveEngine
from engine.ops.observe import Observer
from engine.registry import default_registry
from opskit import compile_file

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref }
}
"""


def _series(text: str, name: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf"^{name}(\{{.*?\}})? (\S+)$", text, re.M)}


async def test_a_ledger_file_that_cannot_be_written_is_on_metrics(tmp_path: Path) -> None:
    from test_journal import record
    route = tmp_path / "pay.route"
    route.write_text(ROUTE)
    registry = default_registry()
    metrics = EngineMetrics()
    path = tmp_path / "l.duckdb"
    async with open_journaled_ledger(path, segment_bytes=4096, load_wait=0.01) as led:
        eng = LiveEngine(registry, led, load=lambda: ([route], {}), observer=Observer(metrics))
        metrics.watch(eng)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, compile_file(route, registry), None)
            text = metrics.render().decode()
            assert _series(text, "bsp_ledger_storage_failing") == {}
            assert _series(text, "bsp_ledger_pending") == {None: 0.0}
            blocked = journal_dir(path) / "000000000002.tmp"
            blocked.mkdir()                          # the next segment cannot be made
            i = 0
            with trio.fail_after(30):                # a guard
                while not _series(metrics.render().decode(), "bsp_ledger_storage_failing"):
                    await led.commit_many([record(i)])
                    i += 1
                    await trio.sleep(0.01)
            failing = _series(metrics.render().decode(), "bsp_ledger_storage_failing")
            assert '{kind="spare",what="journal"}' in failing, failing
            blocked.rmdir()                          # room again
            with trio.fail_after(30):
                while _series(metrics.render().decode(), "bsp_ledger_storage_failing"):
                    await trio.sleep(0.05)
            eng.drain()
