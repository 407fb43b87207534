"""End-of-day control totals against the ledger (``bsp reconcile --type totals``).

The mainframe's totals file holds, per business day, transaction code and currency, a count and an
amount.  Each code is mapped to a bsp deal type (``--codes``; without it the code is the deal type), the
rows of one day, deal type and currency are added, and compared with the ledger's committed deals of that
business day (``--tz`` / ``--cutoff``), deal type and currency: count and sum of amounts, Decimal exact.

One form row per (day, deal type, currency)::

    matched            count and amount agree (the amount within --tolerance)
    count_differs      the counts differ (the amount may too: the note says)
    amount_differs     the counts agree, the amounts do not
    only_in_ledger     committed deals the mainframe has no total for
    only_on_mainframe  a total without a committed deal (or a code the mapping does not know)

Each row names the ``bsp deals`` command line that lists the deals behind the ledger's figures.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from engine.reconcile.tolerance import Tolerance
from engine.reconcile.totals_file import Codes, TotalRow
from engine.reports.businessday import UTC_DAY, BusinessDay
from engine.reports.model import Bar, Chart, Column, Report, ReportError, Table
from engine.reports.source import open_read_only
from engine.reports.text import money

ZERO = Decimal("0.0000")
STATUSES = ("matched", "count_differs", "amount_differs", "only_in_ledger", "only_on_mainframe")

# the same deals as a statement reconciliation: committed, an amount other than 0 (an enquiry moved no money)
LEDGER_SQL = """
SELECT deal_type, upper(coalesce(currency, '')), count(*), sum(amount) FROM deals
WHERE status = 'committed' AND amount IS NOT NULL AND amount <> 0 AND received_at >= ? AND received_at < ? {party}
GROUP BY 1, 2
"""

COLUMNS = (
    Column("status", "text"),
    Column("business_day", "date", "business day"),
    Column("deal_type", "text", "deal type"),
    Column("currency", "text"),
    Column("mainframe_codes", "text", "mainframe codes"),
    Column("mainframe_count", "int", "mainframe count"),
    Column("ledger_count", "int", "ledger count"),
    Column("count_difference", "int", "count difference"),
    Column("mainframe_amount", "money", "mainframe amount", currency="currency"),
    Column("ledger_amount", "money", "ledger amount", currency="currency"),
    Column("amount_difference", "money", "amount difference", currency="currency"),
    Column("note", "text"),
    Column("deals", "text", "deals to look at"),
    Column("mainframe_rows", "text", "mainframe rows"),
)

TOTAL_COLUMNS = (
    Column("currency", "text"),
    Column("rows", "int"),
    Column("matched", "int"),
    Column("breaks", "int"),
    Column("mainframe_count", "int", "mainframe count"),
    Column("ledger_count", "int", "ledger count"),
    Column("mainframe_amount", "money", "mainframe amount", currency="currency"),
    Column("ledger_amount", "money", "ledger amount", currency="currency"),
    Column("amount_difference", "money", "amount difference", currency="currency"),
)


@dataclass
class Side:
    count: int = 0
    amount: Decimal = ZERO
    codes: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TotalsRow:
    status: str
    day: date
    deal_type: str
    currency: str
    mainframe: Side | None
    ledger: Side | None
    note: str
    deals: str

    @property
    def count_difference(self) -> int | None:
        return (self.mainframe.count - self.ledger.count) if self.mainframe and self.ledger else None

    @property
    def amount_difference(self) -> Decimal | None:
        return (self.mainframe.amount - self.ledger.amount) if self.mainframe and self.ledger else None

    def as_tuple(self) -> tuple:
        m, g = self.mainframe, self.ledger
        return (self.status, self.day, self.deal_type, self.currency,
                ", ".join(dict.fromkeys(m.codes)) if m else None, m.count if m else None, g.count if g else None,
                self.count_difference, m.amount if m else None, g.amount if g else None, self.amount_difference,
                self.note or None, self.deals or None, "; ".join(m.where) if m else None)


def ledger_totals(ledger: str | Path, day: date, clock: BusinessDay, party: str | None) -> dict[tuple[str, str], Side]:
    """(deal type, currency) -> count and amount of the ledger's committed deals of business day ``day``."""
    con = open_read_only(ledger)
    try:
        args: list[object] = list(clock.bounds(day, day)) + ([party] if party else [])
        rows = con.execute(LEDGER_SQL.format(party="AND party = ?" if party else ""), args).fetchall()
    finally:
        con.close()
    return {(t, c): Side(n, (s or ZERO) + ZERO) for t, c, n, s in rows}


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def deals_command(where: str, deal_type: str, day: date, clock: BusinessDay) -> str:
    """The ``bsp deals`` command line that lists the committed deals of this day and type."""
    start, end = clock.bounds(day, day)
    return (f"bsp deals {where} --type {shlex.quote(deal_type)} --status committed --since {_iso(start)} "
            f"--until {_iso(end)} --limit 0").replace("  ", " ")


