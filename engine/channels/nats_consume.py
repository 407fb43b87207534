"""``nats.consume``: receive from a JetStream stream through a durable pull consumer.

Each fetched message is one exchange through the channel's routes; the
messages of one fetch are one batch (like the frames of one TCP chunk).  A
message is acknowledged only once its deal is committed in the ledger:

    deal committed, rejected or a       ack
    duplicate (a repeated deal key)
    deal failed (a call failed)         per ``on_failed``: ack (default), nak (redeliver after nak_delay), term
    deal not recorded, nothing sent     nak (running it again calls nobody)
    deal not recorded, its calls went   ack (term when the transaction log cannot take its outcome either):
      out (a full disk)                 not redelivered, so the counterpart is not called again; its row is
                                        written once the ledger can (engine.txn.late_record)
    engine stopped before the commit    no ack: the server redelivers after ack_wait

So a message whose engine dies before the ack is redelivered to the next
engine on the same durable consumer (at-least-once).  Engines sharing one
``durable`` name share the work like a queue group.  At most
``max_ack_pending`` messages are unacknowledged (the server stops handing out
more), and at most ``workers`` batches are processed at once: fetched batches and the retries of
deferred messages take the same ``workers`` slots (``slots``), and nothing is fetched while all are taken.

With ``keys = "BUCKET"`` the engines of one consumer also share the deal keys of keyed routes in a
JetStream key-value bucket (``engine.channels.nats_keys``): a deal whose key another engine is running
is *deferred* (no deal row): the message is kept here (in-progress acks, so that the wait costs no
delivery towards ``max_deliver``) and run again every third of ``key_lease`` until its key is free;
handed back (nak) only after ``2 x key_lease`` with deliveries left, or when the engine stops.

A reply the route produces is published to the message's ``Bsp-Reply-To``
header subject, else to ``reply_subject``, else dropped.

This module holds the component (its options and their checks, side by side); the work is done by
``nats_consumer_setup`` (the durable consumer on the server), ``nats_fetch`` (the fetch loop and the
workers: one batch's verdicts), ``nats_acks`` (held messages, in-progress acks, settling, the flush that
confirms them) and ``nats_deferred`` (deferred messages kept here).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import trio

from engine.channels.base import ExchangeHandler
from engine.channels.nats_acks import Acks, deliveries
from engine.channels.nats_auth import AUTH_OPTIONS
from engine.channels.nats_bridge import (CONNECT_TIMEOUT, RECONNECT_WAIT, SUBJECT, URL, LinkStop, NatsLink,
                                         subject_option)
from engine.channels.nats_consumer_setup import subscribe
from engine.channels.nats_deferred import Deferrals
from engine.channels.nats_fetch import fetch_loop, hand_back_open_pull
from engine.channels.nats_keys import SharedKeys, bucket_option
from engine.channels.options import ChannelConfigError, built_check, duration_above_zero, seconds
from formats.component import ComponentSpec, OptionSpec
from formats.framing import DEFAULT_MAX_FRAME

ON_FAILED = ("ack", "nak", "term")


def _positive(name: str, options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ChannelConfigError(f"channel {name}: option {key}: expected a positive whole number, got {value!r}")
    return value


class NatsConsumer(LinkStop):
    role = "listen"

    def __init__(self, name: str, options: dict[str, Any], *, load: bool = True) -> None:
        """``load`` false (``bsp check``): every option checked, no secret or TLS file read."""
        self.name = name
        self.link = NatsLink(name, options, load=load)
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
        # a message over it is not run: a malformed deal with its dead letter, acked (engine.channels.nats_fetch)
        self.max_message = _positive(name, options, "max_message", DEFAULT_MAX_FRAME)
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
        self.slots = trio.CapacityLimiter(self.workers)   # worker slots (engine.channels.nats_fetch)
        self.setup_error = ""
        self.received = self.acked = self.naked = self.termed = 0
        self.acks = Acks(self)              # held, settled, confirmed (engine.channels.nats_acks)
        self.deferrals = Deferrals(self)    # deferred messages kept here (engine.channels.nats_deferred)
        self.pull_open_until = 0.0          # trio time the last pull sent expires on the server
        self.ack_floor = 0                  # highest stream sequence the consumer's ack floor reached
        self.stream_created: Any = None     # the stream's creation time: the same stream after a set-up?

    @property
    def defer_delay(self) -> float:
        """A message whose deal key another engine holds is tried again after this: a third of key_lease
        (so that a claim whose engine is gone is found stale within a few tries), at least nak_delay."""
        return max(self.nak_delay, self.keys.lease / 3 if self.keys is not None else 0.0)

    @property
    def deferred(self) -> int:
        """Times a message was deferred (its deal key busy on another engine, or the bucket away)."""
        return self.deferrals.count

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
        if self.keys is not None:
            # the dispatcher's ledger (bsp run hands the channel a HandlerRef to the current dispatcher)
            self.keys.bind_ledger(getattr(handler, "ledger", None) or
                                  getattr(getattr(handler, "dispatcher", None), "ledger", None))
        async with self.link.session():
            task_status.started()
            sub = None
            with self._phase():
                await self.link.connect()
                sub = await subscribe(self)
                if sub is not None and self.keys is not None:
                    # one live engine per engine id (a copied ledger brings its id along): EngineIdInUse
                    # stops the channel, naming <ledger>.engine
                    await self.keys.identity.hold()
                    # claims a crash of this engine's previous run left: settled here, not flagged elsewhere
                    await self.keys.sweep()
            if sub is None or self._draining:
                return
            try:
                await self._consume(sub, handler)
            finally:
                if self.keys is not None:
                    with trio.CancelScope(shield=True):
                        await self.keys.identity.release()

    async def _consume(self, sub: Any, handler: ExchangeHandler) -> None:
        # the worker slots: fetched batches and retries of deferred messages take them alike
        self.slots = trio.CapacityLimiter(self.workers)
        async with trio.open_nursery() as outer:
            outer.start_soon(self.acks.keep_in_progress)
            outer.start_soon(self.acks.confirm_acks)
            if self.keys is not None:
                outer.start_soon(self.keys.keep)
            async with trio.open_nursery() as nursery:
                if self.keys is not None:
                    nursery.start_soon(self.deferrals.serve, handler)
                with self._phase():
                    await fetch_loop(self, sub, nursery, handler)
                if self._draining:
                    with trio.move_on_after(self.fetch_wait + 1):
                        await hand_back_open_pull(self, sub)
            # every batch already fetched has been handled and settled: their acks confirmed
            with trio.CancelScope(shield=True):
                await self.acks.confirm()
            outer.cancel_scope.cancel()

    def stop_accepting(self) -> None:
        """Drain: fetch no more; batches already fetched finish and are acknowledged; deferred messages
        kept here are handed back (nak)."""
        self._draining = True
        self.deferrals.stopping.set()
        self._scope.cancel()

    def status(self) -> dict[str, Any]:
        """What ``bsp status`` shows of the channel (engine/ops/backend.py): whether it reaches NATS (``up``
        false makes the engine degraded, naming the channel: it consumes nothing meanwhile) and what it did
        with the messages since the start."""
        from engine.outage_log import iso

        up = self.link.connected
        row: dict[str, Any] = {"connected": up, "up": up, "acked": self.acked, "naked": self.naked,
                               "termed": self.termed, "deferred": self.deferred}
        if not up:
            row["down_since"] = iso(self.link.refused.since) if self.link.refused.since else None
            row["last_error"] = self.link.down_reason or self.setup_error or f"not connected to NATS at {self.link.url} yet"
        return row

    @property
    def draining(self) -> bool:
        return self._draining

    def _phase(self) -> trio.CancelScope:
        """A cancel scope for one phase (connecting, fetching) that a drain cancels."""
        self._scope = trio.CancelScope()
        if self._draining:
            self._scope.cancel()
        return self._scope

    def last_delivery(self, m: Any) -> bool:
        """True when ``m`` is on its last delivery (max_deliver): the server drops it after a nak."""
        return self.max_deliver > 0 and deliveries(m) >= self.max_deliver


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
        "redelivered, except one whose calls went out before a full disk refused its row: acked, its row "
        "written once the ledger can, so that the counterpart is not called again. Engines sharing a "
        "`durable` name share the work like a queue group; with `keys` they "
        "also share the deal keys (a JetStream key-value bucket), so that a message redelivered to another "
        "engine is a duplicate there, not a second call. A route's "
        "reply goes to the message's `Bsp-Reply-To` header subject, else `reply_subject`."
    ),
    check=built_check(NatsConsumer, load=False),
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
        OptionSpec("workers", "int", "Batches processed at once: fetched batches and the retries of deferred "
                   "messages (one message each) share them; nothing is fetched while all are busy.", default=4),
        OptionSpec("max_ack_pending", "int", "Unacknowledged messages at most (the server holds back more).",
                   default=1024),
        OptionSpec("max_message", "int", "Largest message run, in bytes (as the TCP channels' `max_frame`); a "
                   "bigger one is not decoded: it is recorded as a `malformed` deal with its dead letter (the "
                   "reason names its size and stream sequence) and acked, so that it is not delivered again. "
                   "The server's `max_payload` bounds what it accepts at all.", default=DEFAULT_MAX_FRAME),
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
        *AUTH_OPTIONS,
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
