"""MUX: many requests in flight over a pool of persistent connections, replies matched by key.

``tcp connect`` becomes a ``MuxConnector`` as soon as it is given one of the
options below (``pool``, ``match``, TLS, retries, breaker, echo).  Without
``match`` each connection answers in order (first-in first-out, as plain
``tcp connect``); with it, replies are matched to requests by a key:

    match = iso8583              MTI class + DE 11 + DE 41 (network management
                                 08xx: MTI class + DE 11), formats.iso8583.mux.iso_key
    match = ["reference"]        the listed fields (dotted paths into nested
    match = ["hdr.ref", "term"]  values), equal in the request and its reply

The key of a request is read from the request as encoded (decoded again with
the call's format, or the channel's ``format``); the key of a reply from the
reply decoded with the call's reply format.  A call whose request body does not
set the key fields is a compile-time error (E066, ``dsl/muxkeys.py``) where the
format shows its fields; at run time a request without its key fields (a null
value, a format without a field list) fails at once (kind ``internal``, the
message names the field), never a silent timeout; two requests in flight with
the same key: the second fails, unless it is the same ISO 8583 reversal
(``match = iso8583``, MTI class 04x0, the same DE 90): then it is not sent and
shares the answer (or the time-out) of the one in flight (``_Slot.riders``,
counted in ``joined``).
A reply whose key matches nothing waiting (late after a timeout, or never
asked for) is logged and counted in ``unmatched``; a reply that cannot be
decoded is logged and counted in ``garbled`` (its request then times out).
A reply whose message MAC is missing or wrong (``formats.mac.MacError``) is
counted in ``unauthentic`` and never used: the request its key names (read
without the MAC check) fails at once with kind ``unauthenticated``.  Those
lines go through the channel's ``FaultLog`` (engine/faultlog.py): the first of
each kind in full, a counterpart gone wrong sending thousands counted and
summed up in one line per 30 seconds and at the stop.

``echo_every`` (with ``match = iso8583``) sends an 0800 (DE 70 = 301) on each
connection at that interval; an echo not answered within ``timeout`` closes
the connection, which reconnects.  Resilience (engine/resilience.py): the
breaker (``breaker_failures`` within ``breaker_window``, re-probe after
``breaker_reset``), ``max_in_flight`` (over it a request fails at once), and
``retries`` with exponential back-off and jitter, allowed only with
``idempotent = true``.
"""
from __future__ import annotations

import itertools
from collections import deque
import logging
import math
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

import trio

from engine.channels.base import CallTimeout, ChannelError, ConnectionLost, Unreachable, request_one
from engine.channels.options import ChannelConfigError, parse_address, reversal_in_flight, seconds
from engine.channels.pool import Pool, PoolConn
from engine.channels.staged import Staging
from engine.faultlog import FaultLog
from engine.resilience import FAILURE_KINDS, CircuitBreaker, InFlightCap, Rejected, RetryPolicy
from engine.tls import client_context
from formats.component import OptionSpec
from formats.errors import FormatError
from formats.framing import FramingError, framer_factory
from formats.iso8583.mux import iso_echo, iso_key
from formats.mac import MacError

log = logging.getLogger("bsp.channel.mux")

MISSING = object()


class Unauthentic(ChannelError):
    """An answer whose message MAC is missing or wrong: the request it claims to answer fails, the answer
    is never used."""

    kind = "unauthenticated"


class KeyMissing(ChannelError):
    """A request whose MUX key cannot be built (or is already in flight): not sent."""

    kind = "internal"


# ----------------------------------------------------------------- keys

def path_key(paths: tuple[str, ...]) -> Callable[[Any], tuple[str, ...]]:
    split = [tuple(p.split(".")) for p in paths]

    def key(values: Any) -> tuple[str, ...]:
        out = []
        for path, parts in zip(paths, split):
            v = values
            for part in parts:
                v = v.get(part, MISSING) if isinstance(v, dict) else MISSING
                if v is MISSING:
                    break
            if v is MISSING or v is None or v == "":
                raise FormatError(f"cannot build a MUX key: field {path} is missing", field=path,
                                  hint="requests sent over a matched channel must carry every field of "
                                       f"`match` ({', '.join(paths)}), and replies must echo them")
            out.append(str(v))
        return tuple(out)

    return key


