"""Fetched batches of a ``nats consume`` channel: the fetch loop, the workers, one batch's verdicts.

The channel has ``workers`` worker slots (``ch.slots``, a FIFO capacity limiter), taken by fetched
batches and by the retries of deferred messages (``engine.channels.nats_deferred``) alike, so that
``workers`` bounds the batches being processed.  The fetch loop takes a free slot, pulls up to ``batch``
messages into it (one batch) and processes them there; with every slot taken it waits, and it queues
for a slot behind retries already waiting (and they behind it), so neither side starves the other.
Each batch goes through the channel's routes as one exchange batch, and each message's deal outcome
becomes its verdict (``ack``, ``nak``, ``term`` or ``defer``), settled by the acknowledgement path
(``engine.channels.nats_acks``).  Deferred messages that should wait are kept by
``engine.channels.nats_deferred`` instead.

A drain does not abandon a pull: an idle channel keeps one open on the server for ``fetch_wait``, and a
message the server hands to it is the channel's until ``ack_wait`` runs out, seen or not.  So the fetch
in progress is let finish (it ends within ``fetch_wait``), what it brings is handed back (nak, no delay),
and so is what the server still delivers to the open pull until it expires (``hand_back_open_pull``):
another engine on the consumer gets it at once rather than after ``ack_wait``.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any

import trio

from engine.channels.base import ConnInfo, ExchangeHandler
from engine.channels.nats_acks import seq
from engine.channels.nats_bridge import describe
from engine.channels.nats_consumer_setup import subscribe, unsubscribe, vanished
from engine.txn.late_record import LOGGED, MEMORY

log = logging.getLogger("bsp.channel.nats")

_BATCHES = itertools.count(1)
_EXPIRY_MARGIN = 0.25      # s: a pull's expiry on the server, seen from here (a loopback round trip and more)


async def fetch_loop(ch: Any, sub: Any, nursery: trio.Nursery, handler: ExchangeHandler) -> None:
    """Fetch a batch once a worker slot is free (``ch.slots``, shared with the retries of deferred messages,
    first come first served) and process it in that slot: at most ``workers`` batches are processed at
    once, and nothing is fetched while every slot is taken."""
    pause = 0.0
    while True:
        if pause:
            await trio.sleep(pause)
        slot = object()
        await ch.slots.acquire_on_behalf_of(slot)
        try:
            msgs, pause = await _fetch(ch, sub)
        except BaseException:
            ch.slots.release_on_behalf_of(slot)
            raise
        if ch.draining:
            # fetched while a drain began: not run, handed back for another engine (no checkpoint before:
            # the drain's cancellation would drop them here, held by nobody until ack_wait)
            ch.slots.release_on_behalf_of(slot)
            await hand_back(ch, msgs or [])
            return
        if not msgs:
            ch.slots.release_on_behalf_of(slot)
            # nothing came: a consumer (or stream) deleted on the server would leave this loop
            # fetching nothing for ever; set it up again instead
            start = await vanished(ch)
            if start is not None:
                await unsubscribe(ch, sub)
                sub = await subscribe(ch, start)
            continue
        ch.received += len(msgs)
        ch.acks.held[id(msgs)] = msgs
        nursery.start_soon(_process, ch, msgs, handler, slot)


async def _fetch(ch: Any, sub: Any) -> tuple[list[Any] | None, float]:
    """One pull: (the messages or None, the pause before the next one)."""
    from nats import errors as ne

    # the server may deliver to this pull until it expires, fetch_wait from now (hand_back_open_pull)
    ch.pull_open_until = trio.current_time() + ch.fetch_wait
    # not cancelled by a drain: messages nats-py has taken for this fetch would be lost with it (held by
    # nobody until ack_wait); it ends by itself within fetch_wait, bounded here all the same
    with trio.move_on_after(ch.fetch_wait + max(ch.link.connect_timeout, 1)) as scope:
        scope.shield = True
        try:
            return await ch.link.aio(sub.fetch)(ch.batch, timeout=ch.fetch_wait), 0.0
        except (ne.TimeoutError, TimeoutError):
            return None, 0.0
        except Exception as exc:      # disconnected / reconnecting: nats-py is on it
            log.warning("channel %s: fetch from %s failed: %s", ch.name, ch.address, describe(exc))
            return None, max(ch.link.reconnect_wait, 0.1)
    return None, 0.0


async def hand_back(ch: Any, msgs: list[Any], delay: float = 0.0) -> None:
    """Messages fetched during a drain: handed back (nak after ``delay``), not run here."""
    msgs = [m for m in msgs if not (m.headers or {}).get("Status")]     # status messages are no deliveries
    if msgs:
        ch.received += len(msgs)
        ch.acks.back_delay = delay
        with trio.CancelScope(shield=True):
            await ch.acks.settle_all(msgs, ["back"] * len(msgs))
        log.info("channel %s: draining: handed %d message(s) back to %s for another consumer",
                 ch.name, len(msgs), ch.address)


async def hand_back_open_pull(ch: Any, sub: Any) -> None:
    """A drain: until the last pull sent expires on the server, hand back whatever it delivers (nats-py
    puts it in the subscription's queue, which nobody reads any more), to come again once that pull has
    expired: a nak without delay would have the server deliver it to the same open pull again, a delivery
    lost each time (``max_deliver``)."""
    queue = getattr(getattr(sub, "_sub", None), "_pending_queue", None)
    if queue is None:
        return
    until = getattr(ch, "pull_open_until", 0.0) + _EXPIRY_MARGIN
    while True:
        msgs = []
        while not queue.empty():
            m = queue.get_nowait()
            sub._sub._pending_size = max(0, sub._sub._pending_size - len(m.data))
            msgs.append(m)
        await hand_back(ch, msgs, max(until - trio.current_time(), 0.0))
        if trio.current_time() >= until:
            return
        await trio.sleep(max(min(0.05, until - trio.current_time()), 0.0))


async def _process(ch: Any, msgs: list[Any], handler: ExchangeHandler, slot: object) -> None:
    """One fetched batch in the worker slot the fetch loop took for it."""
    try:
        await handle(ch, msgs, handler)
    finally:
        ch.acks.held.pop(id(msgs), None)
        ch.slots.release_on_behalf_of(slot)


async def handle(ch: Any, msgs: list[Any], handler: ExchangeHandler, since: list[float] | None = None) -> None:
    """One batch through the routes, then settled (or its deferred messages kept: ``since`` says when
    each was first deferred, None for a fresh batch)."""
    if since is None:                   # a fresh batch: a message over max_message is refused, not run
        msgs = await refuse_oversize(ch, msgs, handler)
        if not msgs:
            return
    outcomes: list[tuple[str, bool]] = []
    conn = ConnInfo(channel=ch.name, peer=f"nats:{ch.stream}/{ch.durable}", number=next(_BATCHES),
                    frames_in=len(msgs), extra={"outcomes": outcomes, "keys": ch.keys})
    try:
        replies = await handler.handle(conn, [bytes(m.data) for m in msgs])
    except Exception:
        log.exception("channel %s: handler failed on a batch of %d message(s); they will be redelivered",
                      ch.name, len(msgs))
        replies, outcomes[:] = [None] * len(msgs), [("failed", False)] * len(msgs)
    finally:
        if ch.keys is not None:
            ch.keys.forget_batch(conn.number)
    if len(outcomes) != len(msgs):      # a handler that does not report: returning means handled
        outcomes[:] = [("committed", True)] * len(msgs)
    verdicts = [verdict(ch, status, recorded) for status, recorded in outcomes]
    _say_held(ch, msgs, outcomes, verdicts)
    replies = list(replies)
    if "defer" in verdicts:
        # kept here and tried again, no delivery counted (engine.channels.nats_deferred)
        keep = ch.deferrals.keep(msgs, verdicts, since)
        if keep:
            rest = [i for i in range(len(msgs)) if i not in keep]
            msgs, replies, verdicts = [msgs[i] for i in rest], [replies[i] for i in rest], \
                [verdicts[i] for i in rest]
    ch.acks.warn_last_delivery(msgs, verdicts)
    with trio.CancelScope(shield=True):   # settle what was done even while stopping
        await ch.acks.settle(msgs, replies, verdicts)


async def refuse_oversize(ch: Any, msgs: list[Any], handler: ExchangeHandler) -> list[Any]:
    """The messages of ``msgs`` within ``max_message``.  Each one over it is not decoded nor run: it is recorded
    as a ``malformed`` deal with its dead letter (the reason names its size, the bound and its stream
    sequence; the channel's ``on error reply`` answers it) and acked, so that the server does not deliver it
    again and again; nak'ed when its deal could not be recorded (it is refused again at its next delivery)."""
    big = [m for m in msgs if len(m.data) > ch.max_message]
    if not big:
        return msgs
    from engine.channels.http_listen_dispatch import refuse_one
    from engine.runtime.exchange import StepFailure

    for m in big:
        size, at = len(m.data), seq(m)
        detail = (f"channel {ch.name}: message of {size} bytes (stream {ch.stream} sequence {at}, subject "
                  f"{m.subject}) is over max_message = {ch.max_message}: not run; acked so that it is not "
                  f"delivered again; raise max_message on the channel (and retry this dead letter) if such "
                  f"messages are expected")
        failure = StepFailure("malformed", detail, text=f"message over max_message ({size} > {ch.max_message} "
                                                        f"bytes)", where=f"channel {ch.name}")
        conn = ConnInfo(channel=ch.name, peer=f"nats:{ch.stream}/{ch.durable}", number=next(_BATCHES),
                        frames_in=1, extra={"keys": ch.keys})
        reply, verdict_ = None, "ack"
        try:
            reply = (await refuse_one(handler, conn, bytes(m.data), None, failure)).reply
        except Exception as exc:        # the ledger refused the deal: delivered again, refused again then
            verdict_ = "nak"
            log.error("channel %s: stream seq %s: a message over max_message could not be recorded as refused "
                      "(%s); nak'ed, refused again at its next delivery", ch.name, at, describe(exc))
        log.warning("channel %s: stream seq %s: %d bytes, over max_message = %d: not run, recorded as a malformed "
                    "deal with its dead letter and %s", ch.name, at, size, ch.max_message,
                    "acked" if verdict_ == "ack" else "nak'ed")
        with trio.CancelScope(shield=True):
            await ch.acks.settle([m], [reply], [verdict_])
    return [m for m in msgs if len(m.data) <= ch.max_message]


def verdict(ch: Any, status: str, recorded: bool | str) -> str:
    """``recorded``: True, False, or a deal whose calls went out and whose row the ledger could not take
    (``engine.txn.late_record``): ``LOGGED`` (its end durable in the transaction log) or ``MEMORY``."""
    if status == "deferred":        # its deal key is claimed by another engine: come back later
        return "defer"
    if recorded is False:           # nothing of it left the engine (or refused for good): run it again
        return "nak"
    if status == "failed":
        return ch.on_failed
    if recorded == MEMORY:          # acted on, its outcome in memory only: never again, not "done" either
        return "term"
    return "ack"                    # its row is stored, or will be from the transaction log


def _say_held(ch: Any, msgs: list[Any], outcomes: list[tuple[str, Any]], verdicts: list[str]) -> None:
    """One line per batch for the messages whose deals acted at a counterpart while the ledger could not be
    written: settled, not redelivered, so that the counterpart is not called again."""
    held = [(seq(m), rec, v) for m, (_status, rec), v in zip(msgs, outcomes, verdicts)
            if rec in (LOGGED, MEMORY) and v != "nak"]      # a failed deal nak'ed (on_failed) runs again by choice
    if not held:
        return
    logged = [str(s) for s, rec, _v in held if rec == LOGGED]
    memory = [str(s) for s, rec, _v in held if rec == MEMORY]
    if logged:
        log.info("channel %s: stream seq %s: the deal's calls went out but the ledger could not be written; its "
                 "outcome is in the transaction log and its row is written once the ledger can (or by the next "
                 "start): settled per its outcome (%s), not redelivered, so the counterpart is not called again",
                 ch.name, ", ".join(logged), ", ".join(sorted({v for _s, r, v in held if r == LOGGED})))
    if memory:
        log.error("channel %s: stream seq %s: the deal's calls went out but neither the ledger nor the transaction "
                  "log could be written; settled (%s: not delivered again, so the counterpart is not called "
                  "again); its row is written once the ledger can; an engine stopped before the transaction log "
                  "takes writes again finds the deal in flight at its next start (flagged for an operator)",
                  ch.name, ", ".join(memory), ", ".join(sorted({v for _s, r, v in held if r == MEMORY})))
