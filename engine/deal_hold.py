"""Deals held for a compliance officer by a ``screen`` step (``on_hit = "hold"``), and the officer's decision:
``bsp deals --held`` lists them; ``bsp deals resolve ID --outcome release|reject --note REASON`` (and
``POST /deals/{id}/resolve``) decides one.

A held deal is a deal ``rejected`` (kind ``held``, the step's code: nothing was sent, the deal key is not
kept) with the events ``screening hit`` and ``held`` (``{step, list, entry, on, score, threshold}``); its
request waits as its dead letter (same id: the message as received, encrypted with a keyring).  It stays held,
across restarts, until an operator records one decision, an event appended to the audit chain:

``hold released`` ``{"outcome": "release", "note", "by", "via", ..., "deal": NEW_ID, "hits": [[step, entry]]}``
    a false positive: the request runs again through the route in force now, as the deal ``NEW_ID`` (named in
    the event before it runs), its steps before the screen checked again (they are checks: no side effect),
    the released hits passing (event ``screening released`` on the new deal, naming the held one), and its
    remaining steps (the limit, the calls, the reply) run once.  The run goes through the dead letter's claim
    (``engine.deadletter.retry_once``: atomic, durable), so it happens once: a second release is refused; a
    release whose run never began (the process stopped between the event and the claim) runs when asked again.
    Its reply cannot go back on the sender's connection (the sender was answered "held"): it is kept on the deal
    ``NEW_ID``, published to the channel's own reply address when it has one, and where it went is said
    (``hold release ran``, below).  Another entry matching on the run (the list changed) holds it again.
``hold release ran`` ``{"deal": NEW_ID, "ok", "outcome", "status", "reply": {"delivered", "to", "kept_on", "why"}}``
    after the release's run: its outcome, and where its reply went: to a ``nats consume`` channel's
    ``reply_subject`` (``delivered``, ``to``: engine/channels/late_reply.py), else to no one (the sender was
    answered "held", and a reply goes on the request's own connection, not kept for the decision).  The reply
    stays on the run's deal (``bsp deals show NEW_ID``); ``decide``'s result carries it (``run.reply.values``)
    and ``bsp deals resolve`` prints it and says where it went.
``hold rejected`` ``{"outcome": "reject", "note", "by", "via", ...}``
    a true match: the deal stays rejected (nothing was sent, nothing to give back); its dead letter is closed
    (status ``retried``, its outcome saying the hold was rejected) and is never run.

``by`` is recorded as ``bsp deals resolve`` records it (engine/deal_resolve.py): the admin token's name over
the admin API, else ``--by`` or the OS user.
"""
from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from engine.deal_resolve import HOLD_OUTCOMES, Refused, stamp

HELD = "held"                       # engine.steps.screen.HELD
HOLD_RELEASED = "hold released"
HOLD_REJECTED = "hold rejected"
HOLD_RAN = "hold release ran"       # after a release's run: the run's deal, its outcome and where its reply went
DECISIONS = (HOLD_RELEASED, HOLD_REJECTED)
def hold_state(events: Sequence[Mapping[str, Any]]) -> tuple[str, Mapping[str, Any] | None]:
    """``("none", None)``, ``("held", None)``, ``("released", the event)`` or ``("rejected", the event)``."""
    if not any(e.get("to_state") == HELD for e in events):
        return "none", None
    for e in events:
        if e.get("to_state") == HOLD_RELEASED:
            return "released", e
        if e.get("to_state") == HOLD_REJECTED:
            return "rejected", e
    return "held", None


