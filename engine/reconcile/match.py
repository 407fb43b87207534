"""Matching ledger deals to statement lines: the reconciliation form's rows.

Passes, each over what is still unmatched:

1. **reference, agreeing**: a statement line's candidate reference equals a
   deal's reference (no case, blanks collapsed) and currency, amount (within
   the tolerance) and date (within ``days``) agree. Exact amounts first.
2. **reference, disagreeing**: the same reference but amount, currency or date
   off: the pair is an ``amount_mismatch`` or ``date_mismatch``.
3. **reference in the text**: a deal's reference found as a whole word in the
   line's free text (:86:, RmtInf) -> judged as in 1/2.
4. **amount and date**: a line with *no* usable reference pairs with the one
   in-scope deal of the same currency and exact amount received on its booking
   or value date, if each is the other's only candidate that day; then what is
   left, the same way, within ``days`` of it.

Amounts are compared by absolute value (a deal's amount is positive; the
counterparty books it as a credit or a debit depending on its side).  Deals
received outside the reconciled days are only candidates (a late booking): if
nothing claims them they are not reported.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable, Iterator

from engine.reconcile.lines import LedgerDeal, StatementLine, norm_ref, usable
from engine.reconcile.tolerance import Tolerance
from engine.reports.text import money

STATUSES = ("matched", "amount_mismatch", "date_mismatch", "only_in_ledger", "only_in_statement")


@dataclass(frozen=True, slots=True)
class FormRow:
    status: str
    deal: LedgerDeal | None
    line: StatementLine | None
    matched_by: str = ""            # reference, text, amount+date
    note: str = ""

    @property
    def difference(self) -> Decimal | None:
        """Statement minus ledger, by absolute value, when both sides are in one currency."""
        if self.deal is None or self.line is None or self.deal.currency != self.line.currency:
            return None
        return abs(self.line.amount) - abs(self.deal.amount)

    @property
    def currency(self) -> str:
        return self.deal.currency if self.deal is not None else self.line.currency  # type: ignore[union-attr]


def _date_gap(deal: LedgerDeal, line: StatementLine) -> int | None:
    days = line.days()
    return min(abs((d - deal.day).days) for d in days) if days else None


def judge(deal: LedgerDeal, line: StatementLine, tolerance: Decimal | Tolerance, days: int) -> tuple[str, str]:
    """(status, note) of a pair that shares a reference; ``tolerance``: one amount, or per currency."""
    if deal.currency != line.currency:
        return "amount_mismatch", f"currency: ledger {deal.currency}, statement {line.currency}"
    if isinstance(tolerance, Tolerance):
        tolerance = tolerance.of(deal.currency)
    diff = abs(line.amount) - abs(deal.amount)
    if abs(diff) > tolerance:
        return "amount_mismatch", (f"statement {'+' if diff > 0 else '-'}{money(abs(diff), deal.currency)} "
                                   f"beyond tolerance {tolerance:f}")
    gap = _date_gap(deal, line)
    if gap is not None and gap > days:
        return "date_mismatch", f"booked {line.day}, deal {deal.day}: {gap} days apart (allowed {days})"
    return "matched", (f"difference {'+' if diff > 0 else '-'}{money(abs(diff), deal.currency)} within tolerance "
                       f"{tolerance:f}" if diff else "")


def _word(ref: str) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9a-z])" + re.escape(ref) + r"(?![0-9a-z])")


WORD_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")   # what bounds a reference found in a text
TEXT_REF_MIN = 4                # the shortest (normalised) reference looked for in a text


def _refs_in_text(text: str, by_ref: dict[str, list[int]], lengths: list[int]) -> Iterator[int]:
    """Deal indices whose (normalised) reference occurs in ``text`` as a whole word: not preceded nor
    followed by ``[0-9a-z]`` (what ``_word(ref).search(text)`` finds), by a dictionary look-up of each
    such substring of the lengths the references have."""
    n = len(text)
    for s in range(n):
        if s and text[s - 1] in WORD_CHARS:
            continue
        for length in lengths:
            e = s + length
            if e > n:
                break
            if e < n and text[e] in WORD_CHARS:
                continue
            hit = by_ref.get(text[s:e])
            if hit:
                yield from hit


def reconcile(deals: Iterable[LedgerDeal], lines: Iterable[StatementLine], *,
              tolerance: Decimal | Tolerance = Decimal("0"), days: int = 1) -> list[FormRow]:
    deals = list(deals)
    lines = list(lines)
    free_deals: dict[int, LedgerDeal] = dict(enumerate(deals))
    by_ref: dict[str, list[int]] = {}
    for i, d in enumerate(deals):
        if usable(d.reference):
            by_ref.setdefault(norm_ref(d.reference), []).append(i)
    pairs: dict[int, tuple[int, str]] = {}     # line index -> (deal index, matched_by)

    def take(li: int, di: int, how: str) -> None:
        pairs[li] = (di, how)
        del free_deals[di]

    def candidates(line: StatementLine) -> list[int]:
        seen: list[int] = []
        for r in line.refs:
            if usable(r):
                seen += [i for i in by_ref.get(norm_ref(r), []) if i in free_deals and i not in seen]
        return seen

    # pass 1: reference and everything agrees; exact amounts before those within tolerance
    for exact in (True, False):
        for li, line in enumerate(lines):
            if li in pairs:
                continue
            for di in candidates(line):
                d = deals[di]
                ok = judge(d, line, tolerance, days)[0] == "matched"
                if ok and (not exact or abs(line.amount) == abs(d.amount)):
                    take(li, di, "reference")
                    break
    # pass 2: reference, but something disagrees: the closest amount, then the closest date
    for li, line in enumerate(lines):
        if li in pairs:
            continue
        cands = candidates(line)
        if cands:
            best = min(cands, key=lambda di: (deals[di].currency != line.currency,
                                              abs(abs(line.amount) - abs(deals[di].amount)),
                                              _date_gap(deals[di], line) or 0))
            take(li, best, "reference")
    # pass 3: a deal's reference as a word of the line's text (looked up by the text's word-bounded
    # substrings, not by a search of every free deal's reference: that was lines x deals)
    by_text_ref: dict[str, list[int]] = {}
    for di, d in free_deals.items():
        if usable(d.reference) and len(norm_ref(d.reference)) >= TEXT_REF_MIN:
            by_text_ref.setdefault(norm_ref(d.reference), []).append(di)
    ref_lengths = sorted({len(r) for r in by_text_ref})
    for li, line in enumerate(lines):
        if li in pairs or not line.text:
            continue
        text = norm_ref(line.text)
        found = sorted({di for di in _refs_in_text(text, by_text_ref, ref_lengths) if di in free_deals})
        if found:
            found.sort(key=lambda di: (judge(deals[di], line, tolerance, days)[0] != "matched",
                                       -len(norm_ref(deals[di].reference))))
            take(li, found[0], "text")
    # pass 4: no usable reference at all: one deal, one line, same currency and amount; first on the same
    # day (each the other's one candidate that day), then what is left within ``days`` (a deal at 23:59:59
    # UTC booked the next morning), again only when each is the other's one candidate
    def key(cur: str, amount: Decimal, day: date) -> tuple[str, Decimal, date]:
        return cur, abs(amount), day

    for window in sorted({0, days}):
        loose_deals: dict[tuple, list[int]] = {}
        for di, d in free_deals.items():
            if d.in_scope:
                loose_deals.setdefault(key(d.currency, d.amount, d.day), []).append(di)
        line_cands: dict[int, set[int]] = {}
        deal_cands: dict[int, set[int]] = {}
        for li, line in enumerate(lines):
            if li in pairs or any(usable(r) for r in line.refs) or line.day is None:
                continue
            near = {day + timedelta(days=k) for day in line.days() for k in range(-window, window + 1)}
            cands = {di for day in near for di in loose_deals.get(key(line.currency, line.amount, day), [])}
            line_cands[li] = cands
            for di in cands:
                deal_cands.setdefault(di, set()).add(li)
        for li, cands in line_cands.items():
            if len(cands) == 1:
                (di,) = cands
                if deal_cands[di] == {li}:
                    take(li, di, "amount+date")

    rows: list[FormRow] = []
    paired_with = {di: li for li, (di, _) in pairs.items()}     # deal index -> the line that took it
    for li, line in enumerate(lines):
        if li in pairs:
            di, how = pairs[li]
            status, note = judge(deals[di], line, tolerance, days)
            rows.append(FormRow(status, deals[di], line, how, note))
        else:
            rows.append(FormRow("only_in_statement", None, line, "",
                                _unpaired_note(line, lines, deals, by_ref, paired_with, tolerance, days)))
    for di, d in free_deals.items():
        if d.in_scope:
            rows.append(FormRow("only_in_ledger", d, None, "", "not on the statement"))
    order = {s: i for i, s in enumerate(STATUSES)}
    rows.sort(key=lambda r: (order[r.status], r.currency,
                             r.line.day if r.line and r.line.day else (r.deal.day if r.deal else date.min)))
    return rows


def _unpaired_note(line: StatementLine, lines: list[StatementLine], deals: list[LedgerDeal],
                   by_ref: dict[str, list[int]], paired_with: dict[int, int], tolerance: Decimal | Tolerance,
                   days: int) -> str:
    """Why a statement line has no deal: none with its reference, or that deal is already another line's."""
    if not line.reference:
        return "no reference; no deal of this amount and date"
    taken = [di for r in line.refs if usable(r) for di in by_ref.get(norm_ref(r), []) if di in paired_with]
    if not taken:
        return "no deal with this reference"
    di = taken[0]
    other = lines[paired_with[di]]
    if judge(deals[di], other, tolerance, days)[0] == "matched":
        if other.currency == line.currency and abs(other.amount) == abs(line.amount):
            if other.amount and (other.amount < 0) != (line.amount < 0):
                return (f"reversal: {other.where} books the same amount the other way and matches the deal "
                        f"(one of the two takes the other back)")
            return f"duplicate of {other.where} (the deal is already matched)"
        return f"the deal with this reference is already matched by {other.where}"
    return f"the deal with this reference is already paired with {other.where}"


def breaks(rows: Iterable[FormRow]) -> int:
    return sum(1 for r in rows if r.status != "matched")


__all__ = ["FormRow", "STATUSES", "TEXT_REF_MIN", "WORD_CHARS", "breaks", "judge", "reconcile"]
