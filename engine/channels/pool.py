"""A pool of N persistent outbound connections (plain TCP or TLS), each kept alive on its own.

    pool = Pool(name, host, port, size=2, new_framer=..., on_frames=..., on_lost=...)
    await nursery.start(pool.run)          # returns at once; every slot connects in the background
    conn = await pool.connection(timeout)  # a connected PoolConn (round robin) or raises Unreachable
    conn.send(data)                        # queued; the slot's writer sends queued data in one write

Each slot connects at start, and after a failure reconnects with exponential
back-off and jitter (``backoff_min`` doubling up to ``backoff_max``).  While
no slot is connected and every slot is backing off, ``connection`` fails at
once with the last connect error (no caller waits for a host that is down).
A slot whose connection breaks reports ``on_lost(conn, reason)`` so the MUX
fails what was waiting on it (``conn.unsent``: what was never written), then
reconnects:

- at once when the connection had been answered on or lived ``backoff_max``;
- at the next need (a caller asking for a connection) when the counterpart
  closed it with nothing ever written on it: an *idle close* (its idle timeout
  shorter than ``backoff_max``), which refuses nothing: the slot is not down;
- otherwise, with the same back-off as a failed connect (the slot is down):
  closed before any answer to what was written on it (an access list or a
  client certificate refused on the other side, a host at its connection
  limit), closed by us (a bad frame, an unanswered echo), a TLS alert.

An idle close is taken as a refusal too once the counterpart looks like one:
while a refusal seen since its last answer stands (``refusing``), and when a
slot is closed idle ``QUIET_REFUSED`` times in a row with no answer on any
connection in between (a counterpart closing every connection at once, before
a waiting caller could write on it: without the limit the slot would reopen
at each close for as long as the caller waits).  A counterpart that closes
idle connections reaches at most two in a row on a slot between answers (once
after the last answer, once more if reopened for a call before that call's
answer came back).  Any frame received, or a connection that lived
``backoff_max``, ends ``refusing``.

``keepalive(conn)``, when given, runs beside each connection (the MUX's echo);
returning ends the connection (it reports why in ``conn.reason``).

A TLS handshake failure is a connect failure (logged with OpenSSL's reason,
counted in ``tls_failures``, then back-off).
"""
from __future__ import annotations

import itertools
import logging
import random
import re
import ssl
import time
from typing import Any, Awaitable, Callable

import trio

from engine.channels.base import RECEIVE_SIZE, Unreachable, io_reason
from engine.channels.tcp_listen import set_nodelay
from engine.outage_log import OutageLog, iso
from engine.tls import client_tls_reason
from formats.framing import Framer, FramingError

log = logging.getLogger("bsp.channel.pool")

_NUMBERS = itertools.count(1)
_DIGITS = re.compile(r"\d+(\.\d+)?")
QUIET_REFUSED = 3       # idle closes in a row on a slot, no answer in between: a refusal (see above)


def _peer_ended(exc: BaseException) -> bool:
    """A receive failure that is the counterpart ending the connection (a reset, a TLS session closed
    without close_notify), not a TLS alert (a refusal, whatever the timing)."""
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen and len(seen) < 10:
        if isinstance(link, ssl.SSLError):
            return isinstance(link, ssl.SSLEOFError) or "UNEXPECTED_EOF" in str(getattr(link, "reason", ""))
        seen.append(link)
        link = link.__cause__ or link.__context__
    return True


