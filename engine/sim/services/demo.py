"""Every business service in ONE engine, driven by a mixed load (``bsp demo``).

    from engine.sim.services.demo import run_all_services_demo
    run_all_services_demo(bill_count=3000, per_service=300, ledger_path=Path("var/bsp.duckdb"))

Compiles every ``routes/**/*.route`` (bill payment included) into one
program, starts every counterpart simulator (and the bill payment biller),
binds the inbound channels to ephemeral loopback ports, then drives them all
at once: bill payment from its mainframe simulator (good, enquiries,
rejected, unrouted, malformed, refused by the biller) and every other
service from its request generator (good / rejected / failing counterpart).
About 2% of the good requests to keyed routes are sent again, byte for byte,
after their reply (engine.sim.repeats, as a mainframe does after a time-out);
each must get its original's reply bytes, and no reference may reach a
counterpart simulator twice (they count their calls per reference), unless the
ledger records why not: a repeat whose original freed its key ran again as a
new deal, one past the key store's retention got 94; those are counted apart
(engine.sim.ledger_count.split_repeats / split_twice).
Progress is shown while it runs (engine.sim.progress).  At the end it counts
lost requests against the replies AND the ledger (engine.sim.ledger_count),
prints the overall table and the per-service table (engine.sim.summary),
writes the ``engine.reports`` reports for the day, and prints their paths
and the ledger's.  Returns the figures.
"""
from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import trio
from rich.console import Console

from dsl.clock import engine_clock
from dsl.load import compile_paths
from engine.journal import open_ledger_sync
from engine.ledger import DEFAULT_LEDGER
from engine.ledger_store import LedgerError
from engine.sim.biller import BillerSim
from engine.sim.ledger_count import SentRequest, count_lost, ledger_rows, repeat_marks, split_repeats, split_twice
from engine.sim.mainframe import EXPECT, MainframeSim
from engine.sim.repeats import REPEAT_SHARE
from engine.sim.progress import load_progress
from engine.sim.services.catalog import ROUTES_DIR, SERVICES
from engine.sim.services.common import SimCalendars, using_calendars
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry
from engine.sim.summary import (bill_mix_line, next_steps, overall_table, reading_guide, repeats_line, service_table,
                                summarize)

BILL = "bill_payment"
BILL_CHANNEL = "mainframe"
# seconds a simulator waits with requests unanswered before it gives up on them (counted lost): not a deadline
# for the whole run, so a slow or busy machine makes the demo slower, never "lost" (before 2026-11-27: 30 s
# from the start, and a machine under load counted as lost the replies that came after)
STALL = 30.0


def _ledger_hint(exc: BaseException) -> str:
    text = str(exc)
    if "locked by another process" in text:
        text += ("\nhint: a `bsp run` holds this ledger; stop it, or give the demo its own with "
                 "--ledger var/demo.duckdb")
    return text


class DemoError(RuntimeError):
    pass


