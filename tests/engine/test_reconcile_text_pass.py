"""Pass 3 of the matcher (a deal's reference as a word of a line's text) on big statements.

It used to search every free deal's reference in every unmatched line's text (a regex each):
lines x deals, hours for a 200,000-line statement against a day of a big ledger.  Now each
text's word-bounded substrings are looked up in an index of the references; these tests pin
that it finds what the regex finds, and that it no longer scans the deals per line.
"""
from __future__ import annotations

import random
from datetime import date, datetime, timezone
from decimal import Decimal

from engine.reconcile import match
from engine.reconcile.lines import LedgerDeal, StatementLine, norm_ref

DAY = date(2026, 3, 2)
AT = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)


def deal(i: int, ref: str, amount: str = "10.00") -> LedgerDeal:
    return LedgerDeal(f"d{i:031d}", ref, Decimal(amount), "EUR", AT)


def line(i: int, text: str, amount: str = "10.00") -> StatementLine:
    return StatementLine(f"s:{i}", Decimal(amount), "EUR", DAY, None, refs=("",), text=text)


def test_text_pass_does_not_search_each_deal_per_line(monkeypatch) -> None:
    def per_deal_regex(ref: str):
        raise AssertionError("pass 3 compiled a regex per deal (lines x deals)")
    monkeypatch.setattr(match, "_word", per_deal_regex)
    deals = [deal(i, f"INV-{i:06d}") for i in range(200)]
    lines = [line(i, f"payment for inv-{i:06d} thanks") for i in range(0, 200, 2)]
    rows = match.reconcile(deals, lines)
    matched = [r for r in rows if r.status == "matched"]
    assert len(matched) == 100 and all(r.matched_by == "text" for r in matched)
    assert {r.deal.reference for r in matched} == {f"INV-{i:06d}" for i in range(0, 200, 2)}


def test_text_lookup_finds_what_the_word_regex_finds() -> None:
    rnd = random.Random(7)
    alphabet = "ab1-/ .x"
    for _ in range(300):
        refs = list({"".join(rnd.choice(alphabet) for _ in range(rnd.randint(4, 7))) for _ in range(8)})
        text = norm_ref("".join(rnd.choice(alphabet) for _ in range(40)) + " " + rnd.choice(refs))
        index: dict[str, list[int]] = {}
        for i, r in enumerate(refs):
            if len(norm_ref(r)) >= 4:
                index.setdefault(norm_ref(r), []).append(i)
        want = {i for i, r in enumerate(refs) if len(norm_ref(r)) >= 4 and match._word(norm_ref(r)).search(text)}
        got = set(match._refs_in_text(text, index, sorted({len(k) for k in index})))
        assert got == want, (refs, text)
