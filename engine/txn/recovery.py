"""Recovery: deals a crash left in flight, resolved by their route's ``on restart`` policy.

The transaction log (``engine.txn.log``) holds, for every deal a transactional
route accepted and did not finish, the request as received and how far each
call got (``sending`` = it may have reached the counterpart, ``done`` = it
answered).  On start-up (before a channel takes new traffic) each such deal
is rebuilt (the request decoded again, the side-effect-free steps before the
first call run again, the answers of finished calls bound from the log) and:

    complete     the calls not yet made run, then the rest of the route (a deal that
                 was failing, a participant `failed` or a compensation under way, is
                 compensated instead); a call
                 left in doubt (sent, no answer logged) is never sent twice: the
                 deal is flagged instead
    compensate   every call made or in doubt is compensated, newest first
                 (ISO 8583: reversed); the deal ends ``failed``.  A call in doubt
                 (``sending``) that nothing can undo (no compensation, no
                 reversal) flags the deal for an operator: its outcome is unknown.  A call that cannot
                 be undone (no compensation) marked ``done`` is a pivot
                 (``engine.txn.pivot``): the calls before it are kept, not
                 compensated, and the deal is flagged for an operator
    flag         nothing is sent; the deal ends ``failed`` with an event
                 ``flagged`` for an operator (the default)

A compensation has its own marks: ``compensating`` (durable before it leaves), then ``compensated`` or
``compensation_failed``.  A call whose compensation finished is not compensated again; one whose
compensation was under way (``compensating``, no outcome) is not either (it may have reached the
counterpart): the deal is flagged for an operator, naming it, after the calls still ``done`` or
``sending`` are compensated (under ``compensate``, or ``complete`` of a deal that was failing).

A light route's deal (``a`` entry, no per-step marks) whose ledger row is there
was finished (its ``recorded`` mark was still to be written); one without a row
may have sent its first call and is resolved as above (a light route's policy is
``flag``: failed, reason "in flight at crash; flagged ...").

A file's end message (``engine.channels.file_end``) whose channel reads a header or trailer record and whose
index (``done/.bsp-files``, which noted them with the message) is gone is flagged whatever its policy: run on or
compensated, its calls would be built with ``file.header`` / ``file.trailer`` null; its reason names the channel,
the index and what to do (``_lost_end``), as ``bsp dead retry`` refuses such a message.

A route with a plugin step with side effects (``engine.txn.effects``) follows its policy only when the
log proves no such step started (``_effects_in_doubt``); otherwise the deal is flagged.

Each resolution is one deal row with its trace and events (``recovered``,
``flagged``) and an ``end`` in the log, so a restart finds nothing in flight.

A channel whose deal keys are shared by several engines (``nats consume`` with
``keys``: ``disp.keys``) also gets the final state of each deal resolved here,
and of each deal whose row is written again, written over this engine's old
claim in the shared store (``engine.txn.shared_keys``), so that another engine
answers a redelivered copy as a duplicate rather than flagging it.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from engine.channels.base import ConnInfo
from engine.runtime.exchange import Exchange, StepFailure
from engine.txn import fingerprint, outcome, pivot, shared_keys
from engine.txn.plan import plan_of
from engine.txn.typed_values import untagged
from engine.runtime import chaining
from engine.statement_chains import existing_chains
from engine.totals import COUNTED, Hold, Holds, existing_totals

log = logging.getLogger("bsp.txn.recovery")
SETTLED = frozenset({"failed", "compensated"})      # a plugin step's marks that leave nothing done outside bsp
FAILING = frozenset({"failed", "compensating", "compensated", "compensation_failed", "reversing"})


async def recover_channel(mgr: Any, disp: Any) -> int:
    """Resolve the in-flight deals of ``disp``'s channel.  Returns how many."""
    await _rerecord(mgr, disp)
    await _light_rows(mgr, disp)
    await _answered_rows(mgr, disp)
    pending = [p for p in mgr.log.pending.values() if p.begin.get("channel") == disp.channel]
    for p in sorted(pending, key=lambda p: p.begin.get("at", "")):
        try:
            await _resolve(mgr, disp, p)
        except Exception:
            log.exception("recovery of deal %s failed; it stays in flight", p.id)
    if pending:
        # one line at the start (the deals' own lines are at info): an engine restarted after a kill, or a new
        # bsp started on a killed old one's files, tells the operator there is something to settle
        log.warning("recovery: %d deal(s) of channel %s were in flight when the engine last stopped (killed or "
                    "crashed): resolved by their route's on restart policy (those flagged for an operator: "
                    "bsp deals --flagged; bsp status open_flags)", len(pending), disp.channel)
    return len(pending)


