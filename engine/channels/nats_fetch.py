"""Fetched batches of a ``nats consume`` channel: the fetch loop, the workers, one batch's verdicts.

The fetch loop pulls up to ``batch`` messages at a time and hands each fetch (one batch) to one of
``workers`` workers; each batch goes through the channel's routes as one exchange batch, and each
message's deal outcome becomes its verdict (``ack``, ``nak``, ``term`` or ``defer``), settled by the
acknowledgement path (``engine.channels.nats_acks``).  Deferred messages that should wait are kept by
``engine.channels.nats_deferred`` instead.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any

import trio

from engine.channels.base import ConnInfo, ExchangeHandler
from engine.channels.nats_bridge import describe
from engine.channels.nats_consumer_setup import subscribe, unsubscribe, vanished

log = logging.getLogger("bsp.channel.nats")

_BATCHES = itertools.count(1)


async def fetch_loop(ch: Any, sub: Any, send: trio.MemorySendChannel[list[Any]]) -> None:
    from nats import errors as ne

    pause = 0.0
    while True:
        if pause:
            await trio.sleep(pause)
        try:
            msgs = await ch.link.aio(sub.fetch)(ch.batch, timeout=ch.fetch_wait)
        except (ne.TimeoutError, TimeoutError):
            pause = 0.0
            msgs = None
        except Exception as exc:      # disconnected / reconnecting: nats-py is on it
            log.warning("channel %s: fetch from %s failed: %s", ch.name, ch.address, describe(exc))
            pause = max(ch.link.reconnect_wait, 0.1)
            msgs = None
        if not msgs:
            # nothing came: a consumer (or stream) deleted on the server would leave this loop
            # fetching nothing for ever; set it up again instead
            start = await vanished(ch)
            if start is not None:
                await unsubscribe(ch, sub)
                sub = await subscribe(ch, start)
            continue
        pause = 0.0
        ch.received += len(msgs)
        ch.acks.held[id(msgs)] = msgs
        try:
            await send.send(msgs)
        except trio.Cancelled:
            # a drain while every worker was busy: hand this batch back now (nak), rather than leave
            # it to come back only after ack_wait
            with trio.CancelScope(shield=True):
                await ch.acks.settle(msgs, [None] * len(msgs), ["nak"] * len(msgs))
            raise


async def worker(ch: Any, recv: trio.MemoryReceiveChannel[list[Any]], handler: ExchangeHandler) -> None:
    async with recv:
        async for msgs in recv:
            try:
                await handle(ch, msgs, handler)
            finally:
                ch.acks.held.pop(id(msgs), None)


async def handle(ch: Any, msgs: list[Any], handler: ExchangeHandler, since: list[float] | None = None) -> None:
    """One batch through the routes, then settled (or its deferred messages kept: ``since`` says when
    each was first deferred, None for a fresh batch)."""
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


def verdict(ch: Any, status: str, recorded: bool) -> str:
    if status == "deferred":        # its deal key is claimed by another engine: come back later
        return "defer"
    if not recorded:
        return "nak"
    if status == "failed":
        return ch.on_failed
    return "ack"
