"""An insurer's premium bordereau against the ledger (``bsp reconcile --type bordereau``).

The insurer lists, per premium the bank collected for it, the policy, the premium and the broker's commission
it allows (a CSV with a header row).  The ledger holds each premium as a committed deal (its amount) whose
route kept the commission with it: a ``record bordereau { policy = ..  commission = .. }`` step, one
``recorded`` event per deal (engine/steps/record.py; insurance brokerage's ``premium_collection`` route).
Each line is paired with a deal of its policy and sign (by the reference when the bordereau gives one, else the
same premium first, then the nearest day), and premium and commission compared exactly (``Decimal``; within
``--tolerance`` when given).  A negative line is the insurer's refund/clawback for a cancelled policy: it pairs
only with a cancellation's deal, one whose ``bordereau`` record kept the premium negative (the cooling-off
cancellation route ``cooling_off_cancel``: premium and commission reversed; its deal's amount is the premium
cancelled, positive, so the record's premium is the one compared), and a premium's line only with a premium's
deal.  One form row per line or deal::

    matched             premium and commission agree
    amount_differs      the premium or the commission (or the currency) differs: the note says which, by how much
    only_in_ledger      a committed deal of the bordereau's days the bordereau does not list
    only_in_bordereau   a line no committed deal of its policy pairs with

The ledger's days are the bordereau's (its ``date`` column: the day the premium was paid), or ``--date``;
deals ``--days`` either side are paired too, but only those of the days themselves are listed when unpaired.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from engine.reconcile.tolerance import Tolerance
from engine.reports.businessday import UTC_DAY, BusinessDay
from engine.reports.model import Bar, Chart, Column, Report, ReportError, Table
from engine.reports.source import open_read_only
from engine.reports.text import money

RECORD = "bordereau"          # the record step's name the routes keep a premium's bordereau values under
STATUSES = ("matched", "amount_differs", "only_in_ledger", "only_in_bordereau")
ZERO = Decimal("0.0000")
PLACES = Decimal("0.0001")    # the ledger's and the form's money: 4 places

# a column of the file -> the names an insurer's bordereau gives it (lower case, spaces as _)
NAMES = {
    "policy": ("policy", "policy_no", "policy_number", "policyno"),
    "premium": ("premium", "gross_premium", "premium_amount"),
    "commission": ("commission", "commission_amount", "brokerage"),
    "reference": ("reference", "payment_id", "trace_no", "ref"),
    "currency": ("currency", "ccy"),
    "date": ("date", "payment_date", "paid_on", "paid"),
}
REQUIRED = ("policy", "premium", "commission")

LEDGER_SQL = """
SELECT d.deal_id, d.received_at, d.reference, d.amount, upper(coalesce(d.currency, '')),
       json_extract_string(e.detail, '$.values.policy'), json_extract_string(e.detail, '$.values.commission'),
       json_extract_string(e.detail, '$.values.premium')
FROM deals d JOIN deal_events e ON e.deal_id = d.deal_id
WHERE e.to_state = 'recorded' AND json_extract_string(e.detail, '$.record') = ?
  AND d.status = 'committed' AND d.received_at >= ? AND d.received_at < ? {party}
