"""Timestamp literals of the route language, and the arithmetic of timestamps with durations.

A timestamp literal is ISO 8601 written bare, as a number is (no quotes):

    2026-11-25T10:00:00Z            an instant in UTC
    2026-11-25T11:00:00+01:00       the same instant, written with its offset (kept: format_date reads 11)
    2026-11-25T10:00:00.250Z        with a fraction of a second (at most 6 digits: microseconds)
    2026-11-25T10:00Z               seconds may be left out (:00)
    2026-11-25T10:00:00             no zone: a local time, as a fixed-width or CSV field with a time
                                    pattern holds one (``date("%Y%m%d%H%M%S")``); it is equal to such a
                                    field's value, and ordered among zone-less times only

The value is what the runtime uses for timestamps everywhere (``now()``, a field read with a time
pattern): a ``datetime``, aware for a literal with ``Z`` or an offset, naive without.  A literal that is
not of that shape is E133 (``2026-11-25t10:00:00z``, ``2026-11-25T1000Z``, ``+0100``); one of that shape
naming no real time (month 13, 25 o'clock, 30 February, an offset of 24 hours) is E134.

Arithmetic (``dsl.compiler``): a timestamp plus or minus a duration (``2h``, ``30m``, ``1d``; a number of
seconds) is a timestamp; a timestamp minus a timestamp is the duration between them, in seconds (a
decimal, as a duration is); timestamps are ordered by their instant.  A zone-less timestamp and one with a
zone are neither ordered nor subtracted (which instant a local time is depends on a zone the value does
not carry): the expression fails, naming both.  Pure: no engine.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

# the shape the grammar's TIMESTAMP terminal lexes (dsl/route.lark): digits where digits go, values unchecked
SHAPE = re.compile(r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})"
                   r"(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]+))?)?(?P<z>Z|[+-](?P<zh>[0-9]{2}):(?P<zm>[0-9]{2}))?")
EXAMPLES = ("2026-11-25T10:00:00Z (UTC), 2026-11-25T11:00:00+01:00 (with its offset), or "
            "2026-11-25T10:00:00 (no zone: a local time, as a fixed-width or CSV field holds one)")


class LiteralError(ValueError):
    """A timestamp literal that is not one: ``code`` E133 (malformed) or E134 (no such time), ``help``."""

    def __init__(self, code: str, message: str, help: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help


def parse(text: str) -> datetime:
    """The value of a timestamp literal (aware with ``Z`` or an offset, naive without); ``LiteralError``."""
    m = SHAPE.fullmatch(text)
    if m is None:
        raise LiteralError("E133", f"`{text}` is not a timestamp: {_malformed(text)}", f"write it ISO 8601: {EXAMPLES}")
    frac = m.group("f") or ""
    if len(frac) > 6:
        raise LiteralError("E133", f"`{text}` has {len(frac)} digits after the second's point: a timestamp holds "
                           f"microseconds at most", "write at most 6 digits (.123456)")
    y, mo, d, h, mi = (int(m.group(k)) for k in ("y", "mo", "d", "h", "mi"))
    s = int(m.group("s") or 0)
    tz = None
    if m.group("z") == "Z":
        tz = timezone.utc
    elif m.group("z"):
        zh, zm = int(m.group("zh")), int(m.group("zm"))
        if zh > 23 or zm > 59:
            raise LiteralError("E134", f"`{text}`: the offset {m.group('z')} is no time zone's (at most "
                               f"23:59 either side of UTC)", f"write the zone's offset from UTC, e.g. {text[:m.start('z')]}+01:00")
        off = timedelta(hours=zh, minutes=zm)
        tz = timezone(-off if m.group("z")[0] == "-" else off) if off else timezone.utc
    what = None
    if not 1 <= y:
        what = "the year 0000 is before the first a timestamp holds (0001)"
    elif not 1 <= mo <= 12:
        what = f"there is no month {mo:02d}"
    elif h > 23:
        what = f"there is no hour {h:02d} (00 to 23)"
    elif mi > 59:
        what = f"there is no minute {mi:02d} (00 to 59)"
    elif s > 59:
        what = f"there is no second {s:02d} (00 to 59; a leap second is not kept)"
    else:
        try:
            date(y, mo, d)
        except ValueError:
            what = f"{y:04d}-{mo:02d} has no day {d:02d}"
    if what is not None:
        raise LiteralError("E134", f"`{text}` names no real time: {what}", f"write a real date and time: {EXAMPLES}")
    return datetime(y, mo, d, h, mi, s, int(frac.ljust(6, "0")) if frac else 0, tzinfo=tz)


def _malformed(text: str) -> str:
    """What is wrong with a text the grammar's BAD_TIMESTAMP terminal took (a date run into a `T`)."""
    if re.fullmatch(r"[0-9]{8}[Tt].*", text):
        return "the basic form (no `-` and `:`) is not read: write the extended one, 2026-11-25T10:00:00Z"
    if re.search(r"[tz]", text[8:]) and not re.search(r"[A-SU-Ya-su-y]", text[8:]):
        return "write `T` and `Z` in capitals"
    if re.search(r"[+-][0-9]{4}$", text):
        return "write the offset with a colon, +01:00"
    if re.match(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[Tt]", text) and not re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T", text):
        return "month and day take two digits each (2026-01-05)"
    if re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:?$", text) or re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]?[^0-9]", text):
        return "the time of day is HH:MM or HH:MM:SS, two digits each"
    if re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{3,}", text):
        return "the time of day is HH:MM:SS, with colons"
    return "expected a date, `T`, a time of day and, for an instant, `Z` or an offset"


