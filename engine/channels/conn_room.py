"""At ``max_connections``: a new connection takes the slot of a connection that can spare it.

One policy for every listener that caps its connections: ``tcp listen`` (``Activity`` below), ``http listen``
and the admin API (engine/http/room.py, ``HttpSlot``).  Peers that connect and then send nothing, or never
finish their TLS handshake, or never read their replies, would otherwise hold every slot and lock everyone
else (the mainframe, the callers, the admins) out.  So, at the cap, when a new peer is waiting to be
accepted, one connection is closed to make room, chosen in this order:

1. ``handshake``: the connection longest in its TLS handshake.  It has proven nothing yet (no certificate
   checked, no access list passed); it would otherwise hold its slot for ``handshake_timeout``.
2. ``idle``: the connection idle longest.  Idle means: nothing of a frame (a request) held, no request
   being handled and no reply (answer) waiting to be written.  Its idleness is measured from its last
   reply written (or from its start).
3. ``unread`` (``tcp listen`` only): the connection whose client has taken none of its replies for longest,
   once that is over ``STALL`` seconds (a send of replies blocked that long: the client does not read).
   Its replies not taken are lost to that client (the deals are recorded), as when a retired connection's
   client reads nothing for ``SEND_WAIT`` (engine/channels/retire.py).  An HTTP answer not taken ends its
   connection after ``write_timeout`` (10s, the same) by itself.

A connection with a request being read or handled, or whose replies are being taken, is never chosen.
The served side stamps ``last`` (and, for ``tcp listen``, ``sending``) once per batch or request.  A
connection chosen is closed at once: a handshake is cancelled; an idle wait ends; a blocked send is
cancelled; its socket is closed with ``EVICT_LINGER`` 0 (a FIN, its replies all written before; no linger
waiting for the peer to close, which a peer that never closes would make last a second per new
connection).  When no connection can be chosen, the new peer waits (in the OS backlog) until one ends or
can be chosen (that one is then closed the same way), with a warning saying why and what to change.

The warnings for connections closed for room go through the listener's ``FaultLog`` (engine/faultlog.py):
the first of each reason in full, the same again within its window counted and summed up in one line (a
peer reconnecting in a loop at the cap closes one connection per connect).  The pause warning is written
once per pause (a peer waiting at the cap), not per connection.
"""
from __future__ import annotations

import logging
from typing import Any

import trio

from engine.channels.retire import SEND_WAIT, StopReading
from engine.faultlog import FaultLog

log = logging.getLogger("bsp.channel.tcp")

EVICT_LINGER = 0.0     # seconds an evicted connection waits for its peer to close after the engine's FIN
STALL = SEND_WAIT      # seconds a send of replies may be blocked (the client reads nothing) before it may go
REASONS = ("handshake", "idle", "unread")      # why a connection was closed for room (metrics label)
NOUNS = {"handshake": "connections closed for room in their TLS handshake",      # the summary line's
         "idle": "idle connections closed for room",
         "unread": "connections closed for room whose client took no reply"}
IDLE_HINT = "set idle_timeout to close idle connections sooner; "
STATES = (("handling", "with a request being handled or answered"), ("reading", "reading a {unit} not complete yet"),
          ("unread", f"whose client has not taken its replies yet (closed for room after {STALL:g}s)"),
          ("closing", "closing"))


class Slot:
    """One connection holding a slot, as its room sees it: what the policy needs of any listener's."""

    __slots__ = ("room", "peer", "handshake", "gentle", "last", "evicted")

    def __init__(self, room: "Room", peer: str, gentle: Any) -> None:
        self.room = room
        self.peer = peer
        self.handshake: trio.CancelScope | None = trio.CancelScope()   # None once served
        self.gentle = gentle            # the GentleClose under it: an eviction closes it without linger
        self.last = trio.current_time()
        self.evicted = ""               # the reason it was closed for room ("" : not)

    def served(self) -> None:
        """Its TLS handshake (if any) is done: it is served from now."""
        self.handshake = None
        self.last = trio.current_time()

    @property
    def idle(self) -> bool:
        return False

    def unread_since(self) -> float | None:
        """Since when a send of its replies has been blocked (its client reads none), or None."""
        return None

    def state(self) -> str:
        """What keeps it busy, a key of ``STATES`` ("" : in its handshake, or idle)."""
        return "handling"

    def label(self) -> str:
        return f"the connection from {self.peer}"

    def close_idle(self) -> None:
        raise NotImplementedError

    def close_unread(self) -> None:
        raise NotImplementedError