NOT_SENT = ("its row was not in the ledger when the engine started again: the ledger could not be written when the "
            "deal ended (a full disk), or the engine stopped between the deal's answer and its row, so no reply was "
            "sent; its row was written on restart from the transaction log")


async def _rerecord(mgr: Any, disp: Any) -> None:
    """Deals whose answer was logged but whose ledger row may not have been committed (a crash
    between the two): commit the row again from the log, unless a row with that deal id is already stored."""
    from decimal import Decimal

    from engine.deal import DealEvent, DealRecord

    ends = [e for e in mgr.log.unrecorded.values() if e.get("channel") == disp.channel and e.get("at")]
    if not ends:
        return
    now = datetime.now(timezone.utc)
    # nothing is answered before its row is stored (a commit that fails withholds the reply): on a durable
    # ledger a row missing now was never stored, so its sender got no reply, as the running engine's late write
    # says (engine/txn/late_record.py); with --ledger-sync none a reply leaves before the row is durable
    unsent = getattr(mgr.ledger, "sync", "duckdb") != "none"
    records = [DealRecord(
        deal_id=e["id"], deal_type=e.get("type") or e["route"], route=e["route"],
        config_version=e.get("version") or "?", channel=e["channel"], status=e["status"],
        received_at=datetime.fromisoformat(e["at"]), finished_at=now, reference=e.get("ref"),
        amount=Decimal(e["amount"]) if e.get("amount") is not None else None, currency=e.get("currency"),
        party=e.get("party"), response_code=e.get("code"), reason=e.get("reason"),
        events=[DealEvent(now, None, e["status"], {"recovered": "answer logged before a crash; row written on restart",
                                                  "key": e.get("key")}),
                *([DealEvent(now, e["status"], "reply_not_sent", {"reason": NOT_SENT, "channel": e["channel"]})]
                  if unsent else [])],
        dead_letter=_dead_letter(mgr, e),
    ) for e in ends]
    for e, r in zip(ends, records):       # what it counted in `limit` totals (engine/totals.py), with its row
        if e.get("holds"):
            r.events[:0] = [DealEvent(now, None, COUNTED, d) for d in e["holds"]]
        if e.get("links"):                # its statement links and breaks (engine/statement_chains.py)
            r.events[:0] = [DealEvent(now, None, state, d) for state, d in e["links"]]
    shared_keys.recovered_ends(getattr(disp, "keys", None), ends)   # their final state may be missing there too
    # deal ids have no unique index (ledger schema 3): ask which rows exist rather than rely on a refusal
    known = await mgr.ledger.known_deal_ids([r.deal_id for r in records])
    missing = [r for r in records if r.deal_id not in known]
    errors = await mgr.ledger.commit_many(missing) if missing else []
    written = [r.deal_id for r, err in zip(missing, errors) if err is None]
    totals = existing_totals(mgr.ledger)
    if totals is not None and totals.loaded:      # read back before these rows were: count them now
        done = set(written)
        totals.confirm([Hold.of(d) for e in ends if e["id"] in done for d in e.get("holds") or ()])
    chaining.rerecorded(existing_chains(mgr.ledger), [e for e in ends if e["id"] in set(written)])
    # after a clean stop the last answers' `recorded` marks are not in the log yet (they travel with the
    # next write): their rows are all stored, which is no news; a row written again is (a crash came
    # between the answer and its row)
    (log.warning if written else log.info)(
        "recovery: %d deal row(s) written again from the transaction log (%d already stored)",
        len(written), len(records) - len(written))
    await mgr.write([{"t": "recorded", "ids": [e["id"] for e in ends],
                      "keys": [e["key"] for e in ends if e.get("key")]}])