ORDER BY d.received_at, d.deal_id
"""

COLUMNS = (
    Column("status", "text"),
    Column("policy", "text"),
    Column("reference", "text"),
    Column("day", "date", "day paid"),
    Column("currency", "text"),
    Column("bordereau_premium", "money", "bordereau premium", currency="currency"),
    Column("ledger_premium", "money", "ledger premium", currency="currency"),
    Column("premium_difference", "money", "premium difference", currency="currency"),
    Column("bordereau_commission", "money", "bordereau commission", currency="currency"),
    Column("ledger_commission", "money", "ledger commission", currency="currency"),
    Column("commission_difference", "money", "commission difference", currency="currency"),
    Column("note", "text"),
    Column("deal_id", "text", "deal id"),
    Column("bordereau_line", "text", "bordereau line"),
)
TOTAL_COLUMNS = (
    Column("currency", "text"),
    Column("lines", "int"),
    Column("deals", "int"),
    Column("matched", "int"),
    Column("breaks", "int"),
    Column("bordereau_premium", "money", "bordereau premium", currency="currency"),
    Column("ledger_premium", "money", "ledger premium", currency="currency"),
    Column("bordereau_commission", "money", "bordereau commission", currency="currency"),
    Column("ledger_commission", "money", "ledger commission", currency="currency"),
    Column("commission_difference", "money", "commission difference", currency="currency"),
)


@dataclass(frozen=True)
class Line:
    where: str
    policy: str
    premium: Decimal
    commission: Decimal
    reference: str | None
    currency: str | None
    day: date | None


@dataclass(frozen=True)
class Deal:
    deal_id: str
    day: date
    reference: str | None
    premium: Decimal
    currency: str
    policy: str
    commission: Decimal | None


@dataclass(frozen=True)
class Row:
    status: str
    line: Line | None
    deal: Deal | None
    note: str

    @property
    def currency(self) -> str:
        return self.deal.currency if self.deal else (self.line.currency or "") if self.line else ""

    def as_tuple(self) -> tuple:
        ln, d = self.line, self.deal
        both = ln is not None and d is not None
        return (self.status, (ln.policy if ln else d.policy if d else None),
                (ln.reference if ln and ln.reference else d.reference if d else None),
                (d.day if d else ln.day if ln else None), self.currency or None,
                ln.premium if ln else None, d.premium if d else None,
                (ln.premium - d.premium) if both else None,                            # type: ignore[union-attr]
                ln.commission if ln else None, d.commission if d else None,
                (ln.commission - d.commission) if both and d.commission is not None else None,  # type: ignore[union-attr]
                self.note or None, d.deal_id if d else None, ln.where if ln else None)


def _key(policy: str | None) -> str:
    return (policy or "").strip().upper()


def _amount(text: str, where: str, column: str) -> Decimal:
    try:
        v = Decimal(text.strip())
    except InvalidOperation:
        v = None
    if v is None or not v.is_finite():
        raise ReportError(f"{where}: column {column}: {text!r} is not an amount; write it as a decimal with a point, "
                          f"e.g. 1234.50 (no thousands separator, no currency sign)")
    if v != v.quantize(PLACES):
        raise ReportError(f"{where}: column {column}: {v:f} has more than 4 decimal places; the ledger keeps 4: is "
                          f"it another column, or the file's decimal mark?")
    return v


def load_bordereau(path: str | Path) -> list[Line]:
    """The bordereau's lines: a CSV with a header row naming policy, premium, commission (and optionally
    reference, currency, date; the usual other names too: ``policy_no``, ``payment_id`` ...)."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no bordereau file here (--against)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: byte {exc.start}: not UTF-8 text; save the bordereau as CSV UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise ReportError(f"{path}: empty; expected a header row: policy,premium,commission[,reference,currency,date]")
    names = [h.strip().lower().replace(" ", "_") for h in header]
    at: dict[str, int] = {}
    for col, aliases in NAMES.items():
        found = next((i for i, n in enumerate(names) if n in aliases), None)
        if found is not None:
            at[col] = found
    missing = [c for c in REQUIRED if c not in at]
    if missing:
        raise ReportError(f"{path}:1: the header names no {', '.join(missing)} column; it has {', '.join(header)}; "
                          f"expected policy, premium and commission (and optionally reference, currency, date)")
    out: list[Line] = []
    for n, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}:{n}"

        def cell(col: str) -> str | None:
            i = at.get(col)
            return row[i].strip() if i is not None and i < len(row) and row[i].strip() else None

        policy = cell("policy")
        if policy is None:
            raise ReportError(f"{where}: no policy number (column {header[at['policy']]})")
        premium, commission = cell("premium"), cell("commission")
        if premium is None or commission is None:
            raise ReportError(f"{where}: policy {policy}: no {'premium' if premium is None else 'commission'}")
        day = None
        if cell("date"):
            try:
                day = date.fromisoformat(cell("date")[:10])        # type: ignore[index]
            except ValueError:
                raise ReportError(f"{where}: column date: {cell('date')!r} is not a date; write YYYY-MM-DD") from None
        out.append(Line(where, policy, _amount(premium, where, "premium"), _amount(commission, where, "commission"),
                        cell("reference"), (cell("currency") or "").upper() or None, day))
    if not out:
        raise ReportError(f"{path}: no bordereau line under the header")
    return out


