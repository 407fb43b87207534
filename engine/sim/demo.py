"""``bsp demo``: the bill payment route between a simulated mainframe and biller.

Counts what matters: requests sent, replies received, and deal rows the run
wrote to the ledger; ``lost`` is every request with no reply or no deal row.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.runtime.switchboard import Switchboard
from engine.sim.biller import BillerSim
from engine.sim.mainframe import MainframeSim


def run_demo(routes: Path, *, count: int, connections: int, ledger_path: Path) -> dict[str, Any]:
    from engine.commands.run import compile_or_exit

    console = Console()
    registry = default_registry()
    program = compile_or_exit(sorted(routes.glob("*.route")), registry)
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(timezone.utc)
    out: dict[str, Any] = {}

    async def main() -> None:
        biller = BillerSim()
        async with trio.open_nursery() as sims:
            await sims.start(biller.serve)
            async with open_ledger(ledger_path) as ledger:
                await ledger.record_config(program.version, program.sources)
                sb = Switchboard(program, registry, ledger=ledger, overrides={
                    "mainframe": {"address": "127.0.0.1:0"},
                    "biller": {"address": f"127.0.0.1:{biller.port}"},
                })
                async with trio.open_nursery() as nursery:
                    await nursery.start(sb.run)
                    port = sb.channel("mainframe").port
                    mf = MainframeSim(sb.ctx.codec("BillPayReq"))
                    with Progress(TextColumn("[bold]mainframe → bsp → biller"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                  transient=False) as progress:
                        task = progress.add_task("replies", total=count)
                        t0 = time.perf_counter()

                        async def refresh() -> None:
                            while True:
                                progress.update(task, completed=mf.result.replies)
                                await trio.sleep(0.1)

                        async with trio.open_nursery() as ui:
                            ui.start_soon(refresh)
                            await mf.run(port, total=count, connections=connections)
                            ui.cancel_scope.cancel()
                        elapsed = time.perf_counter() - t0
                        progress.update(task, completed=mf.result.replies)
                    sb.drain()
                out.update(result=mf.result, elapsed=elapsed, stats=sb.stats, biller=biller)
            sims.cancel_scope.cancel()

    trio.run(main)
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = dict(con.execute(
            "SELECT status, count(*) FROM deals WHERE config_version = ? AND received_at >= ? GROUP BY status",
            [program.version, started_at]).fetchall())
    finally:
        con.close()
    res = out["result"]
    recorded = sum(rows.values())
    lost = max(res.sent - res.replies, res.sent - recorded, 0)
    table = Table(title="bsp demo: bill payment")
    for col in ("sent", "replies", "committed", "rejected", "failed", "lost", "msgs/s"):
        table.add_column(col, justify="right")
    table.add_row(str(res.sent), str(res.replies), str(rows.get("committed", 0)), str(rows.get("rejected", 0)),
                  str(rows.get("failed", 0)), str(lost), f"{res.replies / out['elapsed']:,.0f}")
    console.print(table)
    mix = ", ".join(f"{k} {v}" for k, v in sorted(res.by_kind.items()))
    console.print(f"request mix: {mix}; biller refused {out['biller'].refused}")
    console.print(f"ledger: {ledger_path.resolve()}  (try: bsp deals --ledger {ledger_path})")
    return {"sent": res.sent, "replies": res.replies, "lost": lost, **rows}
