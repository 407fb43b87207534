"""The listening sockets of a ``tcp listen`` / ``http listen`` channel, handed over on a reload.

    sockets = ListenSockets()                         # one per channel object
    listeners = await sockets.open(host, port, backlog)   # bound now, or the ones handed over
    ...accept on them until the channel stops accepting...
    await sockets.release()                           # closed, or kept for the channel that adopts them

    hand_over(old_channel, new_channel)               # engine/ops/live.py, at the swap, before old stops

A listening socket outlives a configuration generation (as nginx keeps its
sockets on a reload): when a reload replaces a listening channel whose address
is unchanged, the new channel adopts the old one's sockets instead of binding.
The old one stops calling accept() and keeps them open; connections waiting
in the kernel's accept queue stay there and the new channel accepts them.
Closing the old socket first and binding again left the port closed for a few
milliseconds: connects refused, and a connection in the old queue reset.

Connections the new channel accepts get its options (framing, TLS context,
access list, max_connections); its ``backlog`` is applied to the sockets
(listen() again).  Those the old one accepted drain as on any retirement.
Nothing is handed over before the swap: a reload that fails leaves the old
channel accepting on its sockets.
"""
from __future__ import annotations

from typing import Any

import trio

HANDOVER_WAIT = 5.0     # seconds a new channel waits for the old one to stop accepting, then binds itself


class ListenSockets:
    """The listening sockets one channel object accepts on (trio ``SocketListener`` s)."""

    def __init__(self) -> None:
        self.listeners: list[trio.SocketListener] = []
        self._from: ListenSockets | None = None     # the old channel's, to adopt at ``open``
        self._handing = False                       # ``release`` keeps them open for the adopter
        self._released = trio.Event()               # the owner accepts no more on them (kept or closed)
        self.adopted = False                        # ``open`` took sockets handed over (no bind)

    def adopt_from(self, old: "ListenSockets") -> bool:
        """At the swap, before the old channel stops accepting: ``open`` will take ``old``'s sockets
        (False: ``old`` has none open now, ``open`` binds)."""
        if not old.listeners or old._released.is_set() or old._handing:
            return False
        old._handing = True
        self._from = old
        return True

    async def open(self, host: str | None, port: int, backlog: int | None = None) -> list[trio.SocketListener]:
        """The sockets handed over (once their old owner accepts no more), else new ones bound now."""
        source, self._from = self._from, None
        if source is not None:
            with trio.move_on_after(HANDOVER_WAIT):
                await source._released.wait()
            if not source._released.is_set():        # the old channel is stuck: its sockets go, bind anew
                for lst in source.listeners:
                    lst.socket.close()
                source.listeners = []
            taken, source.listeners = source.listeners, []
            if taken:
                self.listeners, self.adopted = taken, True
                if backlog is not None:
                    for lst in taken:
                        lst.socket.listen(backlog)       # this generation's backlog from now on
                return taken
        kw = {"backlog": backlog} if backlog is not None else {}
        self.listeners = await trio.open_tcp_listeners(port, host=host, **kw)
        return self.listeners

    async def release(self) -> None:
        """The owner accepts no more: close the sockets, unless a new channel adopts them (then they stay
        open, connections waiting to be accepted with them)."""
        try:
            if not self._handing:
                listeners, self.listeners = self.listeners, []
                for lst in listeners:
                    await lst.aclose()
        finally:
            self._released.set()

    def close_now(self) -> None:
        """The owner ends (also by a failure): what it holds closes, unless handed over (then it stays open
        for the adopter, even if this owner failed while accepting); idempotent."""
        if not self._handing:
            listeners, self.listeners = self.listeners, []
            for lst in listeners:
                lst.socket.close()
        self._released.set()

    def drop(self) -> None:
        """A channel that could not start: close the sockets it holds and those handed over to it that it has
        not taken (no one else will)."""
        source, self._from = self._from, None
        for held in (self, source):
            if held is not None:
                listeners, held.listeners = held.listeners, []
                for lst in listeners:
                    lst.socket.close()


def hand_over(old: Any, new: Any) -> bool:
    """``new`` (a channel replacing ``old`` on the same address) will accept on ``old``'s sockets; call before
    ``old.stop_accepting()``.  False: one of them cannot (another kind) or ``old`` has no socket open."""
    a, b = getattr(old, "sockets", None), getattr(new, "sockets", None)
    if not isinstance(a, ListenSockets) or not isinstance(b, ListenSockets):
        return False
    return b.adopt_from(a)