def _dead_letter(mgr: Any, e: dict[str, Any]) -> Any:
    """The dead letter of a rejected or failed deal whose row is written again from its ``end`` (which keeps
    the raw request for it): stored with the row, as the running engine stores it."""
    if e.get("status") not in ("rejected", "failed") or e.get("raw") is None:
        return None
    from engine.deal import DeadLetter
    return DeadLetter(route=e["route"], channel=e["channel"], reason=e.get("reason") or "failed",
                      raw=mgr.unseal(e["raw"], f"raw|{e['id']}") or b"", config_version=e.get("version") or "?",
                      error_kind=e.get("kind"), error_code=e.get("dcode"), id=e["id"])


async def _light_rows(mgr: Any, disp: Any) -> None:
    """Light deals of this channel whose ledger row is committed: finished, only the mark was missing."""
    ids = [p.id for p in mgr.log.pending.values() if p.light and p.begin.get("channel") == disp.channel]
    if not ids:
        return
    known = await mgr.ledger.known_deal_ids(ids)
    if known:
        revs = await _reversals_due(mgr, [mgr.log.pending[i] for i in sorted(known)])
        await mgr.write(revs + [{"t": "recorded", "ids": sorted(known), "keys": []}])
        _resume(mgr, revs)


async def _answered_rows(mgr: Any, disp: Any) -> None:
    """Deals in flight in the log that have a ledger row: answered while the log could not be written
    (a full disk: their ``end`` was to follow with the next write, ``TxnManager._answers_not_logged``).
    They are finished: never resolved again (no second row, no call or compensation run twice); an
    ``end`` is written from their row, with the reply bytes when the row holds them as sent (an event
    ``reply_in_row``: a plain JSON reply, nothing classified), so that a repeat gets the original answer;
    otherwise none (the ledger keeps the reply's values, masked where classified, not its bytes): a repeat
    fails ``duplicate``, the row's code or 94."""
    ids = [p.id for p in mgr.log.pending.values() if not p.light and p.begin.get("channel") == disp.channel]
    if not ids:
        return
    known = await mgr.ledger.known_deal_ids(ids)
    if not known:
        return
    pending = [mgr.log.pending[i] for i in sorted(known)]
    keys = [p.begin["key"] for p in pending if p.begin.get("key")]
    lookup = getattr(mgr.ledger, "deals_by_key", None)
    first = await lookup(keys, mgr.digests) if keys and lookup is not None else {}
    answers = getattr(mgr.ledger, "answers_in_rows", None)
    mine_ids = [p.id for p in pending if p.begin.get("key") and (first.get(p.begin["key"]) or {}).get("deal_id") == p.id]
    texts = await answers(mine_ids) if mine_ids and answers is not None else {}
    now = mgr.clock()
    ends = []
    for p in pending:
        key = p.begin.get("key")
        row = first.get(key) if key else None
        mine = row is not None and row.get("deal_id") == p.id
        text = texts.get(p.id) if mine else None
        ends.append({"t": "end", "id": p.id, "key": key, "status": row["status"] if mine else "recorded",
                     "code": row.get("response_code") if mine else None,
                     "reply": mgr.seal(text.encode("utf-8"), f"reply|{p.id}") if text is not None else None,
                     "fin": now, "recorded": True, **({"fp": _with_match(row["fp"], p.begin.get("m"))}
                                                      if mine and row.get("fp") else {})})
    log.warning("recovery: %d deal(s) in flight in the transaction log already have their ledger row (answered "
                "while the log could not be written): not resolved again", len(ends))
    shared_keys.recovered_ends(getattr(disp, "keys", None), [e for e in ends if e["status"] != "recorded"])
    revs = await _reversals_due(mgr, pending)
    await mgr.write(revs + ends)
    _resume(mgr, revs)


def _with_match(fp: str, match: str | None) -> str:
    """The ledger row's fingerprint (amount, currency, party: the row has no match) with the deal's match digest
    from its ``begin`` entry, so that a repeat naming another account stays a key_conflict."""
    return fp if match is None or fp.count(fingerprint.SEP) != 2 else f"{fp}{fingerprint.SEP}{match}"


