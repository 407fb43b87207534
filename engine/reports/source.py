"""Reading the ledger for reports: a read-only DuckDB connection and the period.

Reports only read the ``deals`` table, through SQL, on a connection opened
read-only with the session time zone set to UTC; days are business days of a
zone and cut-off (``engine/reports/businessday.py``; default the UTC day),
selected by UTC bounds computed once.  A
running engine holds its ledger file locked: ``bsp report --live`` reports on
a snapshot the engine takes (engine/commands/live_snapshot.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb

from engine.ledger_store import LedgerError, connect, refuse_newer
from engine.reports.businessday import UTC_DAY, BusinessDay
from engine.reports.model import ReportError


@dataclass(frozen=True)
class Period:
    """Whole business days, ``first`` and ``last`` both included, on ``clock`` (a zone and a cut-off;
    default the UTC calendar day)."""
    first: date
    last: date
    clock: BusinessDay = UTC_DAY

    @property
    def start(self) -> datetime:
        """The UTC instant the first day starts (included)."""
        return self.clock.start(self.first)

    @property
    def end(self) -> datetime:
        """The UTC instant the last day ends (excluded); the latest instant there is when open-ended."""
        return self.clock.end(self.last)

    @property
    def args(self) -> list[datetime]:
        """``[start, end]``, for SQL's ``received_at >= ? AND received_at < ?``: the bounds computed once,
        compared with the column as it is stored, so DuckDB's zone maps skip the rest of the ledger."""
        return [self.start, self.end]

    def params(self) -> dict[str, str]:
        """What a report's header says of its days: the period and which business day it counts in."""
        return {"period": str(self), "business day": self.clock.describe()}

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first} .. {self.last}"


RELATIVE_DAYS = {"today": 0, "yesterday": 1}


def parse_day(text: str, option: str, *, today: date | None = None, clock: BusinessDay = UTC_DAY) -> date:
    """``2026-03-01``, or ``today`` / ``yesterday``: business days of ``clock`` (``today``: the business
    day now, unless given)."""
    word = text.strip().lower()
    if word in RELATIVE_DAYS:
        return (today or clock.day_of(datetime.now(timezone.utc))) - timedelta(days=RELATIVE_DAYS[word])
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{option} {text!r}: expected a date as YYYY-MM-DD (e.g. 2026-03-01), today or "
                          f"yesterday (business days of {clock.describe()}; see --tz, --cutoff)") from None


def period(first: str | date, last: str | date | None = None, *, today: date | None = None,
           clock: BusinessDay = UTC_DAY) -> Period:
    today = today or clock.day_of(datetime.now(timezone.utc))      # one "today" for --from and --to
    a = first if isinstance(first, date) else parse_day(first, "--from", today=today, clock=clock)
    b = a if last is None else (last if isinstance(last, date) else parse_day(last, "--to", today=today, clock=clock))
    if b < a:
        raise ReportError(f"--to {b} is before --from {a}: give the first day with --from and the last "
                          f"(included) with --to")
    return Period(a, b, clock)


def open_read_only(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a ledger file that has a ``deals`` table; UTC session."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no ledger file here; give the engine's ledger with --ledger FILE "
                          f"(the deployment file's `ledger:`)")
    try:
        con = connect(path, read_only=True)
    except LedgerError as exc:
        raise ReportError(str(exc)) from None
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'deals'").fetchone()
    except duckdb.Error as exc:
        con.close()
        raise ReportError(f"{path}: cannot read it as a DuckDB ledger: {exc}") from None
    if not found or not found[0]:
        con.close()
        raise ReportError(f"{path}: a DuckDB file without a `deals` table: is it a bsp ledger?")
    try:
        refuse_newer(con, path)        # a ledger a newer bsp wrote: said so, not a column error
    except LedgerError as exc:
        con.close()
        raise ReportError(str(exc)) from None
    return con


def deals_around(path: str | Path, when: Period) -> tuple[int, date | None, date | None]:
    """How many deals ``when`` holds, and the business days (on its clock) of the ledger's first and last
    deal: what to say when a report comes out empty because the period holds nothing."""
    con = open_read_only(path)
    try:
        n, = con.execute("SELECT count(*) FROM deals WHERE received_at >= ? AND received_at < ?",
                         when.args).fetchone()
        first, last = con.execute("SELECT min(received_at), max(received_at) FROM deals").fetchone()
    finally:
        con.close()
    return (int(n), when.clock.day_of(first) if first is not None else None,
            when.clock.day_of(last) if last is not None else None)


def empty_period_note(path: str | Path, when: Period, shown: str) -> str | None:
    """``note: ...`` when ``when`` holds no deal at all in the ledger, naming the days it does hold; None
    when it holds some (an empty rejections report is then an answer, not a wrong date)."""
    n, first, last = deals_around(path, when)
    if n:
        return None
    if first is None:
        return f"note: {shown} holds no deals yet: the report is empty"
    held = f"on {first}" if first == last else f"from {first} to {last}"
    return (f"note: no deals in {when} ({when.clock.describe()}) in {shown}: the report is empty; its deals "
            f"are {held}: give those days with --from/--to (or --from today)")


__all__ = ["BusinessDay", "Period", "UTC_DAY", "deals_around", "empty_period_note", "open_read_only",
           "parse_day", "period"]
