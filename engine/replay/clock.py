"""The exchange clock of a recording and of its replay (``frames.clock``, ``dsl.clock``).

Recording: ``recording_clock(ctx)`` runs the exchange on the wall clock and logs each instant its routes
read into ``ctx.clock_reads``; ``dump(ctx.clock_reads)`` is the request row's ``clock`` (JSON: ISO texts).

Replay (``--clock recorded``): ``replay_clock(frame)`` gives the exchange those instants back in order,
then the time it was received (``recorded_at``).  ``received_at(frame)`` is that time, aware UTC.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from dsl.clock import Clock


def dump(reads: list[datetime]) -> str | None:
    return json.dumps([r.isoformat() for r in reads]) if reads else None


def load(stored: str | None) -> list[datetime]:
    """The instants of a request row's ``clock`` ([] for none, or a capture of before it)."""
    if not stored:
        return []
    try:
        values = json.loads(stored)
        return [_utc(datetime.fromisoformat(v)) for v in values if isinstance(v, str)]
    except (ValueError, TypeError):
        return []


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def received_at(frame: Any) -> datetime | None:
    """The time a recorded request was received (``frames.recorded_at``), aware UTC; None when not recorded."""
    at = getattr(frame, "recorded_at", None)
    return _utc(at) if isinstance(at, datetime) else None


def recording_clock(log: list[datetime]) -> Clock:
    return Clock(log=log)


def replay_clock(frame: Any) -> Clock | None:
    """What the replayed exchange's now() reads: the recorded reads, then its received time."""
    at = received_at(frame)
    script = load(getattr(frame, "clock", None))
    if at is None and not script:
        return None
    return Clock(fixed=at if at is not None else script[-1], script=script)


def first_read(frame: Any) -> datetime | None:
    """The instant a route test written from the exchange runs ``at``: the first the routes read (a time stamp
    they computed is then the recorded one), else the time it was received."""
    script = load(getattr(frame, "clock", None))
    return script[0] if script else received_at(frame)
