"""The identifiers in the services' tables (routes/*/*.csv) are well formed, check digits included: an
analyst copies these tables, and a route that looks an ISIN or a BIC up there accepts exactly what the
table holds.

* every ISIN (a column named ``isin``) is ISO 6166: 2 letters, 9 letters or digits, and the check digit
  (letters read as 10..35, then the Luhn sum over the digits);
* every BIC (a column named ``bic``) is ISO 9362: 4 letters, the 2 letters of the row's ``country``,
  2 letters or digits, and an optional 3-character branch.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROUTES = Path(__file__).resolve().parents[2] / "routes"


def isin_valid(s: str) -> bool:
    if not re.fullmatch(r"[A-Z]{2}[A-Z0-9]{9}[0-9]", s):
        return False
    digits = "".join(str(int(c, 36)) for c in s[:-1])
    total = 0
    for i, ch in enumerate(reversed(digits)):      # the rightmost digit (next to the check digit) is doubled
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10 == int(s[-1])


def test_isin_check_digit_examples() -> None:
    assert isin_valid("US0378331005")          # Apple
    assert isin_valid("DE000BAY0017")          # Bayer
    assert isin_valid("XS2100000004")
    assert not isin_valid("US0378331006")
    assert not isin_valid("XS2100000001")


def _rows(column: str) -> list[tuple[str, int, dict[str, str]]]:
    out = []
    for path in sorted(ROUTES.glob("*/*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if column not in (reader.fieldnames or []):
                continue
            for line, row in enumerate(reader, start=2):
                out.append((f"{path.relative_to(ROUTES.parent)}:{line}", line, row))
    return out


ISIN_ROWS = _rows("isin")
BIC_ROWS = _rows("bic")


def test_tables_hold_isins_and_bics() -> None:
    assert len(ISIN_ROWS) >= 6 and len(BIC_ROWS) >= 7


@pytest.mark.parametrize("where,line,row", ISIN_ROWS, ids=[w for w, _, _ in ISIN_ROWS])
def test_isin_check_digit(where: str, line: int, row: dict[str, str]) -> None:
    assert isin_valid(row["isin"]), f"{where}: {row['isin']!r} is not an ISIN (ISO 6166 check digit wrong)"


@pytest.mark.parametrize("where,line,row", BIC_ROWS, ids=[w for w, _, _ in BIC_ROWS])
def test_bic_form(where: str, line: int, row: dict[str, str]) -> None:
    bic = row["bic"]
    assert re.fullmatch(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?", bic), f"{where}: {bic!r} is not a BIC"
    if row.get("country"):
        assert bic[4:6] == row["country"], f"{where}: BIC {bic} is not of the row's country {row['country']}"


def test_card_currencies_minor_units_are_the_ones_the_route_applies() -> None:
    """card_payments.route reads DE 4 (minor units) as ``from_minor(msg["4"], msg["49"])``, the currency's ISO
    4217 exponent (formats/currencies.py): card_currencies.csv's minor_units column says the same for every
    row, and every permitted currency is one that table lists (a JPY row is 0 and is read as yen, never as
    hundredths; until 2026-11-27 the route divided by a fixed 100)."""
    from formats.currencies import alpha_code, minor_units
    with (ROUTES / "card_payments" / "card_currencies.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and 'from_minor(msg["4"], msg["49"])' in (ROUTES / "card_payments" / "card_payments.route").read_text(
        encoding="utf-8")
    for r in rows:
        assert alpha_code(r["numeric"]) == r["alpha"], r
        assert minor_units(r["numeric"]) == int(r["minor_units"]), r



def test_card_limits_name_a_permitted_currency_and_fit_it() -> None:
    """card_bins.csv's single_limit is an amount in its limit_currency (the card's billing currency): each row
    names a currency card_currencies.csv permits (else every purchase on the card is refused, 57), and the
    limit has no more decimals than that currency has."""
    from decimal import Decimal
    from formats.currencies import too_fine
    with (ROUTES / "card_payments" / "card_currencies.csv").open(newline="", encoding="utf-8") as f:
        permitted = {r["alpha"] for r in csv.DictReader(f)}
    with (ROUTES / "card_payments" / "card_bins.csv").open(newline="", encoding="utf-8") as f:
        bins = list(csv.DictReader(f))
    assert bins and all(r.get("limit_currency") for r in bins), "card_bins.csv: a limit_currency for every row"
    for r in bins:
        assert r["limit_currency"] in permitted, r
        assert too_fine(Decimal(r["single_limit"]), r["limit_currency"]) is None, r

CUTOFF_ROWS = _rows("cutoff")


def test_the_fund_tables_hold_cutoffs() -> None:
    # funds.csv, sub_funds.csv, fund_companies.csv (docs/services/fund_management.md#dealing-days-and-the-cut-off)
    assert len({w.split(":")[0] for w, _, _ in CUTOFF_ROWS}) >= 3


@pytest.mark.parametrize("where,line,row", CUTOFF_ROWS, ids=[w for w, _, _ in CUTOFF_ROWS])
def test_cutoff_is_a_time_value_date_reads(where: str, line: int, row: dict[str, str]) -> None:
    """A table's `accept_until` reaches value_date() at run time, where bsp check cannot see it: a cell it
    cannot read ("3pm", "15.00") would fail every order of that fund (96) instead of being caught here. It is
    the fund's `cutoff` and the time an order takes to reach bsp: never before the cut-off itself."""
    from dsl.calendars import cutoff_problem
    for column in ("cutoff", "accept_until"):
        assert cutoff_problem(row[column]) is None, f"{where}: {column}: {cutoff_problem(row[column])}"
    assert row["accept_until"] >= row["cutoff"], f"{where}: accept_until {row['accept_until']} is before the cut-off"


