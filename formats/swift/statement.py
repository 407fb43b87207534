"""MT940 / MT942 statements: a lenient reader for banks' .sta exports and a flat view.

``parse_statements(text)`` reads files that hold only block 4 content (no FIN
envelope), statements separated by a line "-" and sometimes preceded by bank
header lines; it tolerates trailing spaces and non-X characters (banks' exports
are not FIN traffic) but field formats (61, balances, amounts, dates) are strict.
``:NS:`` (non-SWIFT) fields are kept as text in the field list; ``statement_view`` also
splits them into their numbered sub-fields (``parse_ns``: lines "NNtext").

``statement_view(fields)`` -> {"statement": {...}, "transactions": [...]} with
signed ``Decimal`` amounts (debits negative), ``date`` objects and each :61:
paired with the :86: that follows it.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from formats.errors import FormatError
from formats.swift.fields import parse_field

_TAG = re.compile(r"^:(\d{2}[A-Z]?|NS):")


def parse_statements(text: str) -> list[list[dict[str, Any]]]:
    statements: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    pending: tuple[str, list[str], int] | None = None
    offset = 0

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            tag, lines, off = pending
            while len(lines) > 1 and not lines[-1].strip():
                lines.pop()
            value = "\n".join(lines)
            current.append({"tag": tag, "value": parse_field(tag, value, off, lenient=True)})
            pending = None

    for raw in text.splitlines(keepends=True):
        line = raw.rstrip("\r\n").rstrip(" ")
        m = _TAG.match(line)
        if m:
            flush()
            body = line[m.end():]
            if m[1] == "86":
                body = body.lstrip(" ")
            pending = (m[1], [body], offset + m.end())
        elif line.strip(" \x01\x03\x1a") in ("-", "-}"):
            flush()
            if current:
                statements.append(current)
            current = []
        elif pending is not None:
            pending[1].append(line)
        # else: bank header lines before the first tag of a statement
        offset += len(raw)
    flush()
    if current:
        statements.append(current)
    if not statements:
        raise FormatError("no MT940/MT942 fields found (expected lines like :20:...)", offset=0)
    return statements


def _signed(mark: str, amount: Decimal) -> Decimal:
    return -amount if mark in ("D", "RC") else amount


def _balance(v: dict[str, Any]) -> dict[str, Any]:
    return {"status": v["mark"], "date": v["date"],
            "amount": {"amount": _signed(v["mark"], v["amount"]), "currency": v["currency"]}}


_BALANCES = {"60F": "final_opening_balance", "60M": "intermediate_opening_balance",
             "62F": "final_closing_balance", "62M": "intermediate_closing_balance", "64": "available_balance"}


def _entry_date(value_date: dt.date, mmdd: str | None) -> dt.date | None:
    if not mmdd:
        return None
    month, day = int(mmdd[:2]), int(mmdd[2:])
    year = value_date.year
    # booking around the year end: a December entry for a January value date (and vice versa)
    if value_date.month == 1 and month == 12:
        year -= 1
    elif value_date.month == 12 and month == 1:
        year += 1
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise FormatError(f"entry date {mmdd} is not a calendar date in {year}", field="61") from None


def _datetime_13d(text: str) -> dt.datetime:
    m = re.fullmatch(r"(\d{6})(\d{4})([+-])(\d{2})(\d{2})", text)
    if not m:
        raise FormatError(f"{text!r} is not YYMMDDhhmm+hhmm", field="13D")
    offset = dt.timedelta(hours=int(m[4]), minutes=int(m[5])) * (1 if m[3] == "+" else -1)
    d = m[1]
    return dt.datetime(2000 + int(d[:2]), int(d[2:4]), int(d[4:6]), int(m[2][:2]), int(m[2][2:]),
                       tzinfo=dt.timezone(offset))


def parse_ns(text: str) -> dict[str, str]:
    """A ``:NS:`` field's numbered lines ("22JOHN DOE") -> {"22": "JOHN DOE"}; a line that does
    not start with two digits continues the previous one."""
    out: dict[str, str] = {}
    last = None
    for line in text.strip("\r\n").split("\n"):
        line = line.rstrip("\r")
        if len(line) >= 2 and line[:2].isdigit():
            last = line[:2]
            out[last] = line[2:] if last not in out else out[last] + "\n" + line[2:]
        elif last is not None:
            out[last] += "\n" + line
        elif line:
            raise FormatError(f":NS: line {line!r} does not start with a 2-digit sub-field number", field="NS")
    return out


def _ns_view(text: str) -> dict[str, Any]:
    subs = parse_ns(text)
    view: dict[str, Any] = {"non_swift": text.strip("\r\n"), "non_swift_text": "\n".join(subs.values())}
    view.update({f"non_swift_{k}": v for k, v in subs.items()})
    return view


def statement_view(fields: list[dict[str, Any]]) -> dict[str, Any]:
    st: dict[str, Any] = {}
    txns: list[dict[str, Any]] = []
    currency = None
    for item in fields:
        tag, v = item["tag"], item["value"]
        if tag == "20":
            st["transaction_reference"] = v
        elif tag == "21":
            st["related_reference"] = v
        elif tag in ("25", "25P"):
            st["account_identification"] = v
        elif tag in ("28", "28C"):
            num, _, seq = v.partition("/")
            st["statement_number"] = num
            if seq:
                st["sequence_number"] = seq
        elif tag in _BALANCES:
            st[_BALANCES[tag]] = _balance(v)
            currency = v["currency"] if tag.startswith("60") else currency or v["currency"]
        elif tag == "65":
            st.setdefault("forward_available_balance", []).append(_balance(v))
        elif tag == "34F":
            limit = {"amount": v["amount"], "currency": v["currency"]}
            currency = currency or v["currency"]
            if v["mark"] in (None, "D"):
                st["d_floor_limit"] = limit
            if v["mark"] in (None, "C"):
                st["c_floor_limit"] = limit
        elif tag == "13D":
            st["date"] = _datetime_13d(v)
        elif tag in ("90D", "90C"):
            key = "sum_debit_entries" if tag == "90D" else "sum_credit_entries"
            st[key] = {"number": v["count"], "amount": v["amount"], "currency": v["currency"]}
        elif tag == "61":
            txns.append({
                "status": v["mark"], "funds_code": v["funds_code"], "id": v["type"],
                "amount": {"amount": _signed(v["mark"], v["amount"]), "currency": currency},
                "currency": currency, "date": v["value_date"],
                "entry_date": _entry_date(v["value_date"], v["entry_date"]),
                "customer_reference": v["customer_reference"], "bank_reference": v["bank_reference"],
                "extra_details": v["supplementary"] or "", "transaction_details": None})
        elif tag == "86" and txns and txns[-1]["transaction_details"] is None:
            txns[-1]["transaction_details"] = v
        elif tag == "86":
            st["information"] = v
        elif tag == "NS":
            (txns[-1] if txns else st).update(_ns_view(v))
    return {"statement": st, "transactions": txns}
