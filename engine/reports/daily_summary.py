"""``daily-summary``: per business day (UTC unless ``--tz`` / ``--cutoff``), business line (deal_type) and currency.

Columns: deals, committed / rejected / failed counts, duplicates (repeats of a deal key, answered
with their original's reply: not deals of their own, so left out of ``deals``, the amounts and the
success rate), the committed amount and the amount of all deals (exact sums of ``DECIMAL(24,4)``),
the success rate (committed / deals, exact ratio to 6 places) and latency p50 / p95 / p99 of
``duration_ms`` (DuckDB ``quantile_cont``).  A second table holds the totals
per currency over the whole period.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.reports.model import Bar, Chart, Column, Report, Table
from engine.reports.source import Period, open_read_only
from engine.reports.text import money, rate

RATE_PLACES = Decimal("0.000001")

COLUMNS = (
    Column("day", "date"),
    Column("deal_type", "text", "business line"),
    Column("currency", "text"),
    Column("deals", "int"),
    Column("committed", "int"),
    Column("rejected", "int"),
    Column("failed", "int"),
    Column("duplicates", "int"),
    Column("amount_committed", "money", "committed amount", currency="currency"),
    Column("amount_all", "money", "amount, all deals", currency="currency"),
    Column("success_rate", "rate", "success rate"),
    Column("p50_ms", "ms", "p50 ms"),
    Column("p95_ms", "ms", "p95 ms"),
    Column("p99_ms", "ms", "p99 ms"),
)

TOTAL_COLUMNS = (
    Column("currency", "text"),
    Column("deals", "int"),
    Column("committed", "int"),
    Column("rejected", "int"),
    Column("failed", "int"),
    Column("duplicates", "int"),
    Column("amount_committed", "money", "committed amount", currency="currency"),
    Column("success_rate", "rate", "success rate"),
)

# a duplicate's row carries its original's amount: counted apart, never as a deal or as money again
_COUNTS = """
    count(*) FILTER (WHERE status <> 'duplicate')::BIGINT,
    count(*) FILTER (WHERE status = 'committed')::BIGINT,
    count(*) FILTER (WHERE status = 'rejected')::BIGINT,
    count(*) FILTER (WHERE status = 'failed')::BIGINT,
    count(*) FILTER (WHERE status = 'duplicate')::BIGINT"""

_PERIOD = "received_at >= ? AND received_at < ?"

# {day}: the UTC date as stored, or the business day an ASOF join with the days' starts (computed in Python,
# once per day) gives each row: the period's filter stays a plain range on received_at (zone maps)
SQL_DAYS = """
SELECT {day} AS day, deal_type, coalesce(currency, '') AS currency,{counts},
    coalesce(sum(amount) FILTER (WHERE status = 'committed'), 0)::DECIMAL(38,4),
    coalesce(sum(amount) FILTER (WHERE status <> 'duplicate'), 0)::DECIMAL(38,4),
    quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95), quantile_cont(duration_ms, 0.99)
FROM {source}
GROUP BY ALL ORDER BY day, deal_type, currency
""".replace("{counts}", _COUNTS)

SOURCE_UTC = f"deals WHERE {_PERIOD}"
SOURCE_ZONED = (f"(SELECT * FROM deals WHERE {_PERIOD}) AS deals ASOF JOIN "
                "(SELECT unnest(?::DATE[]) AS day, unnest(?::TIMESTAMPTZ[]) AS day_start) AS days "
                "ON deals.received_at >= days.day_start")

SQL_TOTALS = f"""
SELECT coalesce(currency, '') AS currency,{_COUNTS},
    coalesce(sum(amount) FILTER (WHERE status = 'committed'), 0)::DECIMAL(38,4)
FROM deals WHERE received_at >= ? AND received_at < ?
GROUP BY ALL ORDER BY currency
"""

SQL_LINES = """
SELECT deal_type, count(*) FILTER (WHERE status <> 'duplicate')::BIGINT, quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95),
       quantile_cont(duration_ms, 0.99)
FROM deals WHERE received_at >= ? AND received_at < ? GROUP BY ALL ORDER BY deal_type
"""


# deals of the period with a flag event at all (few; the exact open rule is read only when there are some)
SQL_FLAGGED = """
SELECT count(*) FROM deals WHERE received_at >= ? AND received_at < ?
  AND deal_id IN (SELECT deal_id FROM deal_events WHERE to_state IN ('flagged', 'reversal flagged'))