async def _reversals_due(mgr: Any, pending: list[Any]) -> list[dict[str, Any]]:
    """``rev`` entries for the ISO 8583 reversals that deals with a ledger row queued while the log could not
    be written (their ``rev`` never reached it) and that are not acknowledged on the row: the deal is
    finished, its reversal is not (sent again as a repeat, 0421 / 0401, until acknowledged)."""
    due_of = getattr(mgr.ledger, "reversals_due", None)
    cands = [p for p in pending if p.values]          # an ISO 8583 call's request values as sent
    if due_of is None or not cands:
        return []
    due = await due_of([p.id for p in cands])
    now = datetime.now(timezone.utc).isoformat()
    return [{"t": "rev", "id": p.id, "step": step, "r": p.begin.get("route"), "c": p.begin.get("channel"),
             "at": now, "values": _kept(mgr, p.id, step, p.values[step]), "n": max(1, tries)}
            for p in cands for step, tries in due.get(p.id, {}).items()
            if step in p.values and f"{p.id}|{step}" not in mgr.log.reversals]


def _kept(mgr: Any, deal_id: str, step: str, sealed: Any) -> Any:
    """A ``sending`` mark's values as a queued reversal keeps them (``reversal.kept``: no track 2 or PIN
    block), sealed again as they were."""
    from engine.txn.reversal import kept
    what = f"values|{deal_id}|{step}"
    return mgr.seal_values(kept(mgr.unseal_values(sealed, what) or {}), what)


def _resume(mgr: Any, revs: list[dict[str, Any]]) -> None:
    if revs:
        log.warning("recovery: %d ISO 8583 reversal(s) queued while the transaction log could not be written "
                    "are queued again (not acknowledged on their deals)", len(revs))
        if mgr.saf is not None:
            mgr.saf.load()


async def _end_origin(disp: Any, route: Any, raw: bytes, deal_id: str) -> Any:
    """A ``file watch`` channel's end-of-file message left in flight (``end_message = true``, engine/channels/
    file_end.py): its ``file.*`` rebuilt from its bytes (the summary as JSON) and the header and trailer records
    its channel's index noted with its deal id, as the channel gave them, so that the route that took it (whose
    `when` reads ``file.end``) takes it again.  None for any other message.  When the channel reads a header or
    trailer and its index (or the note) is gone, its ``missing`` says so: the deal is flagged (``_lost_end``),
    not resolved with them null."""
    from engine.channels.file_end import end_origin

    routes = getattr(disp, "routes", ())
    ctx = next((getattr(br, "ctx", None) for br in routes if getattr(br, "name", None) == route), None)
    return await end_origin(routes, getattr(ctx, "channels", None), disp.channel, route, raw, deal_id,
                            recovering=True)


def _lost_end(end: Any, deal_id: str, policy: str, doubt: list[str]) -> str:
    """Why a file's end message in flight is flagged rather than resolved by its route's policy: its
    ``file.header`` / ``file.trailer`` are lost with the channel's index (``end.missing``), and run on (or
    compensated) its calls would be built with them null; what the operator does about it."""
    ask = (f"ask the counterpart whether {', '.join(doubt)} went through (a retry makes it again), then " if doubt
           else "")
    return (f"{end.missing}; nothing was sent on restart (its on restart {policy} would build its calls with them "
            f"null): {ask}put the channel's done/ folder back (from a backup) and retry the deal's dead letter "
            f"(bsp dead retry {deal_id}: the calls that answered before the crash are not made again), or purge it "
            f"(bsp dead purge {deal_id}) and do the end route's work by hand")


