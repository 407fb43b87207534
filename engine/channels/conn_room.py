"""``tcp listen`` at ``max_connections``: a new connection takes the slot of a connection that can spare it.

Peers that connect and then send nothing, or never finish their TLS handshake, or never read their
replies, would otherwise hold every slot and lock everyone else (the mainframe) out.  So, at the cap,
when a new peer is waiting to be accepted, one connection is closed to make room, chosen in this order:

1. ``handshake``: the connection longest in its TLS handshake.  It has proven nothing yet (no certificate
   checked, no access list passed); it would otherwise hold its slot for ``handshake_timeout``.
2. ``idle``: the connection idle longest, as ``http listen`` does (engine/http/server.py).  Idle means:
   nothing of a frame held, no request being handled and no reply waiting to be written.  Its idleness is
   measured from its last reply written (or from its start).
3. ``unread``: the connection whose client has taken none of its replies for longest, once that is over
   ``STALL`` seconds (a send of replies blocked that long: the client does not read).  Its replies not
   taken are lost to that client (the deals are recorded), as when a retired connection's client reads
   nothing for ``SEND_WAIT`` (engine/channels/retire.py).

A connection with a request being read or handled, or whose replies are being taken, is never chosen.
``serve_stream`` stamps ``Activity.last`` and ``Activity.sending`` once per batch, nothing per message.
An idle connection chosen is retired (engine/channels/retire.py): its read, waiting with nothing held, ends
at once, and the socket is closed at once (``EVICT_LINGER`` 0: a FIN, its replies all written before; no
linger waiting for the peer to close, which a peer that never closes would make last a second per new
connection); a handshake or a blocked send is cancelled and the socket closed.  When no connection can be
chosen, the new peer waits in the OS backlog until one ends or can be chosen (that one is then closed the
same way), with a warning saying why and what to change.
"""
from __future__ import annotations

import logging
from typing import Any

import trio

from engine.channels.retire import SEND_WAIT, StopReading

log = logging.getLogger("bsp.channel.tcp")

EVICT_LINGER = 0.0     # seconds an evicted connection waits for its peer to close after the engine's FIN
STALL = SEND_WAIT      # seconds a send of replies may be blocked (the client reads nothing) before it may go
REASONS = ("handshake", "idle", "unread")      # why a connection was closed for room (metrics label)


class Activity:
    """One connection holding a slot, as its room sees it; ``serve_stream`` keeps ``pending``, ``last``
    and ``sending``."""

    __slots__ = ("room", "peer", "handshake", "conn", "framer", "stop", "gentle", "last", "pending",
                 "sending", "evicted")

    def __init__(self, room: "Room", peer: str, gentle: Any) -> None:
        self.room = room
        self.peer = peer
        self.handshake: trio.CancelScope | None = trio.CancelScope()   # None once served
        self.conn: Any = None
        self.framer: Any = None
        self.stop: StopReading | None = None
        self.gentle = gentle            # the GentleClose under it: an eviction closes it without linger
        self.last = trio.current_time()
        self.pending = 0                # batches read and not yet answered
        self.sending: float | None = None   # when the send of replies under way started
        self.evicted = ""               # the reason it was closed for room ("" : not)

    def send_started(self) -> None:
        """A batch's replies are being written (``serve_stream``'s writer, once per batch)."""
        self.sending = trio.current_time()

    def answered(self) -> None:
        """A batch's replies are written (``serve_stream``'s writer, once per batch)."""
        self.pending -= 1
        self.sending = None
        self.last = trio.current_time()
        if not self.pending and self.room.wanted:
            self.room.changed()         # a peer waits at the cap: this one may make room now

    @property
    def idle(self) -> bool:
        return (self.handshake is None and not self.pending and not self.framer.buffered
                and not self.stop.cancel_called)


