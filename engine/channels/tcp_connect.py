"""``tcp.connect``: one persistent outbound connection to a counterpart, requests pipelined.

Requests from every exchange share the one socket.  They are written in the
order they were made (requests made together leave in one write) and replies
are matched first-in first-out.  A request whose caller stopped waiting
(timeout) closes the connection (``_out_of_step``: a reply that may never come
would hand each later call the reply meant for the call before it): the calls
written on it fail ``lost``, those not yet written go on the next connection.
When the connection breaks, every waiting request fails with ``lost`` and the
channel reconnects at once; while the counterpart cannot be reached, requests
fail at once with ``unreachable`` (retrying the connect after a back-off).
The first connect waits for the first request; from then on the connection is
kept open, reconnecting in the background with or without requests (so a
channel out of traffic comes back up by itself: engine/ops/health.py).
A connection closed before any answer to the requests written on it counts as
a failed connect (back-off).  A connection the counterpart closes with nothing
ever written on it, sooner than ``reconnect_max`` after opening, is an idle
connection it closed (its idle timeout), not a refusal: the channel stays up
and reconnects at the next call (at once it would only open another
connection to be closed); one closed later reconnects at once.  After such a
refusal, though, a close with nothing written is one more refusal until the
counterpart answers again (or a connection lives ``reconnect_max``): else the
reconnect after each back-off, closed at once by a refusing counterpart, would
look idle and hand it the next call to lose.  Only a failed connect (refused,
timed out) or calls without an answer make the channel down.  Requests never written (queued when the connection broke, or refused at
``max_in_flight``) fail ``unreachable`` "request not sent": only requests
the counterpart may have seen end ``lost`` or ``timeout`` (in doubt).
"""
from __future__ import annotations

import logging
import math
import re
import time
from collections import deque
from decimal import Decimal
from typing import Any

import trio

from engine.channels.base import (
    RECEIVE_SIZE, CallTimeout, ChannelError, ConnectionLost, Unreachable, io_reason, request_one,
)
from engine.channels.mux import MUX_OPTIONS, MuxConnector, wants_mux
from engine.channels.options import (
    ADDRESS, REVERSAL_IN_FLIGHT_OPTION, ChannelConfigError, built_check, parse_address, reversal_in_flight, seconds,
)
from engine.channels.tcp_listen import set_nodelay
from engine.faultlog import FaultLog
from engine.outage_log import OutageLog, iso
from engine.resilience import Rejected
from formats.component import ComponentSpec, OptionSpec
from formats.framing import FRAMING_OPTIONS, FramingError, check_framing, framer_factory

log = logging.getLogger("bsp.channel.tcp")
_DIGITS = re.compile(r"\d+(\.\d+)?")                          # a reason's figures: not another reason
_PEER_CLOSED = ("closed by the counterpart", "receive failed")     # the counterpart ended the connection
# what the log says of the calls a broken connection fails: their error kind is ``lost`` (in route files,
# dead letters, bsp_channel_errors_total{kind="lost"}), but "lost" alone reads as a request never answered (what
# `bsp demo` counts as lost, and must be 0): they were sent and may have reached the counterpart
IN_DOUBT = "in doubt (sent, they may have reached the counterpart: error kind lost)"
FLAP_WINDOW = 60.0       # bsp status: connections lost with calls waiting in this window ...
FLAP_MIN = 3             # ... this many or more, the counterpart answering in between: flapping
FLAP_KEEP = 256


class _Waiter:
    __slots__ = ("left", "event")

    def __init__(self, n: int) -> None:
        self.left = n
        self.event = trio.Event()


class _Pending:
    __slots__ = ("waiter", "result")

    def __init__(self, waiter: _Waiter) -> None:
        self.waiter = waiter
        self.result: bytes | ChannelError | None = None

    def resolve(self, result: bytes | ChannelError) -> None:
        if self.result is None:
            self.result = result
            w = self.waiter
            w.left -= 1
            if w.left == 0:
                w.event.set()


