"""How values are shown to a person (terminal, HTML, chart labels): exact, never via float."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from engine.ledger_query import display_amount
from engine.reports.model import UTC_NAMES, Column

# C0 controls but tab and line feed, DEL and C1 controls: a terminal acts on them (ESC starts a sequence that
# recolours, moves the cursor or retitles the window; CR overwrites the line), so they are shown as \xNN
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0))}


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters shown as ``\\x1b`` etc., nothing else touched."""
    return text.translate(_CONTROL)


def money(amount: Decimal | None, currency: str | None) -> str:
    """``1234567.5`` EUR -> ``1,234,567.50``: the currency's decimals unless that would drop digits."""
    if amount is None:
        return ""
    shown = display_amount(amount, currency)
    return f"{shown:,f}"


def rate(value: Decimal | None) -> str:
    """A 0..1 ratio as a percentage with two decimals: ``Decimal('0.975')`` -> ``97.50 %``."""
    if value is None:
        return ""
    return f"{(value * 100).quantize(Decimal('0.01'))} %"


def cell(col: Column, value: Any, row: dict[str, Any] | None = None) -> str:
    if value is None:
        return ""
    if col.kind == "money":
        cur = row.get(col.currency) if (row is not None and col.currency) else None
        return money(value, cur)
    if col.kind == "rate":
        return rate(value)
    if col.kind == "ms":
        return f"{value:,.1f}"
    if col.kind == "int":
        return f"{value:,}"
    if col.kind == "timestamp" and isinstance(value, datetime):
        if value.tzinfo is not None and value.tzname() not in UTC_NAMES:
            return value.isoformat(sep=" ", timespec="seconds")      # a zone's clock: its offset shown
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if col.kind == "date" and isinstance(value, date):
        return value.isoformat()
    return str(value)


__all__ = ["cell", "money", "printable", "rate"]