UNIT_ROWS = _rows("unit_dp")


@pytest.mark.parametrize("where,line,row", UNIT_ROWS, ids=[w for w, _, _ in UNIT_ROWS])
def test_a_funds_minimum_redemption_is_in_its_own_units(where: str, line: int, row: dict[str, str]) -> None:
    """fund_management.route refuses units finer than `unit_dp` and fewer than `min_redemption`: a minimum
    with more decimals than the fund's units (or a unit_dp the UNITS field cannot carry, 4) would refuse
    every redemption at the minimum itself."""
    from decimal import Decimal
    dp = int(row["unit_dp"])
    assert 0 <= dp <= 4, f"{where}: unit_dp {dp}: UNITS (PIC S9(11)V9(4)) carries 4 decimals at most"
    minimum = Decimal(row["min_redemption"])
    assert minimum > 0 and minimum == minimum.quantize(Decimal(1).scaleb(-dp)), \
        f"{where}: min_redemption {minimum} is not a whole number of the fund's units (0.{'0' * (dp - 1)}1)"


HEADER_BIC_ROWS = _rows("header_bic")


@pytest.mark.parametrize("where,line,row", HEADER_BIC_ROWS, ids=[w for w, _, _ in HEADER_BIC_ROWS])
def test_header_bic_form(where: str, line: int, row: dict[str, str]) -> None:
    """pools.csv's header_bic is the MT101's field 57A of an upward sweep (docs/services/fund_consolidation.md)."""
    assert re.fullmatch(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?", row["header_bic"]), where


_TABLE = re.compile(r'^\s*table\s+(\w+)\s*=\s*csv\s+"([^"]+)"', re.M)
_ROUNDED_CELL = (re.compile(r'round\(lookup\((\w+),[^,()]+(?:\([^()]*\))?[^,()]*,\s*"(\w+)"[^()]*\),\s*(\d+)\)'),
                 re.compile(r'round\((\w+)\[(?:[^\[\]]|\[[^\]]*\])+\]\.(\w+),\s*(\d+)\)'))


def _rounded_cells() -> list[tuple[str, Path, str, int]]:
    """Every table cell a route reads with round(cell, n): (where, csv file, column, n)."""
    found = []
    for route in sorted(ROUTES.rglob("*.route")):
        if route.name.endswith("_test.route"):
            continue
        text = route.read_text(encoding="utf-8")
        tables = {name: (route.parent / file) for name, file in _TABLE.findall(text)}
        for pattern in _ROUNDED_CELL:
            for m in pattern.finditer(text):
                table, column, places = m.groups()
                if table in tables:
                    line = text.count("\n", 0, m.start()) + 1
                    found.append((f"{route.relative_to(ROUTES)}:{line}", tables[table], column, int(places)))
    return found


ROUNDED_CELLS = _rounded_cells()


def test_the_rounded_cells_are_found() -> None:
    assert len(ROUNDED_CELLS) >= 7, ROUNDED_CELLS


@pytest.mark.parametrize("where, path, column, places", ROUNDED_CELLS, ids=[w for w, *_ in ROUNDED_CELLS])
def test_a_table_cell_read_with_round_has_no_more_decimals_than_it_keeps(where: str, path: Path, column: str,
                                                                        places: int) -> None:
    """A route reads a table's number as round(cell, n) (a NAV to 4 places, a limit to 2): a cell with more
    decimals (a NAV of 1.234567 from the fund company's file) would be rounded by the route without a word.
    Every cell has at most the n decimals the route keeps (docs/money.md)."""
    with path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            cell = row[column].strip()
            decimals = len(cell.partition(".")[2])
            assert decimals <= places, (f"{path.relative_to(ROUTES)}:{n}: {column} {cell!r} has {decimals} "
                                        f"decimals; {where} rounds it to {places}")


def test_bonds_cashed_early_have_their_terms() -> None:
    """routes/bond_cashing/bonds.csv: a bond the early_encashment route cashes (``early_encash`` Y) names the
    first day it may be (``early_from``, a date before its maturity) and its penalty (``early_penalty``, a
    percentage of the principal, 0 to 100, at most 4 decimals); a Y row without them would fail every BC03
    claim as an internal error (96), and a row that is neither Y nor N is refused here, not read as N."""
    import datetime as dt
    from decimal import Decimal
    path = ROUTES / "bond_cashing" / "bonds.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert any(r["early_encash"] == "Y" for r in rows) and any(r["early_encash"] == "N" for r in rows)
    for line, r in enumerate(rows, start=2):
        where = f"{path.name}:{line} ({r['isin']})"
        assert r["early_encash"] in ("Y", "N"), f"{where}: early_encash is Y or N, got {r['early_encash']!r}"
        if r["early_encash"] != "Y":
            continue
        try:
            start, maturity = dt.date.fromisoformat(r["early_from"]), dt.date.fromisoformat(r["maturity"])
        except ValueError as e:
            raise AssertionError(f"{where}: early_from and maturity are dates YYYY-MM-DD ({e})") from None
        assert start < maturity, f"{where}: early_from {start} is not before the maturity {maturity}"
        penalty = Decimal(r["early_penalty"])
        assert 0 <= penalty <= 100 and penalty == penalty.quantize(Decimal("0.0001")), \
            f"{where}: early_penalty is a percentage with at most 4 decimals, got {r['early_penalty']!r}"


def test_declared_dividends_are_found_and_readable() -> None:
    """routes/fund_management/fund_dividends.csv: the dividend routes look a dividend up as FUND-CODE-YYYYMMDD
    (the fund and the ex-date the mainframe sends), so a row whose id is not its fund and ex-date written so is
    never found (every holding refused 14); its fund is in funds.csv, its dividend a unit a positive number with
    at most 6 decimals, and its reinvestment NAV blank (cash only) or a positive number with at most 4 decimals
    (the route reads them at 6 and 4: a finer cell would be rounded there, paying another dividend)."""
    import datetime as dt
    from decimal import Decimal
    folder = ROUTES / "fund_management"
    with (folder / "funds.csv").open(newline="", encoding="utf-8") as f:
        funds = {r["fund_code"] for r in csv.DictReader(f)}
    with (folder / "fund_dividends.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert any(r["reinvest_nav"] for r in rows) and any(not r["reinvest_nav"] for r in rows)
    for line, r in enumerate(rows, start=2):
        where = f"fund_dividends.csv:{line} ({r['dividend_id']})"
        ex = dt.date.fromisoformat(r["ex_date"])
        assert r["dividend_id"] == f"{r['fund_code']}-{ex:%Y%m%d}", f"{where}: the id is FUND-CODE-YYYYMMDD of its ex_date"
        assert r["fund_code"] in funds, f"{where}: fund {r['fund_code']} is not in funds.csv"
        per_unit = Decimal(r["per_unit"])
        assert per_unit > 0 and per_unit == per_unit.quantize(Decimal("0.000001")), f"{where}: per_unit {per_unit}"
        if r["reinvest_nav"]:
            nav = Decimal(r["reinvest_nav"])
            assert nav > 0 and nav == nav.quantize(Decimal("0.0001")), f"{where}: reinvest_nav {nav}"
