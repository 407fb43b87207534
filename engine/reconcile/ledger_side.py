"""The ledger's side: committed deals with an amount other than 0, read from ``deals`` (read-only)."""
from __future__ import annotations

from datetime import date, timedelta, timezone
from pathlib import Path
from sys import intern
from typing import Callable

from engine.reconcile.lines import LedgerDeal
from engine.reports.businessday import UTC_DAY, BusinessDay
from engine.reports.model import ReportError
from engine.reports.source import open_read_only

# an amount of 0 (an enquiry answered "committed") moved no money: no statement books it
_COMMITTED = ("status = 'committed' AND amount IS NOT NULL AND amount <> 0 AND received_at >= ? AND received_at < ? "
              "{party}")

SQL = f"""
SELECT deal_id, reference, amount, coalesce(currency, ''), received_at, party FROM deals
WHERE {_COMMITTED} {{claimed}}
ORDER BY received_at, deal_id
"""

# the references of the extra days' deals, to be tested against the statement (one string per deal,
# fetched FETCH_ROWS at a time: memory does not grow with the ledger)
REFS_SQL = f"""
SELECT DISTINCT reference FROM deals
WHERE {_COMMITTED} AND reference IS NOT NULL AND NOT (received_at >= ? AND received_at < ?)
"""

# how many rows the window holds: the total the progress is shown against
COUNT_SQL = f"SELECT count(*) FROM deals WHERE {_COMMITTED}"

# the reconciled days' deals, and those of the extra days whose reference the statement can claim
CLAIMED = "AND ((received_at >= ? AND received_at < ?) OR reference IN (SELECT unnest(?::VARCHAR[])))"

FETCH_ROWS = 10_000


def committed_deals(ledger: str | Path, first: date, last: date, *, slack_days: int = 0,
                    party: str | None = None,
                    claims: Callable[[str | None], bool] | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    clock: BusinessDay = UTC_DAY) -> list[LedgerDeal]:
    """Deals received on business days ``first``..``last`` of ``clock`` (in scope; default UTC days), plus
    ``slack_days`` either side (candidates only).  The days' UTC bounds are computed once: SQL compares
    ``received_at`` with them as stored.

    With ``claims`` (``narrow.claimable(lines)``), a deal of the extra days is read only when
    ``claims(its reference)``: the others cannot pair with any line, so the result of the matcher is
    the same, and memory grows with the statement and its days, not with the ledger around them.

    ``progress(done, total)``, when given, is called after each batch of rows read: ``total`` is the
    committed deals of the window, ``done`` the rows read so far (the references of the extra days, then
    the deals kept), never past ``total`` before the end."""
    con = open_read_only(ledger)
    try:
        window: list[object] = list(clock.bounds(first - timedelta(days=slack_days),
                                                 last + timedelta(days=slack_days)))
        window += [party] if party else []
        scope: list[object] = list(clock.bounds(first, last))
        utc = clock.is_utc_midnight
        by_party = "AND party = ?" if party else ""
        claimed: list[object] = []
        total = done = 0
        if progress is not None:
            (total,) = con.execute(COUNT_SQL.format(party=by_party), window).fetchone() or (0,)

        def step(rows: int) -> None:
            nonlocal done
            done += rows
            if progress is not None:
                progress(min(done, max(total - 1, 0)), total)

        if claims is not None:
            wanted: list[str] = []
            cur = con.execute(REFS_SQL.format(party=by_party), window + scope)
            while batch := cur.fetchmany(FETCH_ROWS):
                wanted += [ref for (ref,) in batch if claims(ref)]
                step(len(batch))
            claimed = scope + [wanted]
        cur = con.execute(SQL.format(party=by_party, claimed=CLAIMED if claims is not None else ""),
                          window + claimed)
        out = []
        while batch := cur.fetchmany(FETCH_ROWS):
            for deal_id, ref, amount, ccy, at, pty in batch:
                at = at.astimezone(timezone.utc)
                day = at.date() if utc else clock.day_of(at)
                # one string object per currency and party, not one per deal
                out.append(LedgerDeal(deal_id, ref, amount, intern(ccy.upper()), at, pty and intern(pty),
                                      in_scope=first <= day <= last, business_day=None if utc else day))
            step(len(batch))
        if progress is not None:
            progress(total, total)
    finally:
        con.close()
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