def ledger_deals(ledger: str | Path, first: date, last: date, clock: BusinessDay, party: str | None) -> list[Deal]:
    """The committed deals of days ``first`` .. ``last`` that kept a ``bordereau`` record."""
    con = open_read_only(ledger)
    try:
        start, end = clock.bounds(first, last)
        rows = con.execute(LEDGER_SQL.format(party="AND d.party = ?" if party else ""),
                           [RECORD, start, end] + ([party] if party else [])).fetchall()
    finally:
        con.close()
    out = []
    for deal_id, at, ref, amount, ccy, policy, commission, premium in rows:
        kept, reversed_ = _decimal(commission), _decimal(premium)
        # a cancellation's record keeps the premium reversed (negative); the deal's amount is the premium cancelled
        gross = reversed_ if reversed_ is not None and reversed_ < 0 else (amount or ZERO)
        out.append(Deal(deal_id, clock.day_of(at), ref, gross + ZERO, ccy, policy or "", kept))
    return out


def _decimal(text: str | None) -> Decimal | None:
    try:
        v = Decimal(text) if text is not None else None
    except InvalidOperation:
        return None
    return v if v is not None and v.is_finite() else None


def cancelled(x: Line | Deal) -> bool:
    """A cancellation's line or deal: its premium negative (the insurer's refund/clawback line; a cooling-off
    cancellation's record)."""
    return x.premium < 0


def _pair(lines: list[Line], deals: list[Deal]) -> list[tuple[Line, Deal | None]]:
    """Each line with a deal of its policy and sign (a negative line, a cancellation's, with a cancellation's
    deal; a premium's with a premium's): its reference when the line gives one, else the same premium (on its
    day first), else the nearest day; a deal is paired once."""
    free: dict[tuple[str, bool], list[Deal]] = {}
    for d in deals:
        free.setdefault((_key(d.policy), cancelled(d)), []).append(d)
    out: list[tuple[Line, Deal | None]] = []
    for ln in lines:
        cands = free.get((_key(ln.policy), cancelled(ln)), [])
        if ln.reference:
            by_ref = [d for d in cands if (d.reference or "").strip() == ln.reference]
            cands = by_ref or cands

        def rank(d: Deal) -> tuple:
            far = abs((d.day - ln.day).days) if ln.day else 0
            return (d.premium != ln.premium, far)
        best = min(cands, key=rank, default=None)
        if best is not None:
            free[(_key(ln.policy), cancelled(ln))].remove(best)
        out.append((ln, best))
    return out


def compare(lines: list[Line], deals: list[Deal], first: date, last: date,
            tolerance: Tolerance) -> list[Row]:
    rows: list[Row] = []
    paired: set[str] = set()
    held = {d.currency for d in deals}
    alone = held.pop() if len(held) == 1 else None   # a bordereau without currencies: the deals' one currency
    for ln, d in _pair(lines, deals):
        if d is None:
            if ln.currency is None and alone:
                ln = replace(ln, currency=alone)
            days = f"{first}{'' if first == last else f' .. {last}'}"
            rows.append(Row("only_in_bordereau", ln, None, f"a cancellation (negative line): no committed "
                            f"cancellation of policy {ln.policy} kept a bordereau record on {days}" if cancelled(ln)
                            else f"no committed deal of policy {ln.policy} kept a bordereau record on {days}"))
            continue
        paired.add(d.deal_id)
        ccy = d.currency
        allowed = tolerance.of(ccy)
        bits = []
        if ln.currency and ln.currency != ccy:
            bits.append(f"currency: bordereau {ln.currency}, ledger {ccy}")
        for what, theirs, ours in (("premium", ln.premium, d.premium), ("commission", ln.commission, d.commission)):
            if ours is None:
                bits.append(f"{what}: the deal's bordereau record has none")
            elif abs(theirs - ours) > allowed:
                diff = theirs - ours
                bits.append(f"{what}: bordereau {theirs} {ccy}, ledger {ours} {ccy} (bordereau "
                            f"{'+' if diff > 0 else '-'}{money(abs(diff), ccy)})")
        if ln.day and d.day != ln.day and not bits:
            note = f"{'cancelled' if cancelled(d) else 'paid'} {d.day}, the bordereau says {ln.day}"
        else:
            note = "; ".join(bits)
        rows.append(Row("amount_differs" if bits else "matched", ln, d, note))
    for d in deals:
        if d.deal_id not in paired and first <= d.day <= last:
            rows.append(Row("only_in_ledger", None, d, f"policy {d.policy}: cancellation (premium {d.premium}, "
                            f"commission {d.commission}) not on the bordereau" if cancelled(d)
                            else f"policy {d.policy}: not on the bordereau"))
    order = {s: i for i, s in enumerate(STATUSES)}
    rows.sort(key=lambda r: (r.status == "matched", order[r.status]))
    return rows


