"""Why a statement line found no deal: what the ledger holds under its reference, in the form's note.

The matcher only sees committed deals of the reconciled days (and of ``--party``).  A line whose
reference is nowhere among them is "only in statement: no deal with this reference"; but the ledger
may well hold that reference: a deal that **failed** or was **rejected** (the counterpart booked it
all the same: a failed deal flagged for an operator is exactly such a case, and its resolution says
what the operator settled), a committed deal of **another party**, or one received **outside the
window** the reconciliation reads (a booking weeks late).  The accountant needs that to clear the
break, so the note says it::

    no committed deal of these days with this reference; the ledger has: deal 01a2... (2026-11-26,
    failed, flagged for an operator, open: settle it, then bsp deals resolve)

Only the note changes; the line stays a break.  Read-only, one query over ``deals`` (and one over
``deal_events`` for the deals found), only when such lines exist.
"""
from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

from engine.deal_resolve import FLAGGED_EVENTS, RESOLVED, flag_state
from engine.ledger_query import _flag_events
from engine.reconcile.lines import StatementLine, norm_ref, usable
from engine.reconcile.match import FormRow
from engine.reports.businessday import UTC_DAY, BusinessDay
from engine.reports.source import open_read_only

NO_DEAL = "no deal with this reference"
SHOWN = 3                       # deals named per line; more are counted

_DEALS_SQL = """
SELECT lower(trim(reference)), deal_id, received_at, status, party FROM deals
WHERE lower(trim(reference)) IN (SELECT unnest(?::VARCHAR[])) AND status <> 'duplicate'
ORDER BY received_at, deal_id
"""


def _flags(con: Any, deal_ids: list[str]) -> dict[str, str]:
    """Per flagged deal, its flag in words, by the rule of ``bsp deals --flagged`` (``flag_state``)."""
    if not deal_ids or not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'deal_events'").fetchone()[0]:
        return {}
    out = {}
    for deal_id, events in _flag_events(con, deal_ids, [*FLAGGED_EVENTS, RESOLVED]).items():
        state, event = flag_state(events)
        if state == "open":
            out[deal_id] = "flagged for an operator, open: settle it, then bsp deals resolve"
        elif state == "resolved":
            outcome = ((event or {}).get("detail") or {}).get("outcome") or "resolved"
            out[deal_id] = f"flagged, resolved by an operator: {outcome}"
        elif state == "acknowledged":
            out[deal_id] = "flagged, its reversal acknowledged by the host"
    return out


_UNDONE_SQL = """
SELECT deal_id, to_state FROM deal_events
WHERE deal_id IN (SELECT unnest(?::VARCHAR[]))
  AND (starts_with(to_state, 'compensated ') OR starts_with(to_state, 'compensation of ')
       OR starts_with(to_state, 'reversed '))
ORDER BY deal_id, seq
"""


def _undone(con: Any, deal_ids: list[str]) -> dict[str, str]:
    """Per deal not committed, what became of the calls it had made: ``debit undone (compensated)``, ``the
    compensation of debit failed``, ``post reversed``.  A counterpart that booked such a call and its undoing
    shows two lines, both of this deal: the pair is the deal's failure, not money missing."""
    if not deal_ids or not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'deal_events'").fetchone()[0]:
        return {}
    said: dict[str, list[str]] = {}
    for deal_id, state in con.execute(_UNDONE_SQL, [deal_ids]).fetchall():
        if state.startswith("compensated "):
            bit = f"{state.removeprefix('compensated ')} undone (compensated)"
        elif state.startswith("compensation of "):
            bit = f"the compensation of {state.removeprefix('compensation of ').removesuffix(' failed')} failed"
        else:
            bit = f"{state.removeprefix('reversed ')} reversed"
        said.setdefault(deal_id, []).append(bit)
    return {k: ", ".join(dict.fromkeys(v)) for k, v in said.items()}


def explain(ledger: str | Path, rows: list[FormRow], party: str | None,
            clock: BusinessDay = UTC_DAY) -> list[FormRow]:
    """``rows`` with the note of each "no deal with this reference" line saying what the ledger holds (each
    deal with its business day on ``clock``)."""
    lost = {i: r for i, r in enumerate(rows) if r.status == "only_in_statement" and r.note == NO_DEAL}
    if not lost:
        return rows
    keys = {norm_ref(ref) for r in lost.values() for ref in r.line.refs if usable(ref)}  # type: ignore[union-attr]
    con = open_read_only(ledger)
    try:
        found: dict[str, list[tuple]] = {}
        for ref, deal_id, at, status, pty in con.execute(_DEALS_SQL, [sorted(keys)]).fetchall():
            found.setdefault(norm_ref(ref), []).append((deal_id, clock.day_of(at), status, pty))
        flags = _flags(con, [d[0] for deals in found.values() for d in deals])
        undone = _undone(con, [d[0] for deals in found.values() for d in deals if d[2] != "committed"])
    finally:
        con.close()
    out = list(rows)
    for i, r in lost.items():
        deals = [d for ref in dict.fromkeys(norm_ref(x) for x in r.line.refs if usable(x))  # type: ignore[union-attr]
                 for d in found.get(ref, [])]
        if not deals:
            continue
        said = []
        for deal_id, day, status, pty in deals[:SHOWN]:
            bits = [str(day), status]
            if party and pty != party:
                bits.append(f"party {pty}" if pty else "no party")
            if status == "committed" and not (party and pty != party):
                bits.append("received outside the days read")
            if deal_id in undone:
                bits.append(undone[deal_id])
            if deal_id in flags:
                bits.append(flags[deal_id])
            said.append(f"deal {deal_id} ({', '.join(bits)})")
        more = f" and {len(deals) - SHOWN} more" if len(deals) > SHOWN else ""
        out[i] = dataclasses.replace(r, note=f"no committed deal of these days with this reference; the ledger "
                                             f"has: {'; '.join(said)}{more}")
    return out




def booked_elsewhere(rows: list[FormRow], others: list[StatementLine], on: date, days: int) -> list[FormRow]:
    """``rows`` with the note of each "not on the statement" deal saying where the statement books it, when a
    line left out by ``--date on`` has its reference and currency and is booked within ``days`` of the deal's
    day (its business day, ``--tz`` / ``--cutoff``): a deal of 23:59 booked the next morning is a timing difference, cleared by that day's run."""
    if not others:
        return rows
    by_ref: dict[str, list[StatementLine]] = {}
    for ln in others:
        for ref in dict.fromkeys(norm_ref(x) for x in ln.refs if usable(x)):
            by_ref.setdefault(ref, []).append(ln)
    out = list(rows)
    for i, r in enumerate(rows):
        d = r.deal
        if r.status != "only_in_ledger" or d is None or not usable(d.reference):
            continue
        near = [ln for ln in by_ref.get(norm_ref(d.reference), [])
                if ln.currency == d.currency and any(abs((x - d.day).days) <= days for x in ln.days())]
        if near:
            ln = near[0]
            booked = ln.day or min(ln.days())
            out[i] = dataclasses.replace(r, note=f"not on the statement's lines of {on}; booked {booked} "
                                                 f"({ln.where}), outside --date {on}: a timing difference, "
                                                 f"reconciled with --date {booked}")
    return out


__all__ = ["booked_elsewhere", "explain"]
