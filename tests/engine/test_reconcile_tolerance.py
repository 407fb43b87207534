"""``--tolerance`` per currency: a bare amount is one amount for every currency (as before), ``minor:N`` N minor
units of each currency (ISO 4217), ``CCY=AMOUNT`` one currency's.  Real DuckDB ledger files, real statement and
totals files, the command through typer's runner."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.commands.reconcile import register
from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reconcile import reconcile_file
from engine.reconcile.tolerance import Tolerance, ToleranceError
from engine.reconcile.totals import reconcile_totals

DAY = date(2026, 3, 2)
# reference, currency, ledger amount, statement amount: each off by one minor unit, or two
PAIRS = [("J-1", "JPY", "15000", "15001"), ("J-2", "JPY", "20000", "20002"),
         ("E-1", "EUR", "100.00", "100.01"), ("E-2", "EUR", "200.00", "200.02"),
         ("B-1", "BHD", "10.000", "10.001"), ("B-2", "BHD", "20.000", "20.002")]


async def _fill(path: Path) -> None:
    async with open_ledger(path) as ledger:
        for i, (ref, ccy, amount, _) in enumerate(PAIRS):
            t = datetime.combine(DAY, time(9, i), tzinfo=timezone.utc)
            await ledger.commit(DealRecord(
                deal_type="PAYMENT", route="payments", config_version="v1", channel="mainframe", status="committed",
                received_at=t, finished_at=t + timedelta(milliseconds=3), reference=ref, amount=Decimal(amount),
                currency=ccy, party="ACME"))


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "bsp.duckdb"
    trio.run(_fill, path)
    return path


@pytest.fixture
def stmt(tmp_path: Path) -> Path:
    p = tmp_path / "stmt.csv"
    p.write_text("Reference,Amount,Currency,Date\n" + "".join(f"{r},{s},{c},{DAY}\n" for r, c, _, s in PAIRS))
    return p


def _matched(rows) -> list[str]:
    return sorted(r.deal.reference for r in rows if r.status == "matched")


def test_one_minor_unit_of_each_currency(ledger: Path, stmt: Path) -> None:
    report, rows = reconcile_file(ledger, stmt, "csv", tolerance=Tolerance.parse(["minor:1"]))
    assert _matched(rows) == ["B-1", "E-1", "J-1"]
    notes = {r.deal.reference: r.note for r in rows}
    assert notes["J-1"] == "difference +1 within tolerance 1"
    assert notes["J-2"] == "statement +2 beyond tolerance 1"
    assert notes["B-2"] == "statement +0.002 beyond tolerance 0.001"
    assert report.params["tolerance"] == "minor:1 (of each currency)"


def test_a_bare_amount_keeps_its_meaning_for_every_currency(ledger: Path, stmt: Path) -> None:
    report, rows = reconcile_file(ledger, stmt, "csv", tolerance=Decimal("0.01"))
    # a cent of EUR; less than a yen (no JPY difference passes); 10 fils of BHD (both BHD lines pass)
    assert _matched(rows) == ["B-1", "B-2", "E-1"]
    assert report.params["tolerance"] == "0.01"
    assert _matched(reconcile_file(ledger, stmt, "csv", tolerance=Tolerance.parse("0.01"))[1]) == _matched(rows)


def test_one_currency_over_the_default(ledger: Path, stmt: Path) -> None:
    tol = Tolerance.parse(["0.01", "JPY=2", "BHD=0.001"])
    report, rows = reconcile_file(ledger, stmt, "csv", tolerance=tol)
    assert _matched(rows) == ["B-1", "E-1", "J-1", "J-2"]
    assert report.params["tolerance"] == "BHD=0.001, JPY=2, others 0.01"
    # a currency named by its number is the same currency: 978=0.02 is EUR's
    _, rows = reconcile_file(ledger, stmt, "csv", tolerance=Tolerance.parse(["978=0.02"]))
    assert _matched(rows) == ["E-1", "E-2"]


def test_totals_per_currency(ledger: Path, tmp_path: Path) -> None:
    eod = tmp_path / "eod.csv"
    eod.write_text("date,type,currency,dc,count,amount\n"
                   f"{DAY},PAYMENT,JPY,D,2,35002\n{DAY},PAYMENT,EUR,D,2,300.02\n{DAY},PAYMENT,BHD,D,2,30.002\n")
    _, rows = reconcile_totals(ledger, eod, tolerance=Tolerance.parse(["minor:2"]))
    got = {r.currency: (r.status, r.note) for r in rows}
    assert got == {"JPY": ("matched", "difference +2 within tolerance 2"),
                   "EUR": ("matched", "difference +0.02 within tolerance 0.02"),
                   "BHD": ("matched", "difference +0.002 within tolerance 0.002")}
    _, rows = reconcile_totals(ledger, eod, tolerance=Decimal("0.01"))
    assert {r.currency: r.status for r in rows} == {
        "JPY": "amount_differs", "EUR": "amount_differs", "BHD": "matched"}


@pytest.mark.parametrize("given, message", [
    (["1c"], "--tolerance '1c': expected a decimal amount such as 0.01"),
    (["-0.01"], "--tolerance '-0.01': must be zero or more"),
    (["1e-2"], "expected a decimal amount such as 0.01"),
    (["0.01", "minor:1"], "a default for every currency is given twice"),
    (["JPY=1", "jpy=2"], "JPY is given twice"),
    (["JPY=x"], "'x' is not one"),
])
def test_bad_tolerances_are_refused(given: list[str], message: str) -> None:
    with pytest.raises(ToleranceError) as err:
        Tolerance.parse(given)
    assert message in str(err.value)


def test_unlisted_currency_under_minor_is_exact() -> None:
    tol = Tolerance.parse(["minor:1"])
    assert (tol.of("XTS"), tol.of("JPY"), tol.of("392"), tol.of("KWD"), tol.of(None)) == (
        Decimal(0), Decimal(1), Decimal(1), Decimal("0.001"), Decimal(0))
    assert Tolerance.parse(["0.5"]).of("XTS") == Decimal("0.5")


def _run(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["reconcile", *args])


def test_cli_repeats_the_option(ledger: Path, stmt: Path) -> None:
    base = ("--ledger", str(ledger), "--against", str(stmt), "--type", "csv")
    r = _run(*base, "--tolerance", "minor:2")
    assert r.exit_code == 0, r.output
    r = _run(*base, "--tolerance", "minor:1", "--tolerance", "JPY=2,EUR=0.02")
    assert r.exit_code == 1 and "1 break(s)" in r.output, r.output      # B-2 only
    r = _run(*base, "--tolerance", "minor:1", "--tolerance", "0.5")
    assert r.exit_code == 2 and "given twice" in r.output
