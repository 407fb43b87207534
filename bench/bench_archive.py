"""``bsp ledger archive`` at scale: time of each stage and the file sizes before and after.

    .venv/bin/python bench/bench_archive.py [--deals 1000000] [--archive-fraction 0.5] [--dir DIR]

Fills a ledger through ``LedgerStore.write`` (keyed deals spread evenly over 60 days, each with one step and
two events: an ``accepted`` event carrying its deal key, then ``committed``), then archives the deals received
before the day that leaves ``--archive-fraction`` of them in the archive, as ``bsp ledger archive --yes`` does
(``engine.ledger_archive``), then verifies both files (``engine.audit.verify``) and checks that a key of an
archived deal is still found (``LedgerStore.deals_by_key``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.audit import verify  # noqa: E402
from engine.deal import DealEvent, DealRecord, DealStep  # noqa: E402
from engine.ledger import Ledger  # noqa: E402
from engine.ledger_archive import prepare  # noqa: E402
from engine.ledger_store import LedgerStore, connect  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=60)


def mib(path: Path) -> float:
    return path.stat().st_size / (1024 * 1024)


def fill(path: Path, key: bytes, n: int, batch: int = 4096) -> float:
    store = LedgerStore.open(path, key)
    to_rows = Ledger._deal_rows.__get__(type("L", (), {"keyring": None})())
    t_start = time.perf_counter()
    store.record_config("0123456789abcdef", '{"/r/a.route": "route a {}"}', T0)
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(start + batch, n)):
            t = T0 + SPAN * (i / n)
            rows.append(to_rows(DealRecord(
                deal_type="BILL_PAYMENT", route="bill_payment", config_version="0123456789abcdef",
                channel="mainframe", status="committed", received_at=t, finished_at=t + timedelta(milliseconds=3),
                reference=f"{i:012d}", amount=Decimal("120.50"), currency="CNY", party="EL01", response_code="00",
                request={"trace_no": f"{i:012d}", "amount": Decimal("120.50")}, response={"resp_code": "00"},
                steps=[DealStep("biller", "call", "ok", t, 1.5, detail={"to": "biller"})],
                events=[DealEvent(t, "received", "accepted", {"key": f"bill_payment|{i:012d}"}),
                        DealEvent(t, "accepted", "committed")])))
        store.write(rows)
    store.close()
    return time.perf_counter() - t_start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deals", type=int, default=1_000_000)
    ap.add_argument("--archive-fraction", type=float, default=0.5)
    ap.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temporary folder)")
    a = ap.parse_args()
    key = os.urandom(32)
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        led, out = Path(tmp) / "bsp.duckdb", Path(tmp) / "archive.duckdb"
        fill_s = fill(led, key, a.deals)
        before_mib = mib(led)
        print(f"filled {a.deals:,} deals ({a.deals * 4 + 1:,} records) in {fill_s:.1f} s: {before_mib:,.1f} MiB")
        cut = T0 + SPAN * a.archive_fraction
        stages: dict[str, float] = {}

        @contextmanager
        def stage(what: str, unit: str) -> Iterator[Any]:
            t = time.perf_counter()
            yield None
            stages[what] = time.perf_counter() - t

        t_all = time.perf_counter()
        t = time.perf_counter()
        job = prepare(led, out, cut, key)
        stages["plan (open, cut, refusals)"] = time.perf_counter() - t
        assert not job.refusals, job.refusals
        moved = job.plan.counts.get("deals", 0)
        try:
            t = time.perf_counter()
            job.run(stage)
            stages["move + compact (one transaction, then the rewrite)"] = (
                time.perf_counter() - t - sum(v for k, v in stages.items() if k.startswith("archive:")))
        finally:
            job.close()
        total = time.perf_counter() - t_all
        for what, s in stages.items():
            print(f"  {what}: {s:.2f} s")
        print(f"archived {moved:,} deals ({job.plan.records:,} records) in {total:.1f} s: ledger {before_mib:,.1f} MiB "
              f"-> {mib(led):,.1f} MiB, archive {mib(out):,.1f} MiB")
        for f in (out, led):
            con = connect(f, read_only=True)
            try:
                rep = verify(con, f, key)
            finally:
                con.close()
            print(f"  verify {f.name}: {'intact' if rep.ok else 'BROKEN'}, {rep.records:,} records in "
                  f"{rep.seconds:.1f} s")
        store = LedgerStore.open(led, key)
        try:
            t = time.perf_counter()
            found = store.deals_by_key([f"bill_payment|{i:012d}" for i in range(0, 64)])
            print(f"  64 archived keys looked up in {1000 * (time.perf_counter() - t):.1f} ms: {len(found)} found")
        finally:
            store.close()


if __name__ == "__main__":
    main()
