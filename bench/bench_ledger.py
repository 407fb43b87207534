"""Deal rows per second through ``Ledger.commit`` with many concurrent committers.

    .venv/bin/python bench/bench_ledger.py [--deals 100000] [--committers 2000] [--max-batch 2048]

Each committer task awaits ``commit`` for its share of the deals (like an
exchange waiting for its deal row before answering).  Prints rows/s, batches,
mean batch size and commit latency.  Writes to a temporary DuckDB file.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.deal import DealRecord  # noqa: E402
from engine.ledger import open_ledger  # noqa: E402


def make_deal(i: int, t0: datetime) -> DealRecord:
    return DealRecord(
        deal_type="BILL_PAYMENT", route="bill_payment", config_version="0123456789abcdef",
        channel="mainframe", status="committed", received_at=t0, finished_at=t0 + timedelta(milliseconds=3),
        reference=f"{i:012d}", amount=Decimal("120.50"), currency="CNY", party="EL01", response_code="00",
        request={"txn_code": "BP01", "trace_no": f"{i:012d}", "biller_id": "EL01",
                 "account": "6222000011112222", "amount": Decimal("120.50"), "currency": "CNY"},
        response={"trace_no": f"{i:012d}", "resp_code": "00", "biller_ref": "C-77"},
    )


async def run(deals: int, committers: int, max_batch: int, max_wait: float, path: Path) -> dict:
    t0 = datetime.now(timezone.utc)
    records = [make_deal(i, t0) for i in range(deals)]
    latencies: list[float] = []

    async with open_ledger(path, max_batch=max_batch, max_wait=max_wait) as ledger:
        async def committer(k: int) -> None:
            for i in range(k, deals, committers):
                start = time.perf_counter()
                await ledger.commit(records[i])
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(committers):
                nursery.start_soon(committer, k)
        elapsed = time.perf_counter() - start
        stats = ledger.stats
    latencies.sort()
    return {
        "deals": deals, "committers": committers, "seconds": elapsed, "rows_per_s": deals / elapsed,
        "batches": stats.batches, "avg_batch": stats.avg_batch, "max_batch": stats.max_batch,
        "avg_commit_ms": stats.avg_commit_ms,
        "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--committers", type=int, default=2000)
    ap.add_argument("--max-batch", type=int, default=2048)
    ap.add_argument("--max-wait", type=float, default=0.002)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = trio.run(run, args.deals, args.committers, args.max_batch, args.max_wait, Path(tmp) / "bench.duckdb")
    print(f"ledger commit: {r['deals']} deals, {r['committers']} concurrent committers, "
          f"max_batch {args.max_batch}, max_wait {args.max_wait}s")
    print(f"  {r['rows_per_s']:,.0f} rows/s  ({r['seconds']:.2f} s)")
    print(f"  {r['batches']} batches, avg {r['avg_batch']:.0f} rows, max {r['max_batch']}, "
          f"avg commit {r['avg_commit_ms']:.1f} ms")
    print(f"  commit() latency p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
