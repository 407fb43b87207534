"""The business day reports and reconciliations count in: a time zone and a cut-off time.

    clock = business_day("Asia/Shanghai", "17:00")
    clock.bounds(date(2026, 3, 2), date(2026, 3, 2))   # the UTC instants [start, end) of that day
    clock.day_of(received_at)                           # the business day a deal belongs to

Business day D ends when the wall clock in the zone first reads the cut-off on D, and starts where D-1
ends: with ``--cutoff 17:00`` day D runs from D-1 17:00 to D 17:00 local.  Without a cut-off (or
``00:00``) D is the calendar day, D 00:00 to D+1 00:00 local.  Days are computed on the wall clock, so
a day across a clock change lasts 23 or 25 hours.  A cut-off the clock jumps over (e.g. 02:30 on the
day summer time starts) ends the day at the jump; one the clock passes twice (the night summer time
ends) at its first passing.

Bounds are UTC instants computed here once per day, so SQL compares ``received_at`` against constants
(DuckDB's zone maps skip the row groups outside them) and never converts a row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.reports.model import ReportError

UTC_NAME = "UTC"
_CUTOFF = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
# the instants a datetime can hold, for periods open at either end (--from 0001-01-01, --to 9999-12-31)
EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
LATEST = datetime.max.replace(tzinfo=timezone.utc)


def parse_zone(text: str | None) -> tuple[str, tzinfo]:
    """``--tz``: an IANA zone name (``Asia/Shanghai``, ``Europe/Berlin``, ``UTC``)."""
    name = (text or UTC_NAME).strip()
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC_NAME, timezone.utc
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"--tz {text!r}: not a known time zone; give an IANA name such as Asia/Shanghai, "
                          f"Europe/Berlin or UTC (the zone of the bank's business day)") from None


def parse_cutoff(text: str | None) -> time | None:
    """``--cutoff``: ``HH:MM`` (24-hour); ``None`` / ``00:00``: the day ends at midnight."""
    if text is None or not text.strip():
        return None
    m = _CUTOFF.match(text.strip())
    if m is None:
        raise ReportError(f"--cutoff {text!r}: expected a time of day as HH:MM, 24-hour (e.g. 17:00): the "
                          f"local time the business day ends")
    at = time(int(m.group(1)), int(m.group(2)))
    return None if at == time(0) else at


def _first_at(wall: datetime, tz: tzinfo) -> datetime:
    """The first UTC instant at which the wall clock in ``tz`` reads ``wall`` (naive) or later."""
    try:
        t0 = wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
        if t0.astimezone(tz).replace(tzinfo=None) == wall:
            return t0                     # the time exists (fold 0: its first passing when it exists twice)
        lo = wall.replace(tzinfo=tz, fold=1).astimezone(timezone.utc)
    except OverflowError:
        return EARLIEST if wall.year < 2 else LATEST
    # the clock jumped over ``wall``: the day ends at the jump, found between the two readings (whole seconds)
    hi = t0
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) // 2
        if mid.astimezone(tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0) if hi.microsecond else hi


@dataclass(frozen=True)
class BusinessDay:
    zone: str = UTC_NAME
    tz: tzinfo = timezone.utc
    cutoff: time | None = None                        # None: midnight
    _ends: dict = field(default_factory=dict, compare=False, repr=False)
    _last: list = field(default_factory=list, compare=False, repr=False)    # [day, start, end] found last

    @property
    def is_utc_midnight(self) -> bool:
        """The plain UTC calendar day (reports' default): SQL may group by ``CAST(received_at AS DATE)``."""
        return self.zone == UTC_NAME and self.cutoff is None

    def end(self, d: date) -> datetime:
        """The UTC instant business day ``d`` ends (exclusive)."""
        got = self._ends.get(d)
        if got is None:
            if self.cutoff is not None:
                wall = datetime.combine(d, self.cutoff)
            elif d == date.max:
                got = LATEST
            else:
                wall = datetime.combine(d + timedelta(days=1), time(0))
            if got is None:
                got = _first_at(wall, self.tz)
            self._ends[d] = got
        return got

    def start(self, d: date) -> datetime:
        """The UTC instant business day ``d`` starts (included)."""
        return EARLIEST if d == date.min else self.end(d - timedelta(days=1))

    def bounds(self, first: date, last: date) -> tuple[datetime, datetime]:
        """``[start, end)`` of the days ``first`` .. ``last`` (both included), UTC."""
        return self.start(first), self.end(last)

    def day_of(self, at: datetime) -> date:
        """The business day the instant ``at`` (aware) belongs to."""
        last = self._last
        if last and last[1] <= at < last[2]:       # rows come in time order: mostly the day of the one before
            return last[0]
        local = at.astimezone(self.tz)
        d = local.date()
        if self.cutoff is not None and local.time().replace(tzinfo=None) >= self.cutoff:
            d += timedelta(days=1)
        # the wall-clock guess, checked against the bounds (right across a jumped or repeated cut-off)
        while d < date.max and at >= self.end(d):
            d += timedelta(days=1)
        while d > date.min and at < self.start(d):
            d -= timedelta(days=1)
        self._last[:] = [d, self.start(d), self.end(d)]
        return d

    def local(self, at: datetime | None) -> datetime | None:
        """``at`` shown on the zone's clock (its offset kept), or as it is for UTC."""
        if at is None or self.zone == UTC_NAME:
            return at
        return at.astimezone(self.tz)

    def days(self, first: date, last: date) -> list[tuple[date, datetime]]:
        """Each day of ``first`` .. ``last`` with its start (UTC): the table an ASOF join groups by."""
        out, d = [], first
        while True:
            out.append((d, self.start(d)))
            if d >= last:
                return out
            d += timedelta(days=1)

    def describe(self) -> str:
        """For a report's header: which day was reported, e.g. ``Europe/Berlin, day ends 17:00``."""
        ends = f"day ends {self.cutoff:%H:%M}" if self.cutoff is not None else "midnight to midnight"
        return f"{self.zone}, {ends}"

    def title(self) -> str:
        """The zone, for a column title: ``received (Asia/Shanghai)``."""
        return self.zone


UTC_DAY = BusinessDay()


def business_day(zone: str | None = None, cutoff: str | None = None) -> BusinessDay:
    name, tz = parse_zone(zone)
    at = parse_cutoff(cutoff)
    return UTC_DAY if name == UTC_NAME and at is None else BusinessDay(name, tz, at)


__all__ = ["BusinessDay", "EARLIEST", "LATEST", "UTC_DAY", "business_day", "parse_cutoff", "parse_zone"]