async def _resolve(mgr: Any, disp: Any, p: Any) -> None:
    from engine.txn.manager import TxnState

    b = p.begin
    raw = mgr.unseal(b.get("raw"), f"raw|{p.id}") or b""
    at = datetime.fromisoformat(b["at"]) if b.get("at") else datetime.now(timezone.utc)
    keys = getattr(disp, "keys", None)      # the channel's shared key store: it gets the final state
    extra: dict[str, Any] = {"recovered_keys": keys} if keys is not None else {}
    end = await _end_origin(disp, b.get("route"), raw, p.id)
    if end is not None:                     # a file's end message: its file.* again, so that its route takes it
        extra["origins"] = [end]
    ex = Exchange(disp.channel, ConnInfo(disp.channel, "recovery", 0, extra=extra), raw, at, 0)
    # ``m``: the digest of the deal's ``match`` (begin entry): kept in its end's fingerprint (key_conflict)
    st = TxnState(p.id, key=b.get("key"), admitted=True, logged=True, recovered=True, match=b.get("m"))
    mgr.states[ex] = st
    st.move("in flight at restart", {"steps": dict(p.phases), "key": st.key})
    if b.get("holds"):      # its `limit` reservations, reserved again by the rebuild of the totals
        ex.holds = Holds(Hold.of(d) for d in b["holds"])
        ex.holds.recovered = True
    disp._route(ex)
    br = ex.route
    if br is None or br.name != b.get("route"):
        ex.failure = None
        ex.fail(StepFailure("in_doubt", f"left in flight by a crash; route {b.get('route')!r} no longer takes "
                            f"this request, flagged for an operator", code="96"))
        st.move("flagged")
        await _finish(mgr, disp, ex)
        return
    for before in br.before:        # a new day's dated screening list: indexed in a worker thread, as handle does
        await before()
    plan = plan_of(br)
    # a plugin step that sends or books something (ComponentSpec.side_effects) and may have run before
    # the crash is never run again here: its deal goes to an operator (``_effects_in_doubt``)
    effects, doubted = _effects_in_doubt(plan, br, p)
    # the steps before the first participant (call or such step): the steps after it (a `reply`) are not
    # run to rebuild the scope, so that a flagged deal keeps no answer built on restart
    first = min([i for i in (plan.first_call, min(plan.effects, default=None)) if i is not None],
                default=len(br.steps))
    for i in range(first):               # the side-effect-free steps: run again to rebuild the scope
        step = br.steps[i]
        if not step.batch and i not in plan.effects:
            disp._run_sync(step, ex)
        elif getattr(step, "again_on_recovery", False) and ex.failure is None:
            await disp.run_step(br, step, [ex])     # a `continuity` step: the statement judged again
    made = [i for i, c in plan.calls.items() if p.phases.get(c.name) in ("sending", "done")]
    # an enquiry (`readonly`) left `sending` changed nothing: not in doubt
    doubt = [i for i in made if p.phases.get(plan.calls[i].name) == "sending" and not plan.calls[i].readonly]
    # compensations under way at the crash (``compensating``, no outcome logged): they may have reached the
    # counterpart, so they are never sent again (a finished one, ``compensated`` / ``compensation_failed``,
    # is not in ``made`` either); the deal is flagged for an operator instead
    undoing = [i for i, c in plan.calls.items() if p.phases.get(c.name) == "compensating"]
    st.compensated.update(undoing)
    half = (f"compensation of {', '.join(plan.calls[i].name for i in undoing)} was under way (started, no "
            f"outcome logged: it may have reached the counterpart), not run again") if undoing else ""
    # compensations that failed before the crash (``compensation_failed``): not run again (a running engine
    # does not retry one either), and, as there, the deal is flagged for an operator (``engine.txn.flagging``)
    refused = [plan.calls[i].name for i, c in plan.calls.items() if p.phases.get(c.name) == "compensation_failed"]
    if refused:
        half = "; ".join(w for w in (half, f"compensation of {', '.join(refused)} failed before the crash (the call "
                                           f"may stand at the counterpart), not run again") if w)
    for i in made:
        name = plan.calls[i].name
        if name in p.replies:
            ex.scope[name] = untagged(mgr.unseal_values(p.replies[name], f"reply|{p.id}|{name}"))
        if name in p.values:               # an ISO 8583 request as it was sent: its reversal copies it
            st.sent[i] = mgr.unseal_values(p.values[name], f"values|{p.id}|{name}")
    st.done = sorted(i for i in made if not plan.calls[i].readonly)     # an enquiry left nothing to undo
    # the saga pivot rule (engine.txn.pivot): a call that cannot be undone and is marked `done` (it went
    # through) stops compensation before it; one still `sending` is in doubt, not a pivot
    pivots = [i for i in made if p.phases.get(plan.calls[i].name) == "done" and pivot.is_pivot(plan, i)]
    st.pivot = max(pivots) if pivots else None
    # a file's end message whose header and trailer are lost with the channel's index: flagged, not run with nulls
    unread = end is not None and end.missing is not None
    policy = plan.policy if not effects and not unread else "flag"
    failing = _failing(plan, br, p)
    if policy == "complete" and failing:
        policy = "compensate"        # it was failing before the crash: nothing left to complete
    if policy == "complete" and not doubt and ex.failure is None:
        st.move("recovered", {"policy": "complete"})
        nxt = max(made) + 1 if made else first
        await mgr.run_steps(disp, br, [ex], nxt)
        if ex.failure is not None:
            await mgr.compensate(br, [ex])
    elif policy == "compensate":
        st.move("recovered", {"policy": "compensate"} if not failing or plan.policy != "complete" else
                {"policy": "compensate", "instead_of": "complete", "failing": failing})
        # `on doubt flag` (the default), as in a running engine: a call that nothing can undo left `sending` may
        # have gone through, so the undoable calls before it are kept, not compensated (engine.txn.pivot)
        for i in doubt:
            # (a `store and forward` call's advice: queued in store and forward by its compensation step)
            if pivot.without_undo(plan, st, i) or plan.calls[i].forward:
                st.doubted[i] = "sent before the crash, no answer logged"
        pivot.hold_doubt(plan, st)
        undo = pivot.split(plan, st)
        for i in reversed(undo):
            await mgr.compensate_step(plan, i, ex, st)
        ex.failure = None
        names = ", ".join(plan.calls[i].name for i in undo if pivot.undoable(plan, i)) or "none"
        was = f" while failing ({'; '.join(failing)})" if failing and plan.policy == "complete" else ""
        text = f"left in flight by a crash{was}; compensated on restart (calls undone: {names})"
        failed_now = [f"{plan.calls[i].name} ({why})" for i, why in st.undo_failed.items() if i in plan.calls]
        if failed_now:                   # compensations run here that failed: flagged, as in a running engine
            half = "; ".join(w for w in (half, f"compensation of {', '.join(failed_now)} failed on restart (the "
                                               f"call may stand at the counterpart)") if w)
        kept = pivot.why(plan, st)
        if kept is not None:
            half = "; ".join(w for w in (half, kept[0]) if w)
        # a call in doubt at the crash (``sending``: it may have reached the counterpart) that nothing undid (no
        # compensation, no ISO 8583 reversal): its outcome is unknown, flagged as in a running engine
        lost = [plan.calls[i].name for i in doubt if i not in st.compensated and i not in st.undone
                and not (kept is not None and st.doubt_pivot and i == st.pivot)]     # said by `kept` already
        if lost:
            half = "; ".join(w for w in (half, f"call(s) {', '.join(lost)} may have reached the counterpart (sent, "
                                               f"no answer logged): the outcome is unknown and nothing can undo "
                                               f"it (no compensation); ask the counterpart whether it applied it "
                                               f"and settle it there") if w)
        if half:
            names = (kept[1] if kept is not None else []) + lost
            st.move("flagged", {"why": half, "not_undone": names} if names else {"why": half})
            ex.fail(StepFailure("in_doubt", f"{text}; {half}; flagged for an operator", code="96"))
        else:
            ex.fail(StepFailure("recovered", text, code="96"))
            if st.forwarded:
                _answer_forwarded(disp, br, ex, st)
    else:
        whys = []
        if doubt:
            whys.append(f"call(s) {', '.join(plan.calls[i].name for i in doubt)} may have reached the "
                        f"counterpart (sent, no answer logged)")
        if half:
            whys.append(half)
        if effects:
            whys.append(f"step(s) {', '.join(plan.step_name(i, br.steps[i]) for i in effects)} act outside bsp "
                        f"and may have run ({doubted})")
        if unread:                      # last: it ends with what to do
            whys.append(_lost_end(end, p.id, plan.policy, [plan.calls[i].name for i in doubt]))
        why = "; ".join(whys) or "route policy is `on restart flag`"
        if p.light:
            why += "; accepted by a light route and no deal row was committed"
        st.move("flagged", {"why": why})
        ex.failure = None
        ex.fail(StepFailure("in_doubt", f"in flight at crash; flagged for an operator: {why}", code="96"))
    if ex.failure is not None:
        # error.undone / error.not_undone as a running engine tells them: a file's end message notes the calls
        # that went through and that nothing undid, which its retry does not make again (file_end_calls)
        outcome.tell({ex: st}, [ex])
    await _finish(mgr, disp, ex)


