"""``rejections``: the deals that did not commit, by reason, response code and route.

Main table: one row per status, route, business line, response code, reason
and currency, with the count, the amount (exact) and first / last time seen.
Then two short tables: counts by response code and by reason, each with its
share of all deals in the period.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.reports.model import Bar, Chart, Column, Report, Table
from engine.reports.source import Period, open_read_only
from engine.reports.text import rate

SHARE_PLACES = Decimal("0.000001")

COLUMNS = (
    Column("status", "text"),
    Column("route", "text"),
    Column("deal_type", "text", "business line"),
    Column("response_code", "text", "code"),
    Column("reason", "text"),
    Column("currency", "text"),
    Column("deals", "int"),
    Column("amount", "money", currency="currency"),
    Column("first_at", "timestamp", "first (UTC)"),
    Column("last_at", "timestamp", "last (UTC)"),
)

BY_COLUMNS = {
    "code": (Column("status", "text"), Column("response_code", "text", "code"),
             Column("deals", "int"), Column("share", "rate", "share of all deals")),
    "reason": (Column("status", "text"), Column("reason", "text"),
               Column("deals", "int"), Column("share", "rate", "share of all deals")),
}

_WHERE = "received_at >= ? AND received_at < (?::TIMESTAMPTZ + INTERVAL 1 DAY) AND status IN ('rejected', 'failed')"

# a reason names route places, "(at /srv/bsp/routes/bill.route:52:9)": reports keep the file's name only, so
# that the same reason groups alike whichever folder the routes were installed in
REASON = r"regexp_replace(coalesce(reason, ''), '(?:/[^\s()/]+)+/([^\s()/]+:\d+:\d+)', '\1', 'g')"

# a deal rejected before its route read an amount has none (NULL): its amount cell stays empty, not 0.00
SQL_MAIN = f"""
SELECT status, route, deal_type, coalesce(response_code, ''), {REASON}, coalesce(currency, ''),
       count(*)::BIGINT, sum(amount)::DECIMAL(38,4), min(received_at), max(received_at)
FROM deals WHERE {_WHERE}
GROUP BY ALL ORDER BY 7 DESC, status, route, deal_type, 4, 5, 6
"""

SQL_BY = f"""
SELECT status, {{col}}, count(*)::BIGINT FROM deals WHERE {_WHERE}
GROUP BY ALL ORDER BY 3 DESC, 1, 2
"""


def build(ledger: str | Path, when: Period) -> Report:
    con = open_read_only(ledger)
    try:
        args = [when.start, when.last_start]
        total = con.execute("SELECT count(*) FROM deals WHERE received_at >= ? "
                            "AND received_at < (?::TIMESTAMPTZ + INTERVAL 1 DAY)",
                            args).fetchone()[0]
        main = con.execute(SQL_MAIN, args).fetchall()
        by = {key: con.execute(SQL_BY.format(col=col), args).fetchall()
              for key, col in (("code", "coalesce(response_code, '')"), ("reason", REASON))}
    finally:
        con.close()

    def share(n: int) -> Decimal | None:
        return (Decimal(n) / Decimal(total)).quantize(SHARE_PLACES) if total else None

    not_ok = sum(r[6] for r in main)
    tables = [Table("rejections", "Rejected and failed deals", COLUMNS, [tuple(r) for r in main])]
    for key, rows in by.items():
        tables.append(Table(f"by_{key}", f"By {'response code' if key == 'code' else key}", BY_COLUMNS[key],
                            [(s, v, n, share(n)) for s, v, n in rows]))
    figures = [("deals in period", f"{total:,}"), ("not committed", f"{not_ok:,}"),
               ("rejected or failed", rate(share(not_ok)) or "n/a")]
    charts = [
        Chart("Not committed, by reason", [Bar(f"{s}: {v or '(none)'}", n, f"{n:,}") for s, v, n in by["reason"]],
              unit="deals"),
        Chart("Not committed, by response code",
              [Bar(f"{s}: {v or '(none)'}", n, f"{n:,}") for s, v, n in by["code"]], unit="deals"),
    ]
    return Report(name="rejections", title="Rejections and failures",
                  params={"ledger": str(ledger), "period (UTC days)": str(when)},
                  tables=tables, figures=figures, charts=charts)


__all__ = ["build", "COLUMNS"]