class Activity(Slot):
    """A ``tcp listen`` connection; ``serve_stream`` keeps ``pending``, ``last`` and ``sending``."""

    __slots__ = ("conn", "framer", "stop", "pending", "sending")

    def __init__(self, room: "Room", peer: str, gentle: Any) -> None:
        super().__init__(room, peer, gentle)
        self.conn: Any = None
        self.framer: Any = None
        self.stop: StopReading | None = None
        self.pending = 0                # batches read and not yet answered
        self.sending: float | None = None   # when the send of replies under way started

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

    def unread_since(self) -> float | None:
        return self.sending if self.stop is not None and not self.stop.aborted else None

    def state(self) -> str:
        if self.stop is None:
            return ""
        if self.stop.cancel_called:
            return "closing"
        if self.sending is not None:
            return "unread"
        return "handling" if self.pending else "reading"

    def label(self) -> str:
        return f"connection {self.conn.number} from {self.conn.peer}"

    def close_idle(self) -> None:
        assert self.stop is not None
        # its read ends now; nothing is held or owed: it closes at once (no read of what may have arrived:
        # the slot is wanted now)
        self.stop.cancel(arrived=False)

    def close_unread(self) -> None:
        assert self.stop is not None
        self.stop.cut()                 # no more reading; the send waiting for the client ends now


def cap_place(decl: Any) -> str | None:
    """Where ``max_connections`` (else the channel) is declared in ``decl``'s configuration: FILE:LINE:COL, the
    place the warnings at the cap name (``Room.place``; a kept channel takes its new one at the swap)."""
    pos = (getattr(decl, "option_pos", None) or {}).get("max_connections") or getattr(decl, "pos", None)
    return str(pos) if pos is not None else None


