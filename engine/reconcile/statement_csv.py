"""A counterparty's statement as CSV: one line per booked transaction.

Header row required; column names are matched without case, in any order,
extra columns ignored.  Fields are separated by ``,``; a file whose header is
separated by ``;`` (or a tab) instead, as many banks export it, is read with
that separator, and its amounts may then be written with a decimal comma
(``1234,56``)::

    reference (or ref, end_to_end_id)   the counterparty's reference for our deal
    amount                              decimal with a point: 120.50, -7.125 (no thousands separators, no
                                        exponent); in a ``;`` or tab separated file also 120,50
    currency (or ccy)                   ISO 4217
    date (or booking_date)              YYYY-MM-DD
    value_date                          optional, YYYY-MM-DD
    text (or description, details)      optional free text, searched for our reference
    dc (or cdt_dbt)                     optional C/D or CRDT/DBIT: a D makes the amount negative
"""
from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
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
SEPARATORS = (",", ";", "\t")       # the header's most frequent one is the file's (a tie: ",")
_POINT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")     # ASCII digits only (\d takes any script's)
_COMMA = re.compile(r"[+-]?[0-9]+,[0-9]+")


def separator(header_line: str) -> str:
    return max(SEPARATORS, key=lambda sep: (header_line.count(sep), sep == ","))


def amount_of(raw: str, sep: str, where: str) -> Decimal:
    """A statement amount: plain decimal with a point; with a decimal comma too when the file's
    separator is not a comma.  Never a thousands separator or an exponent (``2.84E+05``: a spreadsheet
    that rounded the amount), which would be a guess."""
    text = raw.strip()
    if sep != "," and _COMMA.fullmatch(text):
        text = text.replace(",", ".")
    if not _POINT.fullmatch(text):
        comma = " or a decimal comma" if sep != "," else ""
        raise ReportError(f"{where}: column amount: {raw.strip()!r} is not a decimal number; write it with a point"
                          f"{comma} and no thousands separator nor exponent, e.g. 1234.50")
    return Decimal(text)


def _day(text: str, where: str, column: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{where}: column {column}: {text!r} is not a date; write YYYY-MM-DD") from None


def load_csv(path: Path) -> list[StatementLine]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ReportError(f"{path}:{line}: byte {exc.start}: not UTF-8 text ({data[exc.start:exc.start + 1]!r}); "
                          f"save the statement as UTF-8 CSV") from None
    sep = separator(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text), delimiter=sep, strict=True)   # an unclosed quote is an error
    rows: list[tuple[int, list[str]]] = []        # (the line a row starts on, its fields)
    try:
        after = 0
        for row in reader:
            rows.append((after + 1, row))         # a quoted field may hold line breaks: a row spans lines
            after = reader.line_num
    except csv.Error as exc:
        raise ReportError(f"{path}:{after + 1}: not readable as CSV ({exc}); check the quotes on this line") from None
    if not rows:
        raise ReportError(f"{path}:1: empty file; expected a header row with {', '.join(REQUIRED)}, reference")
    header = [h.strip().casefold() for h in rows[0][1]]
    where_col: dict[str, int] = {}
    for key, names in ALIASES.items():
        for n in names:
            if n in header:
                where_col[key] = header.index(n)
                break
    missing = [k for k in (*REQUIRED, "reference") if k not in where_col]
    if [k for k in missing if k != "reference"] or ("reference" in missing and "text" not in where_col):
        raise ReportError(f"{path}:1: the header has no {', '.join(missing)} column (it has: {', '.join(rows[0][1])}); "
                          f"expected reference, amount, currency, date (and optionally value_date, text, dc)")
    out: list[StatementLine] = []
    for lineno, row in rows[1:]:
        if not any(c.strip() for c in row):
            continue
        where = f"{path}:{lineno}"

        def get(key: str) -> str:
            i = where_col.get(key)
            if i is not None and i >= len(row) and key in REQUIRED:
                raise ReportError(f"{where}: column {key}: missing; the line has {len(row)} field(s), the header "
                                  f"{len(header)} (separated by {sep!r}): is a separator missing, or a quote?")
            return row[i] if i is not None and i < len(row) else ""

        amount = amount_of(get("amount"), sep, where)
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
