"""An HTTP connection as the ``max_connections`` room sees it (engine/channels/conn_room.py: one policy
for ``tcp listen``, ``http listen`` and the admin API).

At the cap a new connection takes the slot of the connection longest in its TLS handshake, else of the one
idle longest: waiting for its next request (or its first) since its last answer.  One reading a request
(bounded by ``read_timeout``), running one or writing its answer (bounded by ``write_timeout``) is never
chosen.  The server stamps a slot twice per request (its wait for a request starts, its first byte
arrives); nothing else on the hot path."""
from __future__ import annotations

import logging
from typing import Any

import h11
import trio

from engine.channels.conn_room import IDLE_HINT, Room, Slot
from engine.faultlog import FaultLog


class HttpSlot(Slot):
    """One HTTP connection holding a slot (``serve_connection`` keeps ``connection`` and ``waiting``)."""

    __slots__ = ("connection", "waiting")

    def __init__(self, room: Room, peer: str, gentle: Any) -> None:
        super().__init__(room, peer, gentle)
        self.connection: Any = None                     # engine.http.server._Connection, once served
        self.waiting: trio.CancelScope | None = None    # its wait for a request's first byte, if waiting

    def wait_starts(self, scope: trio.CancelScope, now: float) -> None:
        """It waits for a request (its last answer is written): idle from ``now``; ``scope`` ends the wait."""
        self.waiting = scope
        self.last = now
        if self.room.wanted:
            self.room.changed()         # a peer waits at the cap: this one may make room now

    def wait_ends(self) -> None:
        self.waiting = None

    @property
    def idle(self) -> bool:
        return self.waiting is not None and not self.waiting.cancel_called

    def state(self) -> str:
        c = self.connection
        if c is None or self.handshake is not None:
            return ""
        if c.retiring:
            return "closing"
        if c.started and c.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            return "reading"
        return "handling"

    def close_idle(self) -> None:
        assert self.waiting is not None
        self.waiting.cancel()           # its wait ends now: it closes quietly, as at idle_timeout


def http_room(cap: int, *, channel: str | None = None, title: str = "HTTP server", limit: str = "max_connections",
              hint: str | None = None, idle_hint: str = IDLE_HINT, logger: logging.Logger | None = None,
              faults: FaultLog | None = None) -> Room:
    """The room of one HTTP server (its listening sockets' backlog is the system's); ``faults``: the
    channel's ``FaultLog`` (None: the room's own, which the server's owner runs: the admin API)."""
    if hint is None and channel is None:
        hint = "if its clients need more connections at once, raise its max_connections"
    return Room(channel, cap, backlog=None, title=title, limit=limit, hint=hint, idle_hint=idle_hint,
                unit="request", logger=logger or logging.getLogger("bsp.http"), faults=faults)


def peer_text(peer: Any) -> str:
    return "%s:%s" % tuple(peer[:2]) if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
