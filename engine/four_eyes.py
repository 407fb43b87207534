"""Dual control ("four eyes", maker-checker) of the operator actions that move money or delete evidence.

Off unless the deployment file lists the actions (``operators: {four_eyes: [...], four_eyes_expire: 8h}``)::

    dead.retry    bsp dead retry / POST /dead-letters/{id}/retry: a dead letter's message re-injected
    deal.release  bsp deals resolve --outcome release / POST /deals/{id}/resolve: a held deal's request runs on
    deal.resolve  bsp deals resolve --outcome applied|not-applied|undone|written-off: a flagged deal settled
                  (its ``limit`` totals given back or counted again, its queued reversals cancelled)
    dead.purge    bsp dead purge ID: a dead letter's stored message deleted for good
    deal.reveal   bsp deals show ID --live --reveal / POST /deals/{id}/reveals: a deal's sealed fields (card
                  numbers, secrets, names) shown in clear; approved, the engine decrypts them for the requester
                  alone, once (``POST /approvals/{id}/reveal``, ``bsp approvals reveal ID --live``) within
                  ``four_eyes_expire`` of the approval; the clear values are never stored, logged or listed
    dead.reveal   bsp dead show ID --live --reveal / POST /dead-letters/{id}/reveals: a dead letter's stored
                  message (and its deal's sealed request fields) shown in clear; as deal.reveal (the requester's
                  token needs the role raw); GET /dead-letters/{id} then withholds a message stored in clear
    config.reload POST /reload (``bsp reload``), and a ``bsp run --watch`` file change or SIGHUP: the route and
                  deployment files switched to; the request records the version a dry run compiled then, and an
                  approval of files changed since is void
    ledger.archive bsp ledger archive --before D --out F: old records moved out of the live ledger; run with the
                  engine stopped, it records a request (who: the OS user), approved through the admin API; run
                  again (the engine stopped), it archives with the same --before and --out once, the approval
                  claimed first (``approval done``)

An action listed is not carried out when asked: the request is recorded (``request``), and carried out only
when another operator approves it (``decide``, approve); a reject closes it, and so does time
(``four_eyes_expire``, 24h unless set).  Every step is a chained deal event on the id the action is about
(the deal's, or the dead letter's), as an operator's resolution or a reveal is: in the ledger, sealed in the
audit chain (``bsp audit verify``), told by ``bsp deals show`` / ``bsp dead show``::

    approval requested  {"request": R, "action", "target", "params": {...}, "by", "via", "expires_at",
                         "token", "peer", "client_cert" (admin API) | "host", "os_user", "stated_by" (ledger file)}
    approval granted    {"request": R, "action", "by", "via", "reason", "requested_by", ...}
    approval rejected   {"request": R, "action", "by", "via", "reason", "requested_by", ...}
    approval void       {"request": R, "action", "why"}: the target changed meanwhile (its dead letter retried,
                        its deal resolved by other means): approving it would do nothing or something else
    approval done       {"request": R, "action", "ok", "outcome"}: the approved action finished (its outcome,
                        whatever it was), or a reveal was fetched by its requester; a held deal's release
                        also ``deal`` (its run's) and ``reply``: where the reply went, as ``hold release
                        ran`` records it (engine/deal_hold.py; the values stay on the run's deal)

A request approved and carried out by the engine (dead.retry, deal.release, deal.resolve, config.reload) is
*running* between its ``approval granted`` and its ``approval done``; one the engine was cut in (a crash, a
kill) has the first and not the second: it is *interrupted* once no engine carries it out.  An interrupted
request can be approved again (by another operator than its requester): the action's own record is checked
first (the dead letter's status and retry time, the deal's hold or flag state, the engine's configuration
version) and when it shows the action took effect the request is closed ``approval void`` (or ``approval done``:
a reload whose version runs already) and nothing runs twice; else it runs once more (``approval granted`` with
``again``).

A request is *pending* while it has no decision and has not expired.  The decision is checked and
written in one transaction of the ledger writer (the engine's writer thread, or this process's store on the
ledger file, which no other process can hold): of two approvals of one request at once, one is recorded, the
other refused; an approval after expiry, by the requester, or of a request closed already is refused and
writes nothing.  The action then runs once through its own guard (a dead letter's claim, a deal's hold or
flag state), recording who asked and who approved.

Who an operator is: over the admin API, the name of the token the request came with (authenticated: the
engine checked the token).  On the ledger file (no ``--live``) bsp can tell only the OS user running it and
the host: it records them, and a request made there can be approved only through the admin API; an approval
on the ledger file is refused (docs/security.md#four-eyes).
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

import orjson

ACTIONS: dict[str, str] = {
    "dead.retry": "retry a dead letter (its message re-injected: a payment may run)",
    "deal.release": "release a deal held by a screening (its request runs on: a payment runs)",
    "deal.resolve": "resolve a deal flagged for an operator (limit totals given back or counted, reversals cancelled)",
    "dead.purge": "purge a dead letter (its stored message deleted for good)",
    "deal.reveal": "reveal a deal's sealed fields in clear (the engine decrypts them for the requester, once)",
    "dead.reveal": "reveal a dead letter's stored message in clear (the engine decrypts it for the requester, once)",
    "config.reload": "reload the configuration (admin API, --watch, SIGHUP: the files' new version runs)",
    "ledger.archive": "archive old records out of the live ledger (bsp ledger archive, the engine stopped)",
}
# the reveals: approved, fetched once by the requester (``take_reveal``), of a deal or of a dead letter
REVEALS: dict[str, str] = {"deal.reveal": "deal", "dead.reveal": "dead letter"}
# carried out by the engine right after the approval: running, then done (or interrupted by a crash)
RUN_BY_ENGINE = ("dead.retry", "deal.release", "deal.resolve", "config.reload")
CONFIG_TARGET = "config"
# the actions whose request is not about a deal or a dead letter: each has an id of its own (``new_deal_id``)
OWN_TARGET = ("config.reload", "ledger.archive")
DEFAULT_EXPIRE = "24h"

REQUESTED = "approval requested"
GRANTED = "approval granted"
REJECTED = "approval rejected"
VOID = "approval void"
DONE = "approval done"
CLOSING = (GRANTED, REJECTED, VOID)
EVENTS = (REQUESTED, *CLOSING, DONE)
MAX_REASON = 2000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Policy:
    actions: tuple[str, ...] = ()
    expire: float = 24 * 3600.0          # seconds a request waits for its approval (and a reveal its fetch)
    # the time the requests are stamped and checked with (a test gives a clock it moves; compare: ignored)
    now: Callable[[], datetime] = field(default=utc_now, compare=False, repr=False)

    def covers(self, action: str) -> bool:
        return action in self.actions


def staffing_problem(policy: Any, tokens: Iterable[Any] | None) -> str | None:
    """What keeps every request under ``policy`` from ever being approved, said at start: no admin API (an
    approval is taken only there), or fewer than two admin tokens with the ``operate`` role (the requester
    cannot approve their own: with one, nothing listed can ever be done).  None when two operators can act.
    ``tokens``: the admin API's tokens (``engine.admin.auth.NamedToken``), None when it is off."""
    if policy_of(policy) is None:
        return None
    listed = ", ".join(policy.actions)
    if tokens is None:
        return (f"four eyes: {listed} need a second operator's approval, which is given only through the admin API, "
                f"and the admin API is off: no request could ever be approved; turn the admin API on (admin: in the "
                f"deployment file) with a token per operator, or take the actions out of operators.four_eyes")
    operators = sorted(t.name for t in tokens if "operate" in getattr(t, "roles", ()))
    if len(operators) >= 2:
        return None
    have = f"only {operators[0]!r} has" if operators else "no admin token has"
    return (f"four eyes: {listed} need a second operator's approval, but {have} the operate role: the requester "
            f"cannot approve their own request, so none could ever be approved; give each operator a token of their "
            f"own with the operate role (admin.tokens in the deployment file; a reload reads them again)")


