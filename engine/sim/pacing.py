"""Pacing a simulated load: at most ``rate`` requests a second, shared by every connection.

    pacer = Pacer(50)                    # 50 requests/s across the connections that share it
    k = await pacer.take(room)           # waits for the next slot; 1 <= k <= room may be sent now

Slots are ``1/rate`` apart from the first ``take``.  A sender that fell behind (its window was full, the
engine slow to answer) catches up by at most ``burst`` seconds' worth of slots, so a stalled engine that
recovers is not hit with everything that was due meanwhile.
"""
from __future__ import annotations

import math

import trio


class Pacer:
    def __init__(self, rate: float, *, burst: float = 0.05) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate {rate!r}: expected requests per second > 0")
        self.interval = 1.0 / rate
        self.burst = max(1, int(rate * burst))
        self.next: float | None = None

    async def take(self, want: int) -> int:
        """Wait for the next slot, then claim the slots due by now (at least 1, at most ``want``)."""
        if want <= 0:
            return 0
        now = trio.current_time()
        if self.next is None:
            self.next = now
        while self.next > now:
            await trio.sleep_until(self.next)
            now = trio.current_time()
        self.next = max(self.next, now - (self.burst - 1) * self.interval)
        due = min(want, self.burst, int((now - self.next) / self.interval) + 1)
        self.next += due * self.interval
        return due
