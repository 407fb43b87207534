"""One counterpart's outage as the on-call operator reads it: when it starts, while it lasts, when it ends.

    out = OutageLog(log, "biller", "127.0.0.1:7002", unit="connect attempt")
    out.failed("channel biller: cannot connect to ...: refused")   # first: WARNING, then counted
    out.end(f"channel biller: connected to ... again after {out.downtime():.1f}s down")

A counterpart that is down fails every call (or every connect attempt, every
``reconnect_max``): a warning each time is a flood that hides everything else.
So every outbound channel (``tcp connect``, its MUX pool, ``http call``, and the
timeouts ``engine/ops/health.CallHealth`` sees on any of them) logs an outage
through this one component, with one pattern to grep for (``grep '\\[outage '``):

* start: the failure's own line (what failed, at WARNING) ending
  ``[outage start: PEER since 2026-11-27T05:00:00Z]``; a failure for another
  reason (``key``) during the same outage is said once too, with the same tag;
* reminder, at most every ``every`` seconds (60) while failures go on:
  ``channel C: still failing: N UNIT(s) in the last 60s, M since T (KINDS) [outage reminder: PEER down 60.0s]``;
  the failures in between are at DEBUG;
* end: the caller's line (at WARNING when its start was) ending
  ``[outage end: PEER down 3.2s, M UNIT(s) failed]``.

A failure said ``loud=False`` (another part says it) is counted, at DEBUG, and
an outage of those alone has no reminder and ends at DEBUG.  Durations are on
trio's clock (``trio.current_time``: a MockClock in tests), ``since`` is wall time.
``PEER`` is an address as shown (``masked_url``: no user, password or secret
query value of a URL).
"""
from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import trio

_SECRET = re.compile(r"authorization|key|token|secret|password|passwd|pwd|sig|auth|cookie", re.I)


def iso(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def masked_url(url: str) -> str:
    """``url`` as a log or ``bsp status`` may show it: a user and password replaced by ``***``, and the value of
    a query parameter whose name looks secret (``token``, ``api_key``, ``sig``, ...)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url not shown: not parsable>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET.search(k) for k, _ in pairs):
            query = urlencode([(k, "***" if _SECRET.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:            # outside trio (a unit test without a run): any monotonic clock
        return time.monotonic()


class OutageLog:
    __slots__ = ("log", "channel", "peer", "unit", "every", "clock", "wall", "started", "since", "count", "kinds",
                 "said", "said_at", "said_count", "loud")

    def __init__(self, log: logging.Logger, channel: str, peer: str, *, unit: str = "call", every: float = 60.0,
                 clock: Callable[[], float] = _now, wall: Callable[[], float] = time.time) -> None:
        self.log, self.channel, self.peer, self.unit, self.every = log, channel, peer, unit, every
        self.clock, self.wall = clock, wall
        self.started: float | None = None    # clock() at the outage's first failure (None: no outage)
        self.since: float | None = None      # wall time then
        self.count = 0                       # failures since
        self.kinds: dict[str, int] = {}      # by kind, when the caller gives one
        self.said: set[str] = set()          # the reasons said at WARNING in this outage
        self.said_at = 0.0                   # clock() of the last warning about it
        self.said_count = 0                  # self.count then
        self.loud = False                    # a warning said it started: reminders and its end are warnings

    @property
    def down(self) -> bool:
        return self.started is not None

    def downtime(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started

    def failed(self, text: str, *, key: str | None = None, kind: str = "", loud: bool = True) -> bool:
        """One failure, ``text`` saying what failed (naming the channel and the peer).  Said at WARNING when it
        starts the outage or its ``key`` (default: ``text``) was not said yet in it; a reminder when ``every``
        seconds went by since the last warning; else at DEBUG.  Returns whether ``text`` was said at WARNING."""
        now = self.clock()
        if self.started is None:
            self.started, self.since = now, self.wall()
        self.count += 1
        if kind:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        key = text if key is None else key
        if loud and key not in self.said:
            self.said.add(key)
            self.log.warning("%s [outage start: %s since %s]", text, self.peer, iso(self.since))
            self.said_at, self.said_count, self.loud = now, self.count, True
            return True
        if self.loud and now - self.said_at >= self.every:
            kinds = f" ({', '.join(f'{k} {n}' for k, n in self.kinds.items())})" if self.kinds else ""
            self.log.warning("channel %s: still failing: %d %s(s) in the last %.0fs, %d since %s%s [outage reminder: "
                             "%s down %.1fs]", self.channel, self.count - self.said_count, self.unit,
                             now - self.said_at, self.count, iso(self.since), kinds, self.peer, now - self.started)
            self.said_at, self.said_count = now, self.count
        else:
            self.log.debug("%s", text)
        return False

    def end(self, text: str) -> None:
        """The outage is over (``text`` says how: an answer, a connection open again): said at the level its start
        was, with its downtime and count; then forgotten.  Nothing when there is none."""
        if self.started is None:
            return
        self.log.log(logging.WARNING if self.loud else logging.DEBUG, "%s [outage end: %s down %.1fs, %d %s(s) failed]",
                     text, self.peer, self.downtime(), self.count, self.unit)
        self.started = self.since = None
        self.count, self.kinds, self.said, self.said_count, self.loud = 0, {}, set(), 0, False


__all__ = ["OutageLog", "iso", "masked_url"]