def bsp_command() -> str:
    """``bsp`` as the user's shell can start it: ``bsp`` when it is on PATH, else the path of the one
    running (``.venv/bin/bsp`` after ``make demo``), relative to the current folder when it is under it."""
    found = shutil.which("bsp")
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    exe = argv0 if argv0 is not None and argv0.name == "bsp" else Path(sys.executable).parent / "bsp"
    if found and (not exe.exists() or Path(found).resolve() == exe.resolve()):
        return "bsp"
    if not exe.exists():
        return "bsp"
    try:
        return str(exe.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(exe.absolute())


class FileChannelTally(logging.Filter):
    """Holds back the file channels' per-file log lines while the demo runs (its batch files go to
    ``done/`` or, when a record was rejected or failed, ``error/`` of a temporary folder) and counts them
    per channel, for one line after the tables.  Other lines of that logger pass."""

    def __init__(self) -> None:
        super().__init__()
        self.done: dict[str, int] = {}
        self.error: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        channel = text.split(":", 1)[0].removeprefix("channel ")
        if " -> error/" in text:
            self.error[channel] = self.error.get(channel, 0) + 1
            return False
        if " -> done/" in text or ": watching " in text:
            if " -> done/" in text:
                self.done[channel] = self.done.get(channel, 0) + 1
            return False
        return True

    def lines(self) -> list[str]:
        return [f"batch files on {ch}: {self.done.get(ch, 0) + self.error.get(ch, 0):,} run, "
                f"{self.error.get(ch, 0):,} moved to error/ because a record in them was rejected or failed "
                f"(on purpose, as above; the demo's folders were temporary)"
                for ch in sorted(set(self.done) | set(self.error))]


@contextmanager
def file_channel_tally() -> Iterator[FileChannelTally]:
    log = logging.getLogger("bsp.channel.file")
    tally, level = FileChannelTally(), log.level
    log.addFilter(tally)
    log.setLevel(logging.INFO)           # to count the files that went to done/ as well
    try:
        yield tally
    finally:
        log.removeFilter(tally)
        log.setLevel(level)


def demo_clock(program: Any, at: datetime | None, console: Console) -> datetime | None:
    """The instant the demo's clock starts at: ``at`` (--at); else None (the wall clock) while every calendar
    the routes use lists the coming three weeks; else 02:00 UTC of the latest day before today from which
    they do, said in a line: the demo shows the engine at work, not the deals a calendar without next
    year's dates fails (the engine's warning about it is the admin's: docs/operations.md)."""
    from dsl.clock import instant_text
    from engine.calexpiry import program_calendars, rehearsal_day
    if at is not None:
        console.print(f"bsp demo: the engine's clock starts at {instant_text(at)} (--at)", highlight=False)
        return at
    spans = program_calendars(program)
    today = datetime.now().astimezone().date()
    day = rehearsal_day(spans, today)
    if day is None:
        return None
    at = datetime(day.year, day.month, day.day, 2, 0, tzinfo=timezone.utc)
    short = ", ".join(f"{s.table} ({Path(s.path).name}: {s.covers_text()})" for s in spans if s.days_left(today) < 21)
    console.print(f"bsp demo: calendar(s) {short} do not list the coming three weeks, so the demo's fund orders and "
                  f"remittances would fail (96); its clock starts at {instant_text(at)} instead (bsp demo --at "
                  f"chooses another). A real engine warns of this in its log and bsp status: add the next year's "
                  f"dates (docs/operations.md, \"Calendars run out\")", highlight=False)
    return at


def compile_all(routes_dir: Path = ROUTES_DIR) -> tuple[Any, Any]:
    """Every route file (test files too: their ``test`` blocks are not run) into one program."""
    registry = services_registry()
    res = compile_paths(sorted(routes_dir.rglob("*.route")), registry)
    if res.program is None:
        from dsl.diagnostics import render
        raise DemoError("the route library does not compile:\n" + "\n".join(render(d, {}) for d in res.diagnostics))
    return res.program, registry


def run_all_services_demo(*, per_service: int = 200, bill_count: int | None = None, connections: int = 2,
                          window: int = 16, ledger_path: Path = Path("var/bsp-demo.duckdb"),
                          report_dir: Path | None = None, console: Console | None = None, seed: int = 7,
                          plain_progress: bool | None = None, ledger_sync: str = "journal",
                          repeats: float = REPEAT_SHARE, at: datetime | None = None) -> dict[str, Any]:
    """``per_service`` requests per inbound channel of the services; ``bill_count`` bill payment
    requests from the mainframe simulator (default ``per_service``); ``ledger_sync`` as for
    ``bsp run --ledger-sync`` (the ledger is closed, so every deal is in DuckDB, before counting);
    ``repeats``: the share of good requests to keyed routes sent again after their reply, within
    those counts (engine.sim.repeats; batch files are not repeated).  ``at``: the instant the engine's
    clock starts at (``bsp demo --at``; dsl.clock.engine_clock); without it the wall clock, unless a
    calendar the routes use runs out within three weeks: then a day before that (``demo_clock``, said)."""
    console = console or Console()
    bill_count = per_service if bill_count is None else bill_count
    program, registry = compile_all()
    ledger_path = Path(ledger_path)
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    report_dir = Path(report_dir) if report_dir else ledger_path.parent / "reports"
    started_at = datetime.now(timezone.utc)
    out: dict[str, Any] = {}
    n_services = len({svc.name for svc in SERVICES})
    at = demo_clock(program, at, console)
    console.print(f"bsp demo: {len(program.routes)} routes in one engine (configuration {program.version}); "
                  f"bill payment {bill_count:,} requests; {n_services} other services, {per_service:,} requests on "
                  f"each of their {len(SERVICES)} inbound channels; ledger sync {ledger_sync}", highlight=False)

    async def main() -> None:
        biller = BillerSim()
        async with open_ledger_sync(ledger_path, ledger_sync) as ledger:
            out["keyring"] = getattr(ledger, "keyring", None)   # opens a malformed frame's bytes when counting
            await ledger.record_config(program.version, program.sources)
            async with running_services(program, registry, ledger, SERVICES,
                                        extra_sims={"biller": biller}) as rig:
                with load_progress(console, plain=plain_progress) as progress:
                    t0 = time.perf_counter()
                    results = []

                    async def drive(svc: Any) -> None:
                        task = progress.add_task(svc.title.split(" (")[0][:34], total=per_service)
                        results.append((svc, await rig.load(
                            svc, total=per_service, seed=seed, connections=connections, window=window,
                            progress=lambda k: progress.advance(task, k), repeats=repeats, stall=STALL)))

                    async def drive_bill() -> None:
                        task = progress.add_task("Bill payment (mainframe)", total=bill_count)
                        mf = MainframeSim(rig.switchboard.ctx.codec("BillPayReq"), seed=seed)
                        await mf.run(rig.port(BILL_CHANNEL), total=bill_count, connections=max(connections, 4),
                                     window=window * 2, progress=lambda k: progress.advance(task, k),
                                     repeats=repeats, deadline=math.inf, reply_timeout=STALL)
                        out["bill"] = mf.result

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(drive_bill)
                        for svc in SERVICES:
                            nursery.start_soon(drive, svc)
                    out["elapsed"] = time.perf_counter() - t0
                    out["results"] = results
                out["biller_refused"] = biller.refused
                # references that reached a counterpart more than once (a repeat must never be made again)
                out["twice"], out["refs"] = [], 0
                for channel, sim in [*rig.sims.items(), ("biller", biller)]:
                    calls = getattr(sim, "calls", None)
                    if calls is None:
                        continue
                    out["refs"] += len(calls)
                    out["twice"] += [(channel, ref, n) for ref, n in sorted(calls.items()) if n > 1]

    try:
        # the simulators date requests by the program's calendars, read here (not in the middle of traffic)
        with file_channel_tally() as tally, engine_clock(at), \
                using_calendars(SimCalendars(dict(program.tables), "the demo's routes", say=lambda note: console.print(note, highlight=False, markup=False))):
            trio.run(main)
    except LedgerError as exc:               # the ledger file another engine holds, say
        raise DemoError(_ledger_hint(exc)) from None
    except BaseExceptionGroup as group:
        from engine.ops.live import only_errors
        first = only_errors(group, (LedgerError,))
        if first is None:
            raise
        raise DemoError(_ledger_hint(first)) from None
    elapsed = out["elapsed"]
    bill, results = out["bill"], out["results"]
    bill_sent = [SentRequest(BILL, BILL_CHANNEL, r.trace, r.code is not None, r.repeat_of is not None)
                 for r in bill.requests]
    svc_sent = [SentRequest(svc.name, svc.inbound, o.ref, o.code is not None, o.repeat_of is not None)
                for svc, res in results for o in res.outcomes]
    keys, dups = ledger_rows(ledger_path, program.version, started_at, keyring=out.pop("keyring", None))
    acc_bill, acc_svc = count_lost(bill_sent, keys, duplicates=dups), count_lost(svc_sent, keys, duplicates=dups)
    acc_all = count_lost(bill_sent + svc_sent, keys, duplicates=dups)
    repeated = bill.repeats + [o for _, r in results for o in r.repeats]
    # a repeat whose original freed its key ran again (another reply, a counterpart reached again), one past
    # the key store's retention got 94: by the ledger's own record of them, not defects (engine.sim.ledger_count)
    marks = repeat_marks(ledger_path, program.version, started_at)
    split = split_repeats([(BILL_CHANNEL, r.trace, r.repeat_differs, r) for r in bill.repeats]
                          + [(svc.inbound, o.ref, o.repeat_differs, o) for svc, res in results for o in res.repeats],
                          marks)
    differs = split.differs
    twice, twice_again = split_twice(out["twice"], marks)
    rows = summarize(ledger_path, program, started_at)

    def line(name: str, acc: Any, services: set[str] | None) -> dict[str, Any]:
        picked = [r for r in rows if services is None or (r["service"] in services)]
        return {"name": name, "sent": acc.sent, "replies": acc.replies, "lost": acc.lost,
                "committed": sum(r["committed"] for r in picked), "rejected": sum(r["rejected"] for r in picked),
                "failed": sum(r["failed"] for r in picked), "duplicate": sum(r["duplicate"] for r in picked),
                "rate": acc.replies / elapsed if elapsed else 0.0}

    others = {r["service"] for r in rows} - {BILL}
    summary = [line("bill payment", acc_bill, {BILL}), line(f"{len(others)} other services", acc_svc, others),
               line("total", acc_all, None)]
    console.print(overall_table(summary, f"bsp demo: every service in one engine, {acc_all.sent:,} requests "
                                         f"in {elapsed:.1f}s"))
    for example in acc_all.lost_examples:
        console.print(f"  lost: {example}", highlight=False)
    for text in reading_guide(summary[-1]):
        console.print(text, highlight=False)
    console.print()
    console.print(service_table(rows, "per service (deals in the ledger; latency is the engine's)"))
    unexpected = len(bill.unexpected) + sum(len(r.unexpected) for _, r in results)
    console.print(bill_mix_line(bill.by_kind, EXPECT, out["biller_refused"]), highlight=False)
    for text in tally.lines():
        console.print(text, highlight=False)
    console.print(repeats_line(len(repeated), split.same, len(twice), out["refs"], ran_again=split.ran_again,
                               past_retention=split.past_retention, again=len(twice_again)), highlight=False)
    for r in differs[:5]:
        console.print(f"  repeat with another reply than its original: {getattr(r, 'ref', '') or r.trace}",
                      highlight=False)
    for text in twice[:5]:
        console.print(f"  reached a counterpart twice: {text}", highlight=False)
    codes = ("every reply code was the one the simulators expected" if not unexpected else
             f"{unexpected:,} reply code(s) differed from what the simulators expected")
    console.print(f"{codes}; {acc_all.in_ledger:,} of {acc_all.sent:,} requests found in the ledger by "
                  f"reference (each repeat as a duplicate deal"
                  + (f", or by its own deal row: {acc_all.ran_again:,} ran again as new deals, their original "
                     f"having freed its key as nothing of it reached a counterpart" if acc_all.ran_again else "")
                  + ")", highlight=False)
    console.print()
    reports = write_reports(ledger_path, report_dir, console)
    console.print(f"ledger: {ledger_path.resolve()}", highlight=False)
    console.print()
    day = datetime.now(timezone.utc).date().isoformat()
    for text in next_steps(bsp_command(), ledger_path, DEFAULT_LEDGER, reports, day):
        console.print(text, highlight=False)
    return {"services": rows, "summary": summary, "reports": [str(p) for p in reports],
            "sent": acc_all.sent, "replies": acc_all.replies, "lost": acc_all.lost, "in_ledger": acc_all.in_ledger,
            "unexpected": unexpected, "elapsed": elapsed, "ledger": str(ledger_path.resolve()),
            "lost_examples": acc_all.lost_examples, "repeats": len(repeated), "repeats_differ": len(differs),
            "repeats_ran_again": split.ran_again, "repeats_past_retention": split.past_retention,
            "twice": len(twice), "twice_examples": twice[:5], "twice_ran_again": len(twice_again),
            "duplicates": summary[-1]["duplicate"]}


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
    console.print(f"reports written (every deal of {today.isoformat()}, UTC, in this ledger: earlier runs "
                  f"of the day too):", highlight=False)
    for p in paths:
        console.print(f"  {p.resolve()}", highlight=False)
    return paths
