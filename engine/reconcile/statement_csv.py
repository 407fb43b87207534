"""A counterparty's statement as CSV: one line per booked transaction.

Header row required; column names are matched without case, in any order,
extra columns ignored::

    reference (or ref, end_to_end_id)   the counterparty's reference for our deal
    amount                              decimal with a point: 120.50, -7.125 (no thousands separators)
    currency (or ccy)                   ISO 4217
    date (or booking_date)              YYYY-MM-DD
    value_date                          optional, YYYY-MM-DD
    text (or description, details)      optional free text, searched for our reference
    dc (or cdt_dbt)                     optional C/D or CRDT/DBIT: a D makes the amount negative
"""
from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from engine.reconcile.lines import StatementLine
from engine.reports.model import ReportError

ALIASES = {
    "reference": ("reference", "ref", "end_to_end_id", "endtoendid"),
    "amount": ("amount", "amt"),
    "currency": ("currency", "ccy"),
    "date": ("date", "booking_date", "bookgdt"),
    "value_date": ("value_date", "valdt"),
    "text": ("text", "description", "details"),
    "dc": ("dc", "cdt_dbt", "cdtdbtind", "direction"),
}
REQUIRED = ("amount", "currency", "date")


def _day(text: str, where: str, column: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{where}: column {column}: {text!r} is not a date; write YYYY-MM-DD") from None


def load_csv(path: Path) -> list[StatementLine]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: byte {exc.start}: not UTF-8 text; save the statement as UTF-8 CSV") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise ReportError(f"{path}:1: empty file; expected a header row with {', '.join(REQUIRED)}, reference")
    header = [h.strip().casefold() for h in rows[0]]
    where_col: dict[str, int] = {}
    for key, names in ALIASES.items():
        for n in names:
            if n in header:
                where_col[key] = header.index(n)
                break
    missing = [k for k in (*REQUIRED, "reference") if k not in where_col]
    if [k for k in missing if k != "reference"] or ("reference" in missing and "text" not in where_col):
        raise ReportError(f"{path}:1: the header has no {', '.join(missing)} column (it has: {', '.join(rows[0])}); "
                          f"expected reference, amount, currency, date (and optionally value_date, text, dc)")
    out: list[StatementLine] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}:{lineno}"

        def get(key: str) -> str:
            i = where_col.get(key)
            return row[i] if i is not None and i < len(row) else ""

        raw = get("amount").strip()
        try:
            amount = Decimal(raw)
            if not amount.is_finite() or "," in raw or raw.count(".") > 1:
                raise InvalidOperation
        except InvalidOperation:
            raise ReportError(f"{where}: column amount: {raw!r} is not a decimal number; write it with a point "
                              f"and no thousands separator, e.g. 1234.50") from None
        dc = get("dc").strip().upper()
        if dc in ("D", "DR", "DBIT", "DEBIT"):
            amount = -abs(amount)
        elif dc not in ("", "C", "CR", "CRDT", "CREDIT"):
            raise ReportError(f"{where}: column dc: {dc!r}: expected C or D (CRDT or DBIT)")
        currency = get("currency").strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise ReportError(f"{where}: column currency: {currency!r}: expected an ISO 4217 code such as EUR")
        booking = _day(get("date"), where, "date")
        if booking is None:
            raise ReportError(f"{where}: column date: empty; every line needs its booking date (YYYY-MM-DD)")
        out.append(StatementLine(where=where, amount=amount, currency=currency, booking_date=booking,
                                 value_date=_day(get("value_date"), where, "value_date"),
                                 refs=(get("reference").strip(),), text=get("text")))
    return out


__all__ = ["load_csv"]
