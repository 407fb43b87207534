"""A report as one JSON document, for programs (a scheduler, a data pipeline, ``jq``).

::

    {"report": "daily-summary", "title": "...", "params": {"ledger": "...", ...},
     "figures": [{"label": "deals", "value": "12,600"}, ...],
     "tables": [{"name": "summary", "title": "...",
                 "columns": [{"name": "amount_committed", "kind": "money", "currency": "currency"}, ...],
                 "rows": [{"day": "2026-03-01", "amount_committed": "1234.50", ...}, ...]}, ...]}

Every table is in the one document (unlike CSV, which writes one file per table).
Values by column kind: money and rates are JSON *strings* holding the exact
decimal (``"1234.50"``, ``"0.975"``: a JSON number is read as a binary float by
most programs, which would change an amount); counts are integers; durations in
milliseconds are numbers; days ``"YYYY-MM-DD"``; times ISO 8601 in UTC; a
cell with no value (blank in the other formats) is ``null``.  Text is written as it is (escaped as JSON, non-ASCII kept).
Rows are written one by one, so a 200,000-row statement is not held twice.
"""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from engine.reports.model import stamp, Column, Report, Table


def _value(col: Column, value: Any) -> Any:
    if value is None:
        return None
    if col.kind == "ms":                         # a duration, never money: a number
        return round(float(value), 3)
    if col.kind == "int" and not isinstance(value, Decimal):
        return int(value)
    if isinstance(value, Decimal):               # money, rates: the exact digits as text
        return f"{value:f}"
    if isinstance(value, datetime):
        return stamp(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value) if col.kind == "text" else value


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _column(col: Column) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": col.name, "kind": col.kind, "title": col.label}
    if col.currency:
        spec["currency"] = col.currency
    return spec


def _table(table: Table, out: TextIO) -> None:
    out.write('{"name": %s, "title": %s, "columns": %s, "rows": [' % (
        _dump(table.name), _dump(table.title), _dump([_column(c) for c in table.columns])))
    names = [c.name for c in table.columns]
    for i, row in enumerate(table.rows):
        cells = {n: _value(c, v) for n, c, v in zip(names, table.columns, row)}
        out.write(("\n  " if i == 0 else ",\n  ") + _dump(cells))
    out.write("\n]}" if table.rows else "]}")


def write_json_doc(report: Report, out: TextIO) -> None:
    """Write ``report`` to the text stream ``out`` as one JSON document (ending in a line feed)."""
    out.write('{"report": %s, "title": %s, "params": %s,\n"figures": %s,\n"tables": [' % (
        _dump(report.name), _dump(report.title), _dump(report.params),
        _dump([{"label": label, "value": text} for label, text in report.figures])))
    for i, table in enumerate(report.tables):
        out.write("\n" if i == 0 else ",\n")
        _table(table, out)
    out.write("\n]}\n")


def write_json(report: Report, out: Path) -> list[Path]:
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        write_json_doc(report, f)
    return [out]


__all__ = ["write_json", "write_json_doc"]
