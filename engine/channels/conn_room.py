"""``tcp listen`` at ``max_connections``: a new connection takes the slot of the connection idle longest.

Peers that connect and then send nothing would otherwise hold every slot (for ever when ``idle_timeout``
is not set) and lock everyone else out.  So, at the cap, when a new peer is waiting to be accepted, the
connection idle longest is closed to make room, as ``http listen`` does (engine/http/server.py).

Idle means: nothing of a frame held, no request being handled and no reply waiting to be written (a
connection with work in flight is never chosen).  Its idleness is measured from its last reply written
(or from its start): ``serve_stream`` stamps ``Activity.last`` once per batch, nothing per message.
The chosen connection is retired (engine/channels/retire.py): its read, waiting with nothing held, ends at
once, and the socket is closed at once (``EVICT_LINGER`` 0: a FIN, its replies all written before; no
linger waiting for the peer to close, which a peer that never closes would make last a second per new
connection).  When every connection has work in flight, the new peer waits in the backlog until one ends
or falls idle (that one is then closed the same way).
"""
from __future__ import annotations

import logging
from typing import Any

import trio

from engine.channels.retire import StopReading

log = logging.getLogger("bsp.channel.tcp")

EVICT_LINGER = 0.0     # seconds an evicted connection waits for its peer to close after the engine's FIN


class Activity:
    """One served connection as its room sees it; ``serve_stream`` keeps ``pending`` and ``last``."""

    __slots__ = ("room", "conn", "framer", "stop", "gentle", "last", "pending", "evicted")

    def __init__(self, room: "Room", conn: Any, framer: Any, stop: StopReading, gentle: Any) -> None:
        self.room = room
        self.conn = conn
        self.framer = framer
        self.stop = stop
        self.gentle = gentle            # the GentleClose under it: an eviction closes it without linger
        self.last = trio.current_time()
        self.pending = 0                # batches read and not yet answered
        self.evicted = False

    def answered(self) -> None:
        """A batch's replies are written (``serve_stream``'s writer, once per batch)."""
        self.pending -= 1
        self.last = trio.current_time()
        if not self.pending and self.room.wanted:
            self.room.changed()         # a peer waits at the cap: this one may make room now

    @property
    def idle(self) -> bool:
        return not self.pending and not self.framer.buffered and not self.stop.cancel_called


class Room:
    """The ``max_connections`` slots of one listener."""

    def __init__(self, channel: str, cap: int) -> None:
        self.channel = channel
        self.cap = cap
        self.free = cap
        self.open: set[Activity] = set()
        self.wanted = 0                 # peers waiting at the cap to be accepted
        self.evicting = 0               # connections evicted and not yet ended
        self.capped = 0                 # times accepting paused: every connection had work in flight
        self.evicted = 0                # connections closed to make room
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def take(self, listening: Any) -> None:
        """A slot for the next connection ``listening`` accepts: free, or made free by closing the
        connection idle longest once a peer waits to be accepted, or (none idle) the first to end or fall
        idle."""
        if self.free:
            self.free -= 1
            return
        await trio.lowlevel.wait_readable(listening)        # a peer waits in the backlog
        self.wanted += 1
        paused = False
        try:
            while not self.free:
                changed = self._changed
                if self.evicting < self.wanted and not self.evict_one() and not paused:
                    paused = True
                    self.capped += 1
                    log.warning("channel %s: %d connections open (max_connections), each with a request in "
                                "flight: accepting pauses until one ends or falls idle", self.channel, self.cap)
                await changed.wait()
            self.free -= 1
        finally:
            self.wanted -= 1

    def enter(self, conn: Any, framer: Any, stop: StopReading, gentle: Any) -> Activity:
        """A connection starts being served (after its TLS handshake and access check)."""
        activity = Activity(self, conn, framer, stop, gentle)
        self.open.add(activity)
        return activity

    def leave(self, activity: Activity | None) -> None:
        """A connection that took a slot ended (``activity``: None when it was never served)."""
        if activity is not None:
            self.open.discard(activity)
            if activity.evicted:
                self.evicting -= 1
        self.free += 1
        self.changed()

    def evict_one(self) -> bool:
        """Close the connection idle longest; False when every connection has work in flight."""
        idle = [a for a in self.open if a.idle]
        if not idle:
            return False
        victim = min(idle, key=lambda a: a.last)
        self.evicting += 1
        self.evicted += 1
        self.open.discard(victim)
        victim.evicted = True
        if victim.gentle is not None:
            victim.gentle.linger = min(victim.gentle.linger, EVICT_LINGER)
        conn = victim.conn
        log.warning("channel %s: %d connections open (max_connections): closing connection %s from %s, idle "
                    "for %.1fs (the longest), to accept a new peer; set idle_timeout to close idle "
                    "connections sooner", self.channel, self.cap, conn.number, conn.peer,
                    trio.current_time() - victim.last)
        victim.stop.cancel()            # its read ends now; nothing is held or owed: it closes at once
        return True
