"""How late the engine's event loop wakes a task that asked to: the loop lag.

Every exchange, channel and timer of the engine runs on one trio loop.  When something holds it (a
long computation on the loop's thread, a garbage collection, the interpreter lock taken by a worker
thread, a machine out of CPU) every timeout and every reply waits with it.  A call that times out
under load may be the counterpart's fault or the engine's own; the lag tells them apart:

    bsp_event_loop_lag_seconds          histogram of how late the probe woke (every PERIOD seconds)
    bsp status: "event_loop"            {"lag_ms": last, "max_lag_ms": worst since start, "max_lag_at",
                                         "stalls": wakes later than STALL_S}

and one warning in the log for a stall (at most one a minute, with the count in between).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import trio

log = logging.getLogger("bsp.engine")

PERIOD = 0.25           # seconds between the probe's wakes
STALL_S = 0.5           # a wake later than this is a stall: logged, counted
WARN_EVERY_S = 60.0     # at most one stall warning a minute


class LoopLag:
    """The probe's figures, read by ``bsp status``."""

    __slots__ = ("last", "worst", "worst_at", "stalls", "_warned_at", "_unwarned")

    def __init__(self) -> None:
        self.last = 0.0
        self.worst = 0.0
        self.worst_at: datetime | None = None
        self.stalls = 0
        self._warned_at: float | None = None
        self._unwarned = 0

    def note(self, lag: float, now: float) -> None:
        """One wake ``lag`` seconds late at ``now`` (the loop's clock)."""
        lag = max(0.0, lag)
        self.last = lag
        if lag > self.worst:
            self.worst, self.worst_at = lag, datetime.now(timezone.utc)
        if lag <= STALL_S:
            return
        self.stalls += 1
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY_S:
            self._unwarned += 1
            return
        more = f" ({self._unwarned} more since the last warning)" if self._unwarned else ""
        log.warning("event loop stalled %.0f ms: every timer and reply waited that long%s; look at the CPU "
                    "(load, a worker holding the interpreter) before blaming a counterpart's timeouts",
                    lag * 1000, more)
        self._warned_at, self._unwarned = now, 0

    def as_dict(self) -> dict[str, Any]:
        return {"lag_ms": round(self.last * 1000, 3), "max_lag_ms": round(self.worst * 1000, 3),
                "max_lag_at": self.worst_at.isoformat() if self.worst_at else None, "stalls": self.stalls}


async def watch_loop_lag(lag: LoopLag, metrics: Any = None, period: float = PERIOD) -> None:
    """Sleep ``period`` again and again, noting how late each wake came; runs until cancelled."""
    histogram = getattr(metrics, "loop_lag", None)
    while True:
        asked = trio.current_time()
        await trio.sleep(period)
        now = trio.current_time()
        late = now - asked - period
        lag.note(late, now)
        if histogram is not None:
            histogram.observe(max(0.0, late))