def _amount_text(diff: Decimal, currency: str) -> str:
    return f"{'+' if diff > 0 else '-'}{money(abs(diff), currency)}"


def compare(totals: list[TotalRow], ledger: str | Path, *, codes: Codes | None = None, clock: BusinessDay = UTC_DAY,
            party: str | None = None, tolerance: Decimal | Tolerance = Decimal("0"),
            deals_where: str = "") -> tuple[list[TotalsRow], dict[str, int]]:
    """The form's rows (breaks before matched, each by day, deal type, currency) and, with ``codes``, the
    deal types of the ledger the mapping does not name (not compared) with their deal counts."""
    mainframe: dict[tuple[date, str, str], Side] = {}
    unmapped: list[TotalsRow] = []
    for r in totals:
        deal_type = codes.deal_type(r.code, r.dc) if codes is not None else r.code
        if deal_type is None:
            side = Side(r.count, abs(r.amount) + ZERO, [r.code + (f" {r.dc}" if r.dc else "")], [r.where])
            unmapped.append(TotalsRow(
                "only_on_mainframe", r.day, "", r.currency, side, None,
                f"code {r.code}{' ' + r.dc if r.dc else ''} is in no row of {codes.path.name}: add "  # type: ignore[union-attr]
                f"`{r.code},DEAL_TYPE` to --codes {codes.path}", ""))  # type: ignore[union-attr]
            continue
        side = mainframe.setdefault((r.day, deal_type, r.currency), Side())
        side.count += r.count
        side.amount += abs(r.amount)
        side.codes.append(r.code + (f" {r.dc}" if r.dc else ""))
        side.where.append(r.where)
    known = codes.deal_types() if codes is not None else None
    out: list[TotalsRow] = []
    skipped: dict[str, int] = {}
    cache: dict[date, dict[tuple[str, str], Side]] = {}

    def of_day(d: date) -> dict[tuple[str, str], Side]:
        if d not in cache:
            cache[d] = ledger_totals(ledger, d, clock, party)
        return cache[d]

    for day in sorted({d for d, _, _ in mainframe} | {r.day for r in unmapped}):
        ours = of_day(day)
        keys = {(t, c) for d, t, c in mainframe if d == day}
        for (t, c), side in ours.items():
            if known is not None and t not in known:
                skipped[t] = skipped.get(t, 0) + side.count
            else:
                keys.add((t, c))
        for t, c in sorted(keys):
            m, g = mainframe.get((day, t, c)), ours.get((t, c))
            cmd = deals_command(deals_where, t, day, clock) if g is not None else ""
            if g is None:
                status, note = "only_on_mainframe", (f"no committed {t} deal in {c} on {day}" +
                                                     _other_currencies(ours, t, c))
                for near in (day - timedelta(days=1), day + timedelta(days=1)):     # a cut-off difference?
                    n = of_day(near).get((t, c))
                    if n is not None:
                        note += (f"; the ledger has {n.count} on {near} ({money(n.amount, c)}): a deal late or early "
                                 f"for the business day? (--tz, --cutoff)")
                        cmd = deals_command(deals_where, t, near, clock)
                        break
            elif m is None:
                status, note = "only_in_ledger", (f"the mainframe has no {c} total for {t} on {day}"
                                                  + _mapped(codes, t))
            else:
                dn, da = m.count - g.count, m.amount - g.amount
                allowed = Tolerance.coerce(tolerance).of(c)
                amount_off = abs(da) > allowed
                bits = []
                if dn:
                    bits.append(f"mainframe {dn:+d} deal(s)")
                if da and amount_off:
                    bits.append(f"mainframe {_amount_text(da, c)}")
                elif da:
                    bits.append(f"difference {_amount_text(da, c)} within tolerance {allowed:f}")
                status = "count_differs" if dn else "amount_differs" if amount_off else "matched"
                note = ", ".join(bits)
            out.append(TotalsRow(status, day, t, c, m, g, note, cmd if status != "matched" else ""))
    out += unmapped
    order = {s: i for i, s in enumerate(STATUSES)}
    out.sort(key=lambda r: (r.status == "matched", order[r.status], r.day, not r.deal_type, r.deal_type, r.currency))
    return out, skipped


