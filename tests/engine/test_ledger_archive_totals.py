"""``bsp ledger archive`` carries the moved deals' ``limit`` totals forward (``archived_totals``,
engine/ledger_archive.py ``carry_totals``): a total without a period (an LC's drawings against its amount)
still counts them at the engine's next start, and both files still verify.  Real DuckDB files, the CLI in
process."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from engine.deal import DealEvent
from engine.ledger import open_ledger
from engine.totals import Totals
import test_ledger_archive
from test_ledger_archive import FEB, JAN, KEY, archive, deal, fill, q

bsp = test_ledger_archive.bsp          # the CLI in process, with the audit key (a fixture)


def _counted(total: str, key: str, amount: str, day: str = "") -> dict:
    return {"total": total, "key": key, "currency": "EUR", "day": day, "amount": amount}


def _deal(i: int, at, *extra: DealEvent):
    return deal(i, at, events=[DealEvent(at, "received", "accepted", {"key": f"transfer|R{i}"}),
                               DealEvent(at, "accepted", "committed"), *extra])


async def _rebuilt(led: Path) -> dict:
    t = Totals()
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        await t.rebuild(ledger, [])
    return dict(t.confirmed)


async def test_an_archived_deal_still_counts_in_a_total_without_a_period(tmp_path: Path, bsp) -> None:
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    d1 = JAN + timedelta(days=1)
    d2 = JAN + timedelta(days=2)
    d3 = JAN + timedelta(days=3)
    extra = [
        _deal(201, d1, DealEvent(d1, None, "counted", _counted("drawn", "LC1", "40.00"))),
        # counted, then given back by an operator's resolution (not-applied): nets to nothing, not carried
        _deal(202, d2, DealEvent(d2, None, "counted", _counted("drawn", "LC1", "30.00")),
              DealEvent(d2, None, "released", {**_counted("drawn", "LC1", "30.00"), "outcome": "not-applied"})),
        # a daily total of a January day: no engine reads it again, not carried
        _deal(203, d3, DealEvent(d3, None, "counted", _counted("day", "A", "10.00", "2026-01-13"))),
    ]
    late = _deal(300, FEB + timedelta(days=5),
                 DealEvent(FEB + timedelta(days=5), None, "counted", _counted("drawn", "LC1", "5.00")))
    await fill(led, extra=[*extra, late])
    assert (await _rebuilt(led))[("drawn", "LC1", "EUR", "")] == Decimal("45.00")
    res = archive(bsp, led, arc)
    assert res.exit_code == 0, res.output
    assert q(led, "SELECT count(*) FROM deals WHERE deal_id = ?", [extra[0].deal_id]) == [(0,)]    # moved
    assert q(led, "SELECT total, key, currency, day, amount FROM archived_totals") == [
        ("drawn", "LC1", "EUR", "", Decimal("40.0000"))]
    got = await _rebuilt(led)
    assert got == {("drawn", "LC1", "EUR", ""): Decimal("45.00")}       # 40.00 archived + 5.00 live
    for args in (("--ledger", str(led), "--archive", str(arc)), ("--ledger", str(arc))):
        res = bsp("audit", "verify", *args)
        assert res.exit_code == 0, res.output
    # a second archive carries its own deals' totals; the first's stay
    arc2 = tmp_path / "2026-02.duckdb"
    res = archive(bsp, led, arc2, "2026-03-01")
    assert res.exit_code == 0, res.output
    assert (await _rebuilt(led)) == {("drawn", "LC1", "EUR", ""): Decimal("45.00")}
    res = bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc), "--archive", str(arc2))
    assert res.exit_code == 0, res.output


async def test_a_figure_moved_to_the_current_digest_then_given_back_under_the_old_is_taken_from_the_new(
        tmp_path: Path, bsp) -> None:
    """A classified key's figure counted under an old digest (J1, 40.00) is moved into its current digest's
    bucket by the key's next deal (J3: event `rekeyed`, then 30.00 counted); an operator then gives J1 back
    under the old digest it counted in (`released`): the 40.00 is taken from where it went, the current
    bucket holds J3's 30.00, at a restart and after the deals are archived (the old digest's rows keep the
    bucket they went into, `into_key`)."""
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    old, new = "#0123456789abcdef0123", "#k2:0123456789abcdef0123"
    d1, d3 = JAN + timedelta(days=1), JAN + timedelta(days=3)
    j1 = _deal(201, d1, DealEvent(d1, None, "counted", _counted("cap", old, "40.00")))
    j3 = _deal(203, d3, DealEvent(d3, None, "rekeyed", {**_counted("cap", new, "40.00"), "from": old}),
               DealEvent(d3, None, "counted", _counted("cap", new, "30.00")))
    late = _deal(300, FEB + timedelta(days=5))
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        await ledger.record_config("v1", {"/r/a.route": "route a {}"})
        await ledger.commit(j1)
        await ledger.commit(j3)
        await ledger.append_story(j1.deal_id, [], [DealEvent(d3, None, "released", {
            **_counted("cap", old, "40.00"), "outcome": "not-applied"})])
        await ledger.commit(late)
    assert await _rebuilt(led) == {("cap", new, "EUR", ""): Decimal("30.00")}
    res = archive(bsp, led, arc)
    assert res.exit_code == 0, res.output
    assert q(led, "SELECT count(*) FROM deals WHERE deal_id = ?", [j3.deal_id]) == [(0,)]
    assert await _rebuilt(led) == {("cap", new, "EUR", ""): Decimal("30.00")}
    assert bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc)).exit_code == 0