class TcpConnector:
    role = "connect"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.host, self.port = parse_address(name, options.get("address"))
        self._new_framer = framer_factory(name, options, echo_header=False)
        self.framing, self.max_frame = self._new_framer.framing, self._new_framer.max_frame
        if self.framing == "eof":
            raise ChannelConfigError(f"channel {name}: option framing: eof (one message per connection) "
                                     f"is for tcp listen; a tcp connect channel keeps its connection")
        self.timeout = seconds(options.get("timeout"), 30.0)
        self.connect_timeout = seconds(options.get("connect_timeout"), 3.0)
        self.max_in_flight = int(options.get("max_in_flight", 4096))
        if self.max_in_flight <= 0:
            raise ChannelConfigError(f"channel {name}: option max_in_flight: expected a positive count")
        self.reversal_in_flight = reversal_in_flight(name, options)     # read by engine/txn/saf.py
        self.backoff_min = 0.05
        self.backoff_max = seconds(options.get("reconnect_max"), 2.0)
        self._framer = self._new_framer()
        self._pending: deque[_Pending] = deque()
        self._outbox: list[tuple[bytes, list[_Pending]]] = []   # requests not written yet, and their places
        self._unsent = 0                     # the last N waiting requests are still in _outbox (never written)
        self._wake = trio.Event()            # new requests to write / a connection wanted
        self._space = trio.lowlevel.ParkingLot()   # callers waiting for in-flight room
        self._reason = ""
        self._connected = False
        self._down_until = -math.inf         # requests fail fast until then (back-off)
        self._last_err = ""
        self.last_error_at: float | None = None   # wall time of the last error (bsp status: past once up again)
        self.down_since: float | None = None   # wall time of the first failed connect since the last success
        self._outage = OutageLog(log, name, self.address, unit="connect attempt")   # its log (engine/outage_log.py)
        # connections lost with calls waiting: the first in full, a flapping counterpart's next ones counted
        # and summed up every 30 s (engine/faultlog.py); their times tell bsp status it flaps (engine/ops/health.py)
        self.faults = FaultLog(log, f"channel {name}", clock=trio.current_time)
        self.drops: deque[tuple[float, int]] = deque(maxlen=FLAP_KEEP)   # (trio time, calls lost) of each
        self._closed = False
        self._wanted = False                 # a call came: from then on the connection is kept open
        self.connects = 0
        self.sends = 0
        self._answered = 0                   # replies read on the current connection
        self.unmatched = 0                   # replies nobody asked for (each closes the connection)
        self.resets = 0                      # connections closed after a call timed out (replies out of step)
        self._conn_scope: trio.CancelScope | None = None
        self._reset = False                  # the current connection was closed by _out_of_step
        self._reset_lost = 0                 # ... and the calls still waiting on it that it failed
        self._in_time = 0                    # replies that came while their call still waited (all connections)
        self._reset_mark = -1                # _in_time at the last reset: unchanged at the next, it is a repeat
        self._reset_wait = self.backoff_min  # the back-off after the next repeated reset

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def _last_error(self) -> str:
        return self._last_err

    @_last_error.setter
    def _last_error(self, error: str) -> None:
        self._last_err, self.last_error_at = error, time.time()

    # -- public -----------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the connection: connect on the first call, then keep it open (reconnect after a failure
        or a loss, with back-off, whether calls come or not: a channel out of traffic still comes back up)."""
        try:
            async with trio.open_nursery() as ticker:
                ticker.start_soon(self.faults.run)     # summaries of repeated lost connections, when due
                await self._keep(task_status)
        finally:
            self.faults.flush()                        # the counts not yet written

    def flaps(self, window: float = FLAP_WINDOW) -> tuple[int, int]:
        """(connections lost with calls waiting, calls lost with them) in the last ``window`` seconds."""
        since = trio.current_time() - window
        recent = [n for t, n in self.drops if t >= since]
        return len(recent), sum(recent)

    async def _keep(self, task_status: Any) -> None:
        task_status.started()
        backoff = self.backoff_min
        lazy = False                         # the counterpart closed an idle connection: reconnect at the next call
        refused = False                      # a connection closed unanswered, and no answer since
        try:
            while True:
                if lazy:
                    while not self._outbox:
                        await self._wake.wait()
                        self._wake = trio.Event()
                    lazy = False
                elif not self._outbox and not self._wanted:
                    await self._wake.wait()
                self._wake = trio.Event()
                try:
                    with trio.fail_after(self.connect_timeout):
                        stream = await trio.open_tcp_stream(self.host, self.port)
                except (OSError, trio.TooSlowError) as exc:
                    error = f"cannot connect to {self.address}: {exc or 'connect timed out'}"
                    # once per outage (and per other error), a reminder a minute: the retries go on every reconnect_max
                    self._outage.failed(
                        f"channel {self.name}: {error}; retrying every {self.backoff_max:g}s at most; calls fail at "
                        f"once meanwhile, not sent (unreachable, 91): check that the counterpart runs and listens "
                        f"there (bsp status shows the channel down until it is back)", key=error)
                    self._last_error = error
                    self._down_until = trio.current_time() + backoff
                    if self.down_since is None:
                        self.down_since = time.time()
                    self._fail_all(Unreachable(
                        f"channel {self.name}: {self._last_error}", channel=self.name))
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
                if self._outage.down and refused:
                    # refused since (closed before any answer, right after opening): an open is no end of that
                    # outage, or each attempt would be a warning 'connected again'; its first answer ends it (_reader)
                    log.debug("channel %s: connected to %s (refused since %s: not over until it answers)",
                              self.name, self.address, iso(self._outage.since))
                elif self._outage.down:
                    # the warning that it went down is answered at the same level: at the default level an
                    # operator reading the log must see that it is back, not only that it went
                    self._back()
                self._down_until = -math.inf
                self.down_since = None
                self.connects += 1
                opened = trio.current_time()
                sends_before = self.sends
                self._answered = 0
                set_nodelay(stream)
                self._connected = True
                self._framer = self._new_framer()
                self._reason = "closed by the counterpart"
                try:
                    async with trio.open_nursery() as nursery:
                        self._conn_scope = nursery.cancel_scope
                        nursery.start_soon(self._writer, stream, nursery.cancel_scope)
                        await self._reader(stream)
                        nursery.cancel_scope.cancel()
                finally:
                    self._connected = False
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(stream)
                if self._reset:
                    # closed by us after a timeout (_out_of_step, which failed the calls written on it): the
                    # calls made since wait unsent for the next connection, made at once ... unless no call got
                    # its reply in time since the last such close: a counterpart this far behind (under load)
                    # would only be handed more calls to time out, each close failing the others lost (in
                    # doubt, reversed): back off, calls failing at once meanwhile, not sent (not in doubt)
                    self._reset = False
                    repeat = self._reset_mark == self._in_time
                    self._reset_mark = self._in_time
                    wait = self._reset_wait if repeat else 0.0
                    self._reset_wait = min(self._reset_wait * 2, self.backoff_max) if repeat else self.backoff_min
                    then = (f"; no call answered in time since the last such close: calls fail at once for "
                            f"{wait:g}s, not sent (unreachable), then it reconnects" if repeat else "")
                    self.faults.occurred(
                        "out of step", f"connection to {self.address} closed: {self._reason}; {self._reset_lost} "
                        f"other call(s) waiting for a reply on it failed {IN_DOUBT}{then}",
                        noun=f"connections to {self.address} closed after a timeout",
                        reason=f"{self._reason}; {self._reset_lost} other call(s) waiting failed in doubt (kind "
                               f"lost){then}")
                    backoff = self.backoff_min
                    refused = False
                    if repeat:
                        self._last_error = (f"connection to {self.address} closed after a timeout again, no call "
                                            f"answered in time since the last one: backing off {wait:g}s")
                        self._down_until = trio.current_time() + wait
                        self._fail_all(Unreachable(f"channel {self.name}: request not sent: {self._last_error}",
                                                   channel=self.name))
                        await trio.sleep(wait)
                    continue
                waiting = sum(1 for p in self._pending if p.result is None)
                peer_closed = self._reason.startswith(_PEER_CLOSED)
                worked = self._answered or trio.current_time() - opened >= self.backoff_max
                # nothing ever sent on it and closed by the counterpart: it closed an idle connection (its
                # idle timeout shorter than reconnect_max), which refuses nothing: the channel stays up and
                # reconnects at the next call (at once, it would only open another connection to be closed)
                # ... unless it refused a call since its last answer: then that close is one more refusal (or the
                # reconnect after each back-off would be closed "idle" and hand it the next call to lose)
                # ... nor one closed with calls waiting to be written on it (closed as it opened, before the writer
                # got to them: a refusal, though nothing left; they fail not sent, not in doubt)
                idle = not worked and peer_closed and self.sends == sends_before and not refused and not waiting
                if waiting or not peer_closed:
                    if waiting:
                        self.drops.append((trio.current_time(), waiting))
                    reason = self._reason
                    # a flapping counterpart: the first in full, the next ones within 30 s counted (faultlog)
                    self.faults.occurred(
                        "connection lost", f"connection to {self.address} lost ({reason}); " + (
                            f"{waiting} call(s) waiting for a reply fail {IN_DOUBT}" if waiting else
                            "no call was waiting for a reply") + "; reconnecting",
                        noun=f"connections to {self.address} lost",
                        reason=f"{reason}; " + (f"{waiting} call(s) waiting for a reply failed in doubt (kind lost)"
                                                if waiting else "no call was waiting"))
                else:       # no call was waiting: nothing in doubt
                    log.info("channel %s: connection to %s lost (%s); no call was waiting for a reply; "
                             "reconnecting%s", self.name, self.address, self._reason, " at the next call" if idle else "")
                self._fail_all(ConnectionLost(
                    f"channel {self.name}: connection to {self.address} lost ({self._reason}) "
                    f"before the reply came",
                    channel=self.name))
                if worked:
                    backoff = self.backoff_min       # it worked for a while: reconnect at once
                    refused = False
                    continue
                if idle:
                    lazy = True
                    continue
                # closed before any answer, right after opening (refused on the other side, a host at its
                # connection limit): back off as after a failed connect; calls meanwhile fail at once
                refused = True
                self._last_error = (f"the counterpart at {self.address} closed the connection before any "
                                    f"answer ({self._reason}); it may refuse this client (access list, "
                                    f"connection limit)")
                self._outage.failed(f"channel {self.name}: {self._last_error}; retrying every {self.backoff_max:g}s "
                                    f"at most", key=_DIGITS.sub("#", self._last_error))
                self._down_until = trio.current_time() + backoff
                if self.down_since is None:
                    self.down_since = time.time()
                await trio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        finally:
            self._closed = True
            self._fail_all(ConnectionLost(f"channel {self.name}: engine stopping", channel=self.name))

    request = request_one

    async def request_many(self, payloads: list[bytes], timeout: float | None = None) -> list[bytes | ChannelError]:
        """Send every payload (in order, one write) and wait for their replies.

        Returns, per payload, the reply bytes or a ``ChannelError`` (unreachable,
        lost, timeout).  Never raises for a counterpart problem.
        """
        if not payloads:
            return []
        limit = self.timeout if timeout is None else timeout
        if self._closed:
            return [ConnectionLost(f"channel {self.name}: engine stopping", channel=self.name)] * len(payloads)
        self._wanted = True
        if not self._connected and trio.current_time() < self._down_until:
            err = self._stamp(Unreachable(f"channel {self.name}: {self._last_error}", channel=self.name))
            return [err] * len(payloads)
        with trio.move_on_after(limit) as scope:
            while len(self._pending) >= self.max_in_flight:
                await self._space.park()
        if scope.cancelled_caught:          # never sent: not in doubt (kind unreachable, as the MUX's cap)
            return [self._stamp(Rejected(
                f"channel {self.name}: {self.max_in_flight} requests already waiting for a reply "
                f"(max_in_flight) for {limit:g}s; request not sent", channel=self.name))] * len(payloads)
        frame = self._framer.frame
        try:
            data = b"".join([frame(p) for p in payloads])
        except FramingError as exc:
            err = ChannelError(f"channel {self.name}: request not sent: {exc}", channel=self.name)
            return [err] * len(payloads)
        waiter = _Waiter(len(payloads))
        slots = [_Pending(waiter) for _ in payloads]
        self._pending.extend(slots)
        entry = (data, slots)
        self._outbox.append(entry)
        self._unsent += len(slots)
        self._wake.set()
        with trio.move_on_after(limit):
            await waiter.event.wait()
        if not waiter.event.is_set() and self._withdraw(entry, limit):
            return [s.result for s in slots]  # type: ignore[misc]
        out: list[bytes | ChannelError] = []
        late = False
        for s in slots:
            if s.result is None:
                late = True
                s.resolve(self._stamp(CallTimeout(
                    f"channel {self.name}: no reply from {self.address} within {limit:g}s", channel=self.name)))
            out.append(s.result)  # type: ignore[arg-type]
        if late and self._out_of_step(limit):
            for r in out:                    # the reconnect that follows is ours: it ends no streak of them
                if isinstance(r, CallTimeout):
                    r.connection = None
        return out

    def _withdraw(self, entry: tuple[bytes, list[_Pending]], limit: float) -> bool:
        """A call whose time is up before its bytes were written (the writer blocked behind a counterpart that
        reads nothing, or no connection yet): taken out of the outbox and failed not sent (kind unreachable,
        not in doubt).  Left there, it was failed in doubt (timeout) and written later all the same, its caller
        gone (an ISO 8583 original arriving after its reversal).  False: it was written (or is being written)."""
        outbox = self._outbox
        for k, queued in enumerate(outbox):
            if queued is entry:
                del outbox[k]
                break
        else:
            return False
        slots = entry[1]
        for s in slots:
            self._pending.remove(s)
        self._unsent -= len(slots)
        err = self._stamp(Rejected(
            f"channel {self.name}: request not sent: it could not be written to {self.address} within {limit:g}s "
            + ("(the counterpart reads nothing: busy or stuck)" if self._connected else "(not connected)"),
            channel=self.name))
        for s in slots:
            s.resolve(err)
        self._space.unpark_all()
        return True

    def _out_of_step(self, limit: float) -> bool:
        """A call timed out on the connection: its reply may come late, or never (a counterpart that drops
        a request it cannot read).  Replies are matched first-in first-out, so from then on the next reply
        cannot be told to be that late one or the answer to the call after it: one never sent would hand
        every later call the reply meant for the call before it.  The connection is closed (the calls
        still waiting on it fail ``lost``: in doubt, as a timeout is) and the channel reconnects at once:
        a counterpart that needs replies matched across timeouts needs ``match`` (engine/channels/mux.py)."""
        scope = self._conn_scope
        if scope is None or not self._connected or scope.cancel_called:
            return False
        self.resets += 1
        self._reset = True
        self._reason = (f"a call got no reply within {limit:g}s, so later replies could no longer be matched "
                        f"to their calls in order; reconnecting (give the channel `match` to match replies by key)")
        scope.cancel()
        # the calls written on it fail now (in doubt, as their connection is gone); those not yet written
        # (the tail of the queue, their bytes still in the outbox) stay queued for the next connection
        pending = self._pending
        written = len(pending) - min(self._unsent, len(pending))
        # not stamped with the connection (self._stamp): the new one is opened by us, not a sign the counterpart
        # answers again, so it does not make these failures stale for the channel's health (engine/ops/health.py)
        lost = ConnectionLost(f"channel {self.name}: connection to {self.address} closed before the "
                              f"reply came ({self._reason})", channel=self.name)
        self._reset_lost = 0
        for _ in range(written):
            slot = pending.popleft()
            if slot.result is None:
                self._reset_lost += 1
            slot.resolve(lost)
        self._space.unpark_all()
        return True

    # -- internals ---------------------------------------------------------
    async def _writer(self, stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        while True:
            if not self._outbox:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            # woken by a call as the connection was being closed (_out_of_step, the reader at its end): its
            # bytes stay in the outbox, unsent (not in doubt, written on the next connection); taken now and
            # cancelled in send_all before a byte left, they were lost and the call took the next call's reply
            await trio.lowlevel.checkpoint_if_cancelled()
            batch, self._outbox = self._outbox, []
            self._unsent = 0
            self.sends += 1
            try:
                await stream.send_all(batch[0][0] if len(batch) == 1 else b"".join([d for d, _ in batch]))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self._reason = f"send failed: {io_reason(exc)}"
                scope.cancel()
                return

    async def _reader(self, stream: trio.SocketStream) -> None:
        framer = self._framer
        pending = self._pending
        while True:
            try:
                data = await stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self._reason = f"receive failed: {io_reason(exc)}"
                return
            if not data:
                return
            if self._reset:
                # closed by _out_of_step as these bytes came (the replies of the calls it failed lost): matched
                # now they would go to the calls not yet written, first in the queue for the next connection
                return
            try:
                frames = framer.feed(data)
            except FramingError as exc:
                self._reason = f"bad frame from the counterpart: {exc}"
                return
            if frames and self._outage.started is not None:
                self._back(" and answering")          # a refusal's outage ends with an answer
            for f in frames:
                if not pending:
                    self.unmatched += 1
                    self._reason = (f"the counterpart sent a reply nobody asked for (stream byte {framer.offset}); "
                                    f"the stream is out of step")
                    return
                slot = pending.popleft()
                if slot.result is None:
                    self._in_time += 1
                slot.resolve(f)
                self._answered += 1
            if frames and self._space:
                self._space.unpark_all()
            if framer.error is not None:
                self._reason = f"bad frame from the counterpart: {framer.error}"
                return

    def _back(self, how: str = "") -> None:
        self._outage.end(f"channel {self.name}: connected to {self.address} again{how} after "
                         f"{self._outage.downtime():.1f}s down; calls go through again (the deals that failed "
                         f"meanwhile are dead letters: bsp dead retry --live --reason 'channel {self.name}:' --since 1h "
                         f"--dry-run lists them, then --yes runs them again)")

    def _stamp(self, err: ChannelError) -> ChannelError:
        """Mark a failure with the connection it belongs to (the ``connects`` count now): a later
        connection makes it stale for the channel's health (engine/ops/health.py)."""
        err.connection = self.connects
        return err

    def _fail_all(self, err: ChannelError) -> None:
        """Fail every waiting request with ``err``; those never written fail unsent (kind unreachable:
        not in doubt, the counterpart cannot have seen them)."""
        self._stamp(err)
        pending = self._pending
        unsent = min(self._unsent, len(pending)) if isinstance(err, ConnectionLost) else 0
        while len(pending) > unsent:
            pending.popleft().resolve(err)
        if pending:
            why = str(err).removeprefix(f"channel {self.name}: ")
            not_sent = self._stamp(Rejected(f"channel {self.name}: request not sent: {why}", channel=self.name))
            while pending:
                pending.popleft().resolve(not_sent)
        self._outbox = []
        self._unsent = 0
        self._space.unpark_all()


