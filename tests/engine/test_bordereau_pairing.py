"""How `bsp reconcile --type bordereau` pairs an insurer's lines with the deals' bordereau records
(engine/reconcile/bordereau.py): a policy's instalments by reference, else by premium and day; a deal of the
window's edge paired but not listed when no line takes it; Decimal differences exact."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from engine.reconcile.bordereau import Deal, Line, compare
from engine.reconcile.tolerance import Tolerance

D = date(2026, 11, 26)
EXACT = Tolerance.coerce(Decimal("0"))


def line(policy: str, premium: str, commission: str, *, ref: str | None = None, day: date = D, n: int = 2) -> Line:
    return Line(f"b.csv:{n}", policy, Decimal(premium), Decimal(commission), ref, None, day)


def deal(i: int, policy: str, premium: str, commission: str | None, *, ref: str = "", day: date = D) -> Deal:
    return Deal(f"d{i}", day, ref or f"T{i}", Decimal(premium), "CNY", policy, None if commission is None
                else Decimal(commission))


def statuses(rows):
    return [(r.status, r.line.where if r.line else None, r.deal.deal_id if r.deal else None) for r in rows]


def test_two_instalments_of_one_policy_pair_by_reference_else_by_premium():
    deals = [deal(1, "P1", "100.00", "3.00", ref="T1"), deal(2, "P1", "250.00", "7.50", ref="T2")]
    by_ref = [line("P1", "250.00", "7.50", ref="T2", n=2), line("P1", "100.00", "3.00", ref="T1", n=3)]
    assert statuses(compare(by_ref, deals, D, D, EXACT)) == [("matched", "b.csv:2", "d2"), ("matched", "b.csv:3", "d1")]
    by_premium = [line("P1", "250.00", "7.50", n=2), line("p1 ", "100.00", "3.00", n=3)]     # case, blanks
    assert statuses(compare(by_premium, deals, D, D, EXACT)) == [("matched", "b.csv:2", "d2"),
                                                                 ("matched", "b.csv:3", "d1")]


def test_differences_are_exact_and_within_tolerance_match():
    rows = compare([line("P1", "100.00", "3.01")], [deal(1, "P1", "100.0000", "3.00")], D, D, EXACT)
    (r,) = rows
    assert r.status == "amount_differs"
    assert r.note == "commission: bordereau 3.01 CNY, ledger 3.00 CNY (bordereau +0.01)"
    assert r.as_tuple()[7] == Decimal("0") and r.as_tuple()[10] == Decimal("0.01")
    (r,) = compare([line("P1", "100.00", "3.01")], [deal(1, "P1", "100.00", "3.00")], D, D,
                   Tolerance.coerce(Decimal("0.01")))
    assert r.status == "matched"
    (r,) = compare([line("P1", "100.00", "3.00")], [deal(1, "P1", "100.00", None)], D, D, EXACT)
    assert (r.status, r.note) == ("amount_differs", "commission: the deal's bordereau record has none")


def test_a_deal_of_the_window_edge_is_paired_but_not_listed_alone():
    late = deal(1, "P1", "100.00", "3.00", day=date(2026, 11, 27))
    other = deal(2, "P2", "50.00", "1.50", day=date(2026, 11, 27))       # the next bordereau's
    rows = compare([line("P1", "100.00", "3.00")], [late, other], D, D, EXACT)
    assert statuses(rows) == [("matched", "b.csv:2", "d1")]
    assert rows[0].note == "paid 2026-11-27, the bordereau says 2026-11-26"
    mine = deal(3, "P3", "80.00", "2.40")
    assert statuses(compare([], [mine], D, D, EXACT)) == [("only_in_ledger", None, "d3")]


def test_a_negative_line_pairs_with_its_policys_cancellation_not_with_the_premium():
    # a cooling-off cancellation's deal kept its bordereau record negative (the premium reversed, the commission
    # clawed back); the insurer lists the premium and, a week later, the refund/clawback line
    paid = deal(1, "P1", "1200.00", "30.00", day=date(2026, 11, 19))
    cancel = deal(2, "P1", "-1200.00", "-30.00")
    lines = [line("P1", "-1200.00", "-30.00", n=2), line("P1", "1200.00", "30.00", day=date(2026, 11, 19), n=3)]
    rows = compare(lines, [paid, cancel], date(2026, 11, 19), D, EXACT)
    assert statuses(rows) == [("matched", "b.csv:2", "d2"), ("matched", "b.csv:3", "d1")]
    # the clawback differs by a cent: the cancellation's own amounts, not the premium's
    (r,) = compare([line("P1", "-1200.00", "-30.01")], [cancel], D, D, EXACT)
    assert (r.status, r.note) == ("amount_differs", "commission: bordereau -30.01 CNY, ledger -30.00 CNY "
                                                    "(bordereau -0.01)")
    # on another day than the bordereau's: paired, the day told
    (r,) = compare([line("P1", "-1200.00", "-30.00", day=date(2026, 11, 25))], [cancel], date(2026, 11, 25),
                   date(2026, 11, 25), EXACT)
    assert (r.status, r.note) == ("matched", "cancelled 2026-11-26, the bordereau says 2026-11-25")


def test_a_cancellation_on_one_side_only_is_reported_and_never_paired_with_a_premium():
    paid = deal(1, "P1", "1200.00", "30.00")
    # the insurer lists a refund the bank never cancelled: not taken as the premium's line (amount_differs)
    rows = compare([line("P1", "-1200.00", "-30.00", n=2)], [paid], D, D, EXACT)
    assert statuses(rows) == [("only_in_ledger", None, "d1"), ("only_in_bordereau", "b.csv:2", None)]
    assert rows[1].note == ("a cancellation (negative line): no committed cancellation of policy P1 kept a "
                            "bordereau record on 2026-11-26")
    # the bank cancelled, the insurer's bordereau lists the premium only
    cancel = deal(2, "P1", "-1200.00", "-30.00")
    rows = compare([line("P1", "1200.00", "30.00", n=2)], [paid, cancel], D, D, EXACT)
    assert statuses(rows) == [("only_in_ledger", None, "d2"), ("matched", "b.csv:2", "d1")]
    assert rows[0].note == "policy P1: cancellation (premium -1200.00, commission -30.00) not on the bordereau"
