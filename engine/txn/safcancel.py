"""An operator's resolution stops the deal's queued ISO 8583 reversals (docs/transactions.md "Resolving a
flagged deal").

A reversal stored and forwarded (engine.txn.saf) is repeated until the host acknowledges it.  Once an
operator has settled the deal by hand with the host and recorded it (``bsp deals resolve``, event
``resolved``, engine.deal_resolve), a reversal the engine still sends would undo, when the host comes back,
what the operator just settled: every outcome settles the deal other than by this reversal (``applied``: the
customer stays charged; ``written-off``; ``not-applied``: the host never had the original, a reversal is
pointless; ``undone``: reversed or refunded by hand, a second reversal could credit the customer twice).  So
a resolution **cancels** the deal's queued reversals, as a payment switch's manual settlement cancels its
automatic retries:

- live (``POST /deals/{id}/resolve``): the deal's reversals are *paused* (``pause``: none leaves while the
  ``resolved`` event is written), then dropped (``cancel``), or sent again if the event could not be written
  (``resume``).  One in flight at that moment is not called back: when its attempt ends unacknowledged it
  is dropped instead of repeated; acknowledged, it is recorded as any acknowledgement (``reversed CALL``);
- offline (``bsp deals resolve`` on the ledger file, the engine stopped) or a crash between the event and the
  drop: the reversals a previous run left in the transaction log are not sent before the ledger was asked
  (``check_loaded``, one query for all of them at the start: a failure path, never a deal's) whether their
  deal is resolved; those resolved are dropped there.

A dropped reversal gets the event ``reversal cancelled`` on its deal (detail: ``call``, ``attempts``,
``resolution``: outcome, by, at; ``why``), appended to the audit chain, and a ``revrec`` mark (with
``cancelled``) drops it from the log; ``bsp status`` counts them (``reversals.cancelled``).
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

import trio

from engine.deal import DealEvent

if TYPE_CHECKING:
    from engine.txn.saf import Item, Saf

log = logging.getLogger("bsp.txn.saf")
CANCELLED = "reversal cancelled"
LOOKUP_RETRY_CAP = 60.0      # seconds: the longest pause between two attempts at the start's ledger look-up


def _items(saf: Saf, deal_id: str) -> list[Item]:
    return [i for i in saf.items.values() if i.deal_id == deal_id]


def pause(saf: Saf, deal_id: str) -> list[Item]:
    """Hold the deal's reversals not acknowledged: none is sent until ``cancel`` or ``resume``."""
    held = [i for i in _items(saf, deal_id) if i.ack is None]
    for item in held:
        item.paused = True
    return held


def resume(saf: Saf, items: list[Item]) -> None:
    """Send these paused reversals again (the resolution was not recorded): one whose turn came while it was
    paused is due at once."""
    for item in items:
        item.paused = False
        if saf.items.get(item.key) is item and not item.busy and not item.ticket and item.stranded is None \
                and item.checked:
            saf._schedule(item, -math.inf)


