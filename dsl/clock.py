"""The clock ``now()`` and ``today()`` read: the wall clock, unless an exchange's is fixed.

A replay (``bsp replay``) fixes it, per exchange, to the time the recorded exchange was received, and a
route test written ``test "name" at "2026-11-25T10:00:00Z" { ... }`` to that instant, so that a route
computing a value date from ``today()`` answers as it did then, on any day.  The fixed instant is a
context variable: trio copies it into the tasks an exchange starts (its calls, its ledger commit), and
two exchanges in flight at once each see their own; nothing is global.

    with fixed(at):          # an aware datetime, or None for the wall clock
        ...                  # now() is ``at``; today() its date in the engine's zone
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

_FIXED: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("bsp_clock", default=None)


def now() -> datetime:
    """The current instant, aware (UTC): the fixed one when an exchange's clock is fixed."""
    at = _FIXED.get()
    return datetime.now(timezone.utc) if at is None else at


def fixed_at() -> datetime | None:
    return _FIXED.get()


@contextmanager
def fixed(at: datetime | None) -> Iterator[None]:
    """``now()`` is ``at`` (an aware datetime) inside; None leaves the clock as it is."""
    if at is None:
        yield
        return
    if at.tzinfo is None:
        raise ValueError("a fixed clock needs an instant with a time zone (an aware datetime)")
    token = _FIXED.set(at.astimezone(timezone.utc))
    try:
        yield
    finally:
        _FIXED.reset(token)


def parse_instant(text: str) -> tuple[datetime | None, str | None]:
    """``"2026-11-25T10:00:00Z"`` (ISO 8601 with its offset: ``Z`` or ``+01:00``) -> (the instant, None);
    else (None, what is wrong and what to write)."""
    t = text.strip()
    try:
        at = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t)
    except ValueError:
        return None, (f"{text!r} is not a time: write it ISO 8601 with its offset, e.g. "
                      f"\"2026-11-25T10:00:00Z\" (UTC) or \"2026-11-25T11:00:00+01:00\"")
    if at.tzinfo is None:
        return None, (f"{text!r} has no time zone, so the instant would depend on the machine's: add its offset, "
                      f"e.g. \"{t}Z\" (UTC) or \"{t}+01:00\"")
    return at.astimezone(timezone.utc), None


def instant_text(at: datetime) -> str:
    """An aware instant as ``parse_instant`` reads it back: UTC, ``Z``, microseconds only when it has them."""
    u = at.astimezone(timezone.utc)
    return u.strftime("%Y-%m-%dT%H:%M:%S") + (f".{u.microsecond:06d}" if u.microsecond else "") + "Z"
