"""Reconciliation of the deal ledger against a counterparty's statement (``bsp reconcile``).

    from engine.reconcile import load_statement, reconcile_file
    report, rows = reconcile_file("var/bsp.duckdb", "stmt.sta", "mt940", tolerance=Decimal("0.01"))

Statement types: ``csv``, ``mt940``, ``camt053``, ``camt052`` (an intraday account report).  See ``docs/reconciliation.md``.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Callable

from engine.defaults import STATEMENT_TYPES
from engine.reconcile.form import build_form
from engine.reconcile.ledger_side import check_party, committed_deals
from engine.reconcile.lines import LedgerDeal, StatementLine
from engine.reconcile.match import STATUSES, FormRow, breaks, reconcile
from engine.reconcile.narrow import claimable
from engine.reconcile.tolerance import Tolerance
from engine.reconcile.statement_camt053 import load_camt
from engine.reconcile.statement_checks import add_statement_checks, statement_breaks
from engine.reconcile.statement_csv import load_csv
from engine.reconcile.statement_mt940 import load_mt940
from engine.reconcile.unmatched import booked_elsewhere, explain
from engine.reports.businessday import UTC_DAY, BusinessDay
from engine.ledger_store import AMOUNT_MAX_INT_DIGITS
from engine.reports.model import Report, ReportError

TYPES = STATEMENT_TYPES
LEDGER_PLACES = Decimal("0.0001")


def load_statement(path: str | Path, kind: str, *, xsd_dir: str | Path | None = None) -> list[StatementLine]:
    path = Path(path)
    if kind not in TYPES:
        raise ReportError(f"--type {kind!r}: expected one of {', '.join(TYPES)}")
    if not path.is_file():
        raise ReportError(f"{path}: no statement file here (--against)")
    if kind == "csv":
        lines = load_csv(path)
    elif kind == "mt940":
        lines = load_mt940(path)
    else:                   # camt053, camt052: a camt.052 intraday report's entries are read as a statement's
        lines = load_camt(path, Path(xsd_dir) if xsd_dir else None, kind)
    for ln in lines:        # the ledger keeps 4 places: a 5th digit would be compared, shown and exported wrong
        if not ln.amount.is_finite():
            raise ReportError(f"{ln.where}{ln.detail}: amount {ln.amount}: not an amount; write it as a decimal, e.g. 1234.50")
        if ln.amount and ln.amount.adjusted() >= AMOUNT_MAX_INT_DIGITS:   # before quantize: 28 digits would fail
            raise ReportError(f"{ln.where}{ln.detail}: amount {ln.amount:f}: more than {AMOUNT_MAX_INT_DIGITS} digits before the "
                              f"decimal point; the ledger keeps DECIMAL(24,4), so no deal can match it: is the "
                              f"amount column another one?")
        if ln.amount != ln.amount.quantize(LEDGER_PLACES):
            raise ReportError(f"{ln.where}{ln.detail}: amount {ln.amount:f}: more than 4 decimal places; the ledger keeps 4 "
                              f"(DECIMAL(24,4)): is the amount column another one, or the file's decimal mark?")
    return lines


def reconcile_file(ledger: str | Path, statement: str | Path, kind: str, *, on: date | None = None,
                   tolerance: Decimal | Tolerance | str = Decimal("0"), days: int = 1, party: str | None = None,
                   xsd_dir: str | Path | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   clock: BusinessDay = UTC_DAY) -> tuple[Report, list[FormRow]]:
    """Reconcile the committed deals of the statement's days (or of day ``on``) against the statement;
    days are business days of ``clock`` (zone and cut-off; default UTC days), a deal's day is the one it
    was received in on that clock; ``progress(done, total)``: the ledger rows read
    (``ledger_side.committed_deals``)."""
    tolerance = Tolerance.coerce(tolerance)       # one amount, minor:N or per currency (tolerance.py)
    if days < 0:
        raise ReportError(f"--days {days}: must be zero or more")
    lines = load_statement(statement, kind, xsd_dir=xsd_dir)
    others: list[StatementLine] = []
    if on is not None:
        held = sorted({d for ln in lines for d in ln.days()})
        others = [ln for ln in lines if on not in ln.days()]
        lines = [ln for ln in lines if on in ln.days()]
        if not lines:
            raise ReportError(f"--date {on}: no line of {statement} is booked or valued that day; "
                              f"the statement holds {_days_text(held)}; give one of them with --date, "
                              f"or leave --date out to reconcile them all")
        first = last = on
    else:
        dated = [d for ln in lines for d in ln.days()]
        if not dated:
            raise ReportError(f"{statement}: no line has a booking or value date; give the day with --date")
        first, last = min(ln.day for ln in lines if ln.day), max(ln.day for ln in lines if ln.day)
    if party:
        check_party(ledger, party)
    # deals a few days further out are candidates for a reference match (shown as date_mismatch, not two
    # breaks); of those, only the ones a line's reference or text can claim are read
    deals = committed_deals(ledger, first, last, slack_days=days + 7, party=party, claims=claimable(lines),
                            progress=progress, clock=clock)
    rows = reconcile(deals, lines, tolerance=tolerance, days=days)
    rows = explain(ledger, rows, party, clock)      # what the ledger holds under a reference no deal matched
    if on is not None:                       # a deal the statement books on a neighbouring day: timing
        rows = booked_elsewhere(rows, others, on, days)
    params = {"ledger": str(ledger), "statement": f"{statement} ({kind})",
              "days": str(first) if first == last else f"{first} .. {last}", "business day": clock.describe(),
              "tolerance": str(tolerance), "date window": f"±{days} day(s)"}
    if party:
        params["party"] = party
    form = build_form(rows, params)
    bad = add_statement_checks(form, Path(statement), kind)   # MT940, camt.053: each adds up, the chain follows on; camt.052: TxsSummry
    if bad:
        form.title += f", {bad} statement break(s)"
    return form, rows


def _days_text(days: list[date]) -> str:
    """The days a statement holds, in words: every one when few, else the range and the count."""
    if not days:
        return "no booking or value date"
    if len(days) <= 10:
        return "day(s) " + ", ".join(map(str, days))
    return f"{len(days)} days from {days[0]} to {days[-1]} (e.g. {', '.join(map(str, days[:5]))} ...)"


__all__ = ["FormRow", "LedgerDeal", "STATUSES", "StatementLine", "TYPES", "breaks", "load_statement",
           "reconcile", "reconcile_file", "statement_breaks"]
