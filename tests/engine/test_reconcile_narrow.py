"""`bsp reconcile` reads, of the deals received around the reconciled days, only those a statement line
can claim (by its reference or its text): memory grows with the statement, not with the ledger.

These tests pin that the narrowing never drops a deal that would have paired: the form is the same
as the matcher's over every candidate deal (random small ledgers, and a real ledger with deals at the
edges of the date window, references in another case or spacing, and references only in a text)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import trio
from hypothesis import given, settings, strategies as st

from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reconcile import reconcile, reconcile_file
from engine.reconcile.form import row_tuple
from engine.reconcile.ledger_side import committed_deals
from engine.reconcile.lines import LedgerDeal, StatementLine
from engine.reconcile.narrow import claimable
from engine.reconcile.unmatched import explain

DAY = date(2026, 3, 2)


def utc(day: date, at: time = time(10)) -> datetime:
    return datetime.combine(day, at, tzinfo=timezone.utc)


def form(deals: list[LedgerDeal], lines: list[StatementLine], **kw) -> list[tuple]:
    return [row_tuple(r) for r in reconcile(deals, lines, **kw)]


# ------------------------------------------------------------------ the rule, on random small ledgers

# references from a small alphabet, so they collide, differ in case and blanks only, hide in each
# other's texts, and have no word character at all ("-/ ."); "ß" casefolds to "ss"
REF_PARTS = ["ab", "AB", "a b", "1", "12", "-", "/", " ", ".", "-/-", "ß", "SS", "x9", "NONREF"]
refs = st.lists(st.sampled_from(REF_PARTS), min_size=0, max_size=4).map("".join)
amounts = st.sampled_from(["10.00", "10.01", "10.02", "7.50"]).map(Decimal)
offsets = st.integers(min_value=-4, max_value=4)       # the reconciled days are DAY .. DAY + 1


@st.composite
def deals_and_lines(draw) -> tuple[list[LedgerDeal], list[StatementLine]]:
    deals = []
    for i in range(draw(st.integers(0, 8))):
        day = DAY + timedelta(days=draw(offsets))
        deals.append(LedgerDeal(f"d{i:02d}", draw(st.one_of(st.none(), refs)), draw(amounts),
                                draw(st.sampled_from(["EUR", "USD"])), utc(day), in_scope=DAY <= day <= DAY
                                + timedelta(days=1)))
    lines = []
    for i in range(draw(st.integers(1, 6))):
        line_refs = tuple(draw(st.lists(refs, min_size=0, max_size=2)))
        text = " ".join(draw(st.lists(refs, min_size=0, max_size=3)))
        book = DAY + timedelta(days=draw(st.integers(0, 1)))
        lines.append(StatementLine(f"s:{i}", draw(amounts) * draw(st.sampled_from([1, -1])),
                                   draw(st.sampled_from(["EUR", "USD"])), book,
                                   draw(st.one_of(st.none(), st.just(book + timedelta(days=1)))),
                                   refs=line_refs, text=text))
    return deals, lines


@settings(max_examples=400, deadline=None)
@given(deals_and_lines(), st.sampled_from([Decimal("0"), Decimal("0.01")]), st.integers(0, 2))
def test_narrowed_candidates_give_the_same_form(case, tolerance: Decimal, days: int) -> None:
    deals, lines = case
    claims = claimable(lines)
    narrowed = [d for d in deals if d.in_scope or claims(d.reference)]
    assert form(narrowed, lines, tolerance=tolerance, days=days) == form(deals, lines, tolerance=tolerance,
                                                                           days=days)


def test_a_reference_is_claimed_by_a_text_that_holds_it_as_a_word() -> None:
    line = StatementLine("s:1", Decimal("1"), "EUR", DAY, None, refs=("",), text="Paid  INV-2026/0042, thanks")
    claims = claimable([line])
    assert claims("inv-2026/0042") and claims(" INV-2026/0042 ")
    assert claims("2026/0042") and claims("-/-/")          # its words are the text's; no word at all
    assert not claims("INV-2026/0043") and not claims("INV") and not claims("NONREF") and not claims(None)


# ------------------------------------------------------------------ on a real ledger

async def _fill(path: Path, deals: list[tuple[str, datetime, str]]) -> None:
    async with open_ledger(path) as ledger:
        for ref, at, amount in deals:
            await ledger.commit(DealRecord(
                deal_type="PAYMENT", route="payments", config_version="v1", channel="mainframe",
                status="committed", received_at=at, finished_at=at + timedelta(milliseconds=3),
                reference=ref, amount=Decimal(amount), currency="EUR", party="BANK"))


def test_deals_at_the_edges_of_the_window_still_pair(tmp_path: Path) -> None:
    slack = 1 + 7                                        # --days 1: deals 8 days around are candidates
    edge_first = utc(DAY - timedelta(days=slack), time(0))
    edge_last = utc(DAY + timedelta(days=slack), time(23, 59, 59, 999_000))
    deals = [("IN-SCOPE-1", utc(DAY), "10.00"),
             ("EARLY-EDGE", edge_first, "11.00"),                     # first instant of the window
             ("LATE-EDGE", edge_last, "12.00"),                       # last millisecond of the window
             ("TOO-EARLY", edge_first - timedelta(milliseconds=1), "13.00"),
             ("Late  Case", utc(DAY + timedelta(days=3)), "14.00"),    # claimed as 'LATE CASE'
             ("TXT-7781", utc(DAY - timedelta(days=2)), "15.00"),      # claimed by a text only
             ("TXT-7782", utc(DAY - timedelta(days=2)), "15.50")]      # claimed by nothing
    deals += [(f"NOISE-{i:05d}", utc(DAY + timedelta(days=1 + i % 7), time(i % 24)), "1.00") for i in range(300)]
    ledger = tmp_path / "bsp.duckdb"
    trio.run(_fill, ledger, deals)
    stmt = tmp_path / "stmt.csv"
    stmt.write_text("reference,amount,currency,date,text\n"
                    "in-scope-1,10.00,EUR,2026-03-02,\n"
                    "early-edge,11.00,EUR,2026-03-02,\n"
                    "LATE-EDGE,12.00,EUR,2026-03-02,\n"
                    "TOO-EARLY,13.00,EUR,2026-03-02,\n"
                    "LATE CASE,14.00,EUR,2026-03-02,\n"
                    ",15.00,EUR,2026-03-02,payment txt-7781 ok\n")
    report, rows = reconcile_file(ledger, stmt, "csv")
    got = {(r.line.reference if r.line else None): (r.status, r.deal.reference if r.deal else None)
           for r in rows}
    assert got == {"in-scope-1": ("matched", "IN-SCOPE-1"),
                   "early-edge": ("date_mismatch", "EARLY-EDGE"),
                   "LATE-EDGE": ("date_mismatch", "LATE-EDGE"),
                   "TOO-EARLY": ("only_in_statement", None),
                   "LATE CASE": ("date_mismatch", "Late  Case"),
                   "": ("date_mismatch", "TXT-7781")}
    # the same form as the matcher over every candidate of the window (and the note of the line without a
    # deal says what the ledger holds under its reference: engine/reconcile/unmatched.py)
    lines = [r.line for r in rows if r.line]
    lines.sort(key=lambda ln: int(ln.where.rsplit(":", 1)[1]))
    every = committed_deals(ledger, DAY, DAY, slack_days=slack)
    assert [row_tuple(r) for r in rows] == [row_tuple(r) for r in explain(ledger, reconcile(every, lines, days=1),
                                                                          None)]
    (early,) = [r for r in rows if r.line and r.line.reference == "TOO-EARLY"]
    assert early.note.endswith("(2026-02-21, committed, received outside the days read)")
    # ... of which only the in-scope deal and the four the statement claims were read
    read = committed_deals(ledger, DAY, DAY, slack_days=slack, claims=claimable(lines))
    assert len(every) == 306 and sorted(d.reference for d in read) == [
        "EARLY-EDGE", "IN-SCOPE-1", "LATE-EDGE", "Late  Case", "TXT-7781"]


def test_narrowing_keeps_to_the_party(tmp_path: Path) -> None:
    ledger = tmp_path / "bsp.duckdb"

    async def fill() -> None:
        async with open_ledger(ledger) as led:
            for party, ref, day in (("A", "R-1", DAY), ("B", "R-2", DAY - timedelta(days=3)),
                                    ("A", "R-2", DAY - timedelta(days=3))):
                await led.commit(DealRecord(
                    deal_type="PAYMENT", route="payments", config_version="v1", channel="mainframe",
                    status="committed", received_at=utc(day), finished_at=utc(day), reference=ref,
                    amount=Decimal("5.00"), currency="EUR", party=party))
    trio.run(fill)
    stmt = tmp_path / "a.csv"
    stmt.write_text("reference,amount,currency,date\nR-1,5.00,EUR,2026-03-02\nR-2,5.00,EUR,2026-03-02\n")
    _, rows = reconcile_file(ledger, stmt, "csv", party="A")
    assert [(r.status, r.deal.party) for r in rows] == [("matched", "A"), ("date_mismatch", "A")]
