"""``operator-actions``: who did what to which deal, and when, from the ledger alone (for the auditor).

Every operator action is a chained ``deal_events`` row on the id it is about (the deal's, or the dead
letter's, which is its deal's id), sealed in the audit chain (``bsp audit verify``):

=========================== ====================================================================
event (``to_state``)        the action
=========================== ====================================================================
``resolved``                a flagged deal settled (``bsp deals resolve``): outcome, note
``hold released`` /         a compliance officer's decision on a deal a screening held
``hold rejected``
``revealed``                classified fields shown in clear (``--reveal``): the paths, never the values
``dead_letter``             a dead letter's status changed: a retry claimed it (``retrying``), the
                            retry's outcome, a purge (its message deleted for good)
``approval requested`` ...  four eyes: asked, granted, rejected, void (engine/four_eyes.py)
``four eyes policy``        the dual-control policy an engine started with, when it changed
=========================== ====================================================================

Main table ``actions``: one row per such event whose time falls in the period (the event's ``at``, not the
deal's arrival), oldest first, with who (``by``: the admin token's name, or ``--by`` / the OS user on the
ledger file; for a retry, the name its outcome records), how (``via``), what the operator claimed beside
(``stated_by``), where from (host, OS user, token, peer), the deal it is about (type, route, reference,
amount: NULL for a letter without a deal row, or a policy event) and its chain seq.  Second table
``by_operator``: per operator and action, how many and first / last time.  Reads ``deal_events`` and
``deals`` only; nothing is decrypted (a reveal names the fields shown, never their values).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import orjson

from engine.deal_hold import HOLD_REJECTED, HOLD_RELEASED
from engine.deal_resolve import RESOLVED
from engine.four_eyes import GRANTED, POLICY, REJECTED, REQUESTED, VOID
from engine.ledger_store import LETTER_STATE
from engine.reports.businessday import BusinessDay
from engine.reveal_log import REVEALED
from engine.reports.model import Bar, Chart, Column, Report, Table
from engine.reports.source import Period, open_read_only

# to_state -> the action's name in the report (a dead letter's status event is named by its status below); the
# event names are those their writers use
EVENTS: dict[str, str] = {
    RESOLVED: "resolve",
    HOLD_RELEASED: "release a held deal",
    HOLD_REJECTED: "reject a held deal",
    REVEALED: "reveal",
    LETTER_STATE: "dead letter",
    REQUESTED: "four eyes: request",
    GRANTED: "four eyes: approve",
    REJECTED: "four eyes: reject",
    VOID: "four eyes: void",
    POLICY: "four eyes policy",
}
LETTER_ACTIONS = {"retrying": "retry (started)", "retried": "retry", "new": "retry (not done)",
                  "purged": "purge"}

COLUMNS = (
    Column("at", "timestamp", "at (UTC)"),
    Column("action", "text"),
    Column("by", "text"),
    Column("via", "text"),
    Column("stated_by", "text", "stated by"),
    Column("where", "text", "from"),
    Column("target", "text", "deal / letter id"),
    Column("deal_type", "text", "business line"),
    Column("route", "text"),
    Column("reference", "text"),
    Column("amount", "money", currency="currency"),
    Column("currency", "text"),
    Column("what", "text"),
    Column("chain_seq", "int", "audit seq"),
)
BY_COLUMNS = (
    Column("by", "text"),
    Column("action", "text"),
    Column("actions", "int"),
    Column("first_at", "timestamp", "first (UTC)"),
    Column("last_at", "timestamp", "last (UTC)"),
)

SQL = """
SELECT e."at", e.to_state, CAST(e.detail AS VARCHAR), e.deal_id, d.deal_type, d.route, d.reference, d.amount,
       d.currency, e.chain_seq
FROM deal_events e LEFT JOIN deals d ON d.deal_id = e.deal_id
WHERE e.to_state IN (SELECT unnest(?::VARCHAR[])) AND e."at" >= ? AND e."at" < ?
ORDER BY e."at", e.chain_seq
"""

# a retry's outcome names who asked, last (after the deal's reason): "... (bsp dead retry, by 'alice')",
# "... (admin API, token 'ops')", its claim "in progress: bsp dead retry by 'alice' (pid ...)"
_WHO = re.compile(r"\b(?:by|token) (['\"])(.*?)\1")
NOBODY = "(not recorded)"      # by_operator's name for the actions that record nobody (engine-made, or older)
_WHERE_KEYS = ("host", "os_user", "token", "peer", "client_cert", "live")


def _detail(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        d = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"detail": text}
    return d if isinstance(d, dict) else {"detail": d}


def _letter(d: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(action, by, via, what) of a dead letter's status event."""
    status = str(d.get("status") or "")
    outcome = str(d.get("outcome") or "")
    by = str(d.get("by") or "")
    via = str(d.get("via") or "")
    if not by:
        found = _WHO.findall(outcome)
        by = found[-1][1] if found else ""
    if not via:
        via = ("admin API" if "admin API" in outcome else "bsp dead retry" if "bsp dead retry" in outcome else "")
    what = f"status {status}" + (f": {outcome}" if outcome else "")
    return LETTER_ACTIONS.get(status, f"dead letter {status}"), by, via, what


