"""Deals that did something at a counterpart but whose row the ledger could not take (a full disk): written
as soon as it can again, by the running engine.

A deal whose calls went out (its ``begin`` or light ``a`` entry is in the transaction log) and whose
``commit_many`` then failed for storage (the journal or DuckDB cannot write: ``LedgerError``, not a
``DealError``, which refuses the row for good) got no reply (nothing is acknowledged that is not stored).
Until 2026-11-27 its row appeared only at the next start (``recovery._rerecord`` from the log's ``end``;
a light deal, without an ``end``, was resolved as left in flight and flagged).  Now the manager keeps its
record (``LateRecords.keep``, at most ``MAX_KEPT``: past that, the next start's recovery still writes them)
and ``keep_recording`` writes the kept records every ``CATCH_UP_EVERY`` seconds while any wait, once more
when the engine stops, each with an event ``reply_not_sent`` saying the ledger could not be written when it
ended and no reply was sent; then a ``recorded`` mark, so that a restart does not write it again (it checks
the ledger's rows in any case: ``known_deal_ids``).  Only deals whose commit failed are kept: none is
being committed meanwhile, so none is written twice.

What is kept is also made durable in the transaction log (``hold``): a transactional route's deal already
has its ``end`` there (written before its row); a light route's deal (no deal key: only an ``a`` entry,
the request) gets one now, so that a stop or crash before the ledger can write again loses nothing: the
next start writes its row from that ``end`` (``recovery._rerecord``), with its status as the route ended
it, not as a deal left in flight (flagged).  ``hold`` says for each deal how far that went (``LOGGED``: its
``end`` is durable; ``MEMORY``: the log cannot be written either, so it rides along with the next write
that works), which is what a channel that acknowledges per message needs (``nats consume``: a message
whose deal is ``LOGGED`` is acked, not redelivered, so the counterpart is not called again; one ``MEMORY``
only is terminated: ``engine.channels.nats_fetch``).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import trio

from engine.deal import DealError, DealEvent
from engine.runtime import chaining, counting
from engine.txn.backlog import CATCH_UP_EVERY

log = logging.getLogger("bsp.txn")

MAX_KEPT = 10_000       # records kept in memory for a late write; past that the next start writes them
LOGGED = "logged"       # the deal's row is not written yet; its ``end`` is durable in the transaction log
MEMORY = "memory"       # the deal's row is not written yet; its ``end`` waits in memory for the log as well


def light_end(mgr: Any, ex: Any, rec: Any) -> dict[str, Any]:
    """The ``end`` entry of a light route's deal whose row the ledger could not take: what
    ``recovery._rerecord`` writes its row from (as ``TxnManager.fill`` makes one for a transactional
    route's deal).  No key: a light route has none."""
    e: dict[str, Any] = {"t": "end", "id": rec.deal_id, "key": None, "status": rec.status,
                         "code": rec.response_code, "reason": rec.reason, "route": rec.route,
                         "channel": rec.channel, "version": rec.config_version,
                         "at": rec.received_at.isoformat(), "type": rec.deal_type, "ref": rec.reference,
                         "amount": rec.amount, "currency": rec.currency, "party": rec.party, "fin": mgr.clock()}
    if getattr(ex, "holds", None) and counting.counts(rec):
        e["holds"] = [h.detail() for h in ex.holds]
    if getattr(ex, "links", None) and rec.status == "committed":
        e["links"] = chaining.logged(ex.links)
    d = rec.dead_letter
    if d is not None and rec.status in ("rejected", "failed"):
        e.update(raw=mgr.seal(d.raw, f"raw|{rec.deal_id}"), kind=d.error_kind, dcode=d.error_code)
    return e


class LateRecords:
    def __init__(self) -> None:
        self.kept: dict[str, tuple[Any, str | None, str]] = {}    # deal id -> (record, deal key, why it failed)
        self.waiting = trio.Event()
        self.left = 0               # not kept (past MAX_KEPT): the next start writes them
        self.written = 0
        self._lock: trio.Lock | None = None

    def keep(self, rec: Any, key: str | None, err: BaseException) -> None:
        if isinstance(err, DealError):
            return                  # refused for good: its dead letter (kind unrecorded) holds it
        if len(self.kept) >= MAX_KEPT:
            if not self.left:
                log.error("more than %d deals whose calls went out wait for the ledger; the next ones are left "
                          "to the next start, which writes them from the transaction log", MAX_KEPT)
            self.left += 1
            return
        self.kept[rec.deal_id] = (rec, key, str(err))
        self.waiting.set()

    async def hold(self, mgr: Any, late: list[tuple[Any, Any, str | None, BaseException, bool]]) -> dict[int, str]:
        """Keep the records of deals whose calls went out and whose row the ledger could not take, ``(exchange,
        record, deal key, error, light)`` each, after making each one's ``end`` durable in the transaction log
        (a light deal's is written here; a transactional one's was, before its row).  Returns ``id(exchange)``
        -> ``LOGGED`` or ``MEMORY`` for each kept (one refused for good, a ``DealError``, is not)."""
        late = [t for t in late if not isinstance(t[3], DealError)]
        if not late:
            return {}
        ends = [light_end(mgr, ex, rec) for ex, rec, _key, _err, light in late if light]
        written = bool(ends) and (await mgr.write_or_later(ends)) is None
        log_ = mgr._log
        unrecorded = log_.unrecorded if log_ is not None else {}
        held: dict[int, str] = {}
        for ex, rec, key, err, light in late:
            durable = written if light else rec.deal_id in unrecorded
            held[id(ex)] = LOGGED if durable else MEMORY
            self.keep(rec, key, err)
        return held

    async def write(self, mgr: Any) -> int:
        """Try to write every kept record now; returns how many were."""
        if self._lock is None:
            self._lock = trio.Lock()
        async with self._lock:
            if not self.kept:
                return 0
            taken = dict(self.kept)
            now = datetime.now(timezone.utc)
            records = []
            for rec, _key, why in taken.values():
                if not any(e.to_state == "reply_not_sent" for e in rec.events or ()):
                    rec.events = [*(rec.events or ()), DealEvent(now, None, "reply_not_sent", {
                        "reason": f"the ledger could not be written when the deal ended ({why}), so no reply was "
                                  f"sent; its row was written once it could be",
                        "channel": rec.channel})]
                records.append(rec)
            # past the observer's view (ObservedLedger: its counts saw these deals when they failed)
            ledger = getattr(mgr.ledger, "_ledger", mgr.ledger)
            try:
                errors = await ledger.commit_many(records)
            except Exception as exc:        # the ledger is closed: the next start writes them
                errors = [exc] * len(records)
            done_ids, done_keys = [], []
            for rec, err in zip(records, errors):
                if err is None or isinstance(err, DealError):
                    _, key, _ = self.kept.pop(rec.deal_id)
                    if err is None:
                        done_ids.append(rec.deal_id)
                        if key is not None:
                            done_keys.append(key)
                    else:
                        log.error("deal %s: its calls went out but its row is refused by the ledger: %s; the next "
                                  "start writes what the transaction log holds of it", rec.deal_id, err)
            if not self.kept:
                self.waiting = trio.Event()
            if done_ids:
                self.written += len(done_ids)
                mgr._lazy.append({"t": "recorded", "ids": done_ids, "keys": done_keys})
                log.warning("ledger: %d deal(s) whose calls went out while the ledger could not be written are "
                            "recorded now, each with an event reply_not_sent (no reply was sent): %s%s",
                            len(done_ids), ", ".join(done_ids[:10]), " ..." if len(done_ids) > 10 else "")
            return len(done_ids)


async def keep_recording(mgr: Any) -> None:
    """Run until cancelled: while records wait, try them every ``CATCH_UP_EVERY`` seconds; cancelled (the
    engine stops), one last try, at most a second."""
    late = mgr.late
    try:
        while True:
            await late.waiting.wait()
            await trio.sleep(CATCH_UP_EVERY)
            await late.write(mgr)
    finally:
        if late.kept:
            with trio.CancelScope(shield=True), trio.move_on_after(CATCH_UP_EVERY):
                await late.write(mgr)