"""


def open_flags(con: Any, args: list) -> int:
    """Deals of the period flagged for an operator and not settled yet (the rule of ``bsp deals --flagged``):
    counted as failed or committed above, but their money may still stand at a counterpart."""
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'deal_events'"
                       ).fetchone()[0] or not con.execute(SQL_FLAGGED, args).fetchone()[0]:
        return 0
    from engine.ledger_query import _OPEN_FLAG, _OPEN_PARAMS      # 40 MB of imports: only when needed
    return con.execute(f"SELECT count(*) FROM deals WHERE {_PERIOD} AND {_OPEN_FLAG}",
                       args + _OPEN_PARAMS).fetchone()[0]


def success_rate(committed: int, deals: int) -> Decimal | None:
    return (Decimal(committed) / Decimal(deals)).quantize(RATE_PLACES) if deals else None


def _days(con: Any, when: Period) -> list[tuple]:
    """The per-day rows: grouped by the UTC date, or by the business day of ``when.clock``."""
    if when.clock.is_utc_midnight:
        return con.execute(SQL_DAYS.format(day="CAST(received_at AS DATE)", source=SOURCE_UTC), when.args).fetchall()
    lo, hi = con.execute(f"SELECT min(received_at), max(received_at) FROM deals WHERE {_PERIOD}", when.args).fetchone()
    if lo is None:
        return []
    clock = when.clock
    days = clock.days(max(when.first, clock.day_of(lo)), min(when.last, clock.day_of(hi)))
    return con.execute(SQL_DAYS.format(day="days.day", source=SOURCE_ZONED),
                       when.args + [[d for d, _ in days], [s for _, s in days]]).fetchall()


def build(ledger: str | Path, when: Period) -> Report:
    con = open_read_only(ledger)
    try:
        args = when.args
        days = _days(con, when)
        totals = con.execute(SQL_TOTALS, args).fetchall()
        lines = con.execute(SQL_LINES, args).fetchall()
        flagged = open_flags(con, args)
    finally:
        con.close()
    rows = [(d, t, c, n, ok, rej, fail, dup, amt, amt_all, success_rate(ok, n), p50, p95, p99)
            for d, t, c, n, ok, rej, fail, dup, amt, amt_all, p50, p95, p99 in days]
    total_rows = [(c, n, ok, rej, fail, dup, amt, success_rate(ok, n))
                  for c, n, ok, rej, fail, dup, amt in totals]
    n_all = sum(r[1] for r in total_rows)
    ok_all = sum(r[2] for r in total_rows)
    figures = [("deals", f"{n_all:,}"), ("committed", f"{ok_all:,}"),
               ("success rate", rate(success_rate(ok_all, n_all)) or "n/a")]
    dup_all = sum(r[5] for r in total_rows)
    if dup_all:
        figures.append(("duplicates", f"{dup_all:,}"))
    if flagged:
        figures.append(("flagged, open", f"{flagged:,} (bsp deals --flagged)"))
    figures += [(f"committed {c}", money(amt, c)) for c, _, _, _, _, _, amt, _ in total_rows if c]
    charts = [
        Chart("Deals per business line", [Bar(t, n, f"{n:,}") for t, n, *_ in lines], unit="deals"),
        Chart("Committed amount per currency",
              [Bar(c, amt, f"{money(amt, c)} {c}") for c, _, _, _, _, _, amt, _ in total_rows if c],
              note="each currency in its own unit; bars are not converted"),
        Chart("Latency per business line (ms)",
              [Bar(f"{t} {name}", v, f"{v:,.1f} ms") for t, _, p50, p95, p99 in lines
               for name, v in (("p50", p50), ("p95", p95), ("p99", p99))], unit="ms"),
    ]
    return Report(
        name="daily-summary", title="Daily summary",
        params={"ledger": str(ledger), **when.params()},
        tables=[Table("summary", "Per day, business line and currency", COLUMNS, rows),
                Table("totals", "Totals per currency", TOTAL_COLUMNS, total_rows)],
        figures=figures, charts=charts)


__all__ = ["build", "COLUMNS", "TOTAL_COLUMNS", "success_rate"]