def text(v: datetime) -> str:
    """A timestamp as the literal that reads back to an equal value: its own offset (``Z`` for UTC), none
    for a zone-less one; a fraction only when it has one (milliseconds when they are whole)."""
    out = f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"   # year 0999 too
    if v.microsecond:
        out += f".{v.microsecond // 1000:03d}" if v.microsecond % 1000 == 0 else f".{v.microsecond:06d}"
    off = v.utcoffset()
    if off is None:
        return out
    if off % timedelta(minutes=1):           # an offset with seconds (a historical zone): written in UTC
        return text(v.astimezone(timezone.utc))
    if not off:
        return out + "Z"
    mins = int(abs(off).total_seconds()) // 60
    return out + f"{'-' if off < timedelta(0) else '+'}{mins // 60:02d}:{mins % 60:02d}"


# ------------------------------------------------------------------ arithmetic (dsl.compiler)

class TimeError(ValueError):
    """A timestamp operation that cannot be done (the compiler raises it as an ``EvalError`` at its place)."""


def aware(v: datetime) -> bool:
    return v.utcoffset() is not None


def mixed(a: datetime, b: datetime, what: str) -> TimeError:
    z, n = (a, b) if aware(a) else (b, a)
    return TimeError(f"cannot {what} a timestamp with a zone ({text(z)}) and one without ({text(n)}): which "
                     f"instant a local time is depends on a zone it does not carry (write both with a zone, or "
                     f"both without)")


def shift(ts: datetime, seconds: Any, sign: int) -> datetime:
    """``ts`` moved by ``seconds`` (an int or Decimal: a duration) forward (sign 1) or back (-1)."""
    try:
        micro = Decimal(seconds) * 1_000_000
        if micro != micro.to_integral_value():
            raise TimeError(f"a duration of {seconds} seconds is finer than a microsecond, which a timestamp "
                            f"holds at most")
        return ts + timedelta(microseconds=sign * int(micro))
    except (OverflowError, InvalidOperation):
        raise TimeError(f"{text(ts)} moved by {seconds} seconds is outside the years 0001 to 9999") from None


def between(a: datetime, b: datetime) -> Decimal:
    """``a - b`` in seconds, exact (a Decimal: a duration)."""
    if aware(a) != aware(b):
        raise mixed(a, b, "subtract")
    d = a - b
    whole = Decimal(d.days * 86400 + d.seconds)
    return whole + Decimal(d.microseconds).scaleb(-6).normalize() if d.microseconds else whole


# ------------------------------------------------------------------ durations at run time

class Duration(Decimal):
    """A duration's value at run time (``2h``, ``ts - ts``): its seconds, a ``Decimal`` that knows it is a
    duration, so that a plain number beside a timestamp (``now() + msg.n``) is refused, not taken for seconds.
    It is a number everywhere else (compared, written, added to a number: a plain number then)."""
    __slots__ = ()


def duration(seconds: Any) -> Duration:
    return seconds if isinstance(seconds, Duration) else Duration(seconds)


DAY = 86400


def shift_date(day: date, seconds: Any, sign: int) -> date:
    """A date moved by a duration of whole days (``2026-11-25 + 3d``); ``TimeError`` for part of a day."""
    days, rest = divmod(Decimal(seconds), DAY)
    if rest:
        raise TimeError(f"a date moves by whole days: a duration of {seconds} seconds is not one (write 1d, 2d "
                        f"..., or use a timestamp for a time of day)")
    try:
        return day + timedelta(days=sign * int(days))
    except OverflowError:
        raise TimeError(f"{day.isoformat()} moved by {int(days) * sign} days is outside the years 0001 to "
                        f"9999") from None


# ------------------------------------------------------------------ date literals (2026-11-25)

def parse_day(text: str) -> date:
    """The value of a date literal, ``2026-11-25`` (ISO 8601 calendar date); ``LiteralError`` E142 for one
    that is not of that shape (``2026-1-5``) or names no real day (``2026-02-30``)."""
    m = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})", text)
    example = "2026-11-25 (year, month and day, ISO 8601); an instant is 2026-11-25T10:00:00Z"
    if m is None or len(m.group(2)) != 2 or len(m.group(3)) != 2:
        raise LiteralError("E142", f"`{text}` is not a date: month and day take two digits each (2026-01-05)",
                           f"write it {example}; for arithmetic, put spaces around the minus: 2026 - 1 - 5")
    y, mo, d = (int(g) for g in m.groups())
    if y < 1:
        what = "the year 0000 is before the first a date holds (0001)"
    elif not 1 <= mo <= 12:
        what = f"there is no month {mo:02d}"
    else:
        try:
            return date(y, mo, d)
        except ValueError:
            what = f"{y:04d}-{mo:02d} has no day {d:02d}"
    raise LiteralError("E142", f"`{text}` names no real day: {what}", f"write a real date: {example}")


def day_text(v: date) -> str:
    """A date as the date literal that reads back to it: ``2026-11-25`` (four digits of year: 0999-01-02)."""
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