def parse_match(channel: str, value: Any) -> tuple[Callable[[Any], tuple[str, ...]] | None, tuple[str, ...]]:
    """``match`` option -> (key function, the fields it reads)."""
    if value is None:
        return None, ()
    if value == "iso8583":
        return iso_key, ("t", "11", "41")
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return path_key(tuple(value)), tuple(value)
    raise ChannelConfigError(
        f"channel {channel}: option match: expected iso8583 or a list of field names such as "
        f"[\"reference\"] or [\"11\", \"41\"], got {value!r}")


MEMO_MAX = 65536
FLAP_KEEP = 256          # connections lost with calls waiting, remembered for bsp status (engine/ops/health.py)


class _MemoCodec:
    """A call step's codec that shares work with the MUX (same codec object underneath).

    ``encode`` remembers the values of the bytes it made, so the MUX reads the
    request key without decoding them again; ``decode`` takes the values the MUX
    already decoded to read the reply key.  Both memos are bounded.
    """

    def __init__(self, inner: Any, sent: dict[bytes, Any] | None, seen: dict[bytes, Any] | None) -> None:
        self.inner = inner
        self._sent = sent
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, values: Any) -> bytes:
        data = self.inner.encode(values)
        sent = self._sent
        if sent is not None:
            if len(sent) >= MEMO_MAX:
                sent.clear()
            sent[data] = values
        return data

    def decode(self, data: bytes) -> Any:
        if self._seen is not None:
            got = self._seen.pop(data, None)
            if got is not None and got[0] is self.inner:    # decoded by this codec (not another version's)
                return got[1]
        return self.inner.decode(data)


# ----------------------------------------------------------------- waiting requests

class _Waiter:
    __slots__ = ("left", "event")

    def __init__(self) -> None:
        self.left = 0
        self.event = trio.Event()


class _Slot:
    __slots__ = ("waiter", "key", "conn", "result", "echo", "same", "riders", "rider")

    def __init__(self, waiter: _Waiter, key: Any, conn: PoolConn, echo: str | None = None,
                 same: str | None = None) -> None:
        self.waiter = waiter
        self.key = key
        self.conn = conn
        self.result: bytes | ChannelError | None = None
        self.echo = echo            # match = iso8583: the request's DE 37, which its reply must not contradict
        # match = iso8583, a reversal or advice (MTI class 04x0): its DE 90, the original it reverses; another
        # request with its key and this DE 90 is the same reversal and rides on it (``riders``) instead of failing
        self.same = same
        self.riders: list[_Slot] | None = None
        self.rider = False          # not sent: it shares the outcome of the slot it rides on

    def resolve(self, result: bytes | ChannelError) -> None:
        if self.result is None:
            self.result = result
            if not self.rider:
                self.conn.in_flight -= 1
            w = self.waiter
            w.left -= 1
            if w.left <= 0:
                w.event.set()
            riders, self.riders = self.riders, None
            for r in riders or ():
                r.resolve(result)   # the answer (or the time-out, the lost connection) of the one request sent


# ----------------------------------------------------------------- the channel

