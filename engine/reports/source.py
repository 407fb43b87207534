"""Reading the ledger for reports: a read-only DuckDB connection and the period.

Reports only read the ``deals`` table, through SQL, on a connection opened
read-only with the session time zone set to UTC (days are UTC days).  A
running engine holds its ledger file locked: ``bsp report --live`` reports on
a snapshot the engine takes (engine/commands/live_snapshot.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import duckdb

from engine.ledger_store import LedgerError, connect, refuse_newer
from engine.reports.model import ReportError


@dataclass(frozen=True)
class Period:
    """Whole UTC days, ``first`` and ``last`` both included."""
    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=timezone.utc)

    @property
    def last_start(self) -> datetime:
        """Midnight (UTC) starting the last day.  SQL ends the period with ``received_at < (? + INTERVAL 1
        DAY)`` on it: the day after 9999-12-31 (``--to 9999-12-31``, open-ended) is no Python datetime."""
        return datetime.combine(self.last, time(0), tzinfo=timezone.utc)

    @property
    def end(self) -> datetime:          # exclusive; the latest datetime there is when the period is open-ended
        if self.last == date.max:
            return datetime.max.replace(tzinfo=timezone.utc)
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=timezone.utc)

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first} .. {self.last}"


RELATIVE_DAYS = {"today": 0, "yesterday": 1}


def parse_day(text: str, option: str, *, today: date | None = None) -> date:
    """``2026-03-01``, or ``today`` / ``yesterday``: UTC days, as every report counts them (``today``:
    the UTC day now, unless given)."""
    word = text.strip().lower()
    if word in RELATIVE_DAYS:
        return (today or datetime.now(timezone.utc).date()) - timedelta(days=RELATIVE_DAYS[word])
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{option} {text!r}: expected a date as YYYY-MM-DD (e.g. 2026-03-01), today or "
                          f"yesterday (UTC days)") from None


def period(first: str | date, last: str | date | None = None, *, today: date | None = None) -> Period:
    today = today or datetime.now(timezone.utc).date()      # one "today" for --from and --to
    a = first if isinstance(first, date) else parse_day(first, "--from", today=today)
    b = a if last is None else (last if isinstance(last, date) else parse_day(last, "--to", today=today))
    if b < a:
        raise ReportError(f"--to {b} is before --from {a}: give the first day with --from and the last "
                          f"(included) with --to")
    return Period(a, b)


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


__all__ = ["Period", "open_read_only", "parse_day", "period"]