class PoolConn:
    """One live connection of the pool."""

    def __init__(self, slot: int, stream: trio.abc.Stream, framer: Framer) -> None:
        self.slot = slot
        self.number = next(_NUMBERS)
        self.stream = stream
        self.framer = framer
        self.outbox: list[bytes] = []
        self.unsent: list[Any] = []      # what the sender passed with the bytes still in outbox
        self.wake = trio.Event()
        self.alive = True
        self.reason = "closed by the counterpart"
        self.peer_closed = False         # the counterpart ended it (EOF, reset, ragged TLS close)
        self.fifo: Any = None            # the MUX's per-connection queue when replies come in order
        self.in_flight = 0
        self.sends = 0
        self.frames_in = 0               # frames received: the counterpart has answered on it
        self.reset = False               # closed by the engine after a call timed out (replies out of step)
        self.scope: trio.CancelScope | None = None   # its reader's and writer's (``reset`` ends them at once)
        self.in_time = 0                 # replies that came while their call still waited (the MUX counts them)
        self.opened = trio.current_time()

    def send(self, data: bytes, items: list[Any] | tuple[Any, ...] = ()) -> None:
        """Queue ``data``; ``items`` (the sender's requests in it) stay in ``unsent`` until it is written."""
        self.outbox.append(data)
        self.unsent.extend(items)
        self.wake.set()

    def withdraw(self, data: bytes) -> bool:
        """Take ``data`` (the very object ``send`` was given) out of the outbox while it is not written yet
        (the caller takes its items out of ``unsent``): True if it was still there."""
        for k, queued in enumerate(self.outbox):
            if queued is data:
                del self.outbox[k]
                return True
        return False

    def close(self, reason: str) -> None:
        if self.alive:
            self.reason = reason
            self.alive = False
            self.wake.set()


