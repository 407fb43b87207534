"""Retiring an inbound stream connection (a drain, or a reload that changed or removed its channel) without
losing a request.

    stop = StopReading()                        # serve_stream's ``stop``; ``stop.cancel()`` retires
    stream = GentleClose(socket_stream)         # under TLS too: trio.SSLStream(GentleClose(...), ...)

The contract a client relies on: every request the engine read is answered, and the connection then ends
cleanly, after the last reply (TLS ``close_notify``, then a TCP FIN; never a reset).  So a request the
client got no reply to before that end was not read, and the client may send it again (to the new listener
after a reload).

- ``StopReading``: reading stops at a frame boundary.  A read waiting with nothing buffered is cancelled at
  once; a frame half read when the retirement comes is read to its end first (``Framer.missing`` bytes at
  most, so nothing of the next frame is taken), within ``FINISH_FRAME`` seconds.  A connection idle when
  retired (nothing held, every request it read answered) first serves what has already arrived: one read
  of at most ``ARRIVED_WINDOW`` seconds takes the bytes waiting in its receive buffer (a client that sent
  its request just as the retirement came, e.g. on a connection accepted just before accepting stopped);
  every whole request in them is answered, a request cut at the end of that read is read to its end as a
  half-read frame is (``FINISH_FRAME``), nothing after it.  Nothing there: the connection ends after that
  window, no later.
- ``StopReading.send_scope``: a client that reads none of its replies would hold a retired connection
  (and the generation it runs on) for ever, the engine's send waiting for room; once retired, each send
  may wait ``SEND_WAIT`` seconds at most, then the connection is ended at once (its replies not taken are
  lost to that client; the deals are recorded).
- ``GentleClose``: closing the socket while the client's later requests sit unread in the kernel's receive
  buffer would make the kernel send a reset, which also throws away replies not yet transmitted; the
  client could then not tell what was read.  ``aclose`` therefore half-closes (FIN after the replies and
  the TLS close_notify), then reads and discards what the client still sends until it closes its side, at
  most ``LINGER`` seconds, and only then closes.  ``aclose_forcefully`` (a broken or failed connection)
  closes at once.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable

import trio

log = logging.getLogger("bsp.channel")

FINISH_FRAME = 10.0     # seconds a retired connection may take to complete the frame it was reading
LINGER = 5.0            # seconds a retired connection waits for the client to close after the engine's close
SEND_WAIT = 10.0        # seconds one send of a retired connection may wait for the client to take the replies
ARRIVED_WINDOW = 0.05   # seconds a connection idle when retired reads what already arrived before it ends


class StopReading:
    """``serve_stream``'s ``stop``: ``cancel()`` (a drain) stops reading at the next frame boundary,
    ``abort()`` (the peer is gone) at once."""

    def __init__(self, send_wait: float = SEND_WAIT) -> None:
        self.cancel_called = False
        self.aborted = False
        self.finish_by = math.inf          # once retired mid-frame: when the frame must be complete
        self.send_wait = send_wait
        self._scope: trio.CancelScope | None = None
        self._send: trio.CancelScope | None = None
        # ``serve_stream`` sets it: True while nothing is held and every batch read is answered
        self.idle: Callable[[], bool] = lambda: True
        self.arrived_read = False       # retired idle: one read of what already arrived is due (once)
        self.in_window = False         # the next read is that one

    def cancel(self, *, arrived: bool = True) -> None:
        """Retire.  ``arrived=False``: no read of what already arrived, an idle connection ends at once (one
        closed for room at max_connections, engine/channels/conn_room.py)."""
        if not self.cancel_called:
            self.cancel_called = True
            self.arrived_read = arrived and self.idle()
            self.finish_by = trio.current_time() + FINISH_FRAME
            if self._send is not None:
                self._send.deadline = min(self._send.deadline, trio.current_time() + self.send_wait)
        if self._scope is not None and not self.in_window:
            # a read under way may take more than the rest of a frame held: it is cancelled (nothing read
            # is lost) and ``serve_stream`` reads again, at most ``Framer.missing`` bytes (retired idle:
            # first the read of what already arrived)
            self._scope.cancel()

    def abort(self) -> None:
        self.cancel_called = self.aborted = True
        if self._scope is not None:
            self._scope.cancel()

    def cut(self) -> None:
        """Abort, and end a send of replies waiting for the client now (closed for room: its client takes
        none of its replies, engine/channels/conn_room.py)."""
        self.abort()
        if self._send is not None:
            self._send.cancel()

    def read_scope(self) -> trio.CancelScope:
        """The scope of one read; once retired, it ends at ``finish_by``."""
        scope = trio.CancelScope()
        if self.aborted:
            scope.cancel()
        elif self.in_window:
            scope.deadline = trio.current_time() + ARRIVED_WINDOW
        elif self.cancel_called:
            scope.deadline = self.finish_by
        self._scope = scope
        return scope

    def send_scope(self) -> trio.CancelScope:
        """The scope of one send of replies; once retired, it ends ``send_wait`` seconds after it starts
        (or after the retirement, for a send under way then)."""
        scope = trio.CancelScope()
        if self.cancel_called:
            scope.deadline = trio.current_time() + self.send_wait
        self._send = scope
        return scope

    def stops_before_read(self, buffered: int) -> bool:
        """True when no more may be read: retired at a frame boundary, aborted, or the frame held did
        not complete in time.  Retired idle, the read of what already arrived comes first (once)."""
        self.in_window = False
        if self.aborted:
            return True
        if not self.cancel_called:
            return False
        if buffered == 0 and self.arrived_read:
            self.arrived_read = False
            self.in_window = True
            return False
        return buffered == 0 or trio.current_time() >= self.finish_by


def read_size(stop: StopReading, framer: Any, size: int) -> int:
    """How much the next read may take: ``size`` (also the read of what already arrived at a retirement
    found idle), or once retiring only the rest of the frame held."""
    if not stop.cancel_called or stop.in_window:
        return size
    missing = framer.missing
    return size if missing is None else max(1, min(size, missing))


class GentleClose(trio.abc.HalfCloseableStream):
    """A ``trio.SocketStream`` whose ``aclose`` ends the connection cleanly (see the module's doc)."""

    def __init__(self, inner: trio.SocketStream, *, channel: str = "?", linger: float = LINGER) -> None:
        self.inner = inner
        self.socket = inner.socket
        self.channel = channel
        self.linger = linger
        self.discarded = 0          # bytes the client sent after the engine stopped reading (not read)
        self._closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            if self.linger > 0 and trio.current_effective_deadline() != -math.inf:   # not aclose_forcefully
                with trio.move_on_after(self.linger):
                    await self.inner.send_eof()
                    while True:
                        data = await self.inner.receive_some(65536)
                        if not data:
                            break
                        self.discarded += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self.inner.socket.close()
            await trio.lowlevel.checkpoint_if_cancelled()
