"""``nats.consume``: receive from a JetStream stream through a durable pull consumer.

Each fetched message is one exchange through the channel's routes; the
messages of one fetch are one batch (like the frames of one TCP chunk).  A
message is acknowledged only once its deal is committed in the ledger:

    deal committed, rejected or a       ack
    duplicate (a repeated deal key)
    deal failed (a call failed)         per ``on_failed``: ack (default), nak (redeliver after nak_delay), term
    deal not recorded / engine stopped  no ack: nak, or the server redelivers after ack_wait

So a message whose engine dies before the ack is redelivered to the next
engine on the same durable consumer (at-least-once).  Engines sharing one
``durable`` name share the work like a queue group.  At most
``max_ack_pending`` messages are unacknowledged (the server stops handing out
more), and at most ``workers`` fetched batches are processed at once.

With ``keys = "BUCKET"`` the engines of one consumer also share the deal keys of keyed routes in a
JetStream key-value bucket (``engine.channels.nats_keys``): a deal whose key another engine is running
is *deferred* (no deal row): the message is kept here (in-progress acks, so that the wait costs no
delivery towards ``max_deliver``) and run again every third of ``key_lease`` until its key is free;
handed back (nak) only after ``2 x key_lease`` with deliveries left, or when the engine stops.

A reply the route produces is published to the message's ``Bsp-Reply-To``
header subject, else to ``reply_subject``, else dropped.
"""
from __future__ import annotations

import itertools
import logging
from decimal import Decimal
from typing import Any

import trio

from engine.channels.base import ConnInfo, ExchangeHandler
from engine.channels.nats_bridge import (
    CONNECT_TIMEOUT, RECONNECT_WAIT, SUBJECT, URL, NatsLink, describe, ensure_stream,
    subject_option, until_set_up,
)
from engine.channels.nats_deferred import Deferrals
from engine.channels.nats_keys import SharedKeys, bucket_option
from engine.channels.options import ChannelConfigError, built_check, duration_above_zero, seconds
from formats.component import ComponentSpec, OptionSpec

log = logging.getLogger("bsp.channel.nats")

ON_FAILED = ("ack", "nak", "term")
REPLY_HEADER = "Bsp-Reply-To"
_BATCHES = itertools.count(1)


