"""The ledger's side: committed deals with an amount, read from ``deals`` (read-only)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from engine.reconcile.lines import LedgerDeal
from engine.reports.model import ReportError
from engine.reports.source import open_read_only

SQL = """
SELECT deal_id, reference, amount, coalesce(currency, ''), received_at, party FROM deals
WHERE status = 'committed' AND amount IS NOT NULL AND received_at >= ? AND received_at < ? {party}
ORDER BY received_at, deal_id
"""


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=timezone.utc)


def committed_deals(ledger: str | Path, first: date, last: date, *, slack_days: int = 0,
                    party: str | None = None) -> list[LedgerDeal]:
    """Deals received on UTC days ``first``..``last`` (in scope), plus ``slack_days`` either side (candidates only)."""
    con = open_read_only(ledger)
    try:
        args: list[object] = [_midnight(first - timedelta(days=slack_days)),
                              _midnight(last + timedelta(days=slack_days + 1))]
        if party:
            args.append(party)
        rows = con.execute(SQL.format(party="AND party = ?" if party else ""), args).fetchall()
    finally:
        con.close()
    out = []
    for deal_id, ref, amount, cur, at, pty in rows:
        at = at.astimezone(timezone.utc)
        out.append(LedgerDeal(deal_id, ref, amount, cur.upper(), at, pty, in_scope=first <= at.date() <= last))
    return out


def check_party(ledger: str | Path, party: str) -> None:
    """``--party P`` names a party some deal of the ledger has; else a ``ReportError`` listing the parties."""
    con = open_read_only(ledger)
    try:
        if con.execute("SELECT 1 FROM deals WHERE party = ? LIMIT 1", [party]).fetchone():
            return
        known = [r[0] for r in con.execute(
            "SELECT DISTINCT party FROM deals WHERE party IS NOT NULL ORDER BY 1 LIMIT 21").fetchall()]
    finally:
        con.close()
    shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
    hint = f"parties in this ledger: {shown}" if known else "no deal in it names a party"
    raise ReportError(f"--party {party!r}: no deal of this party in {ledger} ({hint}); "
                      f"give one of them with --party, or leave --party out")


__all__ = ["check_party", "committed_deals"]
