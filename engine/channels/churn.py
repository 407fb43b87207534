"""A peer reconnecting in a storm: connections one client address opens on a ``tcp listen`` channel, counted
per minute, warned of once a minute while it lasts.

    churn = ConnectChurn(faults, channel="mainframe")     # the listener's FaultLog (engine/faultlog.py)
    churn.connected("10.1.2.3:51234")                     # at each connection accepted

A mainframe or switch keeps a handful of connections open for hours.  One that opens and closes them over
and over (a timeout of its own shorter than the replies take, a crash loop, a health check gone wild) is
served connection by connection, under every cap: nothing was logged, and ``bsp status`` counted
connections without saying whose.  At ``STORM_CONNECTS`` connections from one address within
``STORM_WINDOW`` seconds a warning names the address, the count and what to do; the counts start again
each window (so a storm that goes on is said once a window, through the FaultLog), and at most
``MAX_CLIENTS`` addresses are counted in a window (a flood from many addresses is what
``max_connections`` and its warnings are for).  O(1) per connection.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import trio

__all__ = ["ConnectChurn", "STORM_CONNECTS", "STORM_WINDOW"]

STORM_CONNECTS = 100      # connections from one address within STORM_WINDOW: a reconnect storm
STORM_WINDOW = 60.0
MAX_CLIENTS = 10_000


class ConnectChurn:
    def __init__(self, faults: Any, *, channel: str, connects: int = STORM_CONNECTS, window: float = STORM_WINDOW,
                 clock: Callable[[], float] = trio.current_time) -> None:
        self.faults, self.channel, self.connects, self.window, self.clock = faults, channel, connects, window, clock
        self.counts: dict[str, int] = {}
        self.started: float | None = None
        self.storms = 0                       # warnings (one per address and window), for bsp status and tests

    def connected(self, peer: str) -> None:
        now = self.clock()
        if self.started is None or now - self.started >= self.window:
            self.counts.clear()
            self.started = now
        host = peer.rsplit(":", 1)[0] if ":" in peer else peer
        n = self.counts.get(host)
        if n is None:
            if len(self.counts) >= MAX_CLIENTS:
                return
            n = 0
        self.counts[host] = n = n + 1
        if n == self.connects:
            self.storms += 1
            self.faults.occurred(
                ("reconnect storm", host),
                f"{n} connections from {host} within {self.window:g}s: a peer reconnecting in a storm (each is "
                f"served; the rate is bsp_channel_accepted_total); ask that peer why it reconnects (a timeout "
                f"shorter than the replies take, a crash loop), and if it also holds many connections open at once, cap them with max_connections_per_client",
                noun=f"reconnect storm warnings from {host}", source=host,
                reason=f"{n} connections within {self.window:g}s", level=logging.WARNING)