def _answer_forwarded(disp: Any, br: Any, ex: Any, st: Any) -> None:
    """A deal whose advice (``call ... store and forward``) a crash left at the counterpart without its answer,
    handed to store and forward here: the answer its sender would have got had the call timed out while the engine
    ran is built now, by the route's ``on error`` with ``error.forwarded`` true (the shipped card_reversal: 0430
    with 00, "accepted for forwarding"), and kept with the deal's key, so that the sender's repeat (a front end's
    0421) gets it byte for byte instead of the restart's 96, and sends nothing.  It is not sent (the request's
    connection went with the crash): the deal's event ``answer kept`` says so.  Only an ``on error`` of replies and
    ``let``s is run (nothing there acts outside bsp); another keeps no answer (its repeats get 96, as before)."""
    from engine.steps.let import LetStep
    from engine.steps.reply import ReplyStep

    if not br.on_error or not all(isinstance(s, (ReplyStep, LetStep)) for s in br.on_error):
        return
    outcome.tell({ex: st}, [ex])           # error.forwarded (and undone, flagged) as a running engine tells them
    for step in br.on_error:
        disp._run_sync(step, ex, during_error=True)
    if ex.reply is not None:
        st.move("answer kept", {"why": "the advice is stored and forwarded: this answer, not sent (the request's "
                                       "connection went with the crash), answers the sender's repeats",
                                "forwarded": True})


