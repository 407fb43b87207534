"""The dispatcher's side of ``limit`` steps (``engine.totals``): rebuild, mark, settle, release.

Called only by a dispatcher one of whose routes has a ``limit`` step (``Dispatcher.totals`` is not None).
A deal *counts* when it committed, or when it failed flagged for an operator (its calls may stand at the
counterparts: a cap must not be passed on the strength of a deal nobody has undone).  A deal that counts
carries one ``counted`` event per hold, in the same ledger transaction as its row; its holds are then
confirmed.  Every other deal (rejected, failed and undone, a duplicate, a key conflict) releases them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.deal import DealEvent
from engine.deal_resolve import NOT_COUNTED
from engine.totals import COUNTED, Totals


def totals_of(routes: list[Any]) -> Totals | None:
    for br in routes:
        for step in br.steps:
            t = getattr(step, "totals", None)
            if isinstance(t, Totals):
                return t
    return None


def counts(rec: Any) -> bool:
    if rec.status == "committed":
        return True
    return rec.status == "failed" and any(e.to_state == "flagged" for e in rec.events or ())


async def rebuild(disp: Any) -> None:
    """Once per engine: the confirmed figures from the ledger, the holds of deals in flight as reserved."""
    in_flight: list[dict[str, Any]] = []
    txn = disp.txn
    if txn is not None and (txn.opening is not None or txn.log_exists()):
        from engine.txn.keyopen import open_log
        log_ = await open_log(txn)          # (its key index made again in a worker thread: waited for)
        for p in log_.pending.values():
            in_flight.extend(p.begin.get("holds") or ())
    await disp.totals.rebuild(disp.ledger, in_flight)


def mark(exs: list[Any], records: list[Any], at: datetime) -> None:
    """A ``counted`` event per hold on the deals that count; a ``not counted`` one on a failed deal that does
    not (it gives its reservation back): should its reversal be flagged later, an operator's resolution
    ``applied`` counts what it says (engine/deal_resolve.py ``recounts``)."""
    for ex, rec in zip(exs, records):
        if ex.holds:
            if counts(rec):
                rec.events[:0] = [DealEvent(at, None, COUNTED, h.detail()) for h in ex.holds]
            elif rec.status == "failed":
                rec.events[:0] = [DealEvent(at, None, NOT_COUNTED, h.detail()) for h in ex.holds]


def settle(totals: Totals, exs: list[Any], records: list[Any]) -> None:
    """After the ledger answered: a deal that counts confirms its holds (also one the ledger could not
    store: its reply was withheld, but its calls may have been made), any other releases them."""
    for ex, rec in zip(exs, records):
        if ex.holds:
            totals.settle(ex.holds, counts(rec))


def release(totals: Totals, exs: list[Any]) -> None:
    for ex in exs:
        if ex.holds:
            totals.settle(ex.holds, False)
