"""``timer``: start a route on a schedule, every INTERVAL or each day at a time of day.

Each tick hands the route one message: ``payload`` as written, or by default a
JSON object ``{"tick": N, "at": "<ISO time>", "channel": "<name>"}``. Every tick
is a deal like any other (recorded, rejected, failed, dead-lettered); a reply
the route builds goes nowhere, as nobody asked. The route also sees
``timer.tick``, ``timer.at`` and ``timer.scheduled``.

Ticks never overlap or pile up: the next one is scheduled after the current
one has finished, and ticks missed meanwhile (a route slower than its
interval, a stalled machine) are skipped, counted and logged, not run in a
burst. ``every`` counts on the engine's monotonic clock; ``at`` ("18:30" or
"18:30:05") is a wall-clock time in ``timezone`` (an IANA name, default UTC),
so a daily job keeps its hour across clock changes. On drain (SIGTERM,
reload) no new tick starts; a running one finishes; a reload starts the new
timer only once this one has stopped (``exclusive``).
"""
from __future__ import annotations

import itertools
import logging
import re
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import trio

from engine.channels.base import ConnInfo, ExchangeHandler
from engine.channels.http_listen_dispatch import Outcome, dispatch_batch
from engine.channels.options import ChannelConfigError, built_check, seconds
from formats.component import ComponentSpec, OptionSpec

log = logging.getLogger("bsp.channel.timer")

_NUMBERS = itertools.count(1)
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def parse_at(text: str) -> time:
    """``"18:30"`` / ``"18:30:05"`` -> a time of day; ValueError naming the form otherwise."""
    m = _AT.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a time of day; write HH:MM or HH:MM:SS, 24-hour (e.g. \"18:30\")")
    return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def next_daily(now: datetime, at: time, tz: tzinfo) -> datetime:
    """The first moment after ``now`` (aware) whose wall-clock time in ``tz`` is ``at``.

    On a day when ``at`` does not exist (a clock moved forward across it) the tick comes
    at the first valid moment after it (``zoneinfo``'s reading of the gap); when it exists
    twice (a clock moved back) it comes once, at the first."""
    local = now.astimezone(tz)
    day = local.date()
    while True:
        candidate = datetime.combine(day, at, tzinfo=tz)
        # normalise through UTC: a wall time in a gap moves forward to a real instant
        real = candidate.astimezone(timezone.utc)
        if real > now.astimezone(timezone.utc):
            return real
        day += timedelta(days=1)


