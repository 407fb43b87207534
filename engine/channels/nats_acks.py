"""The acknowledgement path of a ``nats consume`` channel: messages held, settled, confirmed.

A fetched message is *held* (``held``) until it is settled: every third of ``ack_wait`` the server is
told that held messages are still being worked on (``+WPI``, an in-progress ack), so that a slow deal
(or a deferred message waiting for a worker slot) is not handed out again meanwhile.  Settling a message sends its
reply (``Bsp-Reply-To`` header, else ``reply_subject``) and its verdict: ``+ACK``, ``-NAK`` (after
``nak_delay``; a deferred message after ``defer_delay``) or ``+TERM``.  One flush (PING/PONG) for all the
acks settled since the last one confirms that the server has them, off the workers' path.

A settled message gets no in-progress ack again: a ``+WPI`` after its ``-NAK`` would restart its
``ack_wait`` on the server and hold its redelivery back until then, instead of ``nak_delay``.  Each
message is flagged settled (``settled``) before its verdict is sent, and the progress round checks the
flag right before each ``+WPI``, in the same asyncio task that sends it, with no suspension between the
check and the send: the round may be suspended between two messages (nats-py waits for a flush when its
outbound buffer is full), and a worker may settle the next one meanwhile.
"""
from __future__ import annotations

import logging
from typing import Any

import trio

from engine.channels.nats_bridge import describe

log = logging.getLogger("bsp.channel.nats")

REPLY_HEADER = "Bsp-Reply-To"
_SETTLED = "_bsp_settled"        # set on a nats-py Msg once its verdict is on its way


def settled(m: Any) -> bool:
    """True once ``m`` has been acked, nak'ed or termed by this channel (or is being)."""
    return getattr(m, _SETTLED, False)


def _mark_settled(m: Any) -> None:
    setattr(m, _SETTLED, True)


def deliveries(m: Any) -> int:
    try:
        return int(m.metadata.num_delivered)
    except Exception:
        return 0


def seq(m: Any) -> Any:
    try:
        return m.metadata.sequence.stream
    except Exception:
        return "?"


class Acks:
    def __init__(self, ch: Any) -> None:
        self.ch = ch                        # the NatsConsumer: its link, options and counters
        self.held: dict[int, list[Any]] = {}   # fetched, not yet settled: kept "in progress" on the server
        self._unconfirmed = 0               # messages settled since the last flush
        self._confirm_wanted = trio.Event()
        self.flushes = 0
        self.back_delay = 0.0               # s: the nak delay of a message handed back by a drain

    async def keep_in_progress(self) -> None:
        """Every third of ``ack_wait``, tell the server that the messages fetched and not yet settled
        are still being worked on (``+WPI``), so that a deal slower than ``ack_wait`` (or a deferred
        message kept here, or waiting for a worker slot) is not handed out again meanwhile, to this engine or another one.  Only an
        engine that stopped or died lets ``ack_wait`` run out."""
        ch = self.ch
        period = max(ch.ack_wait / 3, 0.05)
        while True:
            await trio.sleep(period)
            held = [m for msgs in list(self.held.values()) for m in msgs]
            if not held or not ch.link.connected:
                continue

            async def progress_all() -> None:
                for m in held:
                    # settled meanwhile (a worker ran while this round waited): no +WPI after its verdict.
                    # No await between this check and the send (the publish is buffered at once)
                    if not settled(m):
                        await m.in_progress()

            try:
                with trio.move_on_after(period):
                    await ch.link.aio(progress_all)()
            except Exception as exc:      # disconnected: the server redelivers after ack_wait, as documented
                log.debug("channel %s: in-progress ack: %s", ch.name, describe(exc))

    def warn_last_delivery(self, msgs: list[Any], verdicts: list[str]) -> None:
        ch = self.ch
        for m, verdict in zip(msgs, verdicts):
            if verdict in ("nak", "defer") and ch.last_delivery(m):
                # the server drops it after this nak, without a word: say so, once, loudly
                log.error("channel %s: message stream seq %s on %s (stream %s, consumer %s) was delivered "
                          "%d times (max_deliver) without being settled; the server will not deliver it "
                          "again: it stays in the stream for an operator", ch.name, seq(m),
                          m.subject, ch.stream, ch.durable, ch.max_deliver)

    async def settle_all(self, msgs: list[Any], verdicts: list[str]) -> None:
        """Settle without replies (a drain), saying which messages the server will not deliver again."""
        self.warn_last_delivery(msgs, verdicts)
        await self.settle(msgs, [None] * len(msgs), verdicts)

    async def settle(self, msgs: list[Any], replies: list[bytes | None], verdicts: list[str]) -> None:
        ch = self.ch
        self.held.pop(id(msgs), None)
        link = ch.link
        if link.nc is None or not msgs:
            return

        async def send_all() -> list[str]:
            problems: list[str] = []
            nc = link.nc
            for m, reply, verdict in zip(msgs, replies, verdicts):
                _mark_settled(m)        # before anything is awaited: no +WPI for it from now on
                try:
                    if reply is not None:
                        to = (m.headers or {}).get(REPLY_HEADER) or ch.reply_subject
                        if to:
                            await nc.publish(to, reply)
                    if verdict == "ack":
                        await m.ack()
                    elif verdict == "nak":
                        await m.nak(delay=ch.nak_delay)
                    elif verdict == "defer":
                        await m.nak(delay=ch.defer_delay)
                    elif verdict == "back":         # fetched during a drain, not run: another engine's
                        await m.nak(delay=self.back_delay or None)
                    else:
                        await m.term()
                except Exception as exc:
                    problems.append(f"stream seq {seq(m)}: {describe(exc)}")
            return problems

        with trio.move_on_after(max(link.connect_timeout, 1) + 1):
            problems = await link.aio(send_all)()
            for v in verdicts:
                if v == "ack":
                    ch.acked += 1
                elif v in ("nak", "defer", "back"):
                    ch.naked += 1
                else:
                    ch.termed += 1
            if problems:
                log.warning("channel %s: acknowledgement may not have reached %s (%s); the server redelivers "
                            "unacknowledged messages after ack_wait %gs", ch.name, link.url,
                            "; ".join(problems[:3]), ch.ack_wait)
        # the server's word that it has the acks (a PING/PONG round trip) is waited for by
        # ``confirm_acks``, not by this worker: it goes on with the next batch meanwhile
        self._unconfirmed += len(msgs)
        self._confirm_wanted.set()

    async def confirm_acks(self) -> None:
        """One flush (PING/PONG) for the acks of every batch settled since the last one, off the workers'
        path: a worker that waited for it spent a round trip per batch doing nothing (batch 1: one per
        message).  A flush that fails is logged: the server redelivers what it did not get."""
        while True:
            await self._confirm_wanted.wait()
            # not cancelled half-way (bounded by its own timeout): nats-py answered a cancelled (or timed
            # out) flush's PONG with InvalidStateError, which ended its read loop; the channel's client now
            # lets such a PONG pass (engine.channels.nats_pong), and a flush left to its timeout still says
            # whether the server has the acks
            with trio.CancelScope(shield=True):
                await self.confirm()

    async def confirm(self) -> None:
        ch = self.ch
        self._confirm_wanted = trio.Event()
        count, self._unconfirmed = self._unconfirmed, 0
        link = ch.link
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
                        "server redelivers unacknowledged messages after ack_wait %gs", ch.name, count,
                        link.url, problem or f"no answer in {wait + 1:g}s", ch.ack_wait)
