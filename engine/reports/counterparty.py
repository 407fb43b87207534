"""``counterparty-statement``: one party's deals in the period, with running totals per currency.

Every deal of the party is listed (committed, rejected, failed, duplicate) in arrival
order; only committed deals move the running total of their currency, which
starts from the opening balance (committed deals of that party before the
period).  The totals table gives opening, movement and closing per currency.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from sys import intern

import duckdb

from engine.reports.model import Bar, Chart, Column, Report, ReportError, Table
from engine.reports.source import Period, open_read_only
from engine.reports.text import money

COLUMNS = (
    Column("date", "date"),
    Column("received_at", "timestamp", "received (UTC)"),
    Column("reference", "text"),
    Column("deal_type", "text", "business line"),
    Column("status", "text"),
    Column("response_code", "text", "code"),
    Column("amount", "money", currency="currency"),
    Column("currency", "text"),
    Column("running_total", "money", "running total (committed)", currency="currency"),
    Column("deal_id", "text", "deal id"),
    Column("flag", "text"),
)

TOTAL_COLUMNS = (
    Column("currency", "text"),
    Column("opening", "money", currency="currency"),
    Column("committed_deals", "int", "committed"),
    Column("other_deals", "int", "rejected/failed"),
    Column("duplicates", "int"),
    Column("movement", "money", currency="currency"),
    Column("closing", "money", currency="currency"),
)

ZERO = Decimal("0.0000")

SQL_OPENING = """
SELECT coalesce(currency, ''), coalesce(sum(amount), 0)::DECIMAL(38,4) FROM deals
WHERE party = ? AND status = 'committed' AND received_at < ? GROUP BY ALL
"""

SQL_DEALS = """
SELECT CAST(received_at AS DATE), received_at, reference, deal_type, status, response_code, amount,
       coalesce(currency, ''),
       (sum(CASE WHEN status = 'committed' THEN coalesce(amount, 0) ELSE 0 END)
            OVER (PARTITION BY coalesce(currency, '') ORDER BY received_at, deal_id
                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))::DECIMAL(38,4),
       deal_id
FROM deals WHERE party = ? AND received_at >= ? AND received_at < (?::TIMESTAMPTZ + INTERVAL 1 DAY)
ORDER BY received_at, deal_id
"""


# the party's deals of the period flagged for an operator (a call left in doubt ...): few, read apart
SQL_FLAGGED = """
SELECT deal_id FROM deals
WHERE deal_id IN (SELECT deal_id FROM deal_events WHERE to_state IN ('flagged', 'reversal flagged'))
  AND party = ? AND received_at >= ? AND received_at < (?::TIMESTAMPTZ + INTERVAL 1 DAY)
"""

FETCH_ROWS = 10_000


def _flags(con: duckdb.DuckDBPyConnection, args: list) -> dict[str, str]:
    """Per flagged deal of the statement, its flag in words (the rule of ``bsp deals --flagged``): a failed
    deal may still stand at the counterpart, which the statement's reader must know."""
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'deal_events'"
                       ).fetchone()[0]:
        return {}
    ids = [i for (i,) in con.execute(SQL_FLAGGED, args).fetchall()]
    if not ids:
        return {}
    from engine.deal_resolve import FLAGGED_EVENTS, RESOLVED, flag_state   # 40 MB of imports: only when needed
    from engine.ledger_query import _flag_events
    out = {}
    for deal_id, events in _flag_events(con, ids, [*FLAGGED_EVENTS, RESOLVED]).items():
        state, event = flag_state(events)
        if state == "open":
            out[deal_id] = "flagged, open: settle it with the counterpart, then bsp deals resolve"
        elif state == "resolved":
            out[deal_id] = f"flagged, resolved: {((event or {}).get('detail') or {}).get('outcome') or 'resolved'}"
        elif state == "acknowledged":
            out[deal_id] = "flagged, reversal acknowledged by the host"
    return out


def _rows(result: duckdb.DuckDBPyConnection, opening: dict[str, Decimal],
          flags: dict[str, str]) -> tuple[list[tuple], dict[str, list]]:
    """The statement's rows, fetched FETCH_ROWS at a time (never the whole result twice in memory), and
    per currency [committed, rejected/failed, movement, duplicates]."""
    rows: list[tuple] = []
    moves: dict[str, list] = {}
    while batch := result.fetchmany(FETCH_ROWS):
        for d, at, ref, typ, status, code, amount, cur_, running, deal_id in batch:
            cur_, typ, status = intern(cur_), intern(typ), intern(status)   # one string per value, not per row
            rows.append((d, at, ref, typ, status, code and intern(code), amount, cur_,
                         opening.get(cur_, ZERO) + running, deal_id, flags.get(deal_id)))
            m = moves.setdefault(cur_, [0, 0, ZERO, 0])
            if status == "committed":
                m[0] += 1
                m[2] += amount or ZERO
            elif status == "duplicate":     # a repeat answered with its original's reply: not a deal of its own
                m[3] += 1
            else:
                m[1] += 1
    return rows, moves


def build(ledger: str | Path, when: Period, party: str) -> Report:
    if not party:
        raise ReportError("counterparty-statement needs the party: --party NAME (the deals' `party` column)")
    con = open_read_only(ledger)
    try:
        opening = dict(con.execute(SQL_OPENING, [party, when.start]).fetchall())
        flags = _flags(con, [party, when.start, when.last_start])
        rows, moves = _rows(con.execute(SQL_DEALS, [party, when.start, when.last_start]), opening, flags)
        known = None
        if not rows and not opening:
            known = [r[0] for r in con.execute(
                "SELECT DISTINCT party FROM deals WHERE party IS NOT NULL ORDER BY 1 LIMIT 20").fetchall()]
    finally:
        con.close()
    if known is not None and party not in known:
        hint = f" (parties in this ledger: {', '.join(known)})" if known else " (no deal in it names a party)"
        raise ReportError(f"--party {party!r}: no deal of this party in {ledger}{hint}")
    totals = []
    for cur in sorted(set(opening) | set(moves)):
        ok, other, move, dup = moves.get(cur, [0, 0, ZERO, 0])
        op = opening.get(cur, ZERO)
        totals.append((cur, op, ok, other, dup, move, op + move))
    open_flags = sum(1 for f in flags.values() if ", open" in f)
    figures = [("deals", f"{len(rows):,}")] + ([("flagged, open", f"{open_flags:,}")] if open_flags else []) + [(f"closing {c}", money(close, c)) for c, *_, close in totals if c]
    charts = [Chart("Movement per currency", [Bar(c, mv, f"{money(mv, c)} {c}") for c, _, _, _, _, mv, _ in totals if c],
                    note="each currency in its own unit")]
    return Report(name="counterparty-statement", title=f"Statement for {party}",
                  params={"ledger": str(ledger), "party": party, "period (UTC days)": str(when)},
                  tables=[Table("statement", "Deals", COLUMNS, rows),
                          Table("totals", "Opening, movement and closing per currency", TOTAL_COLUMNS, totals)],
                  figures=figures, charts=charts)


__all__ = ["build", "COLUMNS", "TOTAL_COLUMNS"]