def check_calling_framing(decl: Any, base_dir: Any = None) -> list[Any]:
    """``bsp check``: the framing options as a calling channel builds them, then every other option
    as the connector checks it when built (without reading its TLS files)."""
    return check_framing(decl, base_dir, echo_header=False) or built_check(_connector, load_tls=False)(decl, base_dir)


def _connector(name: str, options: dict[str, Any], *, load_tls: bool = True) -> Any:
    if wants_mux(options):          # pool / match / TLS / retries / breaker / echo: engine/channels/mux.py
        return MuxConnector(name, options, load_tls=load_tls)
    return TcpConnector(name, options)


def build(decl: Any) -> Any:
    return _connector(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="tcp.connect",
    check=check_calling_framing,
    doc=(
        "One persistent TCP connection to a counterpart, used by `call` steps. Requests are "
        "pipelined on the one socket (requests made together leave in one write) and replies "
        "are matched first-in first-out, so the counterpart must answer in order. The "
        "connection is opened on first use and from then on kept open: re-opened in the background "
        "after a failure, with calls or without (back-off up to reconnect_max); a connection the counterpart "
        "closes idle (nothing sent on it) sooner than reconnect_max is re-opened at the next call, and the "
        "channel stays up (unless it refused a call since its last answer). While the counterpart is unreachable, calls fail at once (error kind "
        "`unreachable`, deal `failed`). A call without a reply within `timeout` fails with "
        "kind `timeout` and closes the connection (replies matched in order cannot be trusted past a reply that "
        "may never come): the other calls waiting on it fail `lost`, and it reconnects at once (after a back-off, calls "
        "failing unsent meanwhile, when no call was answered in time since the last such close; counted as `resets` in "
        "bsp status); a broken connection fails every waiting call with kind `lost`. With `pool`, "
        "`match`, TLS, `retries`, `breaker_failures` or `echo_every` it becomes a MUX: N persistent "
        "connections, replies matched by key, resilience per call (docs/channels.md)."
    ),
    options=(
        ADDRESS,
        *FRAMING_OPTIONS,
        OptionSpec("timeout", "duration", "Default time to wait for a reply (a call's own timeout wins).",
                   default=Decimal(30)),
        OptionSpec("connect_timeout", "duration", "Time allowed to open the connection.", default=Decimal(3)),
        OptionSpec("reconnect_max", "duration", "Longest back-off between connection attempts.",
                   default=Decimal(2)),
        OptionSpec("max_in_flight", "int", "Requests waiting for a reply at most; more callers wait for room "
                   "up to their timeout, then fail unsent (kind unreachable; with the MUX options below: at "
                   "once).", default=4096),
        REVERSAL_IN_FLIGHT_OPTION,
        *MUX_OPTIONS,
    ),
    build=build,
    examples=(
        'channel biller = tcp connect {\n'
        '    address = "127.0.0.1:7002"\n'
        '    framing = length4\n'
        '    timeout = 3s\n'
        '}',
    ),
)