def breaks(rows: list[Row]) -> int:
    return sum(1 for r in rows if r.status != "matched")


def _totals(rows: list[Row]) -> list[tuple]:
    acc: dict[str, list] = {}
    for r in rows:
        t = acc.setdefault(r.currency, [0, 0, 0, 0, ZERO, ZERO, ZERO, ZERO])
        t[2 if r.status == "matched" else 3] += 1
        if r.line:
            t[0] += 1
            t[4] += r.line.premium
            t[6] += r.line.commission
        if r.deal:
            t[1] += 1
            t[5] += r.deal.premium
            t[7] += r.deal.commission or ZERO
    return [(c or None, *v, v[6] - v[7]) for c, v in sorted(acc.items())]


def reconcile_bordereau(ledger: str | Path, against: str | Path, *, on: date | None = None, days: int = 1,
                        clock: BusinessDay = UTC_DAY, party: str | None = None,
                        tolerance: Decimal | Tolerance | str = Decimal("0")) -> tuple[Report, list[Row]]:
    """Read the bordereau, pair its lines with the committed deals' bordereau records, compare."""
    from engine.reconcile.ledger_side import check_party

    tolerance = Tolerance.coerce(tolerance)
    if days < 0:
        raise ReportError(f"--days {days}: must be zero or more")
    lines = load_bordereau(against)
    dated = sorted({ln.day for ln in lines if ln.day})
    if on is not None:
        lines = [ln for ln in lines if ln.day is None or ln.day == on]
        if not lines:
            raise ReportError(f"--date {on}: no line of {against} is of that day; it holds {', '.join(map(str, dated[:10]))}")
        first = last = on
    elif dated:
        first, last = dated[0], dated[-1]
    else:
        raise ReportError(f"{against}: no line has a date (a `date` column: the day the premium was paid); give "
                          f"the day with --date")
    if not Path(ledger).is_file():
        open_read_only(ledger)      # its message: no ledger file here
    if party:
        check_party(ledger, party)
    deals = ledger_deals(ledger, first - timedelta(days=days), last + timedelta(days=days), clock, party)
    rows = compare(lines, deals, first, last, tolerance)
    n = breaks(rows)
    counts = {s: sum(1 for r in rows if r.status == s) for s in STATUSES}
    params = {"ledger": str(ledger), "bordereau": str(against),
              "days": str(first) if first == last else f"{first} .. {last}", "business day": clock.describe(),
              "tolerance": str(tolerance), "date window": f"±{days} day(s)"}
    if party:
        params["party"] = party
    report = Report(name="reconciliation", title="Bordereau: " + ("fully matched" if not n else f"{n} break(s)"),
                    params=params,
                    tables=[Table("form", "Bordereau lines and deals", COLUMNS, [r.as_tuple() for r in rows]),
                            Table("totals", "Totals per currency", TOTAL_COLUMNS, _totals(rows))],
                    figures=[("breaks", f"{n:,}")] + [(s.replace("_", " "), f"{k:,}") for s, k in counts.items()],
                    charts=[Chart("Rows by outcome", [Bar(s.replace("_", " "), k, f"{k:,}")
                                                      for s, k in counts.items()], unit="rows")],
                    breaks=n)
    return report, rows


__all__ = ["RECORD", "STATUSES", "breaks", "compare", "load_bordereau", "reconcile_bordereau"]
