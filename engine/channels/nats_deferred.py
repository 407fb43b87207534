"""Deferred messages of a ``nats consume`` channel with ``keys``: kept, not handed back.

A message whose deal key another engine holds (``engine.txn.shared_keys``: *deferred*, no deal row)
used to be nak'ed and redelivered a third of ``key_lease`` later.  Every redelivery counts towards the
consumer's ``max_deliver``, and the server drops a message after its last one without a word: a key
held for long used to exhaust its repeats' deliveries, and nobody ever ran or answered them.  So the
channel keeps a deferred message: it stays among the channel's held messages (``engine.channels.nats_acks``:
in-progress acks, ``+WPI``, which count no delivery) and is run again every ``defer_delay`` until it is no
longer deferred, each message on its own (one whose deal then runs long does not hold the others back),
in one of the channel's ``workers`` slots (``ch.slots``, shared with fetched batches, first come first
served: ``workers`` bounds everything being processed; the message stays held, in-progress acks and
all, while it waits for a slot).  It is handed back (nak) only

    after ``defer_hold`` (2 x key_lease) of waiting, when it has deliveries left  another engine may fare better
    when the engine stops (a drain)                                               at once
"""
from __future__ import annotations

from typing import Any

import trio

from engine.channels.nats_fetch import handle


class Deferrals:
    def __init__(self, ch: Any) -> None:
        self.ch = ch                     # the NatsConsumer: its acks, defer_delay, defer_hold, ...
        self.waiting: list[tuple[float, float, Any]] = []   # (due, first deferred, message)
        self.listed: list[Any] = []      # the kept messages, as one list of the channel's held messages
        self.stopping = trio.Event()     # set by a drain
        self.count = 0                   # times a message was deferred

    def keep(self, msgs: list[Any], verdicts: list[str], since: list[float] | None) -> list[int]:
        """Of a handled batch, keep the deferred messages that should wait here (``since``: when each was
        first deferred, None for a fresh batch); returns their indexes."""
        ch = self.ch
        now = trio.current_time()
        since = since or [now] * len(msgs)
        self.count += verdicts.count("defer")
        keep = [i for i, v in enumerate(verdicts) if v == "defer" and not ch._draining and
                (now - since[i] < ch.defer_hold or ch.last_delivery(msgs[i]))]
        self.waiting.extend((now + ch.defer_delay, since[i], msgs[i]) for i in keep)
        self._list()
        return keep

    def _list(self) -> None:
        held = self.ch.acks.held
        held.pop(id(self.listed), None)
        self.listed = [m for _, _, m in self.waiting]
        held[id(self.listed)] = self.listed

    async def serve(self, handler: Any) -> None:
        """Run the kept messages again once due, until a drain hands them back (and returns).  Each due
        message is run again on its own (a batch of one) in a worker slot of the channel's: one whose key
        is now free and whose deal takes long does not hold back the others (a duplicate's answer, another
        message coming due)."""
        ch = self.ch
        async with trio.open_nursery() as nursery:
            while True:
                now = trio.current_time()
                wait = min([due for due, _, _ in self.waiting] + [now + ch.defer_delay]) - now
                with trio.move_on_after(max(wait, 0.01)):
                    await self.stopping.wait()
                now, draining = trio.current_time(), ch._draining
                due = [w for w in self.waiting if w[0] <= now or draining]
                if not due:
                    if draining:
                        return                   # once the retries running now are settled
                    continue
                self.waiting = [w for w in self.waiting if not (w[0] <= now or draining)]
                self._list()
                if draining:
                    msgs = [m for _, _, m in due]
                    with trio.CancelScope(shield=True):
                        await ch.acks.settle_all(msgs, ["defer"] * len(msgs))
                    return
                for _, since, m in due:
                    msgs = [m]
                    ch.acks.held[id(msgs)] = msgs  # in-progress acks while it waits for a slot and runs
                    nursery.start_soon(self._retry, handler, msgs, since)

    async def _retry(self, handler: Any, msgs: list[Any], since: float) -> None:
        ch = self.ch
        try:
            async with ch.slots:
                if ch._draining:               # a drain while it waited for its turn: hand it back
                    with trio.CancelScope(shield=True):
                        await ch.acks.settle_all(msgs, ["defer"])
                    return
                await handle(ch, msgs, handler, since=[since])
        finally:
            ch.acks.held.pop(id(msgs), None)