def cancel(saf: Saf, deal_id: str, resolution: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stop the deal's queued reversals now: what became of each, ``{"call", "channel", "attempts", "state"}``
    with state ``cancelled`` (dropped, never sent again), ``in flight`` (an attempt is at the host: dropped
    when it ends unacknowledged; acknowledged, the host has reversed it) or ``acknowledged`` (the host
    acknowledged it already: it stands, recorded as ``reversed CALL``)."""
    out: list[dict[str, Any]] = []
    for item in _items(saf, deal_id):
        item.paused = False
        state = "acknowledged" if item.ack is not None else "in flight" if item.busy else "cancelled"
        out.append({"call": item.step, "channel": item.target, "attempts": item.n, "state": state})
        if item.ack is not None:
            continue
        if item.busy:
            item.cancel = dict(resolution)
            continue
        drop(saf, item, resolution)
    return out


def drop(saf: Saf, item: Item, resolution: Mapping[str, Any], *, event: bool = True) -> None:
    """``item`` is not sent again: out of the queue at once; its event on the deal (unless already there:
    ``event``) and its ``revrec`` mark follow, in that order, by a task of their own.  Once only: a
    resolution that comes as an attempt ends (its line being written: not in flight) drops it, and the
    attempt, finding the resolution on it then, does not drop it again."""
    if item.dropped:
        return
    item.dropped = True
    item.ticket = 0                           # its lane entries, if any, are stale
    item.cancel = dict(resolution)
    if saf.items.get(item.key) is item:
        del saf.items[item.key]
    saf.stranded.pop(item.key, None)
    saf.cancelled += 1
    if item.deal_id in saf.flagged_deals and not _items(saf, item.deal_id):
        saf.flagged_deals.discard(item.deal_id)     # no reversal of it left: no flag of it left to count
    if not saf.items:
        saf._empty.set()
    log.warning("store and forward: the reversal of deal %s (route %s, call %s) is cancelled after %d attempt(s): "
                "the deal was resolved (%s) by %s at %s; not sent again", item.deal_id, item.route, item.step,
                item.n, resolution.get("outcome"), resolution.get("by"), resolution.get("at"))
    ev = DealEvent(datetime.now(timezone.utc), None, CANCELLED, _detail(item, resolution)) if event else None
    if saf._nursery is not None:
        saf._nursery.start_soon(_record, saf, item, ev)
    elif ev is not None:                      # before the task runs: the event then; the log mark is not
        saf._later.append((item, ev))         # written, so the next start drops it again (without an event)


async def _record(saf: Saf, item: Item, ev: DealEvent | None) -> None:
    if ev is not None:
        await saf._append(item, [], [ev], None)
    await saf._log({"t": "revrec", "id": item.deal_id, "step": item.step, "cancelled": True})
    await flag_joined(saf, item, item.cancel or {})


async def flag_joined(saf: Saf, item: Item, resolution: Mapping[str, Any]) -> list[str]:
    """The deals whose advice joined ``item`` (a front end's reversal of the same original, not queued again:
    engine.txn.manager ``compensate_step``) relied on it, and the front end was answered as for an advice
    accepted for forwarding: cancelled with it, each is **flagged for an operator** (event ``reversal
    flagged`` naming the deal it joined and the resolution), so that nothing the front end asked for is
    dropped unseen.  Once per deal (``unless``).  Returns the deals flagged now."""
    lookup = getattr(saf.mgr.ledger, "joined_to", None)
    if lookup is None:
        return []
    try:
        joined = await lookup(item.deal_id, item.step)
    except Exception as exc:     # noqa: BLE001 - said, not raised: the cancel itself stands
        log.error("store and forward: cannot ask the ledger which deals joined the cancelled reversal of deal %s "
                  "(call %s): %s; find them with `bsp deals show %s` (events `reversal queued` naming it in "
                  "`joined` on other deals) and settle them with the host", item.deal_id, item.step, exc,
                  item.deal_id)
        return []
    r = {k: resolution.get(k) for k in ("outcome", "by", "at") if resolution.get(k) is not None}
    flagged: list[str] = []
    for j in joined:
        why = (f"its advice was not queued on its own: it joined deal {item.deal_id}'s queued reversal of the same "
               f"original (call {item.step}), which was cancelled when deal {item.deal_id} was resolved "
               f"({r.get('outcome')}) by {r.get('by')} at {r.get('at')}; the sender was answered as for an advice "
               f"accepted for forwarding, and nothing sends it now: settle this reversal with the host too")
        ev = DealEvent(datetime.now(timezone.utc), None, "reversal flagged",
                       {"attempts": 0, "why": why, "not_undone": [j["call"]], "joined": item.deal_id,
                        "resolution": r})
        try:
            wrote = await saf.mgr.ledger.append_story(j["deal_id"], [], [ev], unless="reversal flagged")
        except Exception as exc:     # noqa: BLE001 - the deal has no row, the write failed: said
            log.error("store and forward: deal %s, which joined the cancelled reversal of deal %s, could not be "
                      "flagged: %s; settle it with the host", j["deal_id"], item.deal_id, exc)
            continue
        if not wrote:
            continue
        flagged.append(j["deal_id"])
        saf.joined_flagged += 1
        told = getattr(saf.mgr.ledger, "flag_route", None)
        if told is not None and j.get("route"):
            told(j["deal_id"], j["route"])
        note = getattr(saf.mgr.ledger, "deal_flagged", None)
        if note is not None and j.get("route"):
            note(j["route"])
        log.error("store and forward: deal %s (route %s) joined the reversal of deal %s that the resolution "
                  "cancelled; flagged for an operator: settle it with the host", j["deal_id"], j.get("route"),
                  item.deal_id)
    return flagged


def _detail(item: Item, resolution: Mapping[str, Any]) -> dict[str, Any]:
    r = {k: resolution.get(k) for k in ("outcome", "by", "at") if resolution.get(k) is not None}
    why = (f"the deal was resolved ({r.get('outcome')}) by {r.get('by')} at {r.get('at')}: the operator settled it "
           f"by hand, so its reversal ({item.mti}) is not sent again; a reversal reaching the host now would undo "
           f"what was settled")
    return {"call": item.step, "channel": item.target, "attempts": item.n, "resolution": r, "why": why}


async def check_loaded(saf: Saf) -> None:
    """The reversals a previous run left (``Saf.load``: not sent yet): their deals' resolutions asked of the
    ledger, one query; those resolved are dropped, the others queued.  A look-up that fails is tried again
    (1 s, doubled up to ``LOOKUP_RETRY_CAP``), the reversals held meanwhile: none is sent without knowing
    whether an operator settled its deal."""
    pause_s = 1.0
    while saf._unchecked:
        batch, saf._unchecked = saf._unchecked, []
        lookup = getattr(saf.mgr.ledger, "resolutions", None)
        try:
            found = await lookup(sorted({i.deal_id for i in batch})) if lookup is not None else {}
        except Exception as exc:
            where = getattr(saf.mgr.ledger, "path", None) or "FILE"
            ids = sorted({i.deal_id for i in batch})
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            log.error("store and forward: cannot ask the ledger (%s) whether the deal(s) %s of %d reversal(s) left by "
                      "the previous run were resolved by an operator (%s); they are held, not sent, and it is asked "
                      "again in %gs; if it goes on failing, stop the engine and check the ledger with `bsp audit "
                      "verify --ledger %s` (`bsp status` shows them pending)", where, shown, len(batch), exc,
                      pause_s, where)
            saf._unchecked = batch + saf._unchecked
            await trio.sleep(pause_s)
            pause_s = min(LOOKUP_RETRY_CAP, pause_s * 2)
            continue
        for item in batch:
            item.checked = True
            if saf.items.get(item.key) is not item:
                continue
            res = found.get(item.deal_id)
            if res is not None:
                drop(saf, item, res, event=item.step not in (res.get("cancelled") or ()))
            elif item.stranded is None:
                saf._schedule(item, -math.inf)
            elif saf._runner(item) is not None:     # stranded at load, a reload since brought its channel back
                del saf.stranded[item.key]
                item.stranded = None
                saf._event(item, "reversal resumed", {"channel": item.target, "call": item.step, "attempts": item.n})
                saf._schedule(item, -math.inf)
            # else: stays stranded (not sent) until a reload brings a call on its channel (Saf.reconfigured)
