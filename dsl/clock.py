"""The clock ``now()`` and ``today()`` read: the wall clock, unless the exchange's clock says otherwise.

An exchange may run under a ``Clock`` (a context variable, so trio copies it into the tasks the
exchange starts, its calls and its ledger commit, and two exchanges in flight at once each have their
own; nothing is global):

* recording (``bsp run --record``): the wall clock, each instant read logged (``Clock(log=[...])``),
  so the capture keeps what ``now()`` gave the exchange;
* replay (``bsp replay``, ``--clock recorded``): the instants the recorded exchange read, in order
  (``script``), then the time it was received (``fixed``): a value date or a ``CreDtTm`` computed from
  them is what it was when recorded, on any day;
* a route test written ``test "name" at 2026-11-25T10:00:00Z { ... }``: that instant (``fixed``).

Below them, the engine's own clock: the wall clock, or, when the engine was started with ``--at INSTANT``
(``bsp run``, ``bsp demo``, ``bsp sim``: a rehearsal on another day, a test that must pass on any day),
the wall clock moved by a constant offset so that it read INSTANT at the start and runs on from there
(``engine_clock``).  It is what an exchange without a clock of its own reads, what recording logs, and
what the simulators date their requests by; the ledger's own times (received, committed) stay the
wall clock's.

    with fixed(at):          # an aware datetime, or None for the wall clock
        ...                  # now() is ``at``; today() its date in the engine's zone
"""
from __future__ import annotations

import contextvars
from collections import deque
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator

_UTC = timezone.utc
_OFFSET = timedelta(0)          # the engine's clock minus the wall clock (``engine_clock``)


def _engine_now() -> datetime:
    return datetime.now(_UTC) + _OFFSET


class Clock:
    """``script``: instants the reads return first, in order; ``fixed``: the instant every later read returns
    (None: the wall clock); ``log``: a list each instant read is appended to."""

    def __init__(self, fixed: datetime | None = None, script: Iterable[datetime] = (),
                 log: list[datetime] | None = None) -> None:
        if fixed is not None and fixed.tzinfo is None:
            raise ValueError("a fixed clock needs an instant with a time zone (an aware datetime)")
        self.fixed = fixed.astimezone(_UTC) if fixed is not None else None
        self.script = deque(s.astimezone(_UTC) for s in script)
        self.log = log

    def read(self) -> datetime:
        at = (self.script.popleft() if self.script else self.fixed if self.fixed is not None
              else _engine_now())
        if self.log is not None:
            self.log.append(at)
        return at


_CLOCK: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("bsp_clock", default=None)


def now() -> datetime:
    """The current instant, aware (UTC), as the exchange's clock gives it (the engine's without one)."""
    clock = _CLOCK.get()
    return _engine_now() if clock is None else clock.read()


@contextmanager
def engine_clock(start: datetime | None) -> Iterator[None]:
    """Inside, the engine's clock reads ``start`` (an aware datetime) now and runs on from there at the
    wall clock's pace (every exchange, recording, the simulators); None leaves it as it is."""
    global _OFFSET
    if start is None:
        yield
        return
    if start.tzinfo is None:
        raise ValueError("the engine's clock needs an instant with a time zone (an aware datetime)")
    before = _OFFSET
    _OFFSET = start - datetime.now(_UTC)
    try:
        yield
    finally:
        _OFFSET = before


def moved() -> bool:
    """Whether the engine's clock is not the wall clock (``engine_clock``)."""
    return _OFFSET != timedelta(0)


@contextmanager
def using(clock: Clock | None) -> Iterator[None]:
    """``now()`` reads ``clock`` inside (None leaves the clock as it is)."""
    if clock is None:
        yield
        return
    token = _CLOCK.set(clock)
    try:
        yield
    finally:
        _CLOCK.reset(token)


def fixed(at: datetime | None) -> AbstractContextManager[None]:
    """``now()`` is ``at`` (an aware datetime) inside; None leaves the clock as it is."""
    return using(Clock(fixed=at) if at is not None else None)


def parse_instant(text: str, *, bare: bool = False) -> tuple[datetime | None, str | None]:
    """``"2026-11-25T10:00:00Z"`` (ISO 8601 with its offset: ``Z`` or ``+01:00``) -> (the instant, None);
    else (None, what is wrong and what to write).  ``bare``: the text was written as a timestamp literal (a
    test's ``at 2026-11-25T10:00:00``), so the fix is told as one too, without quotes."""
    t = text.strip()
    q = (lambda s: f"`{s}`") if bare else (lambda s: f'"{s}"')
    shown = q(text) if bare else repr(text)
    try:
        at = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t)
    except ValueError:
        return None, (f"{shown} is not a time: write it ISO 8601 with its offset, e.g. "
                      f"{q('2026-11-25T10:00:00Z')} (UTC) or {q('2026-11-25T11:00:00+01:00')}")
    if at.tzinfo is None:
        return None, (f"{shown} has no time zone, so the instant would depend on the machine's: add its offset, "
                      f"e.g. {q(t + 'Z')} (UTC) or {q(t + '+01:00')}")
    return at.astimezone(_UTC), None


def instant_text(at: datetime) -> str:
    """An aware instant as ``parse_instant`` reads it back: UTC, ``Z``, microseconds only when it has them."""
    u = at.astimezone(_UTC)
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"   # year 0999 too
            + (f".{u.microsecond:06d}" if u.microsecond else "") + "Z")