def _what(state: str, d: Mapping[str, Any]) -> str:
    """The action's own words: an outcome and note, the fields revealed, a decision's reason ..."""
    if state == REVEALED:
        return f"{d.get('what') or 'deal'}: " + ", ".join(str(f) for f in d.get("fields") or ())
    if state == POLICY:
        actions = ", ".join(d.get("actions") or ()) or "none (dual control off)"
        return f"actions {actions}" + (f"; from {d['source']}" if d.get("source") else "")
    if state.startswith("approval "):
        parts = [f"{d.get('action') or ''} (request {d.get('request') or '?'})"]
        if d.get("requested_by"):
            parts.append(f"asked by {d['requested_by']}")
        for k in ("reason", "why"):
            if d.get(k):
                parts.append(str(d[k]))
        return "; ".join(parts)
    parts = [f"outcome {d['outcome']}"] if d.get("outcome") else []
    if d.get("note"):
        parts.append(str(d["note"]))
    if d.get("deal"):
        parts.append(f"new deal {d['deal']}")
    return "; ".join(parts)


def row_of(state: str, detail: str | None) -> tuple[str, str, str, str, str, str]:
    """(action, by, via, stated_by, where, what) of one operator event."""
    d = _detail(detail)
    if state == LETTER_STATE:
        action, by, via, what = _letter(d)
    else:
        action, by, via, what = EVENTS.get(state, state), str(d.get("by") or ""), str(d.get("via") or ""), \
            _what(state, d)
    where = ", ".join(f"{k} {d[k]}" for k in _WHERE_KEYS if d.get(k) not in (None, ""))
    return action, by, via, str(d.get("stated_by") or ""), where, what


def _zoned(cols: tuple[Column, ...], clock: BusinessDay) -> tuple[Column, ...]:
    if clock.is_utc_midnight:
        return cols
    return tuple(Column(c.name, c.kind, (c.title or c.name).replace("(UTC)", f"({clock.title()})"), c.currency)
                 if c.kind == "timestamp" else c for c in cols)


def build(ledger: str | Path, when: Period) -> Report:
    con = open_read_only(ledger)
    try:
        found = con.execute(SQL, [list(EVENTS), *when.args]).fetchall()
    finally:
        con.close()
    clock = when.clock
    rows = []
    per: dict[tuple[str, str], list[Any]] = {}
    for at, state, detail, target, dtype, route, ref, amount, cur, seq in found:
        action, by, via, stated, where, what = row_of(state, detail)
        rows.append((clock.local(at), action, by, via, stated, where, target, dtype, route, ref, amount, cur,
                     what, seq))
        agg = per.setdefault((by, action), [0, at, at])
        agg[0] += 1
        agg[2] = at
    by_rows = [(by or NOBODY, action, n, clock.local(first), clock.local(last))
               for (by, action), (n, first, last) in sorted(per.items(), key=lambda kv: (kv[0][0], kv[0][1]))]
    operators = sorted({by for by, _ in per if by})
    figures = [("operator actions", f"{len(rows):,}"), ("operators", f"{len(operators):,}")]
    reveals = sum(1 for r in rows if r[1] == "reveal")
    if reveals:
        figures.append(("reveals", f"{reveals:,}"))
    unnamed = sum(1 for r in rows if not r[2])
    if unnamed:
        figures.append(("no operator recorded", f"{unnamed:,} (engine-made, or written before it was recorded)"))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    charts = [Chart("Operator actions, by action", [Bar(a, n, f"{n:,}") for a, n in sorted(counts.items())],
                    unit="actions")] if counts else []
    return Report(name="operator-actions", title="Operator actions",
                  params={"ledger": str(ledger), **when.params()},
                  tables=[Table("actions", "Operator actions", _zoned(COLUMNS, clock), rows),
                          Table("by_operator", "By operator", _zoned(BY_COLUMNS, clock), by_rows)],
                  figures=figures, charts=charts)


__all__ = ["BY_COLUMNS", "COLUMNS", "EVENTS", "NOBODY", "build", "row_of"]