def parse_expire(text: str) -> float:
    """``8h`` -> seconds (d, h, m, s); ValueError otherwise."""
    found = re.fullmatch(r"([1-9][0-9]*)([dhms])", str(text).strip())
    if not found:
        raise ValueError(f"four_eyes_expire: expected a number with d, h, m or s (e.g. 8h), got {text!r}")
    return int(found.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[found.group(2)]


def policy_of(value: Any) -> Policy | None:
    """The policy of a deployment (``Deployment.four_eyes``) or None."""
    return value if isinstance(value, Policy) and value.actions else None


class Refused(ValueError):
    """A request or decision refused; ``why`` names the case (for the admin API's 409 and the tests)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


def new_request_id() -> str:
    return uuid.uuid4().hex


def check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON or not reason.isprintable():
        raise ValueError(f"reason: expected why (1 to {MAX_REASON} printable characters), got {reason!r}")
    return reason.strip()


def stamp(at: Any) -> str:
    """A time as the notes give it: ``2026-11-27T21:18:27Z`` (an ISO text, as the admin API sends it, too)."""
    at = _aware(at) or at
    if isinstance(at, datetime):
        return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(at)


def _aware(at: Any) -> datetime | None:
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(at, datetime):
        return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)
    return None


def _detail(d: Any) -> dict[str, Any]:
    if isinstance(d, str):
        try:
            d = orjson.loads(d)
        except orjson.JSONDecodeError:
            return {}
    return dict(d) if isinstance(d, Mapping) else {}


def names_of(detail: Mapping[str, Any]) -> set[str]:
    """Every name a request's detail gives its requester (by, token, stated_by, os_user), lower-cased: an
    approver named by any of them is the requester."""
    return {str(detail[k]).strip().lower() for k in ("by", "token", "stated_by", "os_user") if detail.get(k)}


def requests_of(events: Iterable[Mapping[str, Any]], now: datetime | None = None,
                running: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The requests among a target's events (``{at, to_state, detail}``, in order), each with its ``state``:
    pending, expired, approved, rejected, void, running, interrupted or lapsed; its ``decision`` (the last
    decision's detail and time) and ``run`` (its ``approval done``: the action's outcome).  ``running``: the
    requests this engine is carrying out now (an approved one it is not, without its ``approval done``, was cut
    by a crash: interrupted)."""
    now = now or utc_now()
    live = set(running)
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        state = e.get("to_state")
        if state not in EVENTS:
            continue
        d = _detail(e.get("detail"))
        rid = d.get("request")
        if not rid:
            continue
        if state == REQUESTED:
            out[rid] = {"id": rid, "at": e.get("at"), **d, "state": "pending", "decision": None, "run": None}
            continue
        r = out.get(rid)
        if r is None:
            continue
        dec = r["decision"]
        if state == DONE:
            if dec is not None and dec["event"] == GRANTED and r["run"] is None:
                r["run"] = {"at": e.get("at"), **d}
        elif dec is None or (dec["event"] == GRANTED and r["run"] is None and r.get("action") in RUN_BY_ENGINE):
            # the first decision; or, of an approved action that never finished (interrupted), its approval
            # again, its void, or its rejection
            r["decision"] = {"at": e.get("at"), "event": state, **d}
    for r in out.values():
        r["state"] = _state(r, now, live)
    return list(out.values())


def _state(r: Mapping[str, Any], now: datetime, running: set[str]) -> str:
    dec = r.get("decision")
    if dec is None:
        exp = _aware(r.get("expires_at"))
        return "expired" if exp is not None and now >= exp else "pending"
    if dec["event"] != GRANTED:
        return {REJECTED: "rejected", VOID: "void"}[dec["event"]]
    if r.get("run") is not None:
        return "approved"
    action = r.get("action")
    if action in RUN_BY_ENGINE:
        return "running" if r["id"] in running else "interrupted"
    if action in REVEALS:
        until = _aware(dec.get("fetch_until"))
        return "lapsed" if until is not None and now >= until else "approved"
    return "approved"


# ------------------------------------------------------------------ in one writer transaction
def _events(con: Any, target: str) -> list[dict[str, Any]]:
    return [{"at": a, "to_state": s, "detail": d} for a, s, d in con.execute(
        "SELECT \"at\", to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [target]).fetchall()]


def _append(store: Any, con: Any, tail: Any, target: str, to_state: str, detail: Mapping[str, Any],
            at: datetime) -> None:
    """One chained deal event on ``target``, inside the caller's ``store.transaction()``."""
    from engine.audit import CHAINED, seal
    from engine.ledger_store import EVENT_SCHEMA, _insert_sql, _table

    ((n, state),) = con.execute("SELECT max(seq), arg_max(to_state, seq) FROM deal_events WHERE deal_id = ?",
                                [target]).fetchall()
    row = {"deal_id": target, "seq": int(n or 0) + 1, "at": at, "from_state": state, "to_state": to_state,
           "detail": orjson.dumps(dict(detail)).decode()}
    sealed, tail.seq, tail.prev = seal("deal_events", _table(EVENT_SCHEMA, [row]), CHAINED["deal_events"][1],
                                       store.audit_key, tail.seq, tail.prev)
    con.register("_bsp_batch", sealed)
    try:
        con.execute(_insert_sql("deal_events", EVENT_SCHEMA)).fetchall()
    finally:
        con.unregister("_bsp_batch")


def _target_check(con: Any, action: str, target: str, params: Mapping[str, Any],
                  since: Any = None) -> str | None:
    """Why ``action`` on ``target`` cannot be carried out now (None: it can): read in the writer's transaction.
    ``since``: the time an approval of it was granted before and cut (interrupted): the action's own record is
    read for whether it took effect after it (a retry claimed since, a hold released, a flag resolved)."""
    if action in ("config.reload", "ledger.archive"):
        # a reload's version is checked by the engine (engine/ops/backend.py); an archive's plan by the command
        # on the ledger file when it runs (engine/commands/ledger.py)
        return None
    if action in ("dead.retry", "dead.purge", "dead.reveal"):
        row = con.execute("SELECT status, retried_at, retry_outcome FROM dead_letters WHERE id = ?",
                          [target]).fetchone()
        if row is None:
            return f"dead letter {target} is no longer in the ledger"
        status, at, outcome = row
        if status == "purged":
            return f"dead letter {target} was purged meanwhile (its message is gone)"
        if action == "dead.reveal":
            return None
        if action == "dead.retry" and since is not None and status != "new":
            # an interrupted approval: the letter's own record says whether its retry took effect
            claimed = _aware(at)
            if status == "retrying":
                return (f"dead letter {target} was claimed for a retry at {stamp(at)} and its outcome was never "
                        f"recorded ({outcome or 'no outcome recorded'}): whether its message ran is unknown, so it "
                        f"is not run twice; see whether its deal ran (`bsp dead show {target}`), then ask again "
                        f"with again if it did not")
            if claimed is not None and claimed >= (_aware(since) or claimed):
                return (f"dead letter {target} was retried at {stamp(at)}, after this request's approval "
                        f"({outcome or 'no outcome recorded'}): the interrupted retry took effect; not run twice")
        if action == "dead.retry" and status != "new" and not params.get("again"):
            return (f"dead letter {target} was retried meanwhile (status {status}, at {stamp(at)}: "
                    f"{outcome or 'no outcome recorded'}); it is not run again by this request")
        if action == "dead.retry" and status == "retrying":
            return f"dead letter {target} is being retried now (status retrying since {stamp(at)}); not run twice"
        return None
    events = _events(con, target)
    if not events and con.execute("SELECT 1 FROM deals WHERE deal_id = ?", [target]).fetchone() is None:
        return f"deal {target} is no longer in the ledger"
    if action == "deal.release":
        from engine.deal_hold import hold_state

        state, ev = hold_state([{**e, "detail": _detail(e["detail"])} for e in events])
        if since is not None and state == "released":
            # an interrupted approval: released, and its run never began (its dead letter not claimed: status
            # new) runs now, as engine.deal_hold does; claimed or run: not run twice
            row = con.execute("SELECT status, retried_at, retry_outcome FROM dead_letters WHERE id = ?",
                              [target]).fetchone()
            if row is not None and row[0] == "new":
                return None
            d = _detail((ev or {}).get("detail"))
            return (f"deal {target} was released at {stamp((ev or {}).get('at'))} by {d.get('by')} and its request "
                    f"began running as deal {d.get('deal')} (its dead letter {row[0] if row else 'gone'}: "
                    f"{(row[2] if row else None) or 'no outcome recorded'}): the interrupted release took effect "
                    f"or may have; not run twice: see `bsp deals show {d.get('deal')}`")
        if state != "held":
            d = _detail((ev or {}).get("detail"))
            return (f"deal {target} is no longer held: its hold was {state} meanwhile by {d.get('by')} at "
                    f"{stamp((ev or {}).get('at'))}")
        return None
    if action == "deal.resolve":
        from engine.deal_resolve import flag_state

        state, ev = flag_state([{**e, "detail": _detail(e["detail"])} for e in events])
        if state != "open":
            d = _detail((ev or {}).get("detail"))
            return (f"deal {target} is no longer open for an operator: {state} meanwhile"
                    + (f" ({d.get('outcome')} by {d.get('by')} at {stamp((ev or {}).get('at'))})" if d else ""))
        return None
    return None


def record_request(store: Any, action: str, target: str, params: Mapping[str, Any], by: str, via: str,
                   expire: float, now: Callable[[], datetime] = utc_now, **where: Any) -> dict[str, Any]:
    """Record the request in ``store`` (an open ``LedgerStore``: the engine's on its writer thread, or this
    process's on the ledger file), in one transaction: refused when one for the same action on the same
    target is pending already (a reload: any pending reload; an archive: one with the same --before and
    --out), or when the target cannot be acted on now."""
    at = now()
    with store.transaction() as tail:
        con = store.connection
        why = _target_check(con, action, target, params)
        if why is not None:
            raise Refused(f"{action} of {target}: {why}; nothing requested", "stale")
        waiting = (listing(con, now=at, limit=None) if action in OWN_TARGET
                   else requests_of(_events(con, target), at))
        for r in waiting:
            if (r["state"] == "pending" and r.get("action") == action
                    and (action != "ledger.archive" or same_archive(r.get("params") or {}, params))):
                raise Refused(f"{action} of {r.get('target', target)} is already requested: request {r['id']} by "
                              f"{r.get('by')} at {stamp(r.get('at'))} waits for a second operator (`bsp approvals "
                              f"approve {r['id']} --live --reason ...`) until {r.get('expires_at')}",
                              "already_requested")
        detail = {"request": new_request_id(), "action": action, "target": target, "params": dict(params),
                  "by": by, "via": via, "expires_at": stamp(at + timedelta(seconds=expire)),
                  **{k: v for k, v in where.items() if v is not None}}
        _append(store, con, tail, target, REQUESTED, detail, at)
    return {"id": detail["request"], "at": at, **detail, "state": "pending"}


def same_archive(asked: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether a ``ledger.archive`` request's params name the same archive: the same --before and --out."""
    return asked.get("before") == params.get("before") and asked.get("out") == params.get("out")


def find(con: Any, request_id: str, now: datetime | None = None,
         running: Iterable[str] = ()) -> tuple[str, dict[str, Any]] | None:
    """(target, the request) of ``request_id`` (its whole id, or its first 8 or more hex digits)."""
    rid = request_id.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,32}", rid):
        raise ValueError(f"request id {request_id!r}: expected its 32 hex digits (or its first 8 or more)")
    hits = con.execute("SELECT DISTINCT deal_id, json_extract_string(detail, '$.request') FROM deal_events "
                       "WHERE to_state = ? AND starts_with(json_extract_string(detail, '$.request'), ?)",
                       [REQUESTED, rid]).fetchall()
    if not hits:
        return None
    if len(hits) > 1:
        raise ValueError(f"request id {request_id!r} matches {len(hits)} requests; give more of it")
    target, full = hits[0]
    for r in requests_of(_events(con, target), now, running):
        if r["id"] == full:
            return target, r
    return None


def decide(store: Any, request_id: str, approve: bool, by: str, via: str, reason: str,
           now: Callable[[], datetime] = utc_now, running: Iterable[str] = (), expire: float | None = None,
           **where: Any) -> dict[str, Any] | None:
    """Approve or reject a pending (or interrupted) request, checked and written in one transaction of
    ``store``: returns the request with its ``decision``; None when there is no such request; ``Refused`` when
    it is not pending (approved, rejected or void already: ``decided``; ``expired``; ``running``: being carried
    out now), when ``by`` is its requester (``own_request``, approving only: a requester may withdraw their own
    by rejecting it), or (approving) when its target changed meanwhile (``stale``: the request is closed
    ``approval void``).  An interrupted request approved again has its action's own record checked for whether
    it took effect after the first approval (then void, never run twice).  ``expire``: a reveal's time to be
    fetched after the approval (``fetch_until``)."""
    at = now()
    with store.transaction() as tail:
        con = store.connection
        found = find(con, request_id, at, running)
        if found is None:
            return None
        target, req = found
        rid = req["id"]
        state = req["state"]
        if state == "expired":
            raise Refused(f"request {rid} ({req.get('action')} of {target} by {req.get('by')}) expired at "
                          f"{req.get('expires_at')} without an approval; nothing was done: ask again if it is still "
                          f"needed", "expired")
        if state == "running":
            raise Refused(f"request {rid} ({req.get('action')} of {target}) was approved and is being carried out "
                          f"now; wait for its outcome (`bsp approvals list --all`)", "running")
        if state not in ("pending", "interrupted"):
            d = req["decision"] or {}
            raise Refused(f"request {rid} ({req.get('action')} of {target}) is already {state}"
                          + (f" by {d.get('by')}" if d.get("by") else "") + f" at {stamp(d.get('at'))}"
                          + (f" ({d.get('reason') or d.get('why')})" if d.get("reason") or d.get("why") else "")
                          + "; a decision is not changed and nothing runs twice", "decided")
        if approve and by.strip().lower() in names_of(req):
            raise Refused(f"request {rid} was made by {req.get('by')}: the requester cannot approve their own "
                          f"request; another operator (another admin API token) approves it", "own_request")
        action = str(req.get("action"))
        base = {"request": rid, "action": action, "requested_by": req.get("by")}
        again = state == "interrupted"
        if again:
            first = req["decision"] or {}
            base["interrupted"] = {"approved_by": first.get("by"), "at": stamp(first.get("at"))}
        pending_error = None
        if approve:
            since = (req["decision"] or {}).get("at") if again else None
            why = _target_check(con, action, target, req.get("params") or {}, since=since)
            if why is not None:
                _append(store, con, tail, target, VOID, {**base, "why": why, "by": by}, at)
                void = {**req, "state": "void", "target": target,
                        "decision": {"at": at, "event": VOID, **base, "why": why, "by": by}}
                stale = Refused(f"request {rid}: {why}; the request is closed (approval void), nothing was done",
                                "stale")
                stale.request = void     # type: ignore[attr-defined]
                # the transaction commits the void event: raised once it has
                pending_error = stale
            else:
                detail = {**base, "by": by, "via": via, "reason": reason, **({"again": True} if again else {}),
                          **{k: v for k, v in where.items() if v is not None}}
                if action in REVEALS:
                    detail["fetch_until"] = stamp(at + timedelta(seconds=expire if expire is not None else 86400))
                _append(store, con, tail, target, GRANTED, detail, at)
        else:
            detail = {**base, "by": by, "via": via, "reason": reason,
                      **{k: v for k, v in where.items() if v is not None}}
            _append(store, con, tail, target, REJECTED, detail, at)
    if pending_error is not None:
        raise pending_error
    return {**req, "target": target, "state": "approved" if approve else "rejected",
            "decision": {"at": at, "event": GRANTED if approve else REJECTED, **detail}}


def finish(store: Any, request_id: str, ok: bool, outcome: str, now: Callable[[], datetime] = utc_now,
           **more: Any) -> None:
    """Record that the approved request's action finished (``approval done``: its outcome, whatever it was), in
    one transaction of ``store``: from then on the request is approved (done), never interrupted."""
    at = now()
    with store.transaction() as tail:
        con = store.connection
        found = find(con, request_id, at)
        if found is None:
            return
        target, req = found
        _append(store, con, tail, target, DONE, {"request": req["id"], "action": req.get("action"), "ok": bool(ok),
                                                 "outcome": outcome, **{k: v for k, v in more.items()
                                                                        if v is not None}}, at)


def take_reveal(store: Any, request_id: str, by: str, fields: Sequence[str], now: Callable[[], datetime] = utc_now,
                **where: Any) -> dict[str, Any] | None:
    """The requester fetching an approved reveal (``deal.reveal``, ``dead.reveal``): checked and written in one transaction of ``store``
    (``approval done`` and the deal's ``revealed`` event, naming both operators), so a reveal is fetched once,
    by its requester, within ``fetch_until``; the request, None when there is no such request; ``Refused``:
    ``not_reveal``, ``not_requester``, ``not_approved`` (pending, rejected, void, expired), ``fetched``, ``lapsed``.
    The caller decrypts the fields and sends them to the requester only; nothing of them is written."""
    from engine.reveal_log import REVEALED, detail as reveal_detail

    at = now()
    with store.transaction() as tail:
        con = store.connection
        found = find(con, request_id, at)
        if found is None:
            return None
        target, req = found
        rid = req["id"]
        action = str(req.get("action"))
        if action not in REVEALS:
            raise Refused(f"request {rid} is a {req.get('action')}, not a reveal: there is nothing to fetch",
                          "not_reveal")
        # the requester is the admin token the request came with, and only it: not a name the request merely
        # carries (stated_by, os_user), which another token may be called
        if not req.get("token") or by.strip().lower() != str(req["token"]).strip().lower():
            raise Refused(f"request {rid} was made by {req.get('by')}: the revealed fields go to the requester "
                          f"alone (their admin token), not to another operator", "not_requester")
        dec = req.get("decision") or {}
        if req["state"] == "lapsed":
            raise Refused(f"request {rid}: the reveal was approved by {dec.get('by')} at {stamp(dec.get('at'))} and "
                          f"not fetched before {dec.get('fetch_until')}; nothing was revealed: ask again",
                          "lapsed")
        if req.get("run") is not None:
            raise Refused(f"request {rid}: the reveal was fetched already at {stamp(req['run'].get('at'))}; a "
                          f"reveal is fetched once: ask again", "fetched")
        if req["state"] != "approved":
            raise Refused(f"request {rid} is {req['state']}: a reveal is fetched once another operator approved it"
                          + (" (`bsp approvals list --live`)" if req["state"] == "pending" else ""),
                          "not_approved")
        event = reveal_detail(REVEALS[action], fields, by, "admin API, four eyes",
                              **{**{k: v for k, v in where.items() if v is not None}, "four_eyes": rid,
                                 "approved_by": dec.get("by")})
        _append(store, con, tail, target, DONE, {"request": rid, "action": action, "ok": True,
                                                 "outcome": f"revealed to {by} ({len(fields)} field(s))",
                                                 "by": by}, at)
        _append(store, con, tail, target, REVEALED, event, at)
    return {**req, "target": target, "state": "approved", "revealed": {"at": at, **event}}


def listing(con: Any, *, every: bool = False, target: str | None = None, limit: int | None = 100,
            now: datetime | None = None, running: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The requests, newest first: pending (and interrupted: waiting for a decision again) ones only unless
    ``every``; ``target``: of that deal/letter only."""
    sql = "SELECT DISTINCT deal_id FROM deal_events WHERE to_state = ?"
    args: list[Any] = [REQUESTED]
    if target is not None:
        sql += " AND deal_id = ?"
        args.append(target)
    now = now or utc_now()
    out: list[dict[str, Any]] = []
    for (tid,) in con.execute(sql, args).fetchall():
        for r in requests_of(_events(con, tid), now, running):
            if every or r["state"] in ("pending", "interrupted"):
                out.append({**r, "target": tid})
    out.sort(key=lambda r: (_aware(r.get("at")) or now), reverse=True)
    return out if limit is None else out[:limit]


def approval_text(req: Mapping[str, Any]) -> str:
    """One line telling a request and its outcome, for ``bsp deals show`` / ``bsp dead show`` / ``bsp approvals``."""
    d = req.get("decision") or {}
    head = f"{req.get('action')} requested by {req.get('by')} at {stamp(req.get('at'))}"
    p = req.get("params") or {}
    if p.get("outcome"):
        head += f" (outcome {p['outcome']}: {p.get('note')!r})"
    if p.get("version"):
        head += f" (version {p['version']})"
    if p.get("before"):
        head += f" (records before {p['before']} to {p.get('out')})"
    state = req.get("state")
    rid = req.get("id")
    if state == "pending":
        return f"{head}: waits for a second operator until {req.get('expires_at')} (request {rid})"
    if state == "expired":
        return f"{head}: expired at {req.get('expires_at')}, not approved (request {rid})"
    if state == "void":
        return f"{head}: void at {stamp(d.get('at'))}: {d.get('why')} (request {rid})"
    if state == "rejected":
        return f"{head}: rejected by {d.get('by')} at {stamp(d.get('at'))} ({d.get('reason')!r}) (request {rid})"
    said = f"{head}: approved by {d.get('by')} at {stamp(d.get('at'))} ({d.get('reason')!r})"
    if state == "running":
        return f"{said}: being carried out now (request {rid})"
    if state == "interrupted":
        return (f"{said}: INTERRUPTED: the engine stopped before the action recorded its outcome; approve it again "
                f"(it runs only if its own record shows it did not take effect) or reject it (request {rid})")
    if state == "lapsed":
        return f"{said}: not fetched by {req.get('by')} before {d.get('fetch_until')}, nothing revealed (request {rid})"
    run = req.get("run") or {}
    if run.get("reply") is not None:       # a release: where its run's reply went (engine.deal_hold.reply_text)
        from engine.deal_hold import reply_text

        return f"{said}: {run.get('outcome')}; {reply_text(run['reply'])} (request {rid})"
    if run:
        return f"{said}: {run.get('outcome')} (request {rid})"
    if req.get("action") in REVEALS:
        return f"{said}: {req.get('by')} may fetch it once until {d.get('fetch_until')} (request {rid})"
    return f"{said} (request {rid})"


POLICY = "four eyes policy"      # the policy in force, recorded by ``bsp run`` when it changes (an id of its own)


def recorded_policy(con: Any) -> Policy | None:
    """The policy the last engine started with, as recorded in the ledger (``record_policy``), or None."""
    row = con.execute("SELECT detail FROM deal_events WHERE to_state = ? ORDER BY chain_seq DESC LIMIT 1",
                      [POLICY]).fetchone()
    if row is None:
        return None
    d = _detail(row[0])
    return Policy(tuple(a for a in d.get("actions") or () if a in ACTIONS), float(d.get("expire") or 86400))


def record_policy(store: Any, policy: Policy | None, source: str | None) -> bool:
    """Record the policy ``bsp run`` starts with when it is not the one recorded last (an event ``four eyes
    policy`` on an id of its own, chained): the commands working on the ledger file without the deployment file
    (``--ledger``) keep to it, and turning dual control off is itself in the audit trail.  True when recorded."""
    from engine.deal import new_deal_id

    actions = tuple(sorted(policy.actions)) if policy is not None else ()
    expire = policy.expire if policy is not None else 0.0
    with store.transaction() as tail:
        con = store.connection
        last = recorded_policy(con)
        if (last is None and not actions) or (last is not None and tuple(sorted(last.actions)) == actions
                                              and (not actions or last.expire == expire)):
            return False
        _append(store, con, tail, new_deal_id(), POLICY, {"actions": list(actions), "expire": expire,
                                                          "source": source}, datetime.now(timezone.utc))
    return True


def offline_policy(path: Any, deployment: Any) -> Policy | None:
    """The policy a command on the ledger file keeps to: the deployment file's (``--deployment``) and the one the
    last engine recorded in the ledger, together (the stricter: each action either lists; the shorter expiry)."""
    from pathlib import Path

    from engine.ledger_query import _reading

    mine = policy_of(getattr(deployment, "four_eyes", None)) if deployment is not None else None
    recorded = None
    if Path(path).is_file():
        try:
            with _reading(Path(path), None) as con:
                recorded = policy_of(recorded_policy(con))
        except Exception:      # noqa: BLE001 - a file the command itself will refuse, saying why
            recorded = None
    if mine is None or recorded is None:
        return mine or recorded
    return Policy(tuple(dict.fromkeys(mine.actions + recorded.actions)), min(mine.expire, recorded.expire))


def request_in_file(path: Any, audit_key: bytes | None, action: str, target: str, params: Mapping[str, Any],
                    expire: float, by: str | None) -> dict[str, Any]:
    """Record a request on the ledger file (no engine may hold it): who is the OS user running bsp, ``by`` kept
    beside (``engine.operator.os_user_not_by``)."""
    from engine.ledger_store import LedgerStore
    from engine.operator import os_user_not_by

    who, where = os_user_not_by(by)
    store = LedgerStore.open(path, audit_key)
    try:
        return record_request(store, action, target, params, who, "ledger file", expire, **where)
    finally:
        store.close()


def requests_in_file(path: Any, *, every: bool = False, target: str | None = None,
                     limit: int | None = 100) -> list[dict[str, Any]]:
    """The requests recorded in a ledger file (read only)."""
    from engine.ledger_query import _reading

    from pathlib import Path

    with _reading(Path(path), None) as con:
        return listing(con, every=every, target=target, limit=limit)


def pending_text(req: Mapping[str, Any], live: bool) -> str:
    """What the command says of a request it recorded instead of acting."""
    how = "--live" if live else "--live (an approval is taken through the running engine's admin API only)"
    return (f"NOT done yet: four eyes: {req.get('action')} of {req.get('target')} needs a second operator: request "
            f"{req.get('id')} recorded (by {req.get('by')}), expires {req.get('expires_at')}; another operator "
            f"approves it with `bsp approvals approve {req.get('id')} {how} --reason TEXT`")


def blocked_by_offline(action: str) -> str:
    return (f"four eyes: {action} needs a second operator's approval, and on the ledger file bsp can tell only the "
            f"OS user running it (anyone can type --by): an approval is taken only through the running engine's "
            f"admin API, where each operator's token names them (`bsp approvals approve ID --live --reason TEXT`)")


def target_requests(reader: Any, target: str) -> Sequence[dict[str, Any]]:
    """The requests about one deal or dead letter, oldest first (for its story)."""
    return sorted(reader(target), key=lambda r: stamp(r.get("at")))
