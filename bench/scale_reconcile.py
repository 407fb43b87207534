"""A production-scale ledger and statements for ``bsp reconcile`` (docs/benchmarks.md, "The tools at
production scale").

    .venv/bin/python bench/scale_reconcile.py OUTDIR [--deals 1500000] [--lines 20000,200000]

Writes ``OUTDIR/big.duckdb`` (unless it is there already) through ``LedgerStore.write`` in batches of
4,096, as ``bench/bench_audit.py`` does: deals 400 ms apart from 2026-03-01 00:00 UTC, one step and
one event each, 80% committed (every fifth deal rejected), 5 parties, amounts 1.00 .. 9,999.99 EUR,
reference ``R`` + the deal number. Then ``OUTDIR/stmtN.csv`` for each N: the committed deals received
on 2026-03-02 in order (repeated with a ``-X`` suffix when N is larger, so the rest are "only in
statement"), booked 2026-03-02, one line in ten with its reference only in the text; one line in a
hundred is instead a late booking of a deal of 2026-03-01 (a ``date_mismatch``, every fifth of them by
the text only).

Measure with ``/usr/bin/time -v .venv/bin/bsp reconcile --ledger OUTDIR/big.duckdb --against
OUTDIR/stmt20000.csv --type csv -q`` (maximum resident set size).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.deal import DealEvent, DealRecord, DealStep  # noqa: E402
from engine.ledger import Ledger  # noqa: E402
from engine.ledger_store import LedgerStore  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
STEP = timedelta(milliseconds=400)
PARTIES = ("P1", "P2", "P3", "P4", "P5")
DAY = date(2026, 3, 2)


def committed(i: int) -> bool:
    return i % 5 != 4


def amount(i: int) -> Decimal:
    return Decimal(100 + (i * 7919) % 999_900) / 100


def build_ledger(path: Path, n: int, batch: int = 4096) -> None:
    store = LedgerStore.open(path, os.urandom(32))
    to_rows = Ledger._deal_rows.__get__(type("L", (), {"keyring": None})())
    t_start = time.perf_counter()
    try:
        for start in range(0, n, batch):
            rows = []
            for i in range(start, min(start + batch, n)):
                t = T0 + i * STEP
                rows.append(to_rows(DealRecord(
                    deal_type="TRANSFER", route="transfer", config_version="0123456789abcdef",
                    channel="mainframe", status="committed" if committed(i) else "rejected",
                    received_at=t, finished_at=t + timedelta(milliseconds=3), deal_id=f"{i:08d}",
                    reference=f"R{i:09d}", amount=amount(i), currency="EUR", party=PARTIES[i % 5],
                    response_code="00", request={"ref": f"R{i:09d}"}, response={"resp_code": "00"},
                    steps=[DealStep("s0", "call", "ok", t, 1.5)], events=[DealEvent(t, None, "done")])))
            store.write(rows)
    finally:
        store.close()
    print(f"{path}: {n:,} deals in {time.perf_counter() - t_start:.0f} s")


def write_statement(path: Path, n_deals: int, n_lines: int) -> None:
    first = int((datetime.combine(DAY, datetime.min.time(), timezone.utc) - T0) / STEP)
    last = min(n_deals, int((datetime.combine(DAY + timedelta(days=1), datetime.min.time(), timezone.utc) - T0)
                            / STEP))
    day_deals = [i for i in range(first, last) if committed(i)]
    if not day_deals:
        raise SystemExit(f"--deals {n_deals:,}: no deal falls on {DAY} (deals are {STEP.total_seconds():g} s apart "
                         f"from {T0:%Y-%m-%d %H:%M} UTC); give --deals {first + 1:,} or more")
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["reference", "amount", "currency", "date", "text"])
        for k in range(n_lines):
            i = day_deals[k % len(day_deals)]
            if k % 100 == 50 and committed(i - 216_000):      # the same time a day earlier: a late booking
                i -= 216_000
            ref = f"R{i:09d}" + (f"-X{k // len(day_deals)}" if k >= len(day_deals) else "")
            if k % 10 == 9 or k % 500 == 50:
                w.writerow(["", f"{amount(i):.2f}", "EUR", DAY.isoformat(), f"transfer {ref} thank you"])
            else:
                w.writerow([ref, f"{amount(i):.2f}", "EUR", DAY.isoformat(), f"transfer {k}"])
    print(f"{path}: {n_lines:,} lines")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--deals", type=int, default=1_500_000)
    ap.add_argument("--lines", default="20000,200000")
    a = ap.parse_args()
    a.outdir.mkdir(parents=True, exist_ok=True)
    ledger = a.outdir / "big.duckdb"
    if not ledger.exists():
        build_ledger(ledger, a.deals)
    for n in (int(x) for x in a.lines.split(",")):
        write_statement(a.outdir / f"stmt{n}.csv", a.deals, n)


if __name__ == "__main__":
    main()
