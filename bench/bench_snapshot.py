"""A ledger snapshot (``POST /ledger/snapshot``) beside a writer that keeps committing: how long the copy
takes and how much it slows the writer.

    .venv/bin/python bench/bench_snapshot.py [--deals 100000] [--sync duckdb|journal] [--runs 3] [--baseline]

Fills a temporary ledger of ``--deals`` deals (one step and one event each, audit-chained) through
``LedgerStore.write``, opens it as the engine does (``open_ledger_sync``), and runs one committer that
commits a deal at a time without pause.  Each run: 1 s of commits, then ``engine.ledger_snapshot.
take_snapshot`` in a worker thread (as the admin API runs it) while the commits go on, then 1 s more.
Prints the copy's wall time and size, and the commit latency (p50, p99, max) before and during the copy.
The copy is checked: its deals and audit chain verify with the key.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.audit import verify  # noqa: E402
from engine.deal import DealEvent, DealRecord, DealStep, new_deal_id  # noqa: E402
from engine.journal import open_ledger_sync  # noqa: E402
from engine.ledger import Ledger  # noqa: E402
from engine.ledger_snapshot import take_snapshot  # noqa: E402
from engine.ledger_store import LedgerStore, connect  # noqa: E402


def fill(path: Path, deals: int, key: bytes) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    store = LedgerStore.open(path, key)
    to_rows = Ledger._deal_rows.__get__(type("L", (), {"keyring": None})())
    for start in range(0, deals, 4096):
        batch = []
        for i in range(start, min(start + 4096, deals)):
            t = t0 + timedelta(milliseconds=400 * i)
            batch.append(to_rows(DealRecord(
                deal_type="BILL_PAYMENT", route="bill_payment", config_version="0123456789abcdef",
                channel="mainframe", status="committed", received_at=t, finished_at=t + timedelta(milliseconds=3),
                reference=f"{i:012d}", amount=Decimal("120.50"), currency="CNY", party="EL01",
                response_code="00", request={"trace_no": f"{i:012d}", "amount": Decimal("120.50")},
                response={"resp_code": "00"}, steps=[DealStep("post", "call", "ok", t, 1.5, detail={"j": 1})],
                events=[DealEvent(t, None, "committed")])))
        store.write(batch)
    store.close()


def record(i: int) -> DealRecord:
    now = datetime.now(timezone.utc)
    return DealRecord(deal_type="BILL_PAYMENT", route="bill_payment", config_version="0123456789abcdef",
                      channel="mainframe", status="committed", received_at=now, finished_at=now,
                      reference=f"L{i:011d}", amount=Decimal("10.00"), currency="CNY", party="EL01",
                      deal_id=new_deal_id(), request={"n": i}, response={"resp_code": "00"})


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def run(path: Path, sync: str, runs: int, key: bytes, baseline: bool) -> None:
    async with open_ledger_sync(path, sync, audit_key=key, keyring=None) as ledger:
        lat: list[tuple[float, float]] = []        # (start, ms)
        stop = trio.Event()
        snaps: list = []

        async def committer() -> None:
            i = 0
            while not stop.is_set():
                t = time.perf_counter()
                await ledger.commit(record(i))
                lat.append((t, (time.perf_counter() - t) * 1000))
                i += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(committer)
            for n in range(runs):
                await trio.sleep(1.0)
                wait = getattr(ledger, "wait_loaded", None)
                w0 = time.perf_counter()
                if wait is not None:
                    await wait()
                c0 = time.perf_counter()
                if baseline:        # the same commits without a snapshot: what the writer does alone
                    await trio.sleep(0.7)
                    print(f"run {n + 1} (no snapshot): " + ", ".join(
                        f"{name}: {len(v)} p50 {pct(v, .5):.2f} p99 {pct(v, .99):.2f} max {max(v, default=0):.2f} ms"
                        for name, v in (("before", [ms for t, ms in lat if c0 - 1.0 <= t < c0]),
                                        ("0.7 s", [ms for t, ms in lat if c0 <= t < c0 + 0.7]))))
                    continue
                snap = await trio.to_thread.run_sync(take_snapshot, path)
                c1 = time.perf_counter()
                await trio.sleep(1.0)
                before = [ms for t, ms in lat if c0 - 1.0 <= t < c0]
                during = [ms for t, ms in lat if c0 <= t < c1]
                after = [ms for t, ms in lat if c1 <= t < c1 + 1.0]
                snap.path = snap.path.rename(path.parent / f"copy-{n + 1}.duckdb")   # the next snapshot clears leftovers
                snaps.append(snap)      # verified once the commits have stopped (verify holds the GIL)
                print(f"run {n + 1}: load wait {(c0 - w0) * 1000:.1f} ms, copy {c1 - c0:.3f} s, "
                      f"{snap.size / 1e6:.1f} MB, {snap.deals:,} deals; commits before: {len(before)}/s p50 {pct(before, .5):.2f} "
                      f"p99 {pct(before, .99):.2f} ms; during: {len(during)} in {c1 - c0:.3f} s, p50 "
                      f"{pct(during, .5):.2f} p99 {pct(during, .99):.2f} max {max(during, default=float('nan')):.2f}"
                      f" ms; after: {len(after)}/s p50 {pct(after, .5):.2f} max {max(after, default=float('nan')):.2f} ms")
            stop.set()
        for snap in snaps:
            con = connect(snap.path, read_only=True)
            try:
                rep = verify(con, snap.path, key)
            finally:
                con.close()
            snap.remove()
            print(f"{snap.path.name}: {snap.deals:,} deals, audit chain {'intact' if rep.ok else 'BROKEN'} "
                  f"({rep.records:,} records, last seq {rep.last_seq})")
        worst = max(range(len(lat)), key=lambda k: lat[k][1])
        print(f"overall commit latency: p50 {statistics.median(ms for _, ms in lat):.2f} ms, max "
              f"{lat[worst][1]:.2f} ms (commit #{worst + 1}) over {len(lat):,} commits")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--sync", choices=("duckdb", "journal"), default="duckdb")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", action="store_true", help="the same commits, no snapshot")
    a = ap.parse_args()
    key = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        t = time.perf_counter()
        fill(path, a.deals, key)
        print(f"ledger of {a.deals:,} deals ({path.stat().st_size / 1e6:.1f} MB) filled in "
              f"{time.perf_counter() - t:.1f} s; sync {a.sync}")
        trio.run(run, path, a.sync, a.runs, key, a.baseline)


if __name__ == "__main__":
    main()
