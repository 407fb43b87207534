"""A counting limiter that takes many tokens at once (one batch = one wait, not one per message)."""
from __future__ import annotations

import trio


class CountLimiter:
    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a concurrency limit must be >= 1, got {total}")
        self.total = total
        self.borrowed = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def acquire(self, n: int) -> int:
        """Take ``min(n, total)`` tokens, waiting until they are free; returns how many were taken."""
        n = min(n, self.total)
        while self.borrowed + n > self.total:
            await self._lot.park()
        self.borrowed += n
        return n

    def release(self, n: int) -> None:
        self.borrowed -= n
        self._lot.unpark_all()

    def statistics(self) -> dict[str, int]:
        return {"total": self.total, "borrowed": self.borrowed, "waiting": len(self._lot)}