class MuxConnector:
    role = "connect"

    def __init__(self, name: str, options: dict[str, Any], *, load_tls: bool = True) -> None:
        self.name = name
        self.host, self.port = parse_address(name, options.get("address"))
        new_framer = framer_factory(name, options, echo_header=False)
        self.framing = new_framer.framing
        if self.framing == "eof":
            raise ChannelConfigError(f"channel {name}: option framing: eof (one message per connection) "
                                     f"is for tcp listen; a tcp connect channel keeps its connections")
        self.timeout = seconds(options.get("timeout"), 30.0)
        self.connect_timeout = seconds(options.get("connect_timeout"), 3.0)
        self.key_of, self.key_fields = parse_match(name, options.get("match"))
        self.format_name: str | None = options.get("format")
        self.echo_every = seconds(options.get("echo_every"), 0.0)
        if self.echo_every and options.get("match") != "iso8583":
            raise ChannelConfigError(f"channel {name}: option echo_every sends ISO 8583 0800 echoes and needs "
                                     f"match = iso8583 (and an iso8583 format)")
        retries = int(options.get("retries", 0) or 0)
        self.idempotent = bool(options.get("idempotent", False))
        if retries and not self.idempotent:
            raise ChannelConfigError(
                f"channel {name}: option retries = {retries} needs idempotent = true: a call is retried only "
                f"when sending it twice is harmless (the counterpart may have acted on the first one)")
        self.policy = RetryPolicy(retries, seconds(options.get("backoff"), 0.2),
                                  seconds(options.get("backoff_max"), 2.0))
        failures = int(options.get("breaker_failures", 0) or 0)
        self.breaker = CircuitBreaker(
            name, failures=failures, window=seconds(options.get("breaker_window"), 30.0),
            reset=seconds(options.get("breaker_reset"), 10.0)) if failures else None
        self.cap = InFlightCap(name, int(options.get("max_in_flight", 4096)))
        self.reversal_in_flight = reversal_in_flight(name, options)     # read by engine/txn/saf.py
        self.ssl_context = None
        if any(options.get(k) for k in ("ca", "cert", "server_name")) or options.get("tls"):
            try:
                self.ssl_context = client_context(options.get("ca"), options.get("cert"), options.get("key"),
                                                  options.get("server_name")) if load_tls else None
            except ValueError as exc:
                raise ChannelConfigError(f"channel {name}: {exc}") from None
        elif options.get("key"):
            raise ChannelConfigError(f"channel {name}: option key needs cert (the client certificate)")
        self.pool = Pool(name, self.host, self.port, size=int(options.get("pool", 1) or 1),
                         new_framer=new_framer, on_frames=self._on_frames, on_lost=self._on_lost,
                         keepalive=self._echo_loop if self.echo_every else None,
                         ssl_context=self.ssl_context, connect_timeout=self.connect_timeout,
                         backoff_max=seconds(options.get("reconnect_max"), 2.0))
        self.codec: Any = None
        self.reply_codec: Any = None
        # the configuration whose formats keys are read with, and one bound meanwhile (until ``adopt``): held
        # weakly, a dry run's or a refused reload's goes with it (engine/channels/staged.py); ``before`` the
        # (codec, reply codec) of the one the last ``adopt`` replaced, while its calls may be in flight
        self.staging = Staging()
        self._pending: dict[Any, _Slot] = {}
        self._sent: dict[bytes, Any] = {}      # request bytes -> values, from the call's encode
        self._seen: dict[bytes, Any] = {}      # matched reply bytes -> values, for the call's decode
        self._stans = itertools.count(1)
        self._closed = False
        self.metrics: Any = None
        self.unmatched = 0
        self.resets = 0                      # first-in first-out connections closed after a call timed out
        # connections lost with calls waiting (trio time, calls lost): their times tell bsp status it flaps
        # (engine/ops/health.py); not those the engine closed itself (resets), nor at the engine's stop
        self.drops: deque[tuple[float, int]] = deque(maxlen=FLAP_KEEP)
        self.garbled = 0
        self.unauthentic = 0                   # replies whose message MAC is missing or wrong
        self.keyless = 0
        # requests not sent because the same ISO 8583 reversal (key and DE 90) was at the counterpart: they
        # waited for its answer (``_Slot.riders``)
        self.joined = 0
        self.retried = 0
        self.echoes = 0
        self.echo_failures = 0
        self.echo_error: str | None = None     # why no echo can be built (the format refuses the 0800)
        # replies unmatched, unreadable, not authentic: the first of each kind in full, a flood counted
        self.faults = FaultLog(log, f"channel {name}", clock=trio.current_time)

    # -- wiring ---------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connects(self) -> int:
        return self.pool.connects

    @property
    def _connected(self) -> bool:          # read by engine/ops status and gauges
        return self.pool.connected and (self.breaker is None or self.breaker.state == "closed")

    @property
    def _down_until(self) -> float:
        if self.breaker is not None and self.breaker.state != "closed":
            return self.breaker.opened_at + self.breaker.reset
        return math.inf if self.pool.down else -math.inf

    @property
    def _last_error(self) -> str:
        return self.pool.last_error

    @property
    def last_error_at(self) -> float | None:
        return self.pool.last_error_at

    @property
    def circuit(self) -> str | None:
        """The breaker's state; None without a breaker (engine/ops/gauges.circuit_state then reads the
        pool: open while every connection is backing off after a failed connect, as a plain tcp connect)."""
        return self.breaker.state if self.breaker is not None else None

    @property
    def down_since(self) -> float | None:
        """Wall time since when every connection has been failing to connect (None: one is up, or
        trying)."""
        return self.pool.down_since

    def attach_metrics(self, metrics: Any) -> None:
        """Report errors (unmatched, garbled, circuit_open), circuit states and the counterpart's
        certificate expiry to ``engine.metrics.Metrics``."""
        self.metrics = metrics
        if self.breaker is not None:
            self.breaker.metrics = metrics
        self.pool.on_peer_cert = metrics.peer_cert if metrics is not None else None

    @property
    def peer_cert(self) -> Any:
        """The certificate the counterpart presented in the last TLS handshake (``engine.certexpiry``), or None."""
        return self.pool.peer_cert

    def _count(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.channel_error(self.name, kind)

    def bind_formats(self, ctx: Any, request_format: str | None, reply_format: str | None,
                     codec: Any = None, reply_codec: Any = None) -> tuple[Any, Any]:
        """Called by each ``call`` step on this channel: the formats keys are read with.

        Returns the codecs the step should use: the same ones, wrapped so that the
        MUX does not decode again what the step just encoded or will decode.
        """
        if self.key_of is None and not self.echo_every:
            return codec, reply_codec
        fmt = self.format_name or request_format
        rfmt = self.format_name or reply_format or request_format
        if fmt is None:
            raise ChannelConfigError(
                f"channel {self.name} matches replies by {', '.join(self.key_fields)} but the call sends raw "
                f"bytes; call it `as FORMAT`, or give the channel `format = FORMAT`")
        mine = (ctx.codec(fmt), ctx.codec(rfmt))
        # a configuration bound while another runs on this channel (a reload keeping it, a dry run, one
        # refused later): its formats are read with from the swap on (``adopt``), not before
        self.staging.bind(ctx, lambda: self.use_codecs(*mine))
        if codec is not None and codec is mine[0]:
            codec = _MemoCodec(codec, self._sent, None)
        if reply_codec is not None and reply_codec is (mine[1] if mine[1] is not None else mine[0]):
            reply_codec = _MemoCodec(reply_codec, None, self._seen)
        return codec, reply_codec

    def adopt(self, ctx: Any) -> None:
        """The configuration bound by ``ctx`` is the running one now (a reload swapped to it, keeping this
        channel): read keys with its formats.  The replies of calls the previous one still has in flight are
        read with its formats when the new ones cannot read them (``staging.before``, until that configuration
        is freed)."""
        self.staging.adopt(ctx, keep=(self.codec, self.reply_codec))

    def use_codecs(self, codec: Any, reply_codec: Any = None) -> None:
        """The codecs request and reply keys (and echoes) are read and written with."""
        self.codec = codec
        self.reply_codec = reply_codec if reply_codec is not None else codec

    # -- running ----------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as ticker:
                ticker.start_soon(self.faults.run)     # summaries of repeated bad replies, when due
                await self.pool.run(task_status=task_status)
                ticker.cancel_scope.cancel()
        finally:
            self._closed = True
            self._fail_pending(None, ConnectionLost(f"channel {self.name}: engine stopping", channel=self.name))
            self.faults.flush()                        # the counts not yet written

    request = request_one

    async def request_many(self, payloads: list[bytes], timeout: float | None = None) -> list[bytes | ChannelError]:
        """Per payload, the reply bytes or a ``ChannelError``; never raises for a counterpart problem."""
        if not payloads:
            return []
        limit = self.timeout if timeout is None else timeout
        results = await self._attempt(payloads, limit)
        policy = self.policy
        for attempt in range(policy.retries if self.idempotent else 0):
            again = [i for i, r in enumerate(results) if isinstance(r, ChannelError) and r.kind in FAILURE_KINDS]
            if not again:
                break
            wait = policy.delay(attempt)
            self.retried += len(again)
            log.info("channel %s: retry %d of %d for %d request(s) in %.3gs (last: %s)", self.name,
                     attempt + 1, policy.retries, len(again), wait, results[again[0]])
            await trio.sleep(wait)
            redo = await self._attempt([payloads[i] for i in again], limit)
            for i, r in zip(again, redo):
                results[i] = r
        return results

    async def _attempt(self, payloads: list[bytes], limit: float) -> list[bytes | ChannelError]:
        n = len(payloads)
        out: list[Any] = [None] * n
        breaker = self.breaker
        go: list[int] = []
        refused = False
        for i in range(n):
            if self._closed:      # stopped (a drain, a reload removed it): lost, counted so by the caller
                out[i] = ConnectionLost(f"channel {self.name}: engine stopping", channel=self.name)
            elif breaker is not None and not breaker.allow():
                out[i] = breaker.rejection()
                refused = True
            else:
                go.append(i)
        if refused:               # the breaker refused calls: an open circuit (not a channel that stopped)
            self._count("circuit_open")
        if not go:
            return out
        if not self.cap.try_take(len(go)):
            err = self.cap.rejection()
            for i in go:
                out[i] = err
            if breaker is not None:
                breaker.probing = False
            self._count("overloaded")
            return out
        try:
            try:
                conn = await self.pool.connection(min(limit, self.connect_timeout))
            except Unreachable as exc:
                for i in go:
                    out[i] = exc
            else:
                await self._send_and_wait(conn, payloads, go, out, limit)
        finally:
            self.cap.give(len(go))
        if breaker is not None:
            for i in go:
                breaker.record(out[i])
        return out

    async def _send_and_wait(self, conn: PoolConn, payloads: list[bytes], go: list[int], out: list[Any],
                             limit: float) -> None:
        key_of, pending = self.key_of, self._pending
        frame = conn.framer.frame
        waiter = _Waiter()
        slots: list[tuple[int, _Slot]] = []
        frames: list[bytes] = []
        riders: list[tuple[int, _Slot]] = []
        for i in go:
            p = payloads[i]
            key = echo = same = None
            if key_of is not None:
                try:
                    key, echo, same = self._request_key(p)
                except FormatError as exc:
                    self.keyless += 1
                    out[i] = KeyMissing(f"channel {self.name}: request not sent: {exc}"
                                        + (f" (hint: {exc.hint})" if getattr(exc, "hint", None) else ""),
                                        channel=self.name)
                    continue
                first = pending.get(key)
                if first is not None and same is not None and first.same == same and first.result is None:
                    # the same reversal (its key and its original, DE 90) is at the counterpart: a second one
                    # with that key could not be told apart from it, and the host applies one; not sent, it
                    # waits for that one's answer and gets it (or its time-out)
                    rider = _Slot(waiter, key, first.conn, echo, same)
                    rider.rider = True
                    if first.riders is None:
                        first.riders = []
                    first.riders.append(rider)
                    self.joined += 1
                    riders.append((i, rider))
                    continue
                if first is not None:
                    self.keyless += 1
                    out[i] = KeyMissing(f"channel {self.name}: request not sent: another request with key "
                                        f"{'/'.join(key)} is still waiting for its reply; keys "
                                        f"({', '.join(self.key_fields)}) must be unique while in flight",
                                        channel=self.name)
                    continue
            try:
                frames.append(frame(p))
            except FramingError as exc:
                out[i] = ChannelError(f"channel {self.name}: request not sent: {exc}", channel=self.name)
                continue
            slot = _Slot(waiter, key, conn, echo, same)
            if key is not None:
                pending[key] = slot
            slots.append((i, slot))
        if not slots and not riders:
            return
        waiter.left = len(slots) + len(riders)
        data = b""
        if slots:
            conn.in_flight += len(slots)
            if key_of is None:
                if conn.fifo is None:
                    conn.fifo = deque()
                conn.fifo.extend(s for _, s in slots)
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            conn.send(data, [s for _, s in slots])
        with trio.move_on_after(limit):
            await waiter.event.wait()
        if riders:
            self._riders_done(riders, out, limit)
        if slots and not waiter.event.is_set() and conn.withdraw(data):
            # its time is up before it was written (the writer blocked behind a counterpart that reads nothing):
            # not sent, not in doubt; left there it was failed timeout and written later all the same
            err = Rejected(f"channel {self.name}: request not sent: it could not be written to {self.address} "
                           f"within {limit:g}s (the counterpart reads nothing: busy or stuck)", channel=self.name)
            mine = {id(s) for _, s in slots}
            conn.unsent = [s for s in conn.unsent if id(s) not in mine]
            if key_of is None:
                for _, slot in slots:
                    conn.fifo.remove(slot)
            for i, slot in slots:
                if slot.key is not None and pending.get(slot.key) is slot:
                    del pending[slot.key]
                slot.resolve(err)
                out[i] = slot.result
            return
        late = False
        for i, slot in slots:
            if slot.result is None:
                late = True
                slot.resolve(CallTimeout(f"channel {self.name}: no reply from {self.address} within {limit:g}s",
                                         channel=self.name))
                if slot.key is not None and pending.get(slot.key) is slot:
                    del pending[slot.key]
            out[i] = slot.result
        if late and key_of is None and conn.alive:
            # first-in first-out: a reply that never comes would hand each later call on this connection the
            # reply meant for the call before it (engine/channels/tcp_connect.py ``_out_of_step``): close it
            self.resets += 1
            conn.reset = True
            conn.close(f"a call got no reply within {limit:g}s, so later replies could no longer be matched to "
                       f"their calls in order; reconnecting (give the channel `match` to match replies by key)")
            if conn.scope is not None:       # at once, even with its writer blocked (a counterpart not reading)
                conn.scope.cancel()

    def _riders_done(self, riders: list[tuple[int, _Slot]], out: list[Any], limit: float) -> None:
        """Requests that rode on the same reversal sent before them: its outcome, or, at their own time limit
        (the one they rode on still waiting), a time-out of their own."""
        for i, rider in riders:
            if rider.result is None:
                first = self._pending.get(rider.key)
                if first is not None and first.riders is not None and rider in first.riders:
                    first.riders.remove(rider)
                rider.resolve(CallTimeout(f"channel {self.name}: no reply from {self.address} within {limit:g}s "
                                          f"(to the same reversal sent before, this one rode on)",
                                          channel=self.name))
            out[i] = rider.result

    def _request_key(self, payload: bytes) -> tuple[tuple[str, ...], str | None, str | None]:
        """(the request's key, its DE 37 with match = iso8583, else None, and, with match = iso8583, a reversal's
        or advice's DE 90 (MTI class 04x0): the original it reverses, else None)."""
        if self.codec is None:
            raise FormatError(f"channel {self.name} matches by {', '.join(self.key_fields)} but has no format "
                              f"to read them with", hint="give the channel `format = FORMAT`")
        assert self.key_of is not None
        values = self._sent.pop(payload, None)
        if values is None:
            values = self.codec.decode(payload)
        key = self.key_of(values)
        if self.key_of is not iso_key:
            return key, None, None
        same = values.get("90") if key[0][:2] == "04" else None
        return key, iso_echo(values), (str(same) if same not in (None, "") else None)

    def _contradicts(self, slot: _Slot, values: Any) -> str | None:
        """Why a reply whose key names ``slot`` is not its answer (None: it is): with match = iso8583, a
        retrieval reference (DE 37) other than the request's. A STAN and terminal are unique only within a
        day and a front end may reuse them, so a late reply to an earlier request with the same key (one
        timed out and reversed) would be taken for this one's answer: an approval, or a decline, that is
        another purchase's."""
        if slot.echo is None:
            return None
        got = iso_echo(values)
        if got is None or got == slot.echo:
            return None
        return (f"reply with key {'/'.join(slot.key)} carries DE 37 (retrieval reference) {got!r}, but the "
                f"request waiting with that key has {slot.echo!r}: a late reply to an earlier request with the "
                f"same STAN and terminal; dropped, the request waiting keeps waiting for its own")

    # -- replies ---------------------------------------------------------------
    def _on_frames(self, conn: PoolConn, frames: list[bytes]) -> None:
        key_of = self.key_of
        if key_of is None:
            fifo = conn.fifo
            for f in frames:
                if not fifo:
                    self.unmatched += 1
                    self._count("unmatched")
                    self._fault("unasked", conn, f"a reply nobody asked for (stream byte {conn.framer.offset}); "
                                "the stream is out of step, closing it", "replies nobody asked for")
                    conn.close("the counterpart sent a reply nobody asked for")
                    return
                slot = fifo.popleft()
                if slot.result is None:
                    conn.in_time += 1
                slot.resolve(f)
            return
        codec = self.reply_codec or self.codec
        pending, seen = self._pending, self._seen
        for f in frames:
            try:
                if codec is None:
                    raise FormatError("no reply format bound to read the key with")
                values, used = self._decode_reply(codec, f)
                key = key_of(values)
            except MacError as exc:     # not authentic: it may still name the request it claims to answer
                self._unauthentic(conn, f, codec, exc)
                continue
            except Exception as exc:    # FormatError, or a codec that fails otherwise on garbage
                self.garbled += 1
                self._count("garbled")
                self._fault("garbled", conn, f"reply of {len(f)} bytes cannot be read ({exc}); dropped, its "
                            "request will time out", "replies that cannot be read")
                continue
            slot = pending.get(key)
            why = self._contradicts(slot, values) if slot is not None else None
            if why is not None:
                self.unmatched += 1
                self._count("unmatched")
                self._fault("unmatched", conn, why, "replies matching no request")
                continue
            slot = pending.pop(key, None)
            if slot is None:
                self.unmatched += 1
                self._count("unmatched")
                self._fault("unmatched", conn, f"reply with key {'/'.join(key)} matches no request waiting (late "
                            "after a timeout, or never asked for); dropped", "replies matching no request")
                continue
            if len(seen) >= MEMO_MAX:
                seen.clear()
            seen[f] = (used, values)
            slot.resolve(f)

    def _decode_reply(self, codec: Any, frame: bytes) -> tuple[Any, Any]:
        """(the reply's values, the codec that read them): the running configuration's reply format, else,
        after a reload changed it, the previous one's (a reply to a call that configuration has in flight)."""
        try:
            return codec.decode(frame), codec
        except MacError:
            raise
        except Exception:
            prev = self.staging.before
            old = (prev[1] or prev[0]) if prev is not None else None
            if old is None or old is codec:
                raise
            try:
                return old.decode(frame), old
            except Exception:           # noqa: BLE001 - neither reads it: the current format's error stands
                pass
            raise

    def _unauthentic(self, conn: PoolConn, frame: bytes, codec: Any, exc: MacError) -> None:
        """A reply whose MAC is missing or wrong.  Its values are never used: the request its key names
        (read without the MAC check) fails at once with kind ``unauthenticated``; one whose key cannot be
        read, or names nothing waiting, is dropped as garbled / unmatched."""
        self.unauthentic += 1
        self._count("unauthenticated")
        try:
            values = codec.without_mac().decode(frame)
            key = self.key_of(values)
        except Exception:               # noqa: BLE001 - not even its key can be read
            key = None
        slot = self._pending.get(key) if key is not None else None
        if slot is not None and self._contradicts(slot, values) is None:
            del self._pending[key]
        else:                           # names nothing waiting, or another request's retrieval reference
            slot = None
        self._fault("unauthentic", conn, f"reply of {len(frame)} bytes is not authentic ({exc}); "
                    + ("its request fails" if slot is not None else "dropped"), "replies not authentic")
        if slot is not None:
            slot.resolve(Unauthentic(f"channel {self.name}: the answer from {self.address} is not authentic: "
                                     f"{exc}", channel=self.name))

    def _fault(self, kind: str, conn: PoolConn, what: str, noun: str) -> None:
        """A bad reply: the first of its kind in full, a flood of them counted and summed up."""
        self.faults.occurred(kind, f"connection {conn.number} to {self.address}: {what}", noun=noun,
                             source=f"connection {conn.number}", reason=what, logger=log)

    def flaps(self, window: float) -> tuple[int, int]:
        """(connections lost with calls waiting, calls lost with them) in the last ``window`` seconds."""
        since = trio.current_time() - window
        recent = [n for t, n in self.drops if t >= since]
        return len(recent), sum(recent)

    def _on_lost(self, conn: PoolConn, reason: str) -> None:
        waiting = sum(1 for s in conn.fifo or () if s.result is None) + sum(
            1 for s in self._pending.values() if s.conn is conn and s.result is None)
        stopping = self.pool.closed or trio.current_effective_deadline() == -math.inf   # the engine stops
        if waiting and not conn.reset and not stopping:
            self.drops.append((trio.current_time(), waiting))
        if conn.unsent:                 # never written: the counterpart cannot have seen them (not in doubt)
            not_sent = Rejected(f"channel {self.name}: request not sent: connection to {self.address} lost "
                                f"({reason}) before it was written", channel=self.name)
            for slot in conn.unsent:
                slot.resolve(not_sent)
            conn.unsent = []
        self._fail_pending(conn, ConnectionLost(
            f"channel {self.name}: connection to {self.address} lost ({reason}) before the reply came",
            channel=self.name))

    def _fail_pending(self, conn: PoolConn | None, err: ChannelError) -> None:
        if conn is not None and conn.fifo:
            while conn.fifo:
                conn.fifo.popleft().resolve(err)
        pending = self._pending
        for key in [k for k, s in pending.items() if conn is None or s.conn is conn]:
            pending.pop(key).resolve(err)

    # -- echo ------------------------------------------------------------------
    async def _echo_loop(self, conn: PoolConn) -> None:
        while conn.alive:
            await trio.sleep(self.echo_every)
            if self.codec is None:
                continue                       # no call step bound an iso8583 format yet
            stan = f"{next(self._stans) % 1000000:06d}"
            values = {"t": "0800", "7": datetime.now(timezone.utc).strftime("%m%d%H%M%S"), "11": stan, "70": "301"}
            key = iso_key(values)
            if key in self._pending:
                continue
            try:
                data = conn.framer.frame(self.codec.encode(values))
            except Exception as exc:   # the network's spec wants more in an 0800: echoes off, connection kept
                self.echo_failures += 1
                self._count("echo")
                if self.echo_error is None:
                    log.error("channel %s: cannot build the echo 0800 (DE 7, 11, 70) with the channel's format: "
                              "%s; no echo is sent on this channel (its connections stay open): remove "
                              "echo_every, or use a format whose 0800 needs no more fields", self.name, exc)
                self.echo_error = str(exc)
                await trio.sleep_forever()
            waiter = _Waiter()
            waiter.left = 1
            slot = _Slot(waiter, key, conn)
            self._pending[key] = slot
            conn.in_flight += 1
            conn.send(data)
            with trio.move_on_after(self.timeout):
                await waiter.event.wait()
            if slot.result is None:
                self._pending.pop(slot.key, None)
                slot.resolve(CallTimeout("echo", channel=self.name))
                self.echo_failures += 1
                self._count("echo")
                log.warning("channel %s: connection %d: echo 0800 (STAN %s) unanswered within %gs; closing the "
                            "connection to reconnect", self.name, conn.number, stan, self.timeout)
                conn.close(f"echo 0800 unanswered within {self.timeout:g}s")
                return
            if isinstance(slot.result, ChannelError):
                return
            self.echoes += 1


def wants_mux(options: dict[str, Any]) -> bool:
    """Does a ``tcp connect`` declaration use pool / MUX / TLS / resilience options?"""
    return any(options.get(o.name) is not None for o in MUX_OPTIONS if o.default is None)


MUX_OPTIONS = (
    OptionSpec("pool", "int", "Persistent connections kept open to the counterpart (MUX); requests go "
               "round robin over the connected ones. One the counterpart closes idle (nothing sent on it) is "
               "re-opened at the next call and the channel stays up; one closed before any answer to what was "
               "sent on it backs off, as a failed connect.", default=None),
    OptionSpec("match", "any", "Match replies to requests by key instead of in order: `iso8583` (MTI class "
               "+ DE 11 + DE 41) or a list of field names [\"reference\"] read from the decoded request "
               "and reply.", default=None),
    OptionSpec("format", "format", "Format the key fields are read with (default: the call's formats).",
               default=None),
    OptionSpec("echo_every", "duration", "Send an ISO 8583 0800 echo (DE 70 = 301) on each connection at "
               "this interval (needs match = iso8583); unanswered within `timeout`: reconnect.", default=None),
    OptionSpec("ca", "path", "TLS: CA bundle the server certificate must chain to (turns TLS on).", default=None),
    OptionSpec("cert", "path", "TLS: our client certificate (PEM) for mutual TLS.", default=None),
    OptionSpec("key", "path", "TLS: private key of `cert` (PEM; a secret: not kept in the ledger's configuration versions, need not exist for bsp check).", default=None, secret=True),
    OptionSpec("server_name", "string", "TLS: the host name to verify (and send as SNI) instead of the "
               "address's host.", default=None),
    OptionSpec("tls", "bool", "TLS with the system's trusted roots (when no `ca` is given).", default=None),
    OptionSpec("idempotent", "bool", "Calls on this channel may be sent twice safely; required by retries.",
               default=None),
    OptionSpec("retries", "int", "Retries of a call that got no answer (unreachable, lost, timeout); needs "
               "idempotent = true.", default=None),
    OptionSpec("backoff", "duration", "First retry waits up to this long, doubling (jitter: between half and "
               "all of it).", default=Decimal("0.2")),
    OptionSpec("backoff_max", "duration", "Longest wait between retries.", default=Decimal(2)),
    OptionSpec("breaker_failures", "int", "Circuit breaker: open after this many failures (unreachable, lost, "
               "timeout) within breaker_window; while open calls fail at once (kind unreachable).",
               default=None),
    OptionSpec("breaker_window", "duration", "Circuit breaker: the window failures are counted in.",
               default=Decimal(30)),
    OptionSpec("breaker_reset", "duration", "Circuit breaker: time open before one probe call goes through.",
               default=Decimal(10)),
)
