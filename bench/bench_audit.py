"""Audit chain speed: sealing on write and ``verify`` (records/s).

    .venv/bin/python bench/bench_audit.py [--deals 100000] [--steps 2] [--events 2] [--batch 2048] [--rejected 0.2]

Fills a temporary ledger through ``LedgerStore.write`` in batches (deals with
their steps and events, each row one chained record), then runs
``engine.audit.verify`` over the whole file.  Goal: verify >= 100k records/s.
``--rejected F``: that fraction of the deals rejected, each with its dead letter (one more chained record), as
the engine stores them: verify also checks every rejected or failed deal has its letter (default 0: all
committed, the figures kept in docs/benchmarks.md before 2026-11-28).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.audit import verify  # noqa: E402
from engine.deal import DeadLetter, DealEvent, DealRecord, DealStep  # noqa: E402
from engine.ledger import Ledger  # noqa: E402
from engine.ledger_store import LedgerStore, connect  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deals", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--events", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--rejected", type=float, default=0.0)
    a = ap.parse_args()
    key = os.urandom(32)
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        store = LedgerStore.open(path, key)
        to_rows = Ledger._deal_rows.__get__(type("L", (), {"keyring": None, "_dead_row": Ledger._dead_row})())
        every = round(1 / a.rejected) if a.rejected else 0     # one deal in ``every`` rejected
        write_s = 0.0
        for start in range(0, a.deals, a.batch):
            batch = []
            for i in range(start, min(start + a.batch, a.deals)):
                t = t0 + timedelta(milliseconds=i)
                rejected = every and i % every == 0
                batch.append(to_rows(DealRecord(
                    deal_type="BILL_PAYMENT", route="bill_payment", config_version="0123456789abcdef",
                    channel="mainframe", status="rejected" if rejected else "committed", received_at=t, finished_at=t + timedelta(milliseconds=3),
                    reference=f"{i:012d}", amount=Decimal("120.50"), currency="CNY", party="EL01",
                    response_code="00", request={"trace_no": f"{i:012d}", "amount": Decimal("120.50")},
                    response={"resp_code": "00"},
                    steps=[DealStep(f"s{j}", "call", "ok", t, 1.5, detail={"j": j}) for j in range(a.steps)],
                    events=[DealEvent(t, None, f"e{j}") for j in range(a.events)],
                    deal_id=f"{i:032x}",
                    dead_letter=DeadLetter(route="bill_payment", channel="mainframe", reason="rejected: limit",
                                           raw=b'{"trace_no": "%012d"}' % i, config_version="0123456789abcdef",
                                           error_kind="rejected", error_code="61", at=t, id=f"{i:032x}")
                    if rejected else None)))
            w0 = time.perf_counter()
            store.write(batch)
            write_s += time.perf_counter() - w0
        store.close()
        records = a.deals * (1 + a.steps + a.events) + (len(range(0, a.deals, every)) if every else 0)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        print(f"wrote {records:,} records ({a.deals:,} deals, {a.rejected:.0%} rejected with a dead letter) in {write_s:.2f} s of store.write "
              f"({records / write_s:,.0f} records/s incl. sealing); file {size / 1e6:.1f} MB")
        con = connect(path, read_only=True)
        try:
            best = None
            for _ in range(3):
                report = verify(con, path, key)
                assert report.ok, [str(b) for b in report.breaks]
                best = report if best is None or report.seconds < best.seconds else best
        finally:
            con.close()
        assert best is not None
        print(f"verify: {best.records:,} records in {best.seconds:.2f} s = {best.rate:,.0f} records/s "
              f"(best of 3; goal >= 100,000)")


if __name__ == "__main__":
    main()
