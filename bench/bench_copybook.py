"""Copybook decode / encode speed on a 300-byte EBCDIC record with 20 fields (3 COMP-3).

    .venv/bin/python bench/bench_copybook.py [--records N]

Goals: decode >= 150k and encode >= 100k records/s on one core.  Prints the
best and median records/s of ``--repeat`` rounds for decode, encode and
iter_records over an in-memory file (the best round is the one least disturbed
by other work on the machine).
"""
from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from formats.copybook import CopybookCodec, CopybookOptions  # noqa: E402

COPYBOOK = """\
       01  PAYMENT-REC.
           05  REC-TYPE            PIC X(2).
           05  TRACE-NO            PIC X(12).
           05  BRANCH              PIC 9(4).
           05  TELLER-ID           PIC X(8).
           05  ACCOUNT-NO          PIC X(20).
           05  CUSTOMER-NAME       PIC X(40).
           05  AMOUNT              PIC S9(13)V99 COMP-3.
           05  FEE                 PIC S9(7)V99  COMP-3.
           05  BALANCE             PIC S9(15)V99 COMP-3.
           05  CURRENCY            PIC X(3).
           05  VALUE-DATE          PIC 9(8).
           05  POST-DATE           PIC 9(8).
           05  SEQ-NO              PIC S9(9) COMP.
           05  BATCH-NO            PIC 9(4) COMP.
           05  STATUS-CODE         PIC X(2).
               88  STATUS-OK       VALUE '00'.
           05  RATE                PIC S9(3)V9(6).
           05  NARRATIVE           PIC X(60).
           05  REFERENCE           PIC X(35).
           05  CHANNEL             PIC X(4).
           05  FILLER              PIC X(57).
"""


def _rate(fn, n: int, repeat: int) -> tuple[float, float]:
    """Best and median records/s over ``repeat`` rounds of ``n`` calls (best = least disturbed)."""
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(n)
        rates.append(n / (time.perf_counter() - t))
    rates.sort()
    return rates[-1], rates[len(rates) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5, help="rounds per measurement; best and median are shown")
    args = ap.parse_args()
    codec = CopybookCodec.from_text(COPYBOOK, CopybookOptions(encoding="cp037"))
    assert codec.size == 300, codec.size
    values = {
        "REC_TYPE": "PY", "TRACE_NO": "000000123456", "BRANCH": 1234, "TELLER_ID": "T0001",
        "ACCOUNT_NO": "DE89370400440532013000", "CUSTOMER_NAME": "ACME TRADING GMBH",
        "AMOUNT": Decimal("12345.67"), "FEE": Decimal("-1.50"), "BALANCE": Decimal("987654321.09"),
        "CURRENCY": "EUR", "VALUE_DATE": 20261130, "POST_DATE": 20261201, "SEQ_NO": -42, "BATCH_NO": 7,
        "STATUS_CODE": "00", "RATE": Decimal("1.234567"), "NARRATIVE": "INVOICE 2026-11 PAYMENT",
        "REFERENCE": "REF-77", "CHANNEL": "MF01",
    }
    values["ACCOUNT_NO"] = values["ACCOUNT_NO"][:20]
    rec = codec.encode(values)
    decoded = codec.decode(rec)
    assert decoded["AMOUNT"] == Decimal("12345.67") and decoded["STATUS_OK"] is True, decoded
    assert codec.encode(decoded) == rec
    n, r = args.records, args.repeat
    decode, encode = codec.decode, codec.encode

    def run_decode(k: int) -> None:
        for _ in range(k):
            decode(rec)

    def run_encode(k: int) -> None:
        for _ in range(k):
            encode(decoded)

    data = rec * n

    def run_iter(k: int) -> None:
        assert sum(1 for _ in codec.iter_records(data)) == k

    m = max(n // 2, 1)
    for label, fn, k, extra in (("decode", run_decode, n, "300 bytes, 20 fields, 3 COMP-3"),
                                ("encode", run_encode, m, "same record"),
                                ("iter_records", run_iter, n, f"{len(data) / 1e6:.0f} MB in memory")):
        best, median = _rate(fn, k, r)
        print(f"{label:<12} {best:>10,.0f} records/s best of {r}, median {median:,.0f}"
              f"  ({1e6 / best:.2f} us/record; {extra})")


if __name__ == "__main__":
    main()
