"""Manual resolution of a deal flagged for an operator: ``bsp deals resolve`` and ``POST /deals/{id}/resolve``.

A deal is flagged for an operator by an event ``flagged`` or ``reversal flagged`` (``engine.ledger_query.
FLAGGED_EVENTS``): something of it may stand at a counterpart and only a person can settle it.  Once the
operator has settled it with the counterpart, the resolution is recorded as one more event on the deal,
``resolved``, appended to the audit chain (the deal's row and its earlier events are chained and never
changed), its detail::

    {"outcome": "undone", "note": "debit reversed by hand, ticket OPS-1234", "by": "ops-alice",
     "via": "ledger file" | "admin API", "host": "ops-box" (offline), "peer": "10.1.2.3" (admin API),
     "client_cert": "cn=ops-alice" (admin API over mutual TLS), "token": "ops-alice" (admin API),
     "stated_by": "alice" (admin API: the body's by, when not the token's name),
     "os_user": "bsp" (offline: the OS user, when --by names another)}

``by`` is who did it, as the recorder can tell: over the admin API the name of the admin token the request
came with (``token`` says the same); a ``by`` the request's body gives that differs is kept beside it as
``stated_by`` (what the caller said, not checked: a token shared by several people may say which of them);
on the ledger file (``bsp deals resolve`` without --live) ``--by NAME``, else the OS user running ``bsp``
(engine/operator.py), with ``os_user`` beside a --by that differs from it.  The engine also records what it
can tell itself: the host (offline), the client's address and, over mutual TLS, its certificate's subject.

A flag event is *open* while it is newer than the deal's newest ``resolved`` event, except a ``reversal
flagged`` closed since by the host: a later ``reversed NAME`` of its call with an approving code (the
acknowledgement the store-and-forward task appends; read, nothing is written for it); the deal's flag is open
while one of its flag events is (a reversal flagged again after a resolution opens it again; an ordinary
``flagged`` closes only by a resolution).  ``bsp deals --flagged`` lists the open ones; ``--all`` the closed
ones too.  Only an open flag can be resolved: a deal never flagged, already resolved, or already settled by
the host's acknowledgement is refused (``Refused``).

Every outcome settles the deal other than by an ISO 8583 reversal the engine still stores and forwards, so a
resolution cancels the deal's queued reversals (engine.txn.safcancel: live at once, offline at the engine's
next start), and says what became of each (``reversals``: ``{call, channel, attempts, state}``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

# the events that flag a deal for an operator: ``flagged`` (with the deal's row: engine.txn.flagging,
# engine.txn.recovery) and ``reversal flagged`` (appended later by the store-and-forward task, engine.txn.saf)
FLAGGED_EVENTS = ("flagged", "reversal flagged")
REVERSAL_FLAGGED = "reversal flagged"
RESOLVED = "resolved"
# ``reversed NAME``: the host acknowledged call NAME's reversal (engine.txn.saf); with an approving code after a
# ``reversal flagged`` of that call it closes that flag, as a resolution would (docs/transactions.md)
ACKED = "reversed "
REVERSAL_ACKNOWLEDGED = "reversal acknowledged"

# the outcomes an operator records, and what each means (docs/transactions.md "Resolving a flagged deal")
OUTCOMES: dict[str, str] = {
    "applied": "the counterpart did it and it stands; the bank accepts it (anything booked by hand to match)",
    "not-applied": "the counterpart confirms it never did it: nothing stands, nothing to undo",
    "undone": "it had been done and was reversed or refunded by hand",
    "written-off": "it cannot be settled with the counterpart; the difference is written off outside bsp",
}
# the outcomes of a deal held by a screening (engine/deal_hold.py: a `screen` step's on_hit = "hold"), for a
# compliance officer's decision
HOLD_OUTCOMES: dict[str, str] = {
    "release": "a deal held by a screening is a false positive: its request runs on through the route, once",
    "reject": "a deal held by a screening is a true match: it stays refused, its request is never run",
}
# the outcomes after which nothing of the deal stands at the counterpart: the amount its ``limit`` totals
# counted (events ``counted``, engine/totals.py) is given back, by one event ``released`` per total beside
# ``resolved``; after ``applied`` or ``written-off`` the money went: it stays counted
RELEASING = ("not-applied", "undone")
RELEASED = "released"
# what a deal that failed had reserved in its `limit` totals and gave back (engine/runtime/counting.py): one
# event per total on a failed deal that did not count, so that a resolution ``applied`` or ``written-off`` of a
# flag raised later (a reversal flagged by the store-and-forward task) can count it (``recounts``)
NOT_COUNTED = "not counted"
MAX_NOTE = 2000          # characters of a note
MAX_BY = 200


class Refused(ValueError):
    """The deal cannot be resolved: ``why`` is ``not_flagged``, ``already_resolved`` or ``already_settled`` (its
    reversal flag closed by the host's acknowledgement)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


def check_input(outcome: Any, note: Any, by: Any) -> tuple[str, str, str]:
    """The outcome, note and name, stripped; ``ValueError`` naming the field and what is expected."""
    if not isinstance(outcome, str) or outcome.strip() not in OUTCOMES and outcome.strip() not in HOLD_OUTCOMES:
        raise ValueError(f"outcome: expected one of {', '.join(OUTCOMES)} (a flagged deal) or "
                         f"{', '.join(HOLD_OUTCOMES)} (a deal held by a screening), got {outcome!r}")
    if not isinstance(note, str) or not note.strip():
        raise ValueError("note: say how the deal was settled, with whom, and any reference of the counterpart; "
                         "for a held deal, why it is released or rejected (a non-empty text)")
    if len(note) > MAX_NOTE:
        raise ValueError(f"note: at most {MAX_NOTE} characters, got {len(note)}; keep the details in your "
                         f"ticket and give its reference")
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_BY or not by.isprintable():
        raise ValueError(f"by: expected who settled the deal (a name of 1 to {MAX_BY} printable characters), "
                         f"got {by!r}")
    return outcome.strip(), note.strip(), by.strip()


def flag_state(events: Sequence[Mapping[str, Any]]) -> tuple[str, Mapping[str, Any] | None]:
    """``("open", None)``, ``("resolved", the resolved event)``, ``("acknowledged", the ``reversed NAME`` event)``
    or ``("none", None)`` from a deal's events (in order, as ``get_deal`` gives them).

    The flags newer than the newest ``resolved`` are open, except a ``reversal flagged`` closed by a later
    acknowledged reversal of its call (``closing_ack``): the host settled it.  None open: ``acknowledged``
    when such a flag is left after the newest ``resolved`` (the newest closing event), else ``resolved``.
    The same rule in SQL: ``engine.ledger_query._OPEN_FLAG``."""
    last_resolved = -1
    for i, e in enumerate(events):
        if e.get("to_state") == RESOLVED:
            last_resolved = i
    seen = False
    acks: list[tuple[int, Mapping[str, Any]]] = []
    for i, e in enumerate(events):
        if e.get("to_state") not in FLAGGED_EVENTS:
            continue
        seen = True
        if i < last_resolved:
            continue
        ack = closing_ack(events, i)
        if ack is None:
            return "open", None
        acks.append(ack)
    if not seen:
        return "none", None
    if acks:
        return "acknowledged", max(acks, key=lambda a: a[0])[1]
    return "resolved", events[last_resolved]


def call_of(flag: Mapping[str, Any]) -> str | None:
    """The call a ``reversal flagged`` event is about (its detail's ``not_undone[0]``, engine.txn.saf), else None."""
    if flag.get("to_state") != REVERSAL_FLAGGED:
        return None
    d = flag.get("detail")
    names = d.get("not_undone") if isinstance(d, Mapping) else None
    return str(names[0]) if isinstance(names, list) and names else None


def acks_after(events: Sequence[Mapping[str, Any]], i: int) -> list[tuple[int, Mapping[str, Any]]]:
    """The ``reversed NAME`` events after ``events[i]`` (a ``reversal flagged`` of call NAME), in order."""
    call = call_of(events[i])
    if call is None:
        return []
    return [(j, events[j]) for j in range(i + 1, len(events)) if events[j].get("to_state") == ACKED + call]


def approved(ack: Mapping[str, Any]) -> bool:
    """A ``reversed NAME`` event whose DE 39 is an approval: its detail's ``approved``, kept by the
    store-and-forward task with the 0430's ``response_code``; an event written before bsp kept ``approved``
    has the code alone, judged by the same rule (``engine.txn.approval.approves``).  The same rule in SQL:
    ``engine.ledger_query._APPROVED_SQL``."""
    from engine.txn.approval import approves

    d = ack.get("detail")
    if not isinstance(d, Mapping):
        return False
    said = d.get("approved")
    return said is True if said is not None else approves(d.get("response_code"))


def closing_ack(events: Sequence[Mapping[str, Any]], i: int) -> tuple[int, Mapping[str, Any]] | None:
    """The event that closes the flag ``events[i]``: for a ``reversal flagged``, the first later acknowledged
    reversal of its call with an approving code (``reversed NAME``, ``approved`` true); None otherwise (an
    ordinary ``flagged`` is closed only by a resolution)."""
    return next(((j, a) for j, a in acks_after(events, i) if approved(a)), None)


def ack_text(ack: Mapping[str, Any]) -> str:
    """``reversal acknowledged at T (code X)`` of a ``reversed NAME`` event (T its ``at``, UTC, to the second)."""
    return f"reversal acknowledged at {stamp(ack.get('at'))} (code {code_of(ack)})"


def code_of(ack: Mapping[str, Any]) -> str:
    """The 0430's DE 39 of a ``reversed NAME`` event, ``?`` when it has none."""
    d = ack.get("detail") if isinstance(ack.get("detail"), Mapping) else {}
    code = d.get("response_code")
    return "?" if code is None else str(code)


def stamp(at: Any) -> str:
    """A time as the notes give it: ``2026-11-26T21:18:27Z`` (the SQL twin: ``engine.ledger_query._STAMP_SQL``)."""
    if isinstance(at, datetime):
        return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(at)


def resolution_of(deal: Mapping[str, Any]) -> dict[str, Any] | None:
    """The deal's current resolution (``at`` and the event's detail), None when its flag is open or it has none.
    A flag closed by an acknowledged reversal: ``{"at", "outcome": "reversal acknowledged", "by": "host",
    "via": "store and forward", "call", "response_code", "mti", "note"}``."""
    state, ev = flag_state(deal.get("events") or ())
    if ev is None:
        return None
    detail = ev.get("detail") if isinstance(ev.get("detail"), dict) else {}
    if state == "acknowledged":
        call = str(ev.get("to_state"))[len(ACKED):]
        return {"at": ev.get("at"), "outcome": REVERSAL_ACKNOWLEDGED, "by": "host", "via": "store and forward",
                "call": call, "response_code": code_of(ev), "mti": detail.get("mti"),
                "note": f"the reversal of call {call} was acknowledged after the flag (event `{ev.get('to_state')}`): "
                        f"the host reversed the original; nothing is left to settle"}
    if state != "resolved":
        return None
    return {"at": ev.get("at"), **detail}


def refusal(deal: Mapping[str, Any], hint_list: str) -> None:
    """``Refused`` unless the deal's flag is open; ``hint_list``: the command that lists open flags."""
    state, ev = flag_state(deal.get("events") or ())
    did = deal["deal_id"]
    if state == "none":
        raise Refused(f"deal {did} is not flagged for an operator (it has no event {' or '.join(FLAGGED_EVENTS)}): "
                      f"there is nothing to resolve; the deals to settle are listed by `{hint_list}`",
                      "not_flagged")
    if state == "acknowledged" and ev is not None:
        raise Refused(f"deal {did} is already settled: the reversal was acknowledged at {stamp(ev.get('at'))} "
                      f"(event `{ev.get('to_state')}`, code {code_of(ev)}) after its flag: the host reversed the "
                      f"original, nothing is left to resolve; the deals to settle are listed by `{hint_list}`",
                      "already_settled")
    if state == "resolved" and ev is not None:
        d = ev.get("detail") if isinstance(ev.get("detail"), dict) else {}
        at = ev.get("at")
        when = at.isoformat() if isinstance(at, datetime) else str(at)
        raise Refused(f"deal {did} is already resolved: {d.get('outcome')} by {d.get('by')} at {when} "
                      f"({d.get('note')!r}); a resolution is not changed: the ledger keeps it as recorded",
                      "already_resolved")


def _counting(events: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the deal counts in its ``limit`` totals now: its newest ``counted`` event is newer than its
    newest ``released`` one (a deal counted, given back by a resolution, then counted again by another)."""
    from engine.totals import COUNTED

    now = False
    for e in events:
        if e.get("to_state") == COUNTED:
            now = True
        elif e.get("to_state") == RELEASED:
            now = False
    return now


def _holds(events: Sequence[Mapping[str, Any]], outcome: str) -> list[dict[str, Any]]:
    """What the deal counts (or counted) in its totals, once per total: the details of its first ``counted``
    events (those before any ``released``), else of its ``not counted`` ones (it failed and gave them back)."""
    from engine.totals import COUNTED

    def group(state: str) -> list[dict[str, Any]]:
        out = []
        for e in events:
            if e.get("to_state") == RELEASED and out:
                break
            d = e.get("detail")
            if e.get("to_state") == state and isinstance(d, Mapping) and d.get("total") and d.get("amount") is not None:
                out.append({"total": d["total"], "key": d.get("key"), "currency": d.get("currency") or "",
                            "day": d.get("day") or "", "amount": str(d["amount"]), "outcome": outcome})
        return out
    return group(COUNTED) or group(NOT_COUNTED)


def releases(deal: Mapping[str, Any], outcome: str) -> list[dict[str, Any]]:
    """The details of the ``released`` events a resolution with ``outcome`` appends to ``deal`` (its events in
    order, as ``get_deal`` gives them): one per ``counted`` event (total, key, currency, day, amount, and the
    outcome) when the outcome is one of ``RELEASING`` and the deal counts now; none otherwise, nor when the deal
    was given back already (a flag opened again after a resolution, by a reversal flagged later)."""
    events = deal.get("events") or ()
    if outcome not in RELEASING or not _counting(events):
        return []
    return _holds(events, outcome)


def recounts(deal: Mapping[str, Any], outcome: str) -> list[dict[str, Any]]:
    """The details of the ``counted`` events a resolution ``applied`` or ``written-off`` appends to ``deal``
    when it does not count now: it failed and gave its reservation back (events ``not counted``), then had its
    reversal flagged; or an earlier resolution gave it back before a reversal flagged later opened it again.
    The money went: it counts again, in the bucket (and, for a daily total, the day) it counted in first."""
    events = deal.get("events") or ()
    if outcome in RELEASING or _counting(events):
        return []
    return _holds(events, outcome)


def released_lines(released: Sequence[Mapping[str, Any]], live: bool,
                   counted: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """What a resolution gave back to the ``limit`` totals, or counted in them again, one line each, for the
    operator."""
    when = "the running engine counts it no more" if live else "the engine counts it no more from its next start"
    again = "the running engine counts it now" if live else "the engine counts it from its next start"
    out = []
    for r in released:
        day = f", day {r['day']}" if r.get("day") else ""
        out.append(f"gives back {r.get('amount')} {r.get('currency') or ''}".rstrip() +
                   f" to total {r.get('total')} (key {r.get('key')}{day}): {when}")
    for r in counted:
        day = f", day {r['day']}" if r.get("day") else ""
        out.append(f"counts {r.get('amount')} {r.get('currency') or ''}".rstrip() +
                   f" in total {r.get('total')} again (key {r.get('key')}{day}): {again}")
    return out


def event_detail(outcome: str, note: str, by: str, via: str, **where: Any) -> dict[str, Any]:
    """The ``resolved`` event's detail; ``where``: what the recorder can tell of the operator (host, peer,
    client_cert), None values dropped."""
    return {"outcome": outcome, "note": note, "by": by, "via": via,
            **{k: v for k, v in where.items() if v is not None}}


def queued_offline(due: Mapping[str, Mapping[str, int]], deal_id: str) -> list[dict[str, Any]]:
    """The deal's ISO 8583 reversals still queued (``LedgerStore.reversals_due``: not acknowledged, not
    cancelled), as ``resolve`` reports them offline: the engine, stopped, cancels them when it next starts
    (engine.txn.safcancel)."""
    return [{"call": call, "channel": None, "attempts": n, "state": "cancelled at the next start"}
            for call, n in sorted((due.get(deal_id) or {}).items())]


def reversal_lines(reversals: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """What the resolution did to the deal's queued ISO 8583 reversals (every outcome cancels them:
    engine.txn.safcancel), as ``(notes, warnings)``: a reversal cancelled is a note; one the host may have
    taken meanwhile (an attempt in flight, or acknowledged already) a warning, since it undoes the original."""
    notes: list[str] = []
    warnings: list[str] = []
    for r in reversals:
        call, n, state = r.get("call"), r.get("attempts"), r.get("state")
        if state == "cancelled":
            notes.append(f"the queued reversal of call {call} ({n} attempt(s)) is cancelled: the engine does not "
                         f"send it again (event `reversal cancelled` on the deal)")
        elif state == "cancelled at the next start":
            notes.append(f"the reversal of call {call} is still queued in the engine's transaction log ({n} "
                         f"attempt(s) on the deal): it is not sent again; the engine cancels it when it next starts, "
                         f"before sending anything (event `reversal cancelled` on the deal)")
        elif state == "in flight":
            warnings.append(f"an attempt of the reversal of call {call} was at the host when the deal was resolved: "
                            f"if the host acknowledges it, the host has reversed the original (event `reversed "
                            f"{call}` on the deal): check your settlement with the host; if not, it is not sent "
                            f"again (event `reversal cancelled`)")
        joined = r.get("joined_by") or []
        if joined and state in ("cancelled", "cancelled at the next start", "in flight"):
            when = {"cancelled": "are flagged for an operator now",
                    "cancelled at the next start": "are flagged for an operator when the engine next starts",
                    "in flight": "are flagged for an operator if that attempt is not acknowledged"}[state]
            warnings.append(f"deal(s) {', '.join(joined)} joined the reversal of call {call} (another sender's "
                            f"reversal of the same original, answered as accepted for forwarding and not queued "
                            f"again): cancelled with it, they {when} (event `reversal flagged`); settle them with "
                            f"the host too")
        if state == "acknowledged":
            warnings.append(f"the reversal of call {call} was acknowledged by the host before the resolution was "
                            f"recorded: the host has reversed the original (event `reversed {call}` on the deal); "
                            f"check your settlement with the host")
    return notes, warnings


def resolve_in_file(path: Path, deal_id: str, outcome: str, note: str, by: str, audit_key: bytes | None,
                    *, host: str | None = None, hint_list: str = "bsp deals --flagged",
                    os_user: str | None = None) -> dict[str, Any] | None:
    """Record the resolution in the ledger file (no engine may hold it): ``{deal_id, at, ..., reversals,
    warnings}`` (``reversals``: those still queued, cancelled at the engine's next start), or None when the
    ledger has no such deal.

    Raises ``AmbiguousId`` (a prefix of several deals), ``ValueError`` (a short id or bad input),
    ``Refused``, ``KeyMismatch`` (the chain is keyed and the audit key is missing or another:
    ``engine.ledger_store.check_audit_key``) and ``LedgerError`` (a locked or foreign file)."""
    from engine.deal import to_json
    from engine.ledger_query import get_deal
    from engine.ledger_store import LedgerStore, require_bsp_ledger

    outcome, note, by = check_input(outcome, note, by)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ledger file here")
    store = LedgerStore.open(path, audit_key)     # refuses a keyed chain without its key (KeyMismatch)
    try:
        con = store.connection              # the one connection: reads see what this process holds locked
        require_bsp_ledger(con, path)
        deal = get_deal(path, deal_id, con=con)
        if deal is None:
            return None
        refusal(deal, hint_list)
        full = deal["deal_id"]
        at = datetime.now(timezone.utc)
        detail = event_detail(outcome, note, by, "ledger file", host=host, os_user=os_user)
        from engine.totals import COUNTED

        given = releases(deal, outcome)     # read back by the engine's next start (LedgerStore.counted_totals)
        again = recounts(deal, outcome)
        events = [*({"at": at, "to_state": RELEASED, "detail": to_json(g)} for g in given),
                  *({"at": at, "to_state": COUNTED, "detail": to_json(g)} for g in again),
                  {"at": at, "to_state": RESOLVED, "detail": to_json(detail)}]      # resolved: the deal's newest
        (done,) = store.append_stories([(full, [], events, None)])
        if isinstance(done, BaseException):
            raise done
        reversals = queued_offline(store.reversals_due([full]), full)
        for r in reversals:
            r["joined_by"] = [j["deal_id"] for j in store.joined_to(full, str(r["call"]))]
    finally:
        store.close()
    return {"deal_id": full, "at": at, **detail, "reversals": reversals, "warnings": reversal_lines(reversals)[1],
            "released": given, "counted": again}
