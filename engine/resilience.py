"""Resilience of outbound calls: retry policy, circuit breaker, cap on requests in flight.

    policy = RetryPolicy(retries=2, base=0.2, cap=2.0)      # only for idempotent calls
    breaker = CircuitBreaker("biller", failures=5, window=30, reset=10)
    cap = InFlightCap("biller", 256)

The breaker is a state machine written as a table (h11 style): ``TRANSITIONS``
maps ``(state, event)`` to the next state and a missing entry raises
``BreakerStateError`` naming both.  Events:

    failure_threshold  ``failures`` failures inside ``window`` seconds (closed)
    reset_elapsed      ``reset`` seconds passed since it opened (open)
    probe_ok           the one probe let through in half-open got its reply
    probe_failed       the probe failed

While open every request fails at once (kind ``unreachable``, "circuit open");
half-open lets exactly one request through as a probe.  Every change is
logged (warning when opening, info otherwise), counted in ``changes`` and
reported to ``Metrics.circuit`` when metrics are attached.

Clock: ``trio.current_time`` (so ``trio.testing.MockClock`` drives it in tests).
"""
from __future__ import annotations

import logging
import random
from collections import Counter, deque
from typing import Any, Callable

import trio

from engine.channels.base import ChannelError

log = logging.getLogger("bsp.resilience")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

TRANSITIONS: dict[tuple[str, str], str] = {
    (CLOSED, "failure_threshold"): OPEN,
    (OPEN, "reset_elapsed"): HALF_OPEN,
    (HALF_OPEN, "probe_ok"): CLOSED,
    (HALF_OPEN, "probe_failed"): OPEN,
}

# Error kinds that count against the breaker and may be retried: the counterpart did not answer.
FAILURE_KINDS = frozenset({"unreachable", "lost", "timeout"})


class BreakerStateError(RuntimeError):
    """An event the breaker's state table has no entry for (a bug, never user input)."""


class Rejected(ChannelError):
    """Refused before it was sent: circuit open or too many requests in flight."""

    kind = "unreachable"


class RetryPolicy:
    """Exponential back-off with jitter: retry n waits uniform(c/2, c), c = min(cap, base * 2**n)."""

    def __init__(self, retries: int = 0, base: float = 0.2, cap: float = 2.0, *,
                 rng: random.Random | None = None) -> None:
        if retries < 0:
            raise ValueError(f"retries: expected 0 or more, got {retries}")
        if base <= 0 or cap < base:
            raise ValueError(f"retry back-off: expected 0 < backoff <= backoff_max, got {base:g}s..{cap:g}s")
        self.retries = retries
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number ``attempt`` (0 = first retry)."""
        return min(self.cap, self.base * (2 ** attempt))

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(self.ceiling(attempt) / 2, self.ceiling(attempt))


class CircuitBreaker:
    def __init__(self, name: str, *, failures: int = 5, window: float = 30.0, reset: float = 10.0,
                 clock: Callable[[], float] = trio.current_time, metrics: Any = None) -> None:
        if failures <= 0:
            raise ValueError(f"channel {name}: option breaker_failures: expected a positive count, got {failures}")
        if window <= 0 or reset <= 0:
            raise ValueError(f"channel {name}: options breaker_window / breaker_reset: expected positive durations")
        self.name = name
        self.failures = failures
        self.window = window
        self.reset = reset
        self.clock = clock
        self.metrics = metrics
        self.state = CLOSED
        self.opened_at = 0.0
        self.probing = False
        self.changes: Counter[tuple[str, str]] = Counter()
        self.rejected = 0
        self._recent: deque[float] = deque()

    # -- state table -----------------------------------------------------
    def _fire(self, event: str, why: str) -> None:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise BreakerStateError(f"circuit {self.name}: no transition from {self.state!r} on {event!r}")
        old, self.state = self.state, new
        self.changes[(old, new)] += 1
        level = logging.WARNING if new == OPEN else logging.INFO
        log.log(level, "channel %s: circuit %s -> %s (%s)", self.name, old, new, why)
        if self.metrics is not None:
            self.metrics.circuit(self.name, new)
            if new == OPEN:
                self.metrics.channel_error(self.name, "circuit_open")

    # -- use ---------------------------------------------------------------
    def allow(self) -> bool:
        """May a request go now?  In half-open only one probe at a time goes."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self.clock() - self.opened_at < self.reset:
                self.rejected += 1
                return False
            self._fire("reset_elapsed", f"{self.reset:g}s since it opened; one probe goes through")
        if self.probing:
            self.rejected += 1
            return False
        self.probing = True
        return True

    def retry_in(self) -> float:
        return max(0.0, self.opened_at + self.reset - self.clock())

    def success(self) -> None:
        if self.state == HALF_OPEN and self.probing:
            self.probing = False
            self._recent.clear()
            self._fire("probe_ok", "the probe was answered")

    def failure(self, why: str = "") -> None:
        now = self.clock()
        if self.state == HALF_OPEN and self.probing:
            self.probing = False
            self.opened_at = now
            self._fire("probe_failed", f"the probe failed: {why}" if why else "the probe failed")
            return
        if self.state != CLOSED:
            return
        recent = self._recent
        recent.append(now)
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if len(recent) >= self.failures:
            recent.clear()
            self.opened_at = now
            self._fire("failure_threshold", f"{self.failures} failures within {self.window:g}s"
                       + (f", last: {why}" if why else ""))

    def record(self, result: Any) -> None:
        """Feed one call's result (reply bytes or ChannelError)."""
        if isinstance(result, ChannelError) and result.kind in FAILURE_KINDS:
            self.failure(str(result))
        elif not isinstance(result, ChannelError):
            self.success()
        elif self.probing:          # another kind of error: the counterpart answered, let the next probe go
            self.probing = False

    def rejection(self) -> Rejected:
        return Rejected(f"channel {self.name}: circuit open after repeated failures; next probe in "
                        f"{self.retry_in():.3g}s (breaker_failures = {self.failures} within "
                        f"{self.window:g}s, breaker_reset = {self.reset:g}s)", channel=self.name)


class InFlightCap:
    """A cap on requests waiting for a reply from one endpoint: over it, fail at once (a bulkhead)."""

    def __init__(self, name: str, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"channel {name}: option max_in_flight: expected a positive count, got {limit}")
        self.name = name
        self.limit = limit
        self.in_flight = 0
        self.rejected = 0

    def try_take(self, n: int) -> bool:
        if self.in_flight + n > self.limit:
            self.rejected += n
            return False
        self.in_flight += n
        return True

    def give(self, n: int) -> None:
        self.in_flight -= n

    def rejection(self) -> Rejected:
        return Rejected(f"channel {self.name}: {self.in_flight} requests already in flight "
                        f"(max_in_flight = {self.limit}); request not sent", channel=self.name)
