"""Business-day calendars: holidays in a ``table``, value dates and cut-off times.

A calendar is a table declared in the route file whose CSV has a ``date`` column (``YYYY-MM-DD``, one
holiday a row; ``key date`` keeps a date from being listed twice) and, optionally, a ``kind`` column:
``holiday`` (or blank) closes that day, ``working`` opens a Saturday or Sunday (China's adjusted
weekends).  Saturday and Sunday are closed otherwise.

An effective-dated calendar (``table target2 = csv "target2.csv" key date effective from valid_from``: each
day's rows as they were published, a holiday added or a weekend day opened from the date a row applies from)
is read day by day: a day is a holiday (or working) by its row in force *on that day* (``T[day at day]``), not by
its newest one, so a closing announced from 1 March counts for the days from 1 March on and a row that applies
only from after its own day never counts (W033 at ``bsp check``).  Its key must be its ``date`` column (E157):
the rows of one day are then the versions of one key.

A calendar *covers* the years it lists at least one row for.  A date outside them is never guessed to
be a business day: the function fails the exchange (``FunctionError``, naming the calendar, its file
and the year) so that a holiday file left without next year's dates is noticed on the first deal that
needs one, not on the day a payment settles on a bank holiday.

Registered into ``dsl.functions`` at the bottom of this module (``functions.py`` imports it), kept
apart from the rest of the library to keep merges easy.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Callable

from dsl.calendar_window import WARN_DAYS
from dsl.functions import FUNCTIONS, SIGNATURES, FunctionError, Sig, _date, _int, _tname, _tz, zone_problem

DATE_COLUMN = "date"
KIND_COLUMN = "kind"
KINDS = {"": False, "holiday": False, "working": True}     # kind -> is a business day
WEEKEND = frozenset({5, 6})                                  # Saturday, Sunday (date.weekday())
_CUTOFF = re.compile(r"(\d\d):(\d\d)(?::(\d\d))?")
_ISO = re.compile(r"\d{4}-\d\d-\d\d")


@dataclass(frozen=True)
class Calendar:
    name: str
    file: str                      # the CSV's file name, for messages
    holidays: frozenset[date]
    working: frozenset[date]       # weekend days that are business days
    years: frozenset[int]

    def covers(self, day: date, fn: str) -> None:
        if day.year not in self.years:
            raise FunctionError(
                f"{fn}: calendar {self.name} ({self.file}) has no dates for {day.year} (asked about "
                f"{day.isoformat()}); it covers {years_text(self.years)}: add {day.year}'s holidays to "
                f"{self.file} (a date outside the years a calendar lists is never taken as a business day)")

    def open(self, day: date, fn: str) -> bool:
        self.covers(day, fn)
        if day in self.working:
            return True
        return day.weekday() not in WEEKEND and day not in self.holidays


def years_text(years: frozenset[int]) -> str:
    """2026, 2027, 2029 -> '2026-2027, 2029'."""
    out: list[str] = []
    for y in sorted(years):
        if out and out[-1].split("-")[-1] == str(y - 1):
            out[-1] = out[-1].split("-")[0] + f"-{y}"
        else:
            out.append(str(y))
    return ", ".join(out) or "no year"


def row_problem(row: dict[str, str]) -> str | None:
    """What is wrong with one calendar row (None when it is fine)."""
    text = (row.get(DATE_COLUMN) or "").strip()
    if not _ISO.fullmatch(text):
        return f"{text!r} in column {DATE_COLUMN} is not a date written YYYY-MM-DD"
    try:
        date.fromisoformat(text)
    except ValueError:
        return f"{text!r} in column {DATE_COLUMN} is not a date of the calendar (no such day)"
    kind = (row.get(KIND_COLUMN) or "").strip().lower()
    if kind not in KINDS:
        return f"{kind!r} in column {KIND_COLUMN} is neither holiday nor working"
    return None


def build(name: str, file: str, rows: list[dict[str, str]]) -> Calendar:
    holidays, working = set(), set()
    for row in rows:
        problem = row_problem(row)
        if problem is not None:
            raise FunctionError(f"calendar {name} ({file}): {problem}")
        day = date.fromisoformat(row[DATE_COLUMN].strip())
        (working if KINDS[(row.get(KIND_COLUMN) or "").strip().lower()] else holidays).add(day)
    return Calendar(name, file, frozenset(holidays), frozenset(working),
                    frozenset(d.year for d in holidays | working))


def build_dated(table: Any, file: str, fn: str) -> Calendar:
    """The calendar of an effective-dated table: each day by its row in force on that day (none: an ordinary
    day, Saturday and Sunday closed).  The years covered are those its file lists a day of."""
    if table.key != DATE_COLUMN:
        raise FunctionError(f"{fn}: calendar {table.name} ({file}) is effective-dated ({table.effective}) but keyed "
                            f"by {table.key}, not by its {DATE_COLUMN} column: declare it `key {DATE_COLUMN} "
                            f"effective from {table.effective}` so that a day's rows are the versions of one key")
    holidays, working, years = set(), set(), set()
    for key, (_, rows) in table.dated.items():
        for row in rows:
            problem = row_problem(row)
            if problem is not None:
                raise FunctionError(f"calendar {table.name} ({file}): {problem}")
        day = date.fromisoformat(key.strip())
        years.add(day.year)
        row = table._on(key, day)
        if row is not None:
            (working if KINDS[(row.get(KIND_COLUMN) or "").strip().lower()] else holidays).add(day)
    return Calendar(table.name, file, frozenset(holidays), frozenset(working), frozenset(years))


def late_rows(path: str, effective: str) -> list[tuple[int, str, str]]:
    """The rows of an effective-dated calendar file that apply only from after their own day, so never count:
    (line, the day, the date it applies from).  Rows that are not dates are E068's / E150's to tell."""
    out: list[tuple[int, str, str]] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if DATE_COLUMN not in header or effective not in header:
                return []
            di, ei = header.index(DATE_COLUMN), header.index(effective)
            for row in reader:
                if len(row) != len(header):
                    continue
                day, since = row[di].strip(), row[ei].strip()
                if _ISO.fullmatch(day) and _ISO.fullmatch(since) and since > day:
                    out.append((reader.line_num, day, since))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return out


_CACHE: dict[int, tuple[Any, Calendar]] = {}


def calendar_of(table: Any, fn: str) -> Calendar:
    """The calendar a declared table holds (read once per table object)."""
    if not (hasattr(table, "rows") and hasattr(table, "columns")):
        raise FunctionError(f"{fn}: the calendar must be a table declared in the route file, got {_tname(table)}")
    hit = _CACHE.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    file = Path(table.path).name if getattr(table, "path", None) else table.name
    if DATE_COLUMN not in table.columns:
        raise FunctionError(f"{fn}: table {table.name} ({file}) has no column {DATE_COLUMN!r}: a calendar lists "
                            f"its holidays one a row, YYYY-MM-DD; columns: {', '.join(table.columns)}")
    if getattr(table, "effective", None) is not None:
        cal = build_dated(table, file, fn)
    else:
        cal = build(table.name, file, list(table.rows.values()))
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[id(table)] = (table, cal)
    return cal


def _day(v: Any, fn: str) -> date:
    d = _date(v, fn)
    return d.date() if isinstance(d, datetime) else d


def _roll(day: date, cal: Calendar, fn: str) -> date:
    """``day`` when it is a business day, else the first business day after it."""
    while not cal.open(day, fn):
        day += timedelta(days=1)
    return day


def f_is_business_day(d: Any, calendar: Any) -> bool | None:
    if d is None:
        return None
    return calendar_of(calendar, "is_business_day").open(_day(d, "is_business_day"), "is_business_day")


def f_next_business_day(d: Any, calendar: Any) -> date | None:
    if d is None:
        return None
    cal = calendar_of(calendar, "next_business_day")
    return _roll(_day(d, "next_business_day") + timedelta(days=1), cal, "next_business_day")


def f_add_business_days(d: Any, n: Any, calendar: Any) -> date | None:
    if d is None:
        return None
    fn = "add_business_days"
    cal = calendar_of(calendar, fn)
    day, count = _day(d, fn), _int(n, fn)
    if count == 0:
        return _roll(day, cal, fn)
    step = timedelta(days=1 if count > 0 else -1)
    left = abs(count)
    while left:                    # ends: every day looked at must be in a covered year
        day += step
        if cal.open(day, fn):
            left -= 1
    return day


def f_calendar_covers(d: Any, calendar: Any) -> bool | None:
    """Whether the calendar lists the year of ``d`` (the other calendar functions fail the deal on a date it does
    not): a route refuses such a date as a business rejection, naming the calendar and its years."""
    if d is None:
        return None
    return _day(d, "calendar_covers").year in calendar_of(calendar, "calendar_covers").years


def f_calendar_years(calendar: Any) -> str:
    """The years the calendar lists, as text: "2026-2028" (for a rejection's text)."""
    return years_text(calendar_of(calendar, "calendar_years").years)


def cutoff_problem(text: Any) -> str | None:
    """Why ``text`` is not a cut-off time "HH:MM" (or "HH:MM:SS", 24-hour clock); None when it is one."""
    m = _CUTOFF.fullmatch(text) if isinstance(text, str) else None
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        return (f"{text!r} is not a cut-off time: write it \"HH:MM\" on the 24-hour clock, two digits each, "
                f"e.g. \"15:30\" or \"09:00\"")
    return None


def _cutoff(text: Any, fn: str) -> time:
    problem = cutoff_problem(text)
    if problem is not None:
        raise FunctionError(f"{fn}: {problem}")
    h, m, s = _CUTOFF.fullmatch(text).groups()
    return time(int(h), int(m), int(s or 0))


def f_value_date(ts: Any, cutoff: Any, calendar: Any, tz: Any = None) -> date | None:
    """The business day a payment made at ``ts`` is for: the day itself when it is a business day and
    ``ts`` is before the cut-off there, else the next business day.  The clock is ``tz``'s (an IANA
    name); without it the engine's local zone (its TZ environment variable, as ``today()``).  A
    timestamp with a zone (``now()``) is converted to it; one without (read from a message) is taken
    as already written in it."""
    fn = "value_date"
    if ts is None:
        return None
    at = _date(ts, fn)
    if not isinstance(at, datetime):
        raise FunctionError(f"{fn}: expected a timestamp (a date and a time of day), got the date "
                            f"{at.isoformat()}: a cut-off needs the time; now(\"Europe/Berlin\") is the current one")
    limit = _cutoff(cutoff, fn)
    cal = calendar_of(calendar, fn)
    if at.tzinfo is not None:
        at = at.astimezone(_tz(tz, fn)) if tz is not None else at.astimezone()
    elif tz is not None:
        _tz(tz, fn)                    # a bad name fails even for a timestamp that needs no conversion
    day = at.date()
    if at.time().replace(tzinfo=None) < limit:
        return _roll(day, cal, fn)
    return _roll(day + timedelta(days=1), cal, fn)


# ------------------------------------------------------------------ bsp check

# WARN_DAYS (dsl/calendar_window.py): W020 (bsp check) and the engine warn so many days before a calendar runs out


def runs_out(years: frozenset[int], today: date) -> date:
    """The first day from ``today`` on in a year ``years`` does not hold (``today`` itself when this year is not
    among them): the day from which a calendar listing ``years`` fails every deal that asks about a date."""
    year = today.year
    if year not in years:
        return today
    while year in years:
        year += 1
    return date(year, 1, 1)


def file_years(path: str) -> frozenset[int] | None:
    """The years a calendar CSV lists a date for; None when it cannot be read or a row is not a date
    (E068 and the table's loader say what is wrong)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return build("", path, list(csv.DictReader(fh))).years
    except (OSError, UnicodeDecodeError, csv.Error, FunctionError, KeyError, AttributeError):
        return None


def coverage_warning(name: str, path: str, years: frozenset[int], today: date,
                     warn_days: int) -> tuple[str, str] | None:
    """W020's (message, help) for calendar table ``name`` when it runs out within ``warn_days`` of ``today``
    (or has); None otherwise."""
    end = runs_out(years, today)
    left = (end - today).days
    if left > warn_days:
        return None
    file, year = Path(path).name, end.year
    head = f"calendar `{name}` ({file}) lists dates for {years_text(years)}"
    if left <= 0:
        said = (f"{head} and none for {year} (today is {today.isoformat()}): every deal that asks about a {year} "
                f"date fails now (96, naming the calendar, its file and the year)")
    else:
        said = (f"{head} and runs out on {end.isoformat()}, in {left} day{'s' if left != 1 else ''} (today is "
                f"{today.isoformat()}): from then every deal that asks about a {year} date fails (96, naming the "
                f"calendar, its file and the year), and one reckoning a value date ahead into {year} a few days "
                f"before")
    return said, (f"add {year}'s closing days to {file} (one a row, YYYY-MM-DD) as the exchange or central bank "
                  f"publishes them, citing the source in the table's declaration, then `bsp reload`; "
                  f"`bsp check --calendar-warn-days N` (or the deployment file's calendars.warn_days) sets how early "
                  f"this warns ({WARN_DAYS} days unless told)")

CALENDAR, CUTOFF, TIMESTAMP = "calendar", "cutoff", "timestamp"     # Sig types of this module


def file_problems(path: str) -> tuple[list[str] | None, list[tuple[int, str]]]:
    """A calendar file's header and its rows' problems as (line, text); header None when unreadable."""
    problems: list[tuple[int, str]] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if DATE_COLUMN not in header:
                return header, []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                problem = row_problem(dict(zip(header, row)))
                if problem is not None:
                    problems.append((reader.line_num, problem))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None, []
    return header, problems


def check_calendar_arg(fn: str, a: Any, is_table: Callable[[str], bool], tables: list[str],
                       table_path: Callable[[str], str | None], report: Callable[..., None]) -> str | None:
    """``bsp check`` of a calendar argument (a ``dsl.ast`` node): E067 when it is not a declared table,
    E068 when the table has no date column or a row that is not a date.  The table's name when it is one."""
    from dsl.diagnostics import did_you_mean
    name = getattr(a, "name", None) if type(a).__name__ == "Name" else None
    if name is None or not is_table(name):
        text = getattr(a, "value", None) if type(a).__name__ == "Lit" else None
        what = f"`{name}`" if name else f'the string "{text}"' if isinstance(text, str) else "this argument"
        if isinstance(text, str) and text in tables:
            hint = f"write {text} without quotes: the calendar is the table itself"
        else:
            hint = (did_you_mean(name, tables) if name else None) or (
                "declare the holidays as a table, e.g. `table target2 = csv \"target2.csv\" key date`, "
                "and pass its name (no quotes)")
        report("E067", f"{fn}(): the calendar, {what}, is not a table declared in the route file", a.pos, hint)
        return None
    path = table_path(name)
    if path is None:
        return name
    header, problems = file_problems(path)
    if header is None:
        return name
    if DATE_COLUMN not in header:
        report("E068", f"{fn}(): table `{name}` has no column `{DATE_COLUMN}` ({Path(path).name}: "
               f"{', '.join(header)}): it cannot be a calendar", a.pos,
               "a calendar's CSV lists one holiday a row in a column named date, written YYYY-MM-DD "
               "(and optionally kind: holiday or working)")
    elif problems:
        line, text = problems[0]
        more = f" (and {len(problems) - 1} more row(s))" if len(problems) > 1 else ""
        report("E068", f"{fn}(): calendar `{name}`: {Path(path).name}:{line}: {text}{more}", a.pos,
               "fix the row in the calendar's CSV: one holiday a row, YYYY-MM-DD")
    return name


def check_dated(fn: str, a: Any, decl: Any, seen: set[str], report: Callable[..., None],
                warn: Callable[..., None]) -> None:
    """``bsp check`` of an effective-dated calendar (``decl``: its ``dsl.ir.TableDecl``): E157 at the argument
    when it is not keyed by its date column; W033 (once per table, at the file's line) for a row that applies
    only from after its own day, so never counts."""
    eff = getattr(decl, "effective", None)
    if eff is None:
        return
    if decl.key != DATE_COLUMN:
        report("E157", f"{fn}(): calendar `{decl.name}` is effective-dated (effective from {eff}) but keyed by "
               f"`{decl.key}`: a day's status is its own row in force on that day, which needs the rows of one "
               f"day to be the versions of one key", a.pos,
               f"declare it `table {decl.name} = csv \"{Path(decl.path).name}\" key {DATE_COLUMN} effective from "
               f"{eff}`")
        return
    if decl.name in seen:
        return
    seen.add(decl.name)
    from dsl import ir
    late = late_rows(decl.path, eff)
    if late:
        (line, day, since), more = late[0], len(late) - 1
        warn("W033", f"calendar `{decl.name}`: the row for {day} applies from {since} ({eff}), after the day itself: "
             f"it never counts (a day is read by its row in force on that day)"
             + (f"; and {more} more such row(s)" if more > 0 else ""), ir.Pos(decl.path, line, 1),
             f"the date it applies from is the day the closing was published or decided, on or before the day; "
             f"were the columns {DATE_COLUMN} and {eff} swapped?")


def check_cutoff_literal(fn: str, a: Any, report: Callable[..., None]) -> None:
    problem = cutoff_problem(a.value)
    if problem is not None:
        report("E069", f"{fn}(): {problem}", a.pos,
               "the cut-off is the time of day after which a payment is for the next business day")


RESULTS = {"is_business_day": "bool", "next_business_day": "date", "add_business_days": "date",
           "value_date": "date", "calendar_covers": "bool", "calendar_years": "string"}

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "is_business_day": f_is_business_day, "next_business_day": f_next_business_day,
    "add_business_days": f_add_business_days, "value_date": f_value_date,
    "calendar_covers": f_calendar_covers, "calendar_years": f_calendar_years,
}