def _effects_in_doubt(plan: Any, br: Any, p: Any) -> tuple[list[int], str]:
    """The route's plugin steps with side effects that may have run before the crash: all of them, unless
    the log proves none started.  It does when its ``begin`` names the steps this bsp marks ``running``
    before they run (``effects``, written since those marks are) and the route still has those steps,
    and none has a mark: the crash came before (during an earlier call, say), and the route's own
    ``on restart`` policy applies as to a route without such steps.  A mark (``running`` without
    ``done``: it may have run; ``done``: it ran) or a log that cannot tell (an older bsp's ``begin``, a
    route changed since) keeps them all.  Returns them and why, for the deal's reason."""
    steps = sorted(plan.effects)
    names = [plan.step_name(i, br.steps[i]) for i in steps]
    # ``failed`` (a clean refusal: it did nothing) and ``compensated`` (its own hook undid it) leave nothing
    # done outside bsp, as in a running engine (``engine.txn.effects``: neither is flagged there)
    seen = [f"{n} {p.phases[n]}" for n in names if n in p.phases and p.phases[n] not in SETTLED]
    if seen:
        return steps, f"the log marks {', '.join(seen)}: it started, and a plugin step keeps no trace to resume from"
    if steps and p.begin.get("effects") != names:
        return steps, ("the log cannot tell whether they started: it was written by an older bsp or "
                       "before the route changed")
    return [], ""


def _failing(plan: Any, br: Any, p: Any) -> list[str]:
    """What the log shows of a deal that was failing when the crash came: a participant that refused
    (``failed``: a call refused or unreachable, a plugin step's clean refusal) or a compensation begun.  Such
    a deal was never to be answered with success, so ``on restart complete`` does not run it on (a refused
    step or call run again could now pass): its calls left are compensated and it fails."""
    names = [c.name for c in plan.calls.values()] + [plan.step_name(i, br.steps[i]) for i in sorted(plan.effects)]
    return [f"{n} {p.phases[n]}" for n in names if p.phases.get(n) in FAILING]


async def _finish(mgr: Any, disp: Any, ex: Any) -> None:
    await disp._record([ex])
