"""``rejections``: the deals that did not commit, by reason, response code and route.

Main table: one row per status, route, business line, response code, reason
and currency, with the count, the amount (exact), first / last time seen (on the zone's clock, offset
shown, with ``--tz``) and ``flag``: how many of the group's deals are flagged for an operator, open or
resolved (a failed deal whose call was left in doubt: its money may stand at the counterpart).  A
``flagged`` table lists those deals one by one.
Then two short tables: counts by response code and by reason, each with its
share of all deals in the period.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.reports.businessday import BusinessDay
from engine.reports.flags import counted, flags
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
    Column("flag", "text", "flagged"),
)

FLAGGED_COLUMNS = (
    Column("received_at", "timestamp", "received (UTC)"),
    Column("deal_id", "text", "deal id"),
    Column("reference", "text"),
    Column("status", "text"),
    Column("route", "text"),
    Column("amount", "money", currency="currency"),
    Column("currency", "text"),
    Column("flag", "text"),
)


def _zoned(cols: tuple[Column, ...], clock: BusinessDay) -> tuple[Column, ...]:
    """Time columns titled with the zone their values are shown in."""
    if clock.is_utc_midnight:
        return cols
    return tuple(Column(c.name, c.kind, (c.title or c.name).replace("(UTC)", f"({clock.title()})"), c.currency)
                 if c.kind == "timestamp" else c for c in cols)

BY_COLUMNS = {
    "code": (Column("status", "text"), Column("response_code", "text", "code"),
             Column("deals", "int"), Column("share", "rate", "share of all deals")),
    "reason": (Column("status", "text"), Column("reason", "text"),
               Column("deals", "int"), Column("share", "rate", "share of all deals")),
}

_PERIOD = "received_at >= ? AND received_at < ?"
_WHERE = f"{_PERIOD} AND status IN ('rejected', 'failed')"

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

# the main table's group of each flagged deal, to count its flags there
SQL_FLAGGED = f"""
SELECT deal_id, status, route, deal_type, coalesce(response_code, ''), {REASON}, coalesce(currency, ''),
       received_at, reference, amount
FROM deals WHERE {_WHERE} AND deal_id IN (SELECT unnest(?::VARCHAR[]))
ORDER BY received_at, deal_id
"""

SQL_BY = f"""
SELECT status, {{col}}, count(*)::BIGINT FROM deals WHERE {_WHERE}
GROUP BY ALL ORDER BY 3 DESC, 1, 2
"""


def build(ledger: str | Path, when: Period) -> Report:
    con = open_read_only(ledger)
    try:
        args = when.args
        total = con.execute(f"SELECT count(*) FROM deals WHERE {_PERIOD}", args).fetchone()[0]
        main = con.execute(SQL_MAIN, args).fetchall()
        flagged = flags(con, _WHERE, args)
        listed = con.execute(SQL_FLAGGED, args + [sorted(flagged)]).fetchall() if flagged else []
        by = {key: con.execute(SQL_BY.format(col=col), args).fetchall()
              for key, col in (("code", "coalesce(response_code, '')"), ("reason", REASON))}
    finally:
        con.close()

    def share(n: int) -> Decimal | None:
        return (Decimal(n) / Decimal(total)).quantize(SHARE_PLACES) if total else None

    clock = when.clock
    per_group: dict[tuple, list[str]] = {}
    for deal_id, *key, _, _, _ in listed:
        per_group.setdefault(tuple(key), []).append(flagged[deal_id][0])
    rows = [(*r[:8], clock.local(r[8]), clock.local(r[9]), counted(per_group.get(tuple(r[:6]), [])))
            for r in main]
    not_ok = sum(r[6] for r in main)
    tables = [Table("rejections", "Rejected and failed deals", _zoned(COLUMNS, clock), rows)]
    for key, rows in by.items():
        tables.append(Table(f"by_{key}", f"By {'response code' if key == 'code' else key}", BY_COLUMNS[key],
                            [(s, v, n, share(n)) for s, v, n in rows]))
    if listed:      # last, so the tables before keep their places (by_code, by_reason)
        tables.append(Table("flagged", "Flagged for an operator", _zoned(FLAGGED_COLUMNS, clock),
                            [(clock.local(at), deal_id, ref, status, route, amount, cur, flagged[deal_id][1])
                             for deal_id, status, route, _, _, _, cur, at, ref, amount in listed]))
    figures = [("deals in period", f"{total:,}"), ("not committed", f"{not_ok:,}"),
               ("rejected or failed", rate(share(not_ok)) or "n/a")]
    open_flags = sum(1 for state, _ in flagged.values() if state == "open")
    if open_flags:
        figures.append(("flagged, open", f"{open_flags:,} (bsp deals --flagged)"))
    charts = [
        Chart("Not committed, by reason", [Bar(f"{s}: {v or '(none)'}", n, f"{n:,}") for s, v, n in by["reason"]],
              unit="deals"),
        Chart("Not committed, by response code",
              [Bar(f"{s}: {v or '(none)'}", n, f"{n:,}") for s, v, n in by["code"]], unit="deals"),
    ]
    return Report(name="rejections", title="Rejections and failures",
                  params={"ledger": str(ledger), **when.params()},
                  tables=tables, figures=figures, charts=charts)


__all__ = ["build", "COLUMNS", "FLAGGED_COLUMNS"]