def hits(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The details of the deal's ``held`` events (step, list, entry, on, score, threshold)."""
    return [dict(e["detail"]) for e in events if e.get("to_state") == HELD and isinstance(e.get("detail"), Mapping)]


def _refuse(deal: Mapping[str, Any], state: str, ev: Mapping[str, Any] | None, letter: Mapping[str, Any] | None,
            hint_list: str) -> None:
    did = deal["deal_id"]
    if state == "none":
        raise Refused(f"deal {did} was not held by a screening (it has no event `held`): release and reject "
                      f"decide held deals only; they are listed by `{hint_list}`", "not_held")
    if ev is None:
        return
    d = ev.get("detail") if isinstance(ev.get("detail"), Mapping) else {}
    said = f"{d.get('by')} at {stamp(ev.get('at'))} ({d.get('note')!r})"
    if state == "rejected":
        raise Refused(f"deal {did} is already decided: its hold was rejected by {said}; a decision is not changed",
                      "already_rejected")
    if letter is not None and letter.get("status") == "new":
        return          # released, but its run never began: it runs now (the event stays the one written)
    outcome = (letter or {}).get("retry_outcome") or "no outcome recorded"
    if letter is not None and letter.get("status") == "retrying":
        raise Refused(f"deal {did} is already released by {said}: its request is running now as deal "
                      f"{d.get('deal')} ({outcome}); it is not run twice: see `bsp deals show {d.get('deal')}` "
                      f"once it ends", "already_released")
    raise Refused(f"deal {did} is already released by {said}: its request ran as deal {d.get('deal')} "
                  f"({outcome}); it is not run twice", "already_released")


def check_decision(outcome: str) -> bool:
    return outcome in HOLD_OUTCOMES


async def decide(ledger: Any, deal_id: str, outcome: str, note: str, by: str, *, via: str,
                 injector: Any = None, keyring: Any = None, hint_list: str = "bsp deals --held",
                 lock: Any = None, **where: Any) -> dict[str, Any] | None:
    """Record the decision on the held deal ``deal_id`` in ``ledger`` (an open ``engine.ledger.Ledger``: the
    engine's, or this process's on the ledger file) and, on release, run its request through ``injector``
    (``engine.deadletter.switchboard_injector``).  None when there is no such deal; ``Refused`` when it is not
    held, or decided already.  ``where``: what the recorder can tell of the operator (host, peer, token ...).
    ``lock``: held while the decision is read and recorded, not while a release runs."""
    from engine.deal import DealEvent, new_deal_id
    from engine.deal_resolve import event_detail
    from engine.deadletter import retry_once
    from engine.ledger_query import get_deal, query_dead_letters
    from engine.ops.ledger_reads import read_in_process

    path = Path(ledger.path)
    # the decision is read and recorded under ``lock`` (one decision at a time: a release and a reject of one
    # deal at once cannot both be recorded); the run of a release goes on outside it (it may wait for a
    # counterpart up to its timeout): its dead letter's claim makes it run once
    async with lock if lock is not None else nullcontext():
        deal = await read_in_process(get_deal, path, deal_id=deal_id)
        if deal is None:
            return None
        full = deal["deal_id"]
        events = deal.get("events") or ()
        letters = await read_in_process(query_dead_letters, path, ids=[full], limit=1, with_raw=True)
        letter = letters[0] if letters else None
        state, ev = hold_state(events)
        _refuse(deal, state, ev, letter, hint_list)
        at = datetime.now(timezone.utc)
        if outcome == "reject":
            if state == "released":
                raise Refused(f"deal {full} is already released: its request is being run; it cannot be rejected now",
                              "already_released")
            detail = event_detail(outcome, note, by, via, **where)
            await ledger.append_story(full, [], [DealEvent(at, None, HOLD_REJECTED, detail)], unless=HOLD_REJECTED)
            if letter is not None and letter.get("status") == "new":
                await ledger.mark_dead_letters([full], status="retried", retried_at=at,
                                               retry_outcome=f"not run: the hold was rejected by {by} at {stamp(at)} "
                                                             f"({note!r}) ({via})")
            return {"deal_id": full, "at": at, **detail, "hits": hits(events)}
        if letter is None or letter.get("raw") is None:
            raise Refused(f"deal {full}: its request is not in the ledger (no dead letter {full}, or it was purged): "
                          f"nothing to run; have the sender send it again", "no_request")
        if injector is None:
            raise ValueError("release runs the deal's request: it needs the configuration to run it with")
        held = [[h.get("step"), h.get("entry")] for h in hits(events)]
        if state == "held":
            new_id = new_deal_id()
            detail = event_detail(outcome, note, by, via, **where, deal=new_id, hits=held)
            await ledger.append_story(full, [], [DealEvent(at, None, HOLD_RELEASED, detail)], unless=HOLD_RELEASED)
        else:           # released before, its run never began (stopped between): the recorded release runs now
            assert ev is not None
            detail = dict(ev["detail"])
            new_id = str(detail.get("deal") or new_deal_id())
    res = await retry_once(ledger, letter, injector, keyring=keyring, by=by, via=via, by_what="by",
                           who=f"release of held deal {full} by {by!r}", deal_id=new_id,
                           release={"deal": full, "hits": held})
    run: dict[str, Any] = {"deal": new_id, "ok": res.ok, "outcome": res.outcome, "skipped": res.skipped}
    if not res.skipped:
        loaded = getattr(ledger, "wait_loaded", None)
        if loaded is not None:
            await loaded()          # a journaled ledger: the run's row in DuckDB before it is read
        ran = await read_in_process(get_deal, path, deal_id=new_id)
        run["status"] = None if ran is None else ran.get("status")
        deliver = getattr(injector, "deliver", None)
        sent = await deliver(deal["channel"], new_id) if deliver is not None and deal.get("channel") else None
        run["reply"] = reply = reply_whereabouts(deal, new_id, ran, sent)
        # the run's outcome and where its reply went, on the held deal (its story ends with it); the reply's
        # values stay on the run's own deal, under its fields' rules (sealed, masked)
        told = {"deal": new_id, "ok": res.ok, "outcome": res.outcome, "status": run["status"],
                "reply": {k: v for k, v in reply.items() if k != "values"}}
        try:
            await ledger.append_story(full, [], [DealEvent(datetime.now(timezone.utc), None, HOLD_RAN, told)])
        except Exception as exc:      # noqa: BLE001 - the run happened; the operator is told it is not recorded
            run["not_recorded"] = f"the event `{HOLD_RAN}` could not be added to deal {full}: {exc}"
    return {"deal_id": full, "at": at, **detail, "hits": hits(events), "run": run}


def reply_text(reply: Mapping[str, Any] | None) -> str:
    """Where a released run's reply went, in one clause (``reply``: ``reply_whereabouts`` as the event ``hold
    release ran`` and an approval's ``approval done`` record it): ``bsp deals show`` and ``bsp approvals`` say it."""
    reply = reply if isinstance(reply, Mapping) else {}
    where = (f"kept on deal {reply.get('kept_on')} (`bsp deals show {reply.get('kept_on')}`)"
             if reply.get("kept_on") else "none kept")
    if reply.get("delivered"):
        return f"its reply was delivered to {reply.get('to')}, {where}"
    if reply.get("to"):
        return f"its reply was not delivered to {reply.get('to')}, {where}"
    return f"its reply went to no one, {where}"


def reply_whereabouts(held: Mapping[str, Any], new_id: str, ran: Mapping[str, Any] | None,
                      sent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Where the reply of a released deal's run went: ``{"delivered", "to" (when the channel has an address of its
    own for replies), "kept_on": NEW_ID or None, "values": the reply as the run's deal keeps it (None: it made
    none), "why"}``.  The sender was answered `held` when the screening held it, and a reply goes on the
    connection (or exchange) its request came in on, which is not kept for the officer's decision: delivered
    only by a channel with a reply address of its own (``sent``: engine/channels/late_reply.py, a ``nats
    consume`` channel's ``reply_subject``); else to no one."""
    channel, code = held.get("channel"), held.get("response_code")
    values = ran.get("response") if ran is not None else None
    if sent is not None and sent.get("delivered"):
        return {"delivered": True, "to": sent.get("to"), "kept_on": new_id if ran is not None else None,
                "values": values, "why": f"{sent.get('why')}; also kept on deal {new_id} (`bsp deals show {new_id}`)"}
    if sent is not None:        # the channel has a reply address, and the delivery did not happen
        return {"delivered": False, "to": sent.get("to"), "kept_on": new_id if ran is not None else None,
                "values": values, "why": f"not delivered to {sent.get('to')}: {sent.get('why')}; "
                                         f"kept on deal {new_id} (`bsp deals show {new_id}`): tell the sender the outcome"}
    gone = (f"its sender was answered `held` (code {code}) on channel {channel} when the screening held deal "
            f"{held.get('deal_id')}; a reply goes back only on the request's own connection, which is not kept for "
            f"the officer's decision, so the reply of the release went to no one")
    if ran is None:
        return {"delivered": False, "kept_on": None, "values": None,
                "why": f"{gone}; no deal {new_id} was recorded: see the dead letter {held.get('deal_id')}"}
    values = ran.get("response")
    if values is None:
        return {"delivered": False, "kept_on": new_id, "values": None,
                "why": f"{gone}; the run (deal {new_id}, {ran.get('status')}) made no reply"}
    return {"delivered": False, "kept_on": new_id, "values": values,
            "why": f"{gone}; it is kept on deal {new_id} (`bsp deals show {new_id}`, `reply:`): tell the sender the "
                   f"outcome"}


def held_deals(path: str | Path, *, con: Any | None = None, include_decided: bool = False,
               limit: int | None = 100) -> list[dict[str, Any]]:
    """The deals held by a screening, newest first: ``{deal_id, received_at, route, deal_type, reference,
    amount, currency, response_code, state, hits, decision}`` (``state``: held, released or rejected; decided
    ones only with ``include_decided``)."""
    from engine.ledger_query import _reading

    out: list[dict[str, Any]] = []
    with _reading(Path(path), con) as c:
        ids = [r[0] for r in c.execute(
            "SELECT d.deal_id FROM deals d WHERE d.deal_id IN (SELECT deal_id FROM deal_events WHERE to_state = ?) "
            "ORDER BY d.received_at DESC, d.deal_id", [HELD]).fetchall()]
        for did in ids:
            row = c.execute("SELECT deal_id, received_at, route, deal_type, reference, amount, currency, "
                            "response_code FROM deals WHERE deal_id = ?", [did]).fetchone()
            evs = [{"at": a, "to_state": s, "detail": _json(d)} for a, s, d in c.execute(
                "SELECT \"at\", to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [did]).fetchall()]
            state, ev = hold_state(evs)
            if state != "held" and not include_decided:
                continue
            keys = ("deal_id", "received_at", "route", "deal_type", "reference", "amount", "currency",
                    "response_code")
            out.append({**dict(zip(keys, row)), "state": state, "hits": hits(evs),
                        "decision": None if ev is None else {"at": ev.get("at"), **(ev.get("detail") or {})}})
            if limit is not None and len(out) >= limit:
                break
    return out


def _json(d: Any) -> Any:
    import json

    if isinstance(d, str):
        try:
            return json.loads(d)
        except ValueError:
            return d
    return d
