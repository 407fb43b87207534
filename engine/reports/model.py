"""What a report is, independent of how it is written out.

A ``Report`` holds one or more ``Table`` s (the first is the main one), a few
key figures for the reader's eye, and bar charts.  The exporters
(``engine/reports/export.py``) turn it into CSV, Parquet, XLSX or a
self-contained HTML page; ``bsp report`` and ``bsp reconcile`` both build one.

Column kinds fix how a value is typed in every output:

=========== ============================ ===================================
kind        Python value                 Parquet / XLSX
=========== ============================ ===================================
text        str                          VARCHAR / inline string
int         int                          BIGINT / number
money       decimal.Decimal (exact)      DECIMAL(38,4) / number (exact text)
rate        decimal.Decimal, 0..1        DECIMAL(9,6) / number, percent style
ms          float (a duration)           DOUBLE / number
date        datetime.date                DATE / date serial, date style
timestamp   aware datetime (UTC, --tz)   TIMESTAMPTZ / ISO 8601 text, offset
=========== ============================ ===================================

Money is never a float: amounts come out of DuckDB as ``Decimal`` and stay so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Sequence

KINDS = ("text", "int", "money", "rate", "ms", "date", "timestamp")


class ReportError(Exception):
    """A report cannot be made; the message says what was expected and how to fix it."""


@dataclass(frozen=True)
class Column:
    name: str                       # machine name: CSV header, Parquet column
    kind: str = "text"
    title: str | None = None        # human header (HTML, XLSX, terminal); defaults to name
    currency: str | None = None     # for money: the column holding the row's currency

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def label(self) -> str:
        return self.title or self.name


@dataclass
class Table:
    name: str                       # file / sheet suffix: "summary", "totals"
    title: str
    columns: Sequence[Column]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def index(self, name: str) -> int:
        for i, c in enumerate(self.columns):
            if c.name == name:
                return i
        raise KeyError(f"table {self.name} has no column {name!r}")

    def dicts(self) -> list[dict[str, Any]]:
        names = [c.name for c in self.columns]
        return [dict(zip(names, row)) for row in self.rows]


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal | int | float    # geometry only; ``text`` is what is shown
    text: str


@dataclass
class Chart:
    """A horizontal bar chart; ``groups`` of bars share one scale (e.g. p50/p95/p99 per line)."""
    title: str
    bars: list[Bar]
    unit: str = ""
    note: str = ""


@dataclass
class Report:
    name: str                                   # "daily-summary", "reconciliation" ...
    title: str
    params: dict[str, str]                      # shown in the header: ledger, period, party ...
    tables: list[Table]
    figures: list[tuple[str, str]] = field(default_factory=list)   # (label, exact text)
    charts: list[Chart] = field(default_factory=list)
    # how many breaks the report found (statements that do not follow on, unmatched or differing lines): `bsp
    # report` exits 1 when there are any, as `bsp reconcile` does; None: a report with no breaks to find (totals)
    breaks: int | None = None

    @property
    def main(self) -> Table:
        return self.tables[0]


UTC_NAMES = ("UTC", "UTC+00:00", "Etc/UTC")


def stamp(value: datetime) -> str:
    """ISO 8601 with its offset: as given when aware (a report with ``--tz`` holds the zone's clock, e.g.
    ``2026-03-02T00:30:00+08:00``), UTC for a naive value (read as the machine's local time, as before)."""
    return value.isoformat() if value.tzinfo is not None else value.astimezone(timezone.utc).isoformat()


def to_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


__all__ = ["Bar", "Chart", "Column", "KINDS", "Report", "ReportError", "Table"]
