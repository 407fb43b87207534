"""Every business service in ONE engine, driven by a mixed load.

    from engine.sim.services.demo import run_all_services_demo
    run_all_services_demo(per_service=200, ledger_path=Path("var/bsp-demo.duckdb"))

Compiles every ``routes/**/*.route`` (bill payment included) into one
program, starts every counterpart simulator (and the bill payment biller),
binds the inbound channels to ephemeral loopback ports, then drives each
service with its request generator (good / rejected / failing mix) in
parallel, showing one progress bar per service.  At the end it prints a table
per service from the ledger (deals, committed amounts by currency, success
rate, engine latency p50/p99) and writes the ``engine.reports`` reports for
the day.  Returns the summary rows and the report paths.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.biller import BillerSim
from engine.sim.mainframe import MainframeSim
from engine.sim.services.catalog import ROUTES_DIR, SERVICES
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry


class DemoError(RuntimeError):
    pass


def compile_all(routes_dir: Path = ROUTES_DIR) -> tuple[Any, Any]:
    registry = services_registry()
    res = compile_paths(sorted(routes_dir.rglob("*.route")), registry)
    if res.program is None:
        from dsl.diagnostics import render
        raise DemoError("the route library does not compile:\n" + "\n".join(render(d, {}) for d in res.diagnostics))
    return res.program, registry


def service_of_route(program: Any) -> dict[str, str]:
    """route name -> its service (the route file's folder under routes/)."""
    return {r.name: Path(r.pos.file).parent.name if r.pos else "?" for r in program.routes}


def run_all_services_demo(*, per_service: int = 200, connections: int = 2, window: int = 16,
                          ledger_path: Path = Path("var/bsp-demo.duckdb"), report_dir: Path | None = None,
                          console: Console | None = None, seed: int = 7) -> dict[str, Any]:
    """Run the demo; ``per_service`` requests per inbound channel (bill payment included)."""
    console = console or Console()
    program, registry = compile_all()
    ledger_path = Path(ledger_path)
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    report_dir = Path(report_dir) if report_dir else ledger_path.parent / "reports"
    started_at = datetime.now(timezone.utc)
    out: dict[str, Any] = {}

    async def main() -> None:
        biller = BillerSim()
        async with open_ledger(ledger_path) as ledger:
            await ledger.record_config(program.version, program.sources)
            async with running_services(program, registry, ledger, SERVICES,
                                        extra_sims={"biller": biller}) as rig:
                with Progress(TextColumn("{task.description:<42}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=console) as progress:
                    t0 = time.perf_counter()
                    results = []

                    async def drive(svc: Any) -> None:
                        task = progress.add_task(f"{svc.title[:40]}", total=per_service)
                        client = rig.client(svc, seed=seed)
                        results.append(await client.run(
                            rig.port(svc.inbound), total=per_service, connections=connections, window=window,
                            progress=lambda k: progress.advance(task, k)))

                    async def drive_bill() -> None:
                        task = progress.add_task("Bill payment", total=per_service)
                        mf = MainframeSim(rig.switchboard.ctx.codec("BillPayReq"), seed=seed)
                        await mf.run(rig.port("mainframe"), total=per_service, connections=connections,
                                     window=window, progress=lambda k: progress.advance(task, k))
                        out["bill"] = mf.result

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(drive_bill)
                        for svc in SERVICES:
                            nursery.start_soon(drive, svc)
                    out["elapsed"] = time.perf_counter() - t0
                    out["results"] = results

    trio.run(main)
    rows = summarize(ledger_path, program, started_at)
    _print_table(console, rows, out["elapsed"])
    unexpected = sum(len(r.unexpected) for r in out["results"])
    sent = sum(len(r.outcomes) for r in out["results"]) + out["bill"].sent
    replies = sum(r.replies for r in out["results"]) + out["bill"].replies
    console.print(f"{sent} requests, {replies} replies in {out['elapsed']:.1f}s; "
                  f"{unexpected} reply code(s) differed from what the simulators expected")
    reports = write_reports(ledger_path, report_dir, console)
    console.print(f"ledger: {ledger_path.resolve()}")
    return {"services": rows, "reports": [str(p) for p in reports], "sent": sent, "replies": replies,
            "unexpected": unexpected, "elapsed": out["elapsed"]}


def summarize(ledger_path: Path, program: Any, since: datetime) -> list[dict[str, Any]]:
    svc_of = service_of_route(program)
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        per_route = con.execute(
            "SELECT route, count(*), count(*) FILTER (WHERE status = 'committed'), "
            "count(*) FILTER (WHERE status = 'rejected'), count(*) FILTER (WHERE status = 'failed'), "
            "list(duration_ms) FROM deals WHERE config_version = ? AND received_at >= ? GROUP BY route",
            [program.version, since]).fetchall()
        amounts = con.execute(
            "SELECT route, currency, sum(amount) FROM deals WHERE config_version = ? AND received_at >= ? "
            "AND status = 'committed' AND currency IS NOT NULL GROUP BY route, currency",
            [program.version, since]).fetchall()
    finally:
        con.close()
    by_svc: dict[str, dict[str, Any]] = {}
    for route, n, ok, rej, failed, durations in per_route:
        s = by_svc.setdefault(svc_of.get(route or "", "unrouted"),
                              {"deals": 0, "committed": 0, "rejected": 0, "failed": 0, "durations": [], "amounts": {}})
        s["deals"] += n
        s["committed"] += ok
        s["rejected"] += rej
        s["failed"] += failed
        s["durations"] += [d for d in durations if d is not None]
    for route, ccy, total in amounts:
        s = by_svc[svc_of.get(route or "", "unrouted")]
        s["amounts"][ccy] = s["amounts"].get(ccy, Decimal(0)) + total
    rows = []
    for name in sorted(by_svc):
        s = by_svc[name]
        d = sorted(s.pop("durations"))
        s.update(service=name, success_rate=(s["committed"] / s["deals"]) if s["deals"] else None,
                 p50_ms=_pct(d, 50), p99_ms=_pct(d, 99))
        rows.append(s)
    return rows


def _pct(values: list[float], p: int) -> float | None:
    if not values:
        return None
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def _print_table(console: Console, rows: list[dict[str, Any]], elapsed: float) -> None:
    table = Table(title=f"bsp demo: every service in one engine ({elapsed:.1f}s)")
    for col, just in (("service", "left"), ("deals", "right"), ("committed", "right"), ("rejected", "right"),
                      ("failed", "right"), ("committed amounts", "right"), ("success", "right"),
                      ("p50 ms", "right"), ("p99 ms", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        amounts = "\n".join(f"{ccy} {amt:,.2f}" for ccy, amt in sorted(r["amounts"].items())) or "-"
        rate = f"{r['success_rate']:.0%}" if r["success_rate"] is not None else "-"
        table.add_row(r["service"], str(r["deals"]), str(r["committed"]), str(r["rejected"]), str(r["failed"]),
                      amounts, rate, _ms(r["p50_ms"]), _ms(r["p99_ms"]))
    console.print(table)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def write_reports(ledger_path: Path, report_dir: Path, console: Console) -> list[Path]:
    """The day's daily summary and rejection analysis (engine.reports), as HTML and CSV."""
    try:
        from engine.reports import build_report, period, write
    except ImportError:          # the reports package is optional for the demo
        console.print("reports: engine.reports is not available; none written")
        return []
    report_dir.mkdir(parents=True, exist_ok=True)
    today = datetime.now(timezone.utc).date()
    paths: list[Path] = []
    for name in ("daily-summary", "rejections"):
        report = build_report(name, ledger_path, period(today, today))
        for fmt in ("html", "csv"):
            paths += write(report, fmt, report_dir / f"{name}-{today.isoformat()}.{fmt}")
    console.print("reports written:")
    for p in paths:
        console.print(f"  {p.resolve()}")
    return paths
