"""Dual control ("four eyes", maker-checker) of the operator actions that move money or delete evidence.

Off unless the deployment file lists the actions (``operators: {four_eyes: [...], four_eyes_expire: 8h}``)::

    dead.retry    bsp dead retry / POST /dead-letters/{id}/retry: a dead letter's message re-injected
    deal.release  bsp deals resolve --outcome release / POST /deals/{id}/resolve: a held deal's request runs on
    deal.resolve  bsp deals resolve --outcome applied|not-applied|undone|written-off: a flagged deal settled
                  (its ``limit`` totals given back or counted again, its queued reversals cancelled)
    dead.purge    bsp dead purge ID: a dead letter's stored message deleted for good

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

A request is *pending* while it has none of the three and has not expired.  The decision is checked and
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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

import orjson

ACTIONS: dict[str, str] = {
    "dead.retry": "retry a dead letter (its message re-injected: a payment may run)",
    "deal.release": "release a deal held by a screening (its request runs on: a payment runs)",
    "deal.resolve": "resolve a deal flagged for an operator (limit totals given back or counted, reversals cancelled)",
    "dead.purge": "purge a dead letter (its stored message deleted for good)",
}
DEFAULT_EXPIRE = "24h"

REQUESTED = "approval requested"
GRANTED = "approval granted"
REJECTED = "approval rejected"
VOID = "approval void"
CLOSING = (GRANTED, REJECTED, VOID)
EVENTS = (REQUESTED, *CLOSING)
MAX_REASON = 2000


@dataclass(frozen=True)
class Policy:
    actions: tuple[str, ...] = ()
    expire: float = 24 * 3600.0          # seconds a request waits for its approval

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


def requests_of(events: Iterable[Mapping[str, Any]], now: datetime | None = None) -> list[dict[str, Any]]:
    """The requests among a target's events (``{at, to_state, detail}``, in order), each with its ``state``:
    pending, expired, approved, rejected or void, and its ``decision`` (the closing event's detail and time)."""
    now = now or datetime.now(timezone.utc)
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
            out[rid] = {"id": rid, "at": e.get("at"), **d, "state": "pending", "decision": None}
        elif rid in out and out[rid]["decision"] is None:
            out[rid]["decision"] = {"at": e.get("at"), "event": state, **d}
            out[rid]["state"] = {GRANTED: "approved", REJECTED: "rejected", VOID: "void"}[state]
    for r in out.values():
        exp = _aware(r.get("expires_at"))
        if r["state"] == "pending" and exp is not None and now >= exp:
            r["state"] = "expired"
    return list(out.values())


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


def _target_check(con: Any, action: str, target: str, params: Mapping[str, Any]) -> str | None:
    """Why ``action`` on ``target`` cannot be carried out now (None: it can): read in the writer's transaction."""
    if action in ("dead.retry", "dead.purge"):
        row = con.execute("SELECT status, retried_at, retry_outcome FROM dead_letters WHERE id = ?",
                          [target]).fetchone()
        if row is None:
            return f"dead letter {target} is no longer in the ledger"
        status, at, outcome = row
        if status == "purged":
            return f"dead letter {target} was purged meanwhile (its message is gone)"
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
                   expire: float, **where: Any) -> dict[str, Any]:
    """Record the request in ``store`` (an open ``LedgerStore``: the engine's on its writer thread, or this
    process's on the ledger file), in one transaction: refused when one for the same action on the same
    target is pending already, or when the target cannot be acted on now."""
    at = datetime.now(timezone.utc)
    with store.transaction() as tail:
        con = store.connection
        why = _target_check(con, action, target, params)
        if why is not None:
            raise Refused(f"{action} of {target}: {why}; nothing requested", "stale")
        for r in requests_of(_events(con, target), at):
            if r["state"] == "pending" and r.get("action") == action:
                raise Refused(f"{action} of {target} is already requested: request {r['id']} by {r.get('by')} at "
                              f"{stamp(r.get('at'))} waits for a second operator (`bsp approvals approve "
                              f"{r['id']} --live --reason ...`) until {r.get('expires_at')}", "already_requested")
        detail = {"request": new_request_id(), "action": action, "target": target, "params": dict(params),
                  "by": by, "via": via, "expires_at": stamp(at + timedelta(seconds=expire)),
                  **{k: v for k, v in where.items() if v is not None}}
        _append(store, con, tail, target, REQUESTED, detail, at)
    return {"id": detail["request"], "at": at, **detail, "state": "pending"}


def find(con: Any, request_id: str) -> tuple[str, dict[str, Any]] | None:
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
    for r in requests_of(_events(con, target)):
        if r["id"] == full:
            return target, r
    return None