class Room:
    """The ``max_connections`` slots of one listener."""

    def __init__(self, channel: str, cap: int, place: str | None = None, backlog: int = 128) -> None:
        self.channel = channel
        self.cap = cap
        self.backlog = backlog          # the listening socket's (for the warning)
        self.place = place              # where max_connections (or the channel) is declared: FILE:LINE:COL
        self.free = cap
        self.open: set[Activity] = set()
        self.wanted = 0                 # peers waiting at the cap to be accepted
        self.evicting = 0               # connections evicted and not yet ended
        self.capped = 0                 # times accepting paused: no connection could be closed
        self.evicted = 0                # connections closed to make room
        self.metrics: Any = None        # engine.metrics.Metrics (``TcpListener.attach_metrics``), or None
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def take(self, listening: Any) -> None:
        """A slot for the next connection ``listening`` accepts: free, or made free by closing a connection
        that can spare it (module doc) once a peer waits to be accepted, or (none) the first that ends or
        can spare it."""
        if self.free:
            self.free -= 1
            return
        await trio.lowlevel.wait_readable(listening)        # a peer waits in the backlog
        self.wanted += 1
        paused = False
        try:
            while not self.free:
                changed = self._changed
                wake = trio.current_time() + 3600.0
                if self.evicting < self.wanted and not self.evict_one():
                    if not paused:
                        paused = True
                        self.capped += 1
                        if self.metrics is not None:
                            self.metrics.channel_capped.labels(self.channel).inc()
                        log.warning("%s", self.pause_text())
                    wake = self.next_stall(wake)
                with trio.move_on_at(wake):                 # a send blocked past STALL makes it choosable
                    await changed.wait()
            self.free -= 1
        finally:
            self.wanted -= 1

    def arrive(self, peer: str, gentle: Any) -> Activity:
        """A connection accepted takes its slot (before its TLS handshake)."""
        activity = Activity(self, peer, gentle)
        self.open.add(activity)
        return activity

    def enter(self, activity: Activity, conn: Any, framer: Any, stop: StopReading) -> None:
        """The connection starts being served (after its TLS handshake and access check)."""
        activity.handshake = None
        activity.conn, activity.framer, activity.stop = conn, framer, stop
        activity.last = trio.current_time()

    def leave(self, activity: Activity | None) -> None:
        """A connection that took a slot ended (``activity``: None when it never arrived)."""
        if activity is not None:
            self.open.discard(activity)
            if activity.evicted:
                self.evicting -= 1
        self.free += 1
        self.changed()

    def choose(self) -> tuple[Activity, str] | None:
        """The connection to close for room and why (module doc), or None."""
        now = trio.current_time()
        handshaking = [a for a in self.open if a.handshake is not None]
        if handshaking:
            return min(handshaking, key=lambda a: a.last), "handshake"
        idle = [a for a in self.open if a.idle]
        if idle:
            return min(idle, key=lambda a: a.last), "idle"
        unread = [a for a in self._sending() if now - a.sending >= STALL]     # type: ignore[operator]
        if unread:
            return min(unread, key=lambda a: a.sending), "unread"      # type: ignore[arg-type,return-value]
        return None

    def _sending(self) -> list[Activity]:
        return [a for a in self.open if a.sending is not None and not a.stop.aborted]   # type: ignore[union-attr]

    def next_stall(self, later: float) -> float:
        """When the first send blocked now passes ``STALL`` (its connection may then make room), at most
        ``later``; never now or before (no busy loop)."""
        now = trio.current_time()
        return min([a.sending + STALL for a in self._sending() if a.sending + STALL > now],  # type: ignore[operator]
                   default=later)

    def evict_one(self) -> bool:
        """Close the connection that can best spare its slot; False when none can."""
        chosen = self.choose()
        if chosen is None:
            return False
        victim, why = chosen
        self.evicting += 1
        self.evicted += 1
        if self.metrics is not None:
            self.metrics.channel_evictions.labels(self.channel, why).inc()
        self.open.discard(victim)
        victim.evicted = why
        now = trio.current_time()
        full = f"channel {self.channel}: {self.cap} connections open (max_connections)"
        hint = self.raise_hint()
        if why == "handshake":
            log.warning("%s: closing the connection from %s, in its TLS handshake for %.1fs (the longest), to "
                        "accept a new peer; %s", full, victim.peer, now - victim.last, hint)
            victim.handshake.cancel()   # type: ignore[union-attr]
            return True
        if victim.gentle is not None:
            victim.gentle.linger = min(victim.gentle.linger, EVICT_LINGER)
        conn, stop = victim.conn, victim.stop
        assert stop is not None
        if why == "idle":
            log.warning("%s: closing connection %s from %s, idle for %.1fs (the longest), to accept a new "
                        "peer; set idle_timeout to close idle connections sooner; %s",
                        full, conn.number, conn.peer, now - victim.last, hint)
            stop.cancel()               # its read ends now; nothing is held or owed: it closes at once
        else:
            log.warning("%s: closing connection %s from %s, whose client has taken no reply for %.1fs (the "
                        "longest), to accept a new peer; its replies not taken are lost to it (the deals are "
                        "recorded); %s", full, conn.number, conn.peer, now - victim.sending, hint)
            stop.cut()                  # no more reading; the send waiting for the client ends now
        return True

    def raise_hint(self) -> str:
        where = f" ({self.place})" if self.place else ""
        return (f"if the counterparts need more connections at once, raise max_connections of channel "
                f"{self.channel}{where}")

    def pause_text(self) -> str:
        """The warning when accepting pauses: why no connection can make room, what happens, what to do."""
        reading = handling = unread = closing = 0
        for a in self.open:
            if a.stop is None:
                continue
            if a.stop.cancel_called:
                closing += 1
            elif a.sending is not None:
                unread += 1
            elif a.pending:
                handling += 1
            else:
                reading += 1
        closing += self.evicting
        parts = [f"{n} {what}" for n, what in (
            (handling, "with a request being handled or answered"),
            (reading, "reading a frame not complete yet"),
            (unread, f"whose client has not taken its replies yet (closed for room after {STALL:g}s)"),
            (closing, "closing")) if n]
        return (f"channel {self.channel}: all {self.cap} connections (max_connections) are busy ("
                f"{', '.join(parts) or 'closing'}) and none can be closed to make room: accepting pauses, new "
                f"peers wait unanswered in the OS backlog ({self.backlog} at most, option backlog; beyond it the "
                f"system drops their connects) until a connection ends or falls idle; {self.raise_hint()}")