class TimerChannel:
    role = "listen"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        every, at = options.get("every"), options.get("at")
        if (every is None) == (at is None):
            raise ChannelConfigError(f"channel {name}: a timer needs `every` (an interval, e.g. every = 5m) "
                                     f"or `at` (a time of day, e.g. at = \"18:30\"), one of the two")
        self.every: float | None = None
        self.at: time | None = None
        if every is not None:
            self.every = seconds(every, 0.0)
            if self.every <= 0:
                raise ChannelConfigError(f"channel {name}: option every: {every} is not a positive interval")
        else:
            try:
                self.at = parse_at(str(at))
            except ValueError as exc:
                raise ChannelConfigError(f"channel {name}: option at: {exc}") from None
        zone = options.get("timezone") or "UTC"
        try:
            self.tz: tzinfo = timezone.utc if zone == "UTC" else ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ChannelConfigError(f"channel {name}: option timezone: {zone!r} is not a known time zone; "
                                     f"use an IANA name such as \"Asia/Shanghai\" or \"Europe/London\"") from None
        if every is not None and options.get("timezone"):
            raise ChannelConfigError(f"channel {name}: option timezone: only with `at` (an interval has no "
                                     f"time of day)")
        self.immediate = bool(options.get("immediate", False))
        payload = options.get("payload")
        self.payload: bytes | None = None if payload is None else str(payload).encode("utf-8")
        self.address = f"every {self.every:g}s" if self.every is not None else f"at {at} {zone}"
        self.exclusive = True   # on a reload the new timer starts once this one stops: no tick twice
        self.ticks = 0          # ticks run
        self.skipped = 0        # ticks missed while one ran (or the machine stalled), not run
        self.last: Outcome | None = None
        self._draining = False
        self._wait_scope: trio.CancelScope | None = None

    # -- Listener -----------------------------------------------------------
    async def serve(self, handler: ExchangeHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        log.info("channel %s: timer %s", self.name, self.address)
        due = trio.current_time() + (0.0 if self.immediate else self._delay())
        while not self._draining:
            with trio.CancelScope() as self._wait_scope:
                await trio.sleep_until(due)
            self._wait_scope = None
            if self._draining:
                break
            scheduled = datetime.now(timezone.utc)
            await self._tick(handler, scheduled)
            due = self._next_due(due)

    def status(self) -> dict[str, Any]:
        """For the admin status: ticks run and skipped, and how the last one ended."""
        last = self.last
        return {"ticks": self.ticks, "skipped": self.skipped,
                "last_tick": None if last is None else last.status}

    def stop_accepting(self) -> None:
        self._draining = True
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    # -- ticks --------------------------------------------------------------
    def _delay(self) -> float:
        """Seconds from now to the next tick."""
        if self.every is not None:
            return self.every
        assert self.at is not None
        now = datetime.now(timezone.utc)
        return max(0.0, (next_daily(now, self.at, self.tz) - now).total_seconds())

    def _next_due(self, due: float) -> float:
        """The tick after the one due at ``due`` (engine clock), skipping those already missed."""
        now = trio.current_time()
        if self.every is None:
            return now + self._delay()
        nxt = due + self.every
        if nxt <= now:
            missed = int((now - nxt) // self.every) + 1
            self.skipped += missed
            log.warning("channel %s: the last tick ran %.3fs, past %d tick(s) of every %gs: skipped, not run late",
                        self.name, now - due, missed, self.every)
            nxt += missed * self.every
        return nxt

    async def _tick(self, handler: ExchangeHandler, at: datetime) -> None:
        self.ticks += 1
        n = self.ticks
        stamp = at.isoformat()
        body = self.payload if self.payload is not None else orjson.dumps(
            {"tick": n, "at": stamp, "channel": self.name})
        conn = ConnInfo(channel=self.name, peer="timer", number=next(_NUMBERS),
                        extra={"timer": {"tick": n, "at": stamp}})
        scope = {"timer": {"tick": n, "at": stamp, "scheduled": stamp}}
        (out,) = await dispatch_batch(handler, conn, [body], scope)
        self.last = out
        if out.status in ("rejected", "failed"):
            log.warning("channel %s: tick %d %s (%s, code %s): %s", self.name, n, out.status, out.kind, out.code,
                        out.detail or out.text)
        else:
            log.info("channel %s: tick %d %s", self.name, n, out.status)


def build(decl: Any) -> TimerChannel:
    return TimerChannel(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="timer",
    provides=("timer",),
    doc=(
        "Starts its routes on a schedule: `every` INTERVAL (engine clock) or `at` a time of day (\"18:30\", in "
        "`timezone`, default UTC). Each tick is one message, `payload` or by default JSON "
        "`{\"tick\": N, \"at\": ISO-TIME, \"channel\": NAME}`, and one deal; the route also sees `timer.tick` and "
        "`timer.at`. Ticks never overlap: one missed while the previous ran is skipped and counted, not run late. "
        "A reply goes nowhere (nobody asked)."
    ),
    check=built_check(TimerChannel),
    options=(
        OptionSpec("every", "duration", "Interval between ticks, e.g. 30s, 5m, 1h (or use `at`)."),
        OptionSpec("at", "string", "A time of day, HH:MM or HH:MM:SS, 24-hour (or use `every`)."),
        OptionSpec("timezone", "string", "IANA time zone of `at`, e.g. \"Asia/Shanghai\" (default UTC)."),
        OptionSpec("immediate", "bool", "Also tick once at start, before the first interval.", default=False),
        OptionSpec("payload", "string", "The message of each tick, as text (default: the JSON tick object)."),
    ),
    build=build,
    examples=(
        'channel every_5m = timer {\n'
        '    every = 5m\n'
        '}',
        'channel end_of_day = timer {\n'
        '    at       = "18:30"\n'
        '    timezone = "Asia/Shanghai"\n'
        '}',
    ),
)
