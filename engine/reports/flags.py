"""Deals of a report flagged for an operator (a call left in doubt: the money may stand at the counterpart),
in words, by the rule of ``bsp deals --flagged`` (``engine.deal_resolve.flag_state``).

Few deals are ever flagged: one query finds the period's deals with a flag event at all, and the events of
only those are read.
"""
from __future__ import annotations

from typing import Any

STATES = ("open", "resolved", "acknowledged")


def flags(con: Any, where: str, args: list) -> dict[str, tuple[str, str]]:
    """Per flagged deal of ``deals WHERE <where>``: ``(state, words)``, state one of ``STATES``."""
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'deal_events'"
                       ).fetchone()[0]:
        return {}
    ids = [i for (i,) in con.execute(
        "SELECT deal_id FROM deals WHERE deal_id IN (SELECT deal_id FROM deal_events WHERE to_state IN "
        f"('flagged', 'reversal flagged')) AND {where}", args).fetchall()]
    if not ids:
        return {}
    from engine.deal_resolve import FLAGGED_EVENTS, RESOLVED, flag_state   # 40 MB of imports: only when needed
    from engine.ledger_query import _flag_events
    out = {}
    for deal_id, events in _flag_events(con, ids, [*FLAGGED_EVENTS, RESOLVED]).items():
        state, event = flag_state(events)
        if state == "open":
            out[deal_id] = (state, "flagged, open: settle it with the counterpart, then bsp deals resolve")
        elif state == "resolved":
            outcome = ((event or {}).get("detail") or {}).get("outcome") or "resolved"
            out[deal_id] = (state, f"flagged, resolved: {outcome}")
        elif state == "acknowledged":
            out[deal_id] = (state, "flagged, reversal acknowledged by the host")
    return out


def counted(states: list[str]) -> str | None:
    """``["open", "open", "resolved"]`` -> ``"2 open, 1 resolved"``; None when there is none."""
    parts = [f"{states.count(s)} {s}" for s in STATES if s in states]
    return ", ".join(parts) or None


__all__ = ["STATES", "counted", "flags"]
