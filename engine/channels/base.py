"""The two channel contracts and the per-connection loop they share.

Listener (inbound):
    await nursery.start(listener.serve, handler)   # returns once listening
    listener.stop_accepting()                        # drain: no new connections, no new reads
The handler is an ``ExchangeHandler``: ``await handler.handle(conn, frames)``
returns one reply (bytes or None) per frame, in order; ``await
handler.framing_error(conn, err)`` returns an error reply or None.

Connector (outbound):
    await nursery.start(connector.run)              # returns at once; connects lazily, reconnects
    await connector.request_many(payloads, timeout) # list of reply bytes or ChannelError, in order

Errors follow trio's split: ``Unreachable`` (cannot connect), ``ConnectionLost``
(the outside broke it), ``CallTimeout`` (no reply in time).
"""
from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import trio

from engine.channels.retire import FINISH_FRAME, LINGER, StopReading, read_size
from engine.tls import TCP_TLS_WORDS, client_tls_reason
from formats.framing import CLOSED, MALFORMED, STALLED, Framer, FramingError

log = logging.getLogger("bsp.channel")

RECEIVE_SIZE = 65536
BATCHES_IN_FLIGHT = 4     # per connection: chunks being processed while the next is read


def _chain_reason(exc: BaseException, tls: Callable[[ssl.SSLError], str]) -> str:
    """Why ``exc`` happened, never empty: trio's ``BrokenResourceError`` and httpx's errors often have no
    text of their own and keep the reason (a reset, a TLS alert or an abrupt TLS close) a few links down
    their ``__cause__`` / ``__context__``; an ``ssl.SSLError`` on the way is told by ``tls``."""
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen and len(seen) < 10:
        if isinstance(link, ssl.SSLError):
            return tls(link)
        seen.append(link)
        link = link.__cause__ or link.__context__
    return next((str(e) for e in seen if str(e)), type(exc).__name__)


def io_reason(exc: BaseException, *, has_cert: bool = False, words: tuple[str, str] = TCP_TLS_WORDS) -> str:
    """Why a send, receive or request failed (the client side).  ``words``: client_tls_reason's."""
    return _chain_reason(exc, lambda e: client_tls_reason(e, has_cert=has_cert, words=words))


def _peer_tls_reason(err: ssl.SSLError) -> str:
    reason = getattr(err, "reason", None) or type(err).__name__
    if isinstance(err, ssl.SSLEOFError) or "UNEXPECTED_EOF" in str(reason):
        return (f"{reason}: the client closed the connection without ending the TLS session "
                f"(no close_notify; harmless once it has its replies)")
    return str(reason)


def peer_io_reason(exc: BaseException) -> str:
    """Why reading from a client failed, on the listening side."""
    return _chain_reason(exc, _peer_tls_reason)


class ChannelError(Exception):
    """A request that got no reply.  ``kind``: unreachable, lost, timeout."""

    kind = "failed"
    connection: int | None = None    # tcp connect: the connection (``connects`` count) it happened on

    def __init__(self, message: str, *, channel: str) -> None:
        super().__init__(message)
        self.channel = channel


class Unreachable(ChannelError):
    kind = "unreachable"


class ConnectionLost(ChannelError):
    kind = "lost"


class CallTimeout(ChannelError):
    kind = "timeout"


@dataclass
class ConnInfo:
    """One inbound connection, as the handler sees it."""

    channel: str
    peer: str
    number: int
    frames_in: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # ``peer.*`` as the routes read them (``engine.tls.peer_values``: the client certificate's CN and SANs
    # and the address), set once per connection after its handshake; None: no peer (a file, a timer)
    who: dict[str, Any] | None = None


async def request_one(channel: Any, payload: bytes, timeout: float | None = None) -> bytes:
    """``request``: one payload through ``channel.request_many``; a counterpart problem raises its
    ``ChannelError``.  Outbound channels take it as their method (``request = request_one``)."""
    (result,) = await channel.request_many([payload], timeout)
    if isinstance(result, ChannelError):
        raise result
    return result


class ExchangeHandler(Protocol):
    async def handle(self, conn: ConnInfo, frames: list[bytes]) -> list[bytes | None]: ...

    async def framing_error(self, conn: ConnInfo, err: FramingError) -> bytes | None: ...


class _Slot:
    __slots__ = ("event", "replies", "batch", "deals")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.replies: list[bytes | None] = []
        self.batch = False          # a batch was read into it (counted in ``activity.pending``)
        # (deal id, reason) per reply, in order, as the dispatcher names them (``conn.extra["deals"]``): the deals
        # a reply that is not sent is told to (``reply_not_sent``)
        self.deals: list[tuple[str | None, str | None]] = []


UNFRAMED = "an earlier reply on the connection could not be framed, so the connection was closed before this one"


