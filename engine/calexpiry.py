"""When the business-day calendars the routes use run out: read once when a configuration is bound.

    spans = program_calendars(program)            # CalendarSpan per calendar table a route uses
    for level, text in notices(spans, today): log.log(level, text)

A table is a calendar when a route passes it as the calendar of ``is_business_day``,
``next_business_day``, ``add_business_days`` or ``value_date`` (the arguments ``dsl.calendars``
declares of type ``calendar``, which ``bsp check`` vets: E067, E068).  A calendar covers the years its
CSV lists a row for (``dsl.calendars.Calendar.years``); a date in any other year fails the deal that
asks about it (96, naming the calendar, its file and the year).  That is the safe choice, kept here:
this module only warns the admin before it happens.

It *runs out* on the first day, from today on, of a year it does not list (a calendar listing 2026
runs out on 2027-01-01; one listing no date for this year has run out).  Within ``WARN_DAYS`` of that
day (the deployment file's ``calendars: {warn_days: N}`` when it gives one: ``LiveEngine.calendar_warn_days``)
the engine logs a warning when the configuration is bound (start, reload) and again every
``REMIND_EVERY`` seconds while it runs; once run out, an error (and ``bsp status`` says degraded).
Deals reckoning a value date ahead (``add_business_days(today(), 2, ...)``) fail a few days before it.

"Today" is ``today()``'s: the engine's clock (``dsl.clock``: the wall clock, or ``bsp run --at``) in
its local zone (TZ).  ``bsp check`` never says any of this unless asked (``--calendars``): its verdict
does not change with the day it runs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Iterable

from dsl.calendar_window import WARN_DAYS   # days before a calendar runs out from which the engine warns (as
                                            # bsp check's W020); a deployment's calendars.warn_days replaces it
REMIND_EVERY = 86400.0       # seconds between two reminders while the engine runs (once a day)

log = logging.getLogger("bsp.calendars")


@dataclass(frozen=True)
class CalendarSpan:
    table: str                  # the table's name in the route files
    path: str                   # its CSV (absolute)
    years: frozenset[int]       # the years it lists a date for
    routes: tuple[str, ...]     # the routes that use it, in declaration order

    def runs_out(self, today: date) -> date:
        """The first day from ``today`` on in a year the calendar does not list (``today`` itself when it
        does not list this year)."""
        from dsl.calendars import runs_out
        return runs_out(self.years, today)

    def days_left(self, today: date) -> int:
        """Days from ``today`` until it runs out (0: it has)."""
        return (self.runs_out(today) - today).days

    def covers_text(self) -> str:
        from dsl.calendars import years_text
        return years_text(self.years)

    def as_dict(self, today: date, warn_days: int = WARN_DAYS) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table, "path": self.path, "covers": self.covers_text(),
                               "last_year": max(self.years) if self.years else None,
                               "runs_out": self.runs_out(today).isoformat(), "days_left": self.days_left(today),
                               "routes": list(self.routes)}
        said = notice(self, today, warn_days)
        if said is not None:
            out["warning"] = said[1]
        return out


def calendar_tables(program: Any) -> dict[str, list[str]]:
    """table name -> the routes passing it as a calendar, both in declaration order."""
    from dsl import ir
    from dsl.calendars import CALENDAR, RESULTS
    from dsl.functions import SIGNATURES
    where = {fn: [i for i, t in enumerate(SIGNATURES[fn].types) if t == CALENDAR] for fn in RESULTS}
    out: dict[str, list[str]] = {}

    def walk(node: Any, route: str) -> None:
        if isinstance(node, ir.Call) and node.func in where:
            for i in where[node.func]:
                arg = node.args[i] if i < len(node.args) else None
                if isinstance(arg, ir.Name) and arg.name in program.tables:
                    routes = out.setdefault(arg.name, [])
                    if route not in routes:
                        routes.append(route)
        if isinstance(node, (list, tuple)):
            for item in node:
                walk(item, route)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item, route)
        elif hasattr(node, "__dataclass_fields__") and not isinstance(node, type):
            for name in node.__dataclass_fields__:
                if name != "pos":
                    walk(getattr(node, name), route)

    for r in program.routes:
        walk(r, r.name)
    return out


def read_years(path: str) -> frozenset[int] | None:
    """The years a calendar CSV lists a date for; None when it cannot be read or a row is not a date
    (the table's loader and ``bsp check`` (E068) say what is wrong)."""
    from dsl.calendars import file_years
    return file_years(path)


def program_calendars(program: Any) -> list[CalendarSpan]:
    """Every calendar table the program's routes use, with the years its file lists."""
    out = []
    for name, routes in calendar_tables(program).items():
        path = program.tables[name].path
        years = read_years(path)
        if years is not None:
            out.append(CalendarSpan(name, path, years, tuple(routes)))
    return out


def engine_today() -> date:
    """``today()`` as the routes read it: the engine's clock (``dsl.clock``) in its local zone."""
    from dsl.clock import now
    return now().astimezone().date()


def _used_by(span: CalendarSpan) -> str:
    n = len(span.routes)
    names = ", ".join(span.routes[:4]) + (f" and {n - 4} more" if n > 4 else "")
    return f"route{'s' if n != 1 else ''} {names}"


def notice(span: CalendarSpan, today: date, warn_days: int = WARN_DAYS) -> tuple[int, str] | None:
    """(log level, line) for a calendar that runs out within ``warn_days`` or has; None otherwise."""
    left = span.days_left(today)
    if left > warn_days:
        return None
    end = span.runs_out(today)
    year = end.year
    head = f"calendar {span.table} ({span.path}, used by {_used_by(span)}) lists dates for {span.covers_text()}"
    fix = (f"add {year}'s closing days to {span.path} (one a row, YYYY-MM-DD, as the exchange or central bank "
           f"publishes them), then run `bsp reload`")
    if left <= 0:
        return logging.ERROR, (f"{head} and none for {year}: every deal that needs a {year} date fails now "
                               f"(response 96, naming the calendar and the year); {fix}")
    return logging.WARNING, (f"{head} and runs out on {end.isoformat()} (in {left} day{'s' if left != 1 else ''}): "
                             f"from then every deal that needs a {year} date fails (response 96), and a deal "
                             f"whose value date is reckoned ahead into {year} fails a few days before; {fix}")


def notices(spans: Iterable[CalendarSpan], today: date, warn_days: int = WARN_DAYS) -> list[tuple[int, str]]:
    return [n for n in (notice(s, today, warn_days) for s in spans) if n is not None]


def log_notices(spans: Iterable[CalendarSpan], today: date | None = None, logger: logging.Logger = log,
                warn_days: int = WARN_DAYS) -> int:
    """Log every notice (today: the engine's); returns how many."""
    lines = notices(spans, engine_today() if today is None else today, warn_days)
    for level, text in lines:
        logger.log(level, "%s", text)
    return len(lines)


def run_out(spans: Iterable[CalendarSpan], today: date) -> list[str]:
    """One line per calendar that has run out (``bsp status``'s reasons: the engine is degraded)."""
    return [n[1] for s in spans if s.days_left(today) <= 0 and (n := notice(s, today)) is not None]


def rehearsal_day(spans: Iterable[CalendarSpan], today: date, ahead: int = 21) -> date | None:
    """None when every calendar covers at least ``ahead`` days from ``today``; else the latest day before
    it from which they all do (None when there is none: no year all of them list): the day ``bsp demo``
    runs on, so that its simulated orders are dated on days the shipped calendars list, however long ago
    they ran out (it was looked for up to 1100 days back: from 2029-12-15 the demo, finding none, ran on
    the wall clock and its fund orders and remittances failed 96)."""
    from datetime import timedelta
    spans = list(spans)
    if all(s.days_left(today) >= ahead for s in spans):
        return None
    listed = frozenset.intersection(*(s.years for s in spans))
    for year in sorted((y for y in listed if y <= today.year), reverse=True):
        # within a year all list, a day is fine up to ``ahead`` days before the first of them runs out
        last = min(s.runs_out(date(year, 1, 1)) for s in spans) - timedelta(days=ahead)
        day = min(today, last)
        if day.year == year:
            return day
    return None


async def remind(spans: Callable[[], Iterable[CalendarSpan]], every: Callable[[], float],
                 warn_days: Callable[[], int] = lambda: WARN_DAYS) -> None:
    """Every ``every()`` seconds, the notices of the calendars ``spans()`` gives (the running configuration's),
    those within ``warn_days()`` days of running out."""
    import trio
    while True:
        await trio.sleep(every())
        log_notices(spans(), warn_days=warn_days())