class Room:
    """The ``max_connections`` slots of one listener.

    ``channel``: the metrics label and the warnings' "channel NAME" (None: not a channel, e.g. the admin
    API: ``title`` on ``address`` instead, no metrics).  ``limit``: what the cap is called in the warnings;
    ``hint``: what to change (default: raise max_connections of the channel, at ``place``); ``idle_hint``:
    how to close idle connections sooner; ``unit``: what a connection reads (the warnings); ``backlog``: the
    listening socket's (None: the system's).  ``faults``: the listener's ``FaultLog``, whose ``what`` is
    ``who`` ("channel NAME"), the connections closed for room are logged through (None: the room's own, for
    the admin API; its listener runs ``faults.run`` and ``faults.flush``)."""

    def __init__(self, channel: str | None, cap: int, place: str | None = None, backlog: int | None = 128, *,
                 title: str = "", limit: str = "max_connections", hint: str | None = None,
                 idle_hint: str = IDLE_HINT, unit: str = "frame", logger: logging.Logger = log,
                 faults: FaultLog | None = None) -> None:
        self.channel = channel
        self.cap = cap
        self.backlog = backlog          # the listening socket's (for the warning)
        self.place = place              # where max_connections (or the channel) is declared: FILE:LINE:COL
        self.title, self.address, self.limit, self.hint, self.idle_hint = title, "", limit, hint, idle_hint
        self.unit = unit                # what a connection reads: a frame, a request
        self.log = logger
        self.free = cap
        self.open: set[Slot] = set()
        self.wanted = 0                 # peers waiting at the cap to be accepted
        self.evicting = 0               # connections evicted and not yet ended
        self.capped = 0                 # times accepting paused: no connection could be closed
        self.evicted = 0                # connections closed to make room
        self.metrics: Any = None        # engine.metrics.Metrics (``attach_metrics`` of the channel), or None
        self._own_faults = faults is None
        self.faults = FaultLog(logger, self.who, clock=trio.current_time) if faults is None else faults
        self._changed = trio.Event()

    @property
    def who(self) -> str:
        if self.channel is not None:
            return f"channel {self.channel}"
        return f"{self.title} on {self.address}" if self.address else self.title

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def take(self, listening: Any = None) -> None:
        """A slot for the next connection ``listening`` accepts (None: one already accepted waits for it):
        free, or made free by closing a connection that can spare it (module doc) once a peer waits to be
        accepted, or (none) the first that ends or can spare it."""
        if self.free:
            self.free -= 1
            return
        if listening is not None:
            await trio.lowlevel.wait_readable(listening)    # a peer waits in the backlog
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
                        if self.metrics is not None and self.channel is not None:
                            self.metrics.channel_capped.labels(self.channel).inc()
                        self.log.warning("%s", self.pause_text())
                    wake = self.next_stall(wake)
                with trio.move_on_at(wake):                 # a send blocked past STALL makes it choosable
                    await changed.wait()
            self.free -= 1
        finally:
            self.wanted -= 1

    def arrive(self, peer: str, gentle: Any, kind: type[Slot] = Activity) -> Any:
        """A connection accepted takes its slot (before its TLS handshake)."""
        slot = kind(self, peer, gentle)
        self.open.add(slot)
        return slot

    def enter(self, activity: Activity, conn: Any, framer: Any, stop: StopReading) -> None:
        """A ``tcp listen`` connection starts being served (after its TLS handshake and access check)."""
        activity.conn, activity.framer, activity.stop = conn, framer, stop
        activity.served()

    def leave(self, slot: Slot | None) -> None:
        """A connection that took a slot ended (``slot``: None when it never arrived)."""
        if slot is not None:
            self.open.discard(slot)
            if slot.evicted:
                self.evicting -= 1
        self.free += 1
        self.changed()

    def choose(self) -> tuple[Slot, str] | None:
        """The connection to close for room and why (module doc), or None."""
        now = trio.current_time()
        handshaking = [a for a in self.open if a.handshake is not None]
        if handshaking:
            return min(handshaking, key=lambda a: a.last), "handshake"
        idle = [a for a in self.open if a.idle]
        if idle:
            return min(idle, key=lambda a: a.last), "idle"
        unread = [(since, a) for since, a in self._sending() if now - since >= STALL]
        if unread:
            return min(unread, key=lambda pair: pair[0])[1], "unread"
        return None

    def _sending(self) -> list[tuple[float, Slot]]:
        return [(since, a) for a in self.open if (since := a.unread_since()) is not None]

    def next_stall(self, later: float) -> float:
        """When the first send blocked now passes ``STALL`` (its connection may then make room), at most
        ``later``; never now or before (no busy loop)."""
        now = trio.current_time()
        return min([since + STALL for since, _ in self._sending() if since + STALL > now], default=later)

    def evict_one(self) -> bool:
        """Close the connection that can best spare its slot; False when none can."""
        chosen = self.choose()
        if chosen is None:
            return False
        victim, why = chosen
        self.evicting += 1
        self.evicted += 1
        if self.metrics is not None and self.channel is not None:
            self.metrics.channel_evictions.labels(self.channel, why).inc()
        self.open.discard(victim)
        victim.evicted = why
        now = trio.current_time()
        full = f"{self.cap} connections open ({self.limit})"
        hint = self.raise_hint()
        if victim.gentle is not None:
            victim.gentle.linger = min(victim.gentle.linger, EVICT_LINGER)
        if why == "handshake":
            what = f"in its TLS handshake for {now - victim.last:.1f}s (the longest), to accept a new peer; {hint}"
            self._closed(why, f"{full}: closing the connection from {victim.peer}, {what}", victim.peer, what)
            victim.handshake.cancel()   # type: ignore[union-attr]
        elif why == "idle":
            what = (f"idle for {now - victim.last:.1f}s (the longest), to accept a new peer; "
                    f"{self.idle_hint}{hint}")
            self._closed(why, f"{full}: closing {victim.label()}, {what}", victim.peer, what)
            victim.close_idle()
        else:
            what = (f"whose client has taken no reply for {now - (victim.unread_since() or now):.1f}s (the "
                    f"longest), to accept a new peer; its replies not taken are lost to it (the deals are "
                    f"recorded); {hint}")
            self._closed(why, f"{full}: closing {victim.label()}, {what}", victim.peer, what)
            victim.close_unread()
        return True

    def _closed(self, why: str, text: str, peer: str, reason: str) -> None:
        """The warning for a connection closed for room: the first of its reason in full, a loop of them
        counted and summed up (engine/faultlog.py)."""
        if self._own_faults:
            self.faults.what = self.who         # the admin API's address is known once it listens
        self.faults.occurred(("closed for room", why), text, noun=NOUNS[why], source=peer, reason=reason,
                             logger=self.log)

    def raise_hint(self) -> str:
        if self.hint is not None:
            return self.hint
        where = f" ({self.place})" if self.place else ""
        return (f"if the counterparts need more connections at once, raise max_connections of channel "
                f"{self.channel}{where}")

    def pause_text(self) -> str:
        """The warning when accepting pauses: why no connection can make room, what happens, what to do."""
        counts = dict.fromkeys((key for key, _ in STATES), 0)
        for a in self.open:
            state = a.state()
            if state:
                counts[state] += 1
        counts["closing"] += self.evicting
        parts = [f"{counts[key]} {what.replace('{unit}', self.unit)}" for key, what in STATES if counts[key]]
        backlog = (f"{self.backlog} at most, option backlog" if self.backlog is not None
                   else "as many as the system's listen backlog")
        return (f"{self.who}: all {self.cap} connections ({self.limit}) are busy ("
                f"{', '.join(parts) or 'closing'}) and none can be closed to make room: accepting pauses, new "
                f"peers wait unanswered in the OS backlog ({backlog}; beyond it the system drops their "
                f"connects) until a connection ends or falls idle; {self.raise_hint()}")