async def tell_not_sent(handler: Any, conn: ConnInfo, unsent: list[tuple[str | None, str]]) -> None:
    """Deals whose reply the channel did not send (it could not be framed, or one before it on the connection
    could not): the handler records an event ``reply_not_sent`` on each (``Dispatcher.reply_not_sent``; the
    live engine's ``HandlerRef`` also counts them).  The deals stay as they ended: what they did at a
    counterpart happened."""
    tell = getattr(handler, "reply_not_sent", None)
    named = [(d, why) for d, why in unsent if d is not None]
    if tell is None or not named:
        return
    try:
        await tell(conn, named)
    except Exception:       # the log line above already names the deal; a handler bug must not take the engine down
        log.exception("channel %s: connection %d from %s: the event reply_not_sent of deal(s) %s could not be "
                      "recorded", conn.channel, conn.number, conn.peer, ", ".join(d for d, _ in named))


def framing_fault(faults: Any, conn: ConnInfo, err: FramingError) -> None:
    """Log a framing error: through the channel's ``FaultLog`` when it has one (a flood is counted, not
    written line by line), else as one warning."""
    text = f"connection {conn.number} from {conn.peer}: {err}; closing the connection"
    if faults is None:
        log.warning("channel %s: %s", conn.channel, text)
        return
    kind, noun = _FAULT_KINDS.get(getattr(err, "kind", MALFORMED), _FAULT_KINDS[MALFORMED])
    faults.occurred(kind, text, noun=noun, source=conn.peer, reason=str(err), logger=log)


_FAULT_KINDS = {            # FramingError.kind -> the fault log's kind and what it counts
    MALFORMED: ("malformed frame", "malformed frames"),
    CLOSED: ("closed inside a frame", "connections closed inside a frame"),
    STALLED: ("stalled frame", "connections stalled inside a frame"),     # engine/channels/idle.py
}