def _other_currencies(ours: dict[tuple[str, str], Side], deal_type: str, currency: str) -> str:
    others = sorted(c for t, c in ours if t == deal_type and c != currency)
    return f" (the ledger has {deal_type} in {', '.join(others)})" if others else ""


def _mapped(codes: Codes | None, deal_type: str) -> str:
    if codes is None:
        return ""
    mapped = sorted({codes.shown.get(k, k[0]) for k, t in codes.types.items() if t == deal_type})
    return f" (codes mapped to it: {', '.join(mapped)})" if mapped else ""


def breaks(rows: list[TotalsRow]) -> int:
    return sum(1 for r in rows if r.status != "matched")


def totals_table(rows: list[TotalsRow]) -> list[tuple]:
    acc: dict[str, list] = {}
    for r in rows:
        t = acc.setdefault(r.currency, [0, 0, 0, 0, 0, ZERO, ZERO])
        t[0] += 1
        t[1 if r.status == "matched" else 2] += 1
        if r.mainframe:
            t[3] += r.mainframe.count
            t[5] += r.mainframe.amount
        if r.ledger:
            t[4] += r.ledger.count
            t[6] += r.ledger.amount
    return [(c, *v, v[5] - v[6]) for c, v in sorted(acc.items())]


def build_totals_form(rows: list[TotalsRow], params: dict[str, str]) -> Report:
    n = breaks(rows)
    counts = {s: sum(1 for r in rows if r.status == s) for s in STATUSES}
    figures = [("breaks", f"{n:,}")] + [(s.replace("_", " "), f"{k:,}") for s, k in counts.items()]
    return Report(name="reconciliation",
                  title="End-of-day totals: " + ("fully matched" if not n else f"{n} break(s)"),
                  params=params,
                  tables=[Table("form", "Totals per day, deal type and currency", COLUMNS, [r.as_tuple() for r in rows]),
                          Table("totals", "Totals per currency", TOTAL_COLUMNS, totals_table(rows))],
                  figures=figures,
                  charts=[Chart("Rows by outcome", [Bar(s.replace("_", " "), k, f"{k:,}") for s, k in counts.items()],
                                unit="rows")])


def reconcile_totals(ledger: str | Path, against: str | Path, *, route: str | Path | None = None,
                     name: str | None = None, columns: dict[str, str] | None = None,
                     codes: str | Path | None = None, on: date | None = None, clock: BusinessDay = UTC_DAY,
                     party: str | None = None, tolerance: Decimal | Tolerance | str = Decimal("0"),
                     deals_where: str | None = None) -> tuple[Report, list[TotalsRow]]:
    """Read the totals file (and the mapping), compare with the ledger; ``on``: only that business day."""
    from engine.reconcile.ledger_side import check_party
    from engine.reconcile.totals_file import load_codes, load_totals
    tolerance = Tolerance.coerce(tolerance)       # one amount, minor:N or per currency (tolerance.py)
    mapping = load_codes(codes) if codes is not None else None
    rows = load_totals(against, route=route, name=name, columns=columns)
    if not rows:
        raise ReportError(f"{against}: no totals row; expected one per business day, code and currency")
    held = sorted({r.day for r in rows})
    if on is not None:
        rows = [r for r in rows if r.day == on]
        if not rows:
            shown = ", ".join(map(str, held[:10])) + (" ..." if len(held) > 10 else "")
            raise ReportError(f"--date {on}: {against} has no total of that day; it holds {shown}; give one of "
                              f"them with --date, or leave --date out")
    if not Path(ledger).is_file():
        open_read_only(ledger)      # its message: no ledger file here
    if party:
        check_party(ledger, party)
    where = f"--ledger {shlex.quote(str(ledger))}" if deals_where is None else deals_where
    out, skipped = compare(rows, ledger, codes=mapping, clock=clock, party=party, tolerance=tolerance,
                           deals_where=where)
    days = sorted({r.day for r in rows})
    params = {"ledger": str(ledger),
              "totals": f"{against}" + (f" ({name} in {route})" if name else " (csv)"),
              "codes": str(codes) if codes else "none: the code is the deal type",
              "days": str(days[0]) if len(days) == 1 else f"{days[0]} .. {days[-1]}",
              "business day": clock.describe(), "tolerance": str(tolerance)}
    if party:
        params["party"] = party
    if skipped:
        params["not compared"] = ", ".join(f"{t} ({k:,} deal(s))" for t, k in sorted(skipped.items())) + \
            ": deal types no code of the mapping names"
    return build_totals_form(out, params), out


__all__ = ["STATUSES", "TotalsRow", "breaks", "compare", "reconcile_totals"]