class Pool:
    def __init__(self, name: str, host: str, port: int, *, size: int, new_framer: Callable[[], Framer],
                 on_frames: Callable[[PoolConn, list[bytes]], None],
                 on_lost: Callable[[PoolConn, str], None],
                 keepalive: Callable[[PoolConn], Awaitable[None]] | None = None,
                 ssl_context: ssl.SSLContext | None = None, connect_timeout: float = 3.0,
                 backoff_min: float = 0.05, backoff_max: float = 2.0,
                 rng: random.Random | None = None) -> None:
        if size <= 0:
            raise ValueError(f"channel {name}: option pool: expected a positive number of connections, got {size}")
        self.name = name
        self.host, self.port = host, port
        self.size = size
        self.new_framer = new_framer
        self.on_frames = on_frames
        self.on_lost = on_lost
        self.keepalive = keepalive
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.rng = rng or random.Random()
        self.conns: list[PoolConn] = []
        self._rr = 0
        self._changed = trio.Event()
        self._down = [False] * size          # slot backing off after a failed connect
        # each slot's outage, logged once, reminded once a minute, and its end (engine/outage_log.py)
        self._outages = [OutageLog(log, name, f"{host}:{port} (connection {i + 1} of {size})",
                                   unit="connect attempt") for i in range(size)]
        self._lazy = 0                       # slots waiting for the next need after an idle close
        self._demand = trio.Event()          # set by ``connection``: lazy slots reconnect
        self.answers = 0                     # frames received on any connection
        self._refused_at: int | None = None  # ``answers`` when a refusal was last seen (None: none since)
        self.idle_closes = 0                 # connections the counterpart closed idle (no refusal)
        self._last_error = ""
        self.last_error_at: float | None = None   # wall time of the last error (bsp status: past once up again)
        self.down_since: float | None = None  # wall time since when every slot has been failing (``down``)
        self.connects = 0
        self.connect_failures = 0
        self.tls_failures = 0
        self.peer_cert: Any = None           # engine.certexpiry.CertExpiry of the counterpart's last certificate
        self.on_peer_cert: Callable[[Any], None] | None = None   # told each new one (the expiry gauge)
        self.closed = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def last_error(self) -> str:
        return self._last_error

    @last_error.setter
    def last_error(self, error: str) -> None:
        self._last_error, self.last_error_at = error, time.time()

    @property
    def connected(self) -> bool:
        return bool(self.conns)

    @property
    def down(self) -> bool:
        """No connection, and every slot is backing off after a failed connect."""
        return not self.conns and all(self._down)

    @property
    def refusing(self) -> bool:
        """A refusal (closed before any answer) seen, and no answer since."""
        return self._refused_at is not None and self._refused_at == self.answers

    # -- use ----------------------------------------------------------------
    def pick(self) -> PoolConn | None:
        conns = self.conns
        n = len(conns)
        for _ in range(n):               # round robin over the live ones: a closed one leaves the list later
            self._rr = (self._rr + 1) % n
            conn = conns[self._rr]
            if conn.alive:
                return conn
        return None

    async def connection(self, timeout: float) -> PoolConn:
        """A connected connection, waiting up to ``timeout`` while slots are (re)connecting."""
        with trio.move_on_after(timeout):
            while True:
                if self._lazy:                   # slots closed idle come back at the next need
                    ev, self._demand = self._demand, trio.Event()
                    ev.set()
                conn = self.pick()
                if conn is not None:
                    return conn
                if self.closed:
                    raise Unreachable(f"channel {self.name}: engine stopping", channel=self.name)
                if self.down:
                    raise Unreachable(f"channel {self.name}: {self.last_error}", channel=self.name)
                ev = self._changed
                await ev.wait()
        raise Unreachable(f"channel {self.name}: no connection to {self.address} within {timeout:g}s"
                          + (f" (last error: {self.last_error})" if self.last_error else ""), channel=self.name)

    # -- slots ----------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                for i in range(self.size):
                    nursery.start_soon(self._slot, i)
                task_status.started()
        finally:
            self.closed = True
            self._notify()

    @property
    def _has_cert(self) -> bool:
        return bool(self.ssl_context is not None and getattr(self.ssl_context, "has_cert", False))

    async def _open(self, stage: list[str]) -> trio.abc.Stream:
        tcp = await trio.open_tcp_stream(self.host, self.port)
        set_nodelay(tcp)
        if self.ssl_context is None:
            return tcp
        stage[0] = "tls"
        tls = trio.SSLStream(tcp, self.ssl_context, server_hostname=self.host)
        try:
            await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tcp)
            raise
        self._noted(tls.getpeercert())
        return tls

    def _noted(self, peercert: Any) -> None:
        """Note the counterpart's certificate expiry (once per connection); a new certificate expiring
        within WARN_DAYS is logged once (then in the engine's daily reminder)."""
        from engine.certexpiry import noted_peer
        entry = noted_peer(self.name, self.address, peercert, self.peer_cert, log)
        if entry is None:
            return
        self.peer_cert = entry
        if self.on_peer_cert is not None:
            self.on_peer_cert(entry)

    async def _slot(self, i: int) -> None:
        backoff = self.backoff_min
        quiet, quiet_at = 0, -1          # idle closes in a row on this slot, and ``answers`` at the last one
        was_reset = False                # the slot's last connection was closed after a call timed out
        while True:
            stage = ["tcp"]
            try:
                with trio.fail_after(self.connect_timeout):
                    stream = await self._open(stage)
            except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
                cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
                if isinstance(exc, trio.TooSlowError) and stage[0] == "tls":
                    self.tls_failures += 1
                    what = (f"TLS handshake with {self.address}: no answer within {self.connect_timeout:g}s "
                            f"(connect_timeout; does the counterpart speak TLS on this port?)")
                elif isinstance(exc, trio.BrokenResourceError) or isinstance(cause, ssl.SSLError):
                    self.tls_failures += 1
                    what = (f"TLS handshake with {self.address} failed: "
                            f"{client_tls_reason(cause or exc, has_cert=self._has_cert)}")
                else:
                    what = f"cannot connect to {self.address}: {exc or 'connect timed out'}"
                self.connect_failures += 1
                self.last_error = what
                backoff = await self._back_off(i, what, backoff)
                continue
            self._down[i] = False
            self.down_since = None
            conn = PoolConn(i, stream, self.new_framer())
            self.connects += 1
            self.conns.append(conn)
            if self._outages[i].down and self.refusing:
                # refused since (closed before any answer, right after opening): an open is no end of that
                # outage, or each attempt would be a line 'open again' and one 'closed before any answer';
                # its first answer ends it (_reader)
                log.debug("channel %s: connection %d of %d to %s open (refused since %s: not over until it "
                          "answers)", self.name, i + 1, self.size, self.address, iso(self._outages[i].since))
            elif self._outages[i].down:  # its outage was a warning: so is its end (seen at the default level)
                self._open_again(i)
            else:
                log.info("channel %s: connection %d of %d to %s open", self.name, i + 1, self.size, self.address)
            self._notify()
            try:
                async with trio.open_nursery() as nursery:
                    conn.scope = nursery.cancel_scope
                    nursery.start_soon(self._writer, conn, nursery.cancel_scope)
                    if self.keepalive is not None:
                        nursery.start_soon(self._keep, conn, nursery.cancel_scope)
                    await self._reader(conn)
                    nursery.cancel_scope.cancel()
            except Exception as exc:        # a bug in a reply handler or keepalive: this connection, not the engine
                log.exception("channel %s: connection %d of %d to %s: internal error; closing it",
                              self.name, i + 1, self.size, self.address)
                conn.close(f"internal error: {type(exc).__name__}: {exc}")
                internal_error = True
            else:
                internal_error = False
            finally:
                conn.alive = False
                if conn in self.conns:
                    self.conns.remove(conn)
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
                self._notify()
                waiting = conn.in_flight
                self.on_lost(conn, conn.reason)
            if internal_error:
                log.warning("channel %s: connection %d of %d to %s lost (%s); reconnecting",
                            self.name, i + 1, self.size, self.address, conn.reason)
                await trio.sleep(self.backoff_max)     # no tight reconnect loop if the bug repeats
                continue
            lived = trio.current_time() - conn.opened
            again, was_reset = conn.reset and was_reset and not conn.in_time, conn.reset
            if again:
                # closed after a timeout again, no call answered in time on it: a counterpart this far behind
                # (under load) would only be handed more calls to time out, each close failing the others lost
                # (in doubt): the slot rests, calls meanwhile go to the other connections or fail at once, not sent
                self.last_error = (f"connection to {self.address} closed after a call timed out again, no call "
                                   f"answered in time on it")
                backoff = await self._back_off(i, self.last_error, backoff)
                continue
            if conn.frames_in or lived >= self.backoff_max or conn.reset:    # reset: closed by us
                backoff = self.backoff_min             # it worked for a while: reconnect at once
                quiet = 0
                if not conn.frames_in:
                    self._refused_at = None            # held a connection reconnect_max long: not refusing
                log.log(logging.INFO if conn.peer_closed and not waiting else logging.WARNING,
                        "channel %s: connection %d of %d to %s lost (%s); reconnecting",
                        self.name, i + 1, self.size, self.address, conn.reason)
                continue
            idle = conn.peer_closed and not conn.sends    # nothing ever written on it: closed idle
            if idle:
                if quiet_at != self.answers:
                    quiet = 0
                quiet, quiet_at = quiet + 1, self.answers
                if quiet < QUIET_REFUSED and not self.refusing:
                    # its idle timeout is shorter than reconnect_max: no refusal, the slot is not down;
                    # reopened at the next need (at once, it would only open another connection to be closed)
                    self.idle_closes += 1
                    log.info("channel %s: connection %d of %d to %s closed idle by the counterpart after "
                             "%.3gs (%s); reconnecting at the next call", self.name, i + 1, self.size,
                             self.address, lived, conn.reason)
                    await self._wait_for_need()
                    continue
            # closed before any answer to what was written on it, right after opening (an access list or a
            # client certificate refused on the other side, a host at its connection limit), or closed idle
            # again and again with no answer in between: back off as after a failed connect, or the slot
            # reconnects in a tight loop, and calls meanwhile fail at once instead of being sent to die
            self._refused_at = self.answers
            # one wording whichever made it a refusal (the count, or a refusal before): two wordings were two
            # reasons, and which one a close met depended on when a call's write raced the close (a third warning)
            why = conn.reason if not idle else (f"{conn.reason}, before anything was sent, {quiet} time(s) in a "
                                                f"row with no answer in between")
            self.last_error = (f"the counterpart at {self.address} closed the connection before any answer "
                               f"({why})" + ("" if "TLS" in conn.reason else
                                             "; it may refuse this client (access list, client "
                                             "certificate, connection limit)"))
            backoff = await self._back_off(i, self.last_error, backoff)

    def _open_again(self, i: int, how: str = "") -> None:
        out = self._outages[i]
        out.end(f"channel {self.name}: connection {i + 1} of {self.size} to {self.address} open again{how} after "
                f"{out.downtime():.1f}s down")

    async def _back_off(self, i: int, what: str, backoff: float) -> float:
        """Slot ``i`` is down (``what`` says why): log it, tell the watchers, wait a jittered ``backoff``;
        returns the next, doubled up to ``backoff_max``."""
        wait = self.rng.uniform(backoff / 2, backoff)
        # once per outage of the slot (and per other reason), a reminder a minute, not at every attempt: the
        # retries go on every reconnect_max at most while the counterpart is away, for hours maybe
        # the reason as compared: without its figures, which change from one attempt to the next ("closed ...
        # 4 times in a row", durations) while the reason is the same: else each attempt is a warning again
        self._outages[i].failed(f"channel {self.name}: connection {i + 1} of {self.size}: {what}; retrying every "
                                f"{self.backoff_max:g}s at most (logged again when it is open)", key=_DIGITS.sub("#", what))
        self._down[i] = True
        if self.down and self.down_since is None:
            self.down_since = time.time()
        self._notify()
        await trio.sleep(wait)
        return min(backoff * 2, self.backoff_max)

    async def _wait_for_need(self) -> None:
        """An idle-closed slot: wait until a caller asks for a connection (``connection``)."""
        self._lazy += 1
        self._notify()
        try:
            await self._demand.wait()
        finally:
            self._lazy -= 1

    async def _keep(self, conn: PoolConn, scope: trio.CancelScope) -> None:
        assert self.keepalive is not None
        await self.keepalive(conn)
        scope.cancel()

    async def _writer(self, conn: PoolConn, scope: trio.CancelScope) -> None:
        stream = conn.stream
        while conn.alive:
            if not conn.outbox:
                await conn.wake.wait()
                conn.wake = trio.Event()
                continue
            batch, conn.outbox = conn.outbox, []
            conn.unsent = []
            conn.sends += 1
            try:
                await stream.send_all(batch[0] if len(batch) == 1 else b"".join(batch))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                conn.close(f"send failed: {io_reason(exc, has_cert=self._has_cert)}")
                break
        scope.cancel()

    async def _reader(self, conn: PoolConn) -> None:
        framer, stream = conn.framer, conn.stream
        while conn.alive:
            try:
                data = await stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                if conn.alive:
                    conn.peer_closed = _peer_ended(exc)
                conn.close(f"receive failed: {io_reason(exc, has_cert=self._has_cert)}")
                return
            if not data:
                if conn.alive:
                    conn.peer_closed = True
                conn.close("closed by the counterpart")
                return
            if conn.reset:
                # closed for a call that timed out (replies in order no longer to be trusted): matched now, the
                # next reply would go to that call's place and each waiting call get the reply of the one after
                return
            try:
                frames = framer.feed(data)
            except FramingError as exc:
                conn.close(f"bad frame from the counterpart: {exc}")
                return
            if frames:
                conn.frames_in += len(frames)
                self.answers += len(frames)
                if self._outages[conn.slot].started is not None:   # a refusal's outage ends with an answer
                    self._open_again(conn.slot, " and answering")
                self.on_frames(conn, frames)
            if framer.error is not None:
                conn.close(f"bad frame from the counterpart: {framer.error}")
                return

