"""``counterparty-statement``: one party's deals in the period, with running totals per currency.

Every deal of the party is listed (``date``: its business day; times on the zone's clock when
``--tz`` is given) (committed, rejected, failed, duplicate) in arrival
order; only committed deals move the running total of their currency, which
starts from the opening balance (committed deals of that party before the
period).  The totals table gives opening, movement and closing per currency.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from sys import intern

import duckdb

from engine.reports.businessday import UTC_DAY, BusinessDay
from engine.reports.flags import flags
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



def columns(clock: BusinessDay) -> tuple[Column, ...]:
    """The statement's columns: ``date`` is the business day, ``received_at`` on the zone's clock."""
    if clock.is_utc_midnight:
        return COLUMNS
    return tuple(Column(c.name, c.kind, f"received ({clock.title()})") if c.name == "received_at" else
                 Column(c.name, c.kind, "business day") if c.name == "date" else c for c in COLUMNS)


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
FROM deals WHERE party = ? AND received_at >= ? AND received_at < ?
ORDER BY received_at, deal_id
"""


FETCH_ROWS = 10_000


def _rows(result: duckdb.DuckDBPyConnection, opening: dict[str, Decimal],
          flags: dict[str, str], clock: BusinessDay = UTC_DAY) -> tuple[list[tuple], dict[str, list]]:
    """The statement's rows, fetched FETCH_ROWS at a time (never the whole result twice in memory), and
    per currency [committed, rejected/failed, movement, duplicates]."""
    rows: list[tuple] = []
    moves: dict[str, list] = {}
    utc = clock.is_utc_midnight
    while batch := result.fetchmany(FETCH_ROWS):
        for d, at, ref, typ, status, code, amount, cur_, running, deal_id in batch:
            cur_, typ, status = intern(cur_), intern(typ), intern(status)   # one string per value, not per row
            if not utc:             # the business day and the zone's clock, offset shown
                d, at = clock.day_of(at), clock.local(at)
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
        flagged = flags(con, "party = ? AND received_at >= ? AND received_at < ?", [party, *when.args])
        words = {k: text for k, (_, text) in flagged.items()}
        rows, moves = _rows(con.execute(SQL_DEALS, [party, *when.args]), opening, words, when.clock)
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
    open_flags = sum(1 for state, _ in flagged.values() if state == "open")
    figures = [("deals", f"{len(rows):,}")] + ([("flagged, open", f"{open_flags:,}")] if open_flags else []) + [(f"closing {c}", money(close, c)) for c, *_, close in totals if c]
    charts = [Chart("Movement per currency", [Bar(c, mv, f"{money(mv, c)} {c}") for c, _, _, _, _, mv, _ in totals if c],
                    note="each currency in its own unit")]
    return Report(name="counterparty-statement", title=f"Statement for {party}",
                  params={"ledger": str(ledger), "party": party, **when.params()},
                  tables=[Table("statement", "Deals", columns(when.clock), rows),
                          Table("totals", "Opening, movement and closing per currency", TOTAL_COLUMNS, totals)],
                  figures=figures, charts=charts)


__all__ = ["build", "COLUMNS", "TOTAL_COLUMNS"]