def _positive(name: str, options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ChannelConfigError(f"channel {name}: option {key}: expected a positive whole number, got {value!r}")
    return value


class NatsConsumer:
    role = "listen"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.link = NatsLink(name, options)
        self.subject = subject_option(name, options)
        stream = options.get("stream")
        if not isinstance(stream, str) or not stream or any(c in stream for c in " .*>"):
            raise ChannelConfigError(f"channel {name}: option stream: expected a stream name such as \"PAYMENTS\" "
                                     f"(no spaces, dots or wildcards), got {stream!r}")
        self.stream = stream
        durable, queue = options.get("durable"), options.get("queue")
        if durable is not None and queue is not None and durable != queue:
            raise ChannelConfigError(f"channel {name}: options durable ({durable!r}) and queue ({queue!r}) name "
                                     f"two consumers; with JetStream a queue group is one shared durable "
                                     f"consumer: give only one of them")
        which = "durable" if durable is not None else "queue"
        durable = durable if durable is not None else queue if queue is not None else name
        if not isinstance(durable, str) or not durable or any(c in durable for c in " .*>"):
            raise ChannelConfigError(f"channel {name}: option {which}: expected a consumer name (no spaces, dots "
                                     f"or wildcards), got {durable!r}")
        self.durable = durable
        self.create_stream = bool(options.get("create_stream", True))
        self.batch = _positive(name, options, "batch", 64)
        self.workers = _positive(name, options, "workers", 4)
        self.max_ack_pending = _positive(name, options, "max_ack_pending", 1024)
        self.ack_wait = duration_above_zero(name, options, "ack_wait", 30.0)
        self.max_deliver = options.get("max_deliver", -1)
        if not isinstance(self.max_deliver, int) or isinstance(self.max_deliver, bool) or \
                (self.max_deliver < 1 and self.max_deliver != -1):
            raise ChannelConfigError(f"channel {name}: option max_deliver: expected -1 (no limit) or a count from "
                                     f"1, got {self.max_deliver!r}")
        self.fetch_wait = duration_above_zero(name, options, "fetch_wait", 1.0)
        self.nak_delay = seconds(options.get("nak_delay"), 1.0)
        self.on_failed = options.get("on_failed", "ack")
        if self.on_failed not in ON_FAILED:
            raise ChannelConfigError(f"channel {name}: option on_failed: expected one of {', '.join(ON_FAILED)}, "
                                     f"got {self.on_failed!r}")
        bucket = bucket_option(name, options)
        lease = duration_above_zero(name, options, "key_lease", 30.0)
        # deal keys shared by the engines of this consumer (engine.channels.nats_keys)
        self.keys = SharedKeys(name, self.link, bucket, lease, create=self.create_stream) if bucket else None
        reply = options.get("reply_subject")
        self.reply_subject = subject_option(name, options, "reply_subject") if reply is not None else None
        self._scope = trio.CancelScope()
        self._draining = False
        self.ready = trio.Event()           # connected, stream and consumer in place
        self.setup_error = ""
        self.received = self.acked = self.naked = self.termed = 0
        self._deferrals = Deferrals(self)    # deferred messages kept here (engine.channels.nats_deferred)
        self._floor = 0                     # highest stream sequence the consumer's ack floor reached
        self._stream_created: Any = None
        self._held: dict[int, list[Any]] = {}   # fetched, not yet settled: kept "in progress" on the server
        self._unconfirmed = 0               # messages settled since the last flush
        self._confirm_wanted = trio.Event()
        self.flushes = 0

    @property
    def defer_delay(self) -> float:
        """A message whose deal key another engine holds is tried again after this: a third of key_lease
        (so that a claim whose engine is gone is found stale within a few tries), at least nak_delay."""
        return max(self.nak_delay, self.keys.lease / 3 if self.keys is not None else 0.0)

    @property
    def deferred(self) -> int:
        """Times a message was deferred (its deal key busy on another engine, or the bucket away)."""
        return self._deferrals.count

    @property
    def defer_hold(self) -> float:
        """How long a deferred message is kept here before it is handed back (nak) when it has deliveries
        left: twice key_lease (a claim that does not move for key_lease is taken over here before)."""
        return 2 * (self.keys.lease if self.keys is not None else 0.0)

    @property
    def address(self) -> str:
        return f"{self.link.url} {self.stream}/{self.durable} ({self.subject})"

    # -- Listener -------------------------------------------------------------
    async def serve(self, handler: ExchangeHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Starts at once (a server that is down is retried in the background and logged)."""
        if self.keys is not None:        # the bucket keeps a key as long as the ledger's key store does
            from engine.txn.log import KEY_RETENTION
            from engine.txn.shared_keys import engine_id
            # the dispatcher's ledger (bsp run hands the channel a HandlerRef to the current dispatcher)
            ledger = getattr(handler, "ledger", None) or getattr(getattr(handler, "dispatcher", None), "ledger", None)
            self.keys.retention = getattr(ledger, "key_retention", KEY_RETENTION)
            self.keys.keyring = getattr(ledger, "keyring", None)
            if ledger is not None and self.keys.keyring is None:
                log.warning("channel %s: no field keyring: the answers kept in key-value bucket %s (to answer a "
                            "repeat on any engine) are the reply bytes as sent, a card number or name in them "
                            "readable by whoever can read the bucket, and the deal keys are named there by their "
                            "unkeyed SHA-256 (a short reference or card number can be found by hashing guesses); "
                            "give the engines one field keyring (ledger.field_keys in platform.yaml, or "
                            "BSP_FIELD_KEYS(_FILE))", self.name, self.keys.bucket)
            if getattr(ledger, "path", None) is not None:     # the same engine after a restart
                self.keys.identity.file = f"{ledger.path}.engine"
                try:
                    self.keys.engine = engine_id(ledger.path)
                except OSError as exc:
                    log.error("channel %s: cannot keep this engine's id next to the ledger (%s): %s; using %s "
                              "for this run: after a restart its claims in %s are another engine's", self.name,
                              ledger.path, exc, self.keys.engine, self.keys.bucket)
        async with self.link.session():
            task_status.started()
            sub = None
            with self._phase():
                await self.link.connect()
                sub = await self._subscribe()
                if sub is not None and self.keys is not None:
                    # one live engine per engine id (a copied ledger brings its id along): EngineIdInUse
                    # stops the channel, naming <ledger>.engine
                    await self.keys.identity.hold()
            if sub is None or self._draining:
                return
            try:
                await self._consume(sub, handler)
            finally:
                if self.keys is not None:
                    with trio.CancelScope(shield=True):
                        await self.keys.identity.release()

    async def _consume(self, sub: Any, handler: ExchangeHandler) -> None:
        send, recv = trio.open_memory_channel[list[Any]](0)
        async with trio.open_nursery() as outer:
            outer.start_soon(self._keep_in_progress)
            outer.start_soon(self._confirm_acks)
            if self.keys is not None:
                outer.start_soon(self.keys.keep)
            async with trio.open_nursery() as nursery:
                for _ in range(self.workers):
                    nursery.start_soon(self._worker, recv.clone(), handler)
                if self.keys is not None:
                    nursery.start_soon(self._deferrals.serve, handler)
                recv.close()
                async with send:
                    with self._phase():
                        await self._fetch_loop(sub, send)
            # every batch already fetched has been handled and settled: their acks confirmed
            with trio.CancelScope(shield=True):
                await self._confirm()
            outer.cancel_scope.cancel()

    def stop_accepting(self) -> None:
        """Drain: fetch no more; batches already fetched finish and are acknowledged; deferred messages
        kept here are handed back (nak)."""
        self._draining = True
        self._deferrals.stopping.set()
        self._scope.cancel()

    def _phase(self) -> trio.CancelScope:
        """A cancel scope for one phase (connecting, fetching) that a drain cancels."""
        self._scope = trio.CancelScope()
        if self._draining:
            self._scope.cancel()
        return self._scope

    # -- internals ------------------------------------------------------------
    def _consumer_config(self, start_seq: int = 0) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        cfg = ConsumerConfig(
            durable_name=self.durable, filter_subject=self.subject, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL, ack_wait=self.ack_wait,
            max_ack_pending=self.max_ack_pending, max_deliver=self.max_deliver)
        if start_seq > 1:
            cfg.deliver_policy, cfg.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, start_seq
        return cfg

    def _differences(self, have: Any) -> list[str]:
        """The channel's consumer settings that the server's consumer ``have`` does not hold."""
        want = (("subject", have.filter_subject, self.subject),
                ("ack_wait", have.ack_wait, self.ack_wait),
                ("max_deliver", have.max_deliver if have.max_deliver not in (None, 0) else -1, self.max_deliver),
                ("max_ack_pending", have.max_ack_pending, self.max_ack_pending))
        return [f"{name} {old!r} -> {new!r}" for name, old, new in want
                if (abs(float(old or 0) - float(new)) > 1e-3 if name == "ack_wait" else old != new)]

    async def _subscribe(self, start_seq: int = 0) -> Any:
        from nats.js.errors import NotFoundError

        async def attempt() -> Any:
            link = self.link
            await ensure_stream(link, self.stream, [self.subject], create=self.create_stream)
            info = await link.aio(link.js.stream_info)(self.stream)
            self._stream_created = info.created
            cfg = self._consumer_config(start_seq)
            try:
                have = await link.aio(link.js.consumer_info)(self.stream, self.durable)
            except NotFoundError:
                have = None
            if have is not None:
                changed = self._differences(have.config)
                if changed:
                    # an existing durable consumer keeps its own settings unless told: a changed
                    # subject, ack_wait, max_deliver or max_ack_pending is applied to it (server update)
                    cfg.deliver_policy, cfg.opt_start_seq = have.config.deliver_policy, have.config.opt_start_seq
                    await link.aio(link.js.add_consumer)(self.stream, config=cfg)
                    log.warning("channel %s: consumer %s on stream %s updated to the channel's settings: %s",
                                self.name, self.durable, self.stream, ", ".join(changed))
            if self.keys is not None:
                await self.keys.setup()
            return await link.aio(link.js.pull_subscribe)(
                self.subject, durable=self.durable, stream=self.stream, config=cfg)

        def report(text: str) -> None:
            self.setup_error = text

        sub = await until_set_up(
            attempt, lambda exc: (f"channel {self.name}: cannot set up consumer {self.durable} on stream "
                                  f"{self.stream} at {self.link.url}: {describe(exc)} (is JetStream enabled: "
                                  f"nats-server -js?)"), report)
        self.ready.set()
        log.info("channel %s consuming %s", self.name, self.address)
        return sub

    async def _vanished(self) -> int | None:
        """None while the consumer exists (or the server cannot tell now); else the stream sequence
        to start a new consumer at (0: from the stream's first message)."""
        from nats.js.errors import NotFoundError

        link = self.link
        if not link.connected:
            return None
        try:
            with trio.move_on_after(max(link.connect_timeout, 1)):
                info = await link.aio(link.js.consumer_info)(self.stream, self.durable)
                self._floor = max(self._floor, int(info.ack_floor.stream_seq or 0))
            return None
        except NotFoundError:
            pass
        except Exception as exc:       # not connected / JetStream busy: ask again next time
            log.debug("channel %s: consumer check: %s", self.name, describe(exc))
            return None
        try:
            sinfo = await link.aio(link.js.stream_info)(self.stream)
        except Exception:              # the stream is gone too: set-up creates it (or says why not)
            sinfo = None
        same = sinfo is not None and sinfo.created == self._stream_created
        log.error("channel %s: %s %s is gone from %s (deleted?); setting it up again%s", self.name,
                  "consumer" if sinfo is not None else "stream", f"{self.stream}/{self.durable}"
                  if sinfo is not None else self.stream, link.url,
                  f", from stream sequence {self._floor + 1} (after the last acknowledged)"
                  if same and self._floor else "")
        return self._floor + 1 if same and self._floor else 0

    async def _fetch_loop(self, sub: Any, send: trio.MemorySendChannel[list[Any]]) -> None:
        from nats import errors as ne

        pause = 0.0
        while True:
            if pause:
                await trio.sleep(pause)
            try:
                msgs = await self.link.aio(sub.fetch)(self.batch, timeout=self.fetch_wait)
            except (ne.TimeoutError, TimeoutError):
                pause = 0.0
                msgs = None
            except Exception as exc:      # disconnected / reconnecting: nats-py is on it
                log.warning("channel %s: fetch from %s failed: %s", self.name, self.address, describe(exc))
                pause = max(self.link.reconnect_wait, 0.1)
                msgs = None
            if not msgs:
                # nothing came: a consumer (or stream) deleted on the server would leave this loop
                # fetching nothing for ever; set it up again instead
                start = await self._vanished()
                if start is not None:
                    await self._unsubscribe(sub)
                    sub = await self._subscribe(start)
                continue
            pause = 0.0
            self.received += len(msgs)
            self._held[id(msgs)] = msgs
            try:
                await send.send(msgs)
            except trio.Cancelled:
                # a drain while every worker was busy: hand this batch back now (nak), rather than leave
                # it to come back only after ack_wait
                with trio.CancelScope(shield=True):
                    await self._settle(msgs, [None] * len(msgs), ["nak"] * len(msgs))
                raise

    async def _unsubscribe(self, sub: Any) -> None:
        try:
            with trio.move_on_after(1):
                await self.link.aio(sub.unsubscribe)()
        except Exception as exc:      # the old inbox: nothing of value left on it
            log.debug("channel %s: unsubscribe: %s", self.name, describe(exc))

    async def _keep_in_progress(self) -> None:
        """Every third of ``ack_wait``, tell the server that the messages fetched and not yet settled
        are still being worked on (``+WPI``), so that a deal slower than ``ack_wait`` (or a batch waiting
        for a busy worker) is not handed out again meanwhile, to this engine or another one.  Only an
        engine that stopped or died lets ``ack_wait`` run out."""
        period = max(self.ack_wait / 3, 0.05)
        while True:
            await trio.sleep(period)
            held = [m for msgs in list(self._held.values()) for m in msgs]
            if not held or not self.link.connected:
                continue

            async def progress_all() -> None:
                for m in held:
                    await m.in_progress()

            try:
                with trio.move_on_after(period):
                    await self.link.aio(progress_all)()
            except Exception as exc:      # disconnected: the server redelivers after ack_wait, as documented
                log.debug("channel %s: in-progress ack: %s", self.name, describe(exc))

    async def _worker(self, recv: trio.MemoryReceiveChannel[list[Any]], handler: ExchangeHandler) -> None:
        async with recv:
            async for msgs in recv:
                try:
                    await self._handle(msgs, handler)
                finally:
                    self._held.pop(id(msgs), None)

    def last_delivery(self, m: Any) -> bool:
        """True when ``m`` is on its last delivery (max_deliver): the server drops it after a nak."""
        return self.max_deliver > 0 and _deliveries(m) >= self.max_deliver

    async def _settle_all(self, msgs: list[Any], verdicts: list[str]) -> None:
        """Settle without replies (a drain), saying which messages the server will not deliver again."""
        self._last_delivery(msgs, verdicts)
        await self._settle(msgs, [None] * len(msgs), verdicts)

    def _last_delivery(self, msgs: list[Any], verdicts: list[str]) -> None:
        for m, verdict in zip(msgs, verdicts):
            if verdict in ("nak", "defer") and self.last_delivery(m):
                # the server drops it after this nak, without a word: say so, once, loudly
                log.error("channel %s: message stream seq %s on %s (stream %s, consumer %s) was delivered "
                          "%d times (max_deliver) without being settled; the server will not deliver it "
                          "again: it stays in the stream for an operator", self.name, _seq(m),
                          m.subject, self.stream, self.durable, self.max_deliver)

    async def _handle(self, msgs: list[Any], handler: ExchangeHandler, since: list[float] | None = None) -> None:
        outcomes: list[tuple[str, bool]] = []
        conn = ConnInfo(channel=self.name, peer=f"nats:{self.stream}/{self.durable}", number=next(_BATCHES),
                        frames_in=len(msgs), extra={"outcomes": outcomes, "keys": self.keys})
        try:
            replies = await handler.handle(conn, [bytes(m.data) for m in msgs])
        except Exception:
            log.exception("channel %s: handler failed on a batch of %d message(s); they will be redelivered",
                          self.name, len(msgs))
            replies, outcomes[:] = [None] * len(msgs), [("failed", False)] * len(msgs)
        finally:
            if self.keys is not None:
                self.keys.forget_batch(conn.number)
        if len(outcomes) != len(msgs):      # a handler that does not report: returning means handled
            outcomes[:] = [("committed", True)] * len(msgs)
        verdicts = [self._verdict(status, recorded) for status, recorded in outcomes]
        replies = list(replies)
        if "defer" in verdicts:
            # kept here and tried again, no delivery counted (engine.channels.nats_deferred)
            keep = self._deferrals.keep(msgs, verdicts, since)
            if keep:
                rest = [i for i in range(len(msgs)) if i not in keep]
                msgs, replies, verdicts = [msgs[i] for i in rest], [replies[i] for i in rest], \
                    [verdicts[i] for i in rest]
        self._last_delivery(msgs, verdicts)
        with trio.CancelScope(shield=True):   # settle what was done even while stopping
            await self._settle(msgs, replies, verdicts)

    def _verdict(self, status: str, recorded: bool) -> str:
        if status == "deferred":        # its deal key is claimed by another engine: come back later
            return "defer"
        if not recorded:
            return "nak"
        if status == "failed":
            return self.on_failed
        return "ack"

    async def _settle(self, msgs: list[Any], replies: list[bytes | None], verdicts: list[str]) -> None:
        self._held.pop(id(msgs), None)
        link = self.link
        if link.nc is None or not msgs:
            return

        async def settle_all() -> list[str]:
            problems: list[str] = []
            nc = link.nc
            for m, reply, verdict in zip(msgs, replies, verdicts):
                try:
                    if reply is not None:
                        to = (m.headers or {}).get(REPLY_HEADER) or self.reply_subject
                        if to:
                            await nc.publish(to, reply)
                    if verdict == "ack":
                        await m.ack()
                    elif verdict == "nak":
                        await m.nak(delay=self.nak_delay)
                    elif verdict == "defer":
                        await m.nak(delay=self.defer_delay)
                    else:
                        await m.term()
                except Exception as exc:
                    problems.append(f"stream seq {_seq(m)}: {describe(exc)}")
            return problems

        with trio.move_on_after(max(self.link.connect_timeout, 1) + 1):
            problems = await link.aio(settle_all)()
            for v in verdicts:
                if v == "ack":
                    self.acked += 1
                elif v in ("nak", "defer"):
                    self.naked += 1
                else:
                    self.termed += 1
            if problems:
                log.warning("channel %s: acknowledgement may not have reached %s (%s); the server redelivers "
                            "unacknowledged messages after ack_wait %gs", self.name, link.url,
                            "; ".join(problems[:3]), self.ack_wait)
        # the server's word that it has the acks (a PING/PONG round trip) is waited for by
        # ``_confirm_acks``, not by this worker: it goes on with the next batch meanwhile
        self._unconfirmed += len(msgs)
        self._confirm_wanted.set()

    async def _confirm_acks(self) -> None:
        """One flush (PING/PONG) for the acks of every batch settled since the last one, off the workers'
        path: a worker that waited for it spent a round trip per batch doing nothing (batch 1: one per
        message).  A flush that fails is logged: the server redelivers what it did not get."""
        while True:
            await self._confirm_wanted.wait()
            # not cancelled half-way (bounded by its own timeout): nats-py answers a cancelled flush's PONG
            # with InvalidStateError and then no later PING of the connection is answered (a heartbeat
            # delete, a request at the stop, hung until their timeouts)
            with trio.CancelScope(shield=True):
                await self._confirm()

    async def _confirm(self) -> None:
        self._confirm_wanted = trio.Event()
        count, self._unconfirmed = self._unconfirmed, 0
        link = self.link
        if not count or link.nc is None:
            return
        nc, wait = link.nc, max(link.connect_timeout, 1)
        problem = ""
        with trio.move_on_after(wait + 1) as scope:
            try:
                await link.aio(nc.flush)(timeout=wait)
            except Exception as exc:
                problem = describe(exc)
        self.flushes += 1
        if problem or scope.cancelled_caught:
            log.warning("channel %s: acknowledgement of %d message(s) may not have reached %s (flush: %s); the "
                        "server redelivers unacknowledged messages after ack_wait %gs", self.name, count,
                        link.url, problem or f"no answer in {wait + 1:g}s", self.ack_wait)


def _deliveries(m: Any) -> int:
    try:
        return int(m.metadata.num_delivered)
    except Exception:
        return 0


def _seq(m: Any) -> Any:
    try:
        return m.metadata.sequence.stream
    except Exception:
        return "?"


def build(decl: Any) -> NatsConsumer:
    return NatsConsumer(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="nats.consume",
    doc=(
        "Receive from a NATS JetStream stream through a durable pull consumer (nats-py under "
        "trio-asyncio, one connection per channel, reconnected automatically). Each message is an "
        "exchange through the channel's routes; the messages of one fetch are one batch. A message is "
        "acknowledged only after its deal is committed in the ledger; a failed deal is acked, nak'ed or "
        "terminated per `on_failed`; a message whose deal was not recorded (or whose engine died) is "
        "redelivered. Engines sharing a `durable` name share the work like a queue group; with `keys` they "
        "also share the deal keys (a JetStream key-value bucket), so that a message redelivered to another "
        "engine is a duplicate there, not a second call. A route's "
        "reply goes to the message's `Bsp-Reply-To` header subject, else `reply_subject`."
    ),
    check=built_check(NatsConsumer),
    options=(
        URL,
        SUBJECT,
        OptionSpec("stream", "string", "The JetStream stream to consume from.", required=True),
        OptionSpec("durable", "string", "Durable consumer name (default: the channel's name); engines "
                   "sharing it share the messages.", default=None),
        OptionSpec("queue", "string", "Queue group: engines whose channels name the same queue share the "
                   "messages, each going to one of them. With JetStream that is one shared durable consumer, "
                   "so this is another name for `durable` (give one of the two).", default=None),
        OptionSpec("create_stream", "bool", "Create the stream (file storage, the channel's subject) when missing.",
                   default=True),
        OptionSpec("batch", "int", "Messages fetched per pull (one batch through the routes).", default=64),
        OptionSpec("workers", "int", "Fetched batches processed at once.", default=4),
        OptionSpec("max_ack_pending", "int", "Unacknowledged messages at most (the server holds back more).",
                   default=1024),
        OptionSpec("ack_wait", "duration", "Redeliver a message not acknowledged within this time.",
                   default=Decimal(30)),
        OptionSpec("max_deliver", "int", "Deliveries of one message at most: -1 (no limit) or 1 and more.",
                   default=-1),
        OptionSpec("on_failed", "ident", "A message whose deal failed: ack, nak (redeliver after nak_delay) "
                   "or term (never redeliver).", default="ack", choices=ON_FAILED),
        OptionSpec("nak_delay", "duration", "Delay before a nak'ed message is redelivered.", default=Decimal(1)),
        OptionSpec("fetch_wait", "duration", "How long one pull waits for messages.", default=Decimal(1)),
        OptionSpec("reply_subject", "string", "Where replies go when a message has no Bsp-Reply-To header."),
        OptionSpec("keys", "string", "A JetStream key-value bucket holding the deal keys of keyed routes for "
                   "every engine sharing the consumer (created when missing, with `create_stream`): a message "
                   "redelivered to another engine is answered as a duplicate there, not run again.",
                   default=None),
        OptionSpec("key_lease", "duration", "With `keys`: a deal key claimed by an engine that has not renewed "
                   "its claim for this long is taken as abandoned (the deal is flagged for an operator, not "
                   "run again).", default=Decimal(30)),
        CONNECT_TIMEOUT,
        RECONNECT_WAIT,
    ),
    build=build,
    examples=(
        'channel orders = nats consume {\n'
        '    url       = "nats://127.0.0.1:4222"\n'
        '    subject   = "orders.new"\n'
        '    stream    = "ORDERS"\n'
        '    durable   = "bsp-orders"\n'
        '    ack_wait  = 30s\n'
        '    on_failed = nak\n'
        '}',
    ),
)