async def serve_stream(
    stream: trio.abc.Stream,
    framer: Framer,
    handler: ExchangeHandler,
    conn: ConnInfo,
    stop: StopReading,
    activity: Any = None,
    faults: Any = None,
) -> None:
    """Read chunks, hand each chunk's frames to ``handler`` as one batch, write
    each batch's replies with one ``send_all``, in arrival order.

    ``stop`` (``engine.channels.retire.StopReading``) governs the reading only:
    ``stop.cancel()`` (drain, or a reload retiring the channel) stops reading at
    the next frame boundary while batches already read still finish and are
    answered (a connection idle when retired first answers the requests that had already arrived: one read
    of ``ARRIVED_WINDOW`` seconds at most); then the stream is closed with ``aclose`` (under ``GentleClose``:
    close_notify and FIN after the last reply, no reset), so a request the
    client got no answer to before the close was not read.  A framing error gets
    the handler's error reply, then the connection is closed.

    ``activity`` (``engine.channels.conn_room.Activity``, optional): counts the batches read and not yet
    answered, stamps when a send of replies starts and when the last was answered, so that a listener at
    its cap can tell the connection idle longest, or one whose client takes no reply (once per batch,
    nothing per message).

    ``faults`` (``engine.faultlog.FaultLog``, optional): the channel's log of bad input; a framing error is
    logged there (the first of its kind in full, a flood of them counted and summed up) instead of one
    warning per connection.
    """
    send_slots, recv_slots = trio.open_memory_channel[_Slot](BATCHES_IN_FLIGHT)

    async def run_batch(slot: _Slot, frames: list[bytes], err: FramingError | None, conn: ConnInfo) -> None:
        replies: list[bytes | None] = []
        try:
            if frames:
                replies = await handler.handle(conn, frames)
            if err is not None:
                replies = list(replies)
                replies.append(await handler.framing_error(conn, err))
        except Exception:  # a handler bug must not take the engine down
            log.exception("channel %s: handler failed on a batch of %d frame(s)", conn.channel, len(frames))
        finally:
            slot.replies = replies
            slot.event.set()

    def deal_of(slot: _Slot, i: int) -> str | None:
        return slot.deals[i][0] if i < len(slot.deals) else None

    def behind(slot: _Slot, start: int) -> list[tuple[str | None, str]]:
        return [(deal_of(slot, j), UNFRAMED) for j in range(start, len(slot.replies))
                if slot.replies[j] is not None]

    async def writer() -> None:
        broken = False
        unframed = False      # closed because a reply could not be framed: the replies behind it are told so
        async with recv_slots:
            async for slot in recv_slots:
                await slot.event.wait()
                try:
                    if broken:
                        # answers for a peer that is gone; the deals are recorded anyway
                        if unframed:
                            await tell_not_sent(handler, conn, behind(slot, 0))
                        continue
                    out = []
                    skip = framer.skip_reply if framer.header_size else None   # headers echoed per request
                    unsent: list[tuple[str | None, str]] = []
                    for i, r in enumerate(slot.replies):
                        if r is None:
                            if skip is not None:
                                skip()
                            continue
                        try:
                            out.append(framer.frame(r))
                        except FramingError as exc:
                            # a reply the channel cannot frame (too big, holds the delimiter): the replies
                            # before it are sent, then the connection is closed; going on would let the
                            # client take the next request's reply for this one's answer.  The deal stays
                            # as it ended (what it did at a counterpart happened) and gets an event
                            # reply_not_sent, as do the deals whose replies were behind it
                            did = deal_of(slot, i)
                            log.error("channel %s: connection %d from %s: reply not sent: %s; its deal %s is "
                                      "recorded as the route ended it, with an event reply_not_sent (bsp deals "
                                      "show %s): its sender got no answer, settle it with them; closing the "
                                      "connection, so that no later reply is taken for its answer",
                                      conn.channel, conn.number, conn.peer, exc, did or "(none)", did or "ID")
                            unsent = [(did, f"reply cannot be framed: {exc}"), *behind(slot, i + 1)]
                            break
                    if unsent:
                        broken = unframed = True
                        stop.abort()
                    if out and not await send(out):
                        broken = True
                    if unsent:
                        await tell_not_sent(handler, conn, unsent)
                finally:
                    if slot.batch:
                        unanswered[0] -= 1
                        if activity is not None:
                            activity.answered()     # its replies are written (or dropped: the peer is gone)

    async def send(out: list[bytes]) -> bool:
        """Write one batch's replies; False when the connection is to end (the peer gone, or retired and
        taking none)."""
        if activity is not None:
            activity.send_started()     # a client taking none of its replies can be told
        try:
            with stop.send_scope() as sending:
                await stream.send_all(b"".join(out) if len(out) > 1 else out[0])
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.info("channel %s: connection %d from %s: send failed: %s",
                     conn.channel, conn.number, conn.peer, exc)
            stop.abort()
            return False
        if sending.cancelled_caught and not (activity is not None and activity.evicted):
            # retired, and the client takes none of its replies (closed for room: logged there)
            log.warning("channel %s: connection %d from %s: retired, and the client took no reply "
                        "within %gs; the connection is ended (%d reply(ies) not delivered)",
                        conn.channel, conn.number, conn.peer, stop.send_wait, len(out))
        if sending.cancelled_caught:
            stop.abort()
            return False
        return True

    unanswered = [0]        # batches read and not yet answered
    # retired while idle (nothing held, nothing owed): what already arrived is read first (retire.py)
    stop.idle = lambda: framer.buffered == 0 and unanswered[0] == 0
    retired = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            async with send_slots:
                while True:
                    # Reserve the reply's place before reading, so that a drain never drops frames
                    # already read.
                    slot = _Slot()
                    await send_slots.send(slot)
                    if stop.stops_before_read(framer.buffered):
                        retired = not stop.aborted
                        if framer.buffered and retired:
                            log.warning("channel %s: connection %d from %s: retired; the frame being read "
                                        "(%d byte(s)) did not complete within %gs and is not answered",
                                        conn.channel, conn.number, conn.peer, framer.buffered, FINISH_FRAME)
                        slot.event.set()
                        break
                    frames: list[bytes] = []
                    err: FramingError | None = None
                    data: bytes | None = None
                    try:
                        with stop.read_scope():
                            data = await stream.receive_some(read_size(stop, framer, RECEIVE_SIZE))
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                        log.info("channel %s: connection %d from %s: receive failed: %s",
                                 conn.channel, conn.number, conn.peer, peer_io_reason(exc))
                        slot.event.set()
                        break
                    except BaseException:
                        slot.event.set()
                        raise
                    if data is None:         # retired while reading: read again, to the frame's end at most
                        slot.event.set()
                        continue
                    if not data:
                        try:
                            frames = framer.eof()     # the frame the close completes (eof framing)
                        except FramingError as exc:
                            err = exc
                    else:
                        try:
                            frames = framer.feed(data)
                        except FramingError:
                            pass
                        err = framer.error
                    if err is not None:
                        framing_fault(faults, conn, err)
                    if frames or err is not None:
                        conn.frames_in += len(frames)
                        # the batch's own ``deals`` list: the dispatcher names each reply's deal there, so a
                        # reply that cannot be sent is told to its deal (``tell_not_sent``)
                        extra = {**conn.extra, "deals": slot.deals} if conn.extra else {"deals": slot.deals}
                        if framer.header_size and frames:   # each frame's header, for the route
                            extra["headers"] = list(framer.headers)[-len(frames):]
                        # built directly: dataclasses.replace costs 3.8 us a batch, this 0.5 us
                        batch_conn = ConnInfo(channel=conn.channel, peer=conn.peer, number=conn.number,
                                              frames_in=conn.frames_in, extra=extra, who=conn.who)
                        slot.batch = True
                        unanswered[0] += 1
                        if activity is not None:
                            activity.pending += 1
                        nursery.start_soon(run_batch, slot, frames, err, batch_conn)
                    else:
                        slot.event.set()
                    if not data or err is not None:
                        break
    finally:
        with trio.CancelScope(shield=True):
            if retired and not stop.aborted:
                # every reply is written: end cleanly (TLS close_notify, FIN; engine/channels/retire.py)
                with trio.move_on_after(LINGER + 1):
                    try:
                        await stream.aclose()
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
            await trio.aclose_forcefully(stream)