def decide(store: Any, request_id: str, approve: bool, by: str, via: str, reason: str,
           **where: Any) -> dict[str, Any] | None:
    """Approve or reject a pending request, checked and written in one transaction of ``store``: returns the
    request with its ``decision``; None when there is no such request; ``Refused`` when it is not pending
    (approved, rejected or void already: ``decided``; ``expired``), when ``by`` is its requester
    (``own_request``, approving only: a requester may withdraw their own by rejecting it), or (approving)
    when its target changed meanwhile (``stale``: the request is closed ``approval void``)."""
    at = datetime.now(timezone.utc)
    with store.transaction() as tail:
        con = store.connection
        found = find(con, request_id)
        if found is None:
            return None
        target, req = found
        rid = req["id"]
        if req["state"] == "expired":
            raise Refused(f"request {rid} ({req.get('action')} of {target} by {req.get('by')}) expired at "
                          f"{req.get('expires_at')} without an approval; nothing was done: ask again if it is still "
                          f"needed", "expired")
        if req["state"] != "pending":
            d = req["decision"] or {}
            raise Refused(f"request {rid} ({req.get('action')} of {target}) is already {req['state']}"
                          + (f" by {d.get('by')}" if d.get("by") else "") + f" at {stamp(d.get('at'))}"
                          + (f" ({d.get('reason') or d.get('why')})" if d.get("reason") or d.get("why") else "")
                          + "; a decision is not changed and nothing runs twice", "decided")
        if approve and by.strip().lower() in names_of(req):
            raise Refused(f"request {rid} was made by {req.get('by')}: the requester cannot approve their own "
                          f"request; another operator (another admin API token) approves it", "own_request")
        action = str(req.get("action"))
        base = {"request": rid, "action": action, "requested_by": req.get("by")}
        if approve:
            why = _target_check(con, action, target, req.get("params") or {})
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
                pending_error = None
                detail = {**base, "by": by, "via": via, "reason": reason,
                          **{k: v for k, v in where.items() if v is not None}}
                _append(store, con, tail, target, GRANTED, detail, at)
        else:
            pending_error = None
            detail = {**base, "by": by, "via": via, "reason": reason,
                      **{k: v for k, v in where.items() if v is not None}}
            _append(store, con, tail, target, REJECTED, detail, at)
    if pending_error is not None:
        raise pending_error
    return {**req, "target": target, "state": "approved" if approve else "rejected",
            "decision": {"at": at, "event": GRANTED if approve else REJECTED, **detail}}


def listing(con: Any, *, every: bool = False, target: str | None = None, limit: int | None = 100
            ) -> list[dict[str, Any]]:
    """The requests, newest first: pending ones only unless ``every``; ``target``: of that deal/letter only."""
    sql = "SELECT DISTINCT deal_id FROM deal_events WHERE to_state = ?"
    args: list[Any] = [REQUESTED]
    if target is not None:
        sql += " AND deal_id = ?"
        args.append(target)
    now = datetime.now(timezone.utc)
    out: list[dict[str, Any]] = []
    for (tid,) in con.execute(sql, args).fetchall():
        for r in requests_of(_events(con, tid), now):
            if every or r["state"] == "pending":
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
    state = req.get("state")
    if state == "pending":
        return f"{head}: waits for a second operator until {req.get('expires_at')} (request {req.get('id')})"
    if state == "expired":
        return f"{head}: expired at {req.get('expires_at')}, not approved (request {req.get('id')})"
    if state == "void":
        return f"{head}: void at {stamp(d.get('at'))}: {d.get('why')} (request {req.get('id')})"
    verb = "approved" if state == "approved" else "rejected"
    return f"{head}: {verb} by {d.get('by')} at {stamp(d.get('at'))} ({d.get('reason')!r}) (request {req.get('id')})"


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


def where_offline(by: str | None) -> tuple[str, dict[str, Any]]:
    """(who, what bsp can tell of the operator) on the ledger file: the OS user (what bsp can tell: anyone can
    type --by), --by kept beside it as ``stated_by``, and the host."""
    import socket

    from engine.operator import check_by, os_user

    user = os_user()
    stated = check_by(by) if by is not None else None
    return user, {"host": socket.gethostname(), "os_user": user,
                  "stated_by": stated if stated is not None and stated != user else None}


def request_in_file(path: Any, audit_key: bytes | None, action: str, target: str, params: Mapping[str, Any],
                    expire: float, by: str | None) -> dict[str, Any]:
    """Record a request on the ledger file (no engine may hold it): who is the OS user running bsp."""
    from engine.ledger_store import LedgerStore

    who, where = where_offline(by)
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
