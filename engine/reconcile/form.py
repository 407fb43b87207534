"""The reconciliation form as a ``Report`` (so it exports like every report) and its totals."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from engine.reconcile.match import STATUSES, FormRow, breaks
from engine.reports.model import Bar, Chart, Column, Report, Table
from engine.reports.text import money

ZERO = Decimal("0.0000")        # the ledger's scale: every total has at least its 4 places

COLUMNS = (
    Column("status", "text"),
    Column("currency", "text"),
    Column("ledger_reference", "text", "ledger reference"),
    Column("ledger_date", "date", "deal date"),
    Column("ledger_amount", "money", "ledger amount", currency="currency"),
    Column("statement_reference", "text", "statement reference"),
    Column("statement_date", "date", "booked"),
    Column("statement_amount", "money", "statement amount", currency="currency"),
    Column("difference", "money", currency="currency"),
    Column("matched_by", "text", "matched by"),
    Column("note", "text"),
    Column("deal_id", "text", "deal id"),
    Column("statement_line", "text", "statement line"),
)

TOTAL_COLUMNS = (
    Column("currency", "text"),
    Column("matched", "int"),
    Column("matched_amount", "money", "matched amount", currency="currency"),
    Column("only_in_ledger", "int", "only in ledger"),
    Column("only_in_ledger_amount", "money", "only in ledger, amount", currency="currency"),
    Column("only_in_statement", "int", "only in statement"),
    Column("only_in_statement_amount", "money", "only in statement, amount", currency="currency"),
    Column("mismatches", "int", "amount/date mismatches"),
    Column("mismatch_difference", "money", "mismatch difference", currency="currency"),
    Column("ledger_total", "money", "ledger total", currency="currency"),
    Column("statement_total", "money", "statement total", currency="currency"),
)


def row_tuple(r: FormRow) -> tuple:
    d, s = r.deal, r.line
    return (r.status, r.currency,
            d.reference if d else None, d.day if d else None, d.amount if d else None,
            (s.reference or None) if s else None, s.day if s else None, s.amount if s else None,
            r.difference, r.matched_by or None, r.note or None,
            d.deal_id if d else None, s.where if s else None)


def totals(rows: Iterable[FormRow]) -> list[tuple]:
    acc: dict[str, list] = {}
    def tally(currency: str) -> list:
        return acc.setdefault(currency, [0, ZERO, 0, ZERO, 0, ZERO, 0, ZERO, ZERO, ZERO])

    for r in rows:
        t = tally(r.currency)
        if r.deal is not None:
            t[8] += abs(r.deal.amount)
        if r.line is not None:      # each line in its own currency, so the totals add up to the statement
            tally(r.line.currency)[9] += abs(r.line.amount)
        if r.status == "matched":
            t[0] += 1
            t[1] += abs(r.deal.amount)  # type: ignore[union-attr]
        elif r.status == "only_in_ledger":
            t[2] += 1
            t[3] += abs(r.deal.amount)  # type: ignore[union-attr]
        elif r.status == "only_in_statement":
            t[4] += 1
            t[5] += abs(r.line.amount)  # type: ignore[union-attr]
        else:
            t[6] += 1
            t[7] += r.difference or ZERO
    return [(cur, *vals) for cur, vals in sorted(acc.items())]


def build_form(rows: list[FormRow], params: dict[str, str]) -> Report:
    tot = totals(rows)
    counts = {s: sum(1 for r in rows if r.status == s) for s in STATUSES}
    n_breaks = breaks(rows)
    figures = [("breaks", f"{n_breaks:,}"), ("matched", f"{counts['matched']:,}"),
               ("only in ledger", f"{counts['only_in_ledger']:,}"),
               ("only in statement", f"{counts['only_in_statement']:,}"),
               ("amount mismatches", f"{counts['amount_mismatch']:,}")]
    if counts["date_mismatch"]:
        figures.append(("date mismatches", f"{counts['date_mismatch']:,}"))
    figures += [(f"matched {t[0]}", money(t[2], t[0])) for t in tot if t[0]]
    charts = [Chart("Lines by outcome", [Bar(s.replace("_", " "), n, f"{n:,}") for s, n in counts.items()],
                    unit="lines")]
    return Report(name="reconciliation", title="Reconciliation: " + ("fully matched" if not n_breaks
                                                                    else f"{n_breaks} break(s)"),
                  params=params,
                  tables=[Table("form", "Lines", COLUMNS, [row_tuple(r) for r in rows]),
                          Table("totals", "Totals per currency", TOTAL_COLUMNS, tot)],
                  figures=figures, charts=charts)


__all__ = ["COLUMNS", "TOTAL_COLUMNS", "build_form", "row_tuple", "totals"]