_SIGNATURES: dict[str, Sig] = {
    "is_business_day": Sig(2, 2, ("d", "calendar"), ("date", CALENDAR),
                           "true when d is a business day of the calendar (a table of holidays: not a Saturday, "
                           "Sunday or holiday, or a weekend day it marks working); null d gives null; a year "
                           "the calendar does not list fails the deal"),
    "next_business_day": Sig(2, 2, ("d", "calendar"), ("date", CALENDAR),
                             "the first business day after d (Friday -> Monday, the day before a holiday -> "
                             "the day after it); null d gives null"),
    "add_business_days": Sig(3, 3, ("d", "n", "calendar"), ("date", "int", CALENDAR),
                             "the n-th business day after d (before it when n is negative); n = 0 gives d "
                             "when it is a business day, else the next one (a value date rolled forward)"),
    "value_date": Sig(3, 4, ("ts", "cutoff", "calendar", "tz"), (TIMESTAMP, CUTOFF, CALENDAR, "string"),
                      "the value date of a payment made at timestamp ts: its day when that is a business day "
                      "and ts is before the cut-off (\"HH:MM\"), else the next business day; the clock is "
                      "tz's (an IANA name), without tz the engine's (TZ)",
                      literal=lambda i, v: zone_problem(v) if i == 3 and v is not None else None),
    "calendar_covers": Sig(2, 2, ("d", "calendar"), ("date", CALENDAR),
                           "true when the calendar lists the year of d (the other calendar functions fail the deal "
                           "on a date in a year it does not list); null d gives null: refuse such a date with a "
                           "rejection of the route's own"),
    "calendar_years": Sig(1, 1, ("calendar",), (CALENDAR,),
                          "the years the calendar lists, as text (\"2026-2028\"; \"2026-2027, 2029\" with a gap), "
                          "for a rejection's text"),
}

FUNCTIONS.update(_FUNCTIONS)
SIGNATURES.update(_SIGNATURES)
