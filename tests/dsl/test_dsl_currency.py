"""minor_units, fits_currency, from_minor and to_minor: an amount read and written at its currency's exponent
(ISO 4217 minor units), never a fixed 2: 000000012550 is 125.50 EUR, 12550 JPY and 12.550 BHD."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from dsl.compiler import compile_expr
from dsl.eval_error import EvalError
from dsl.load import compile_source
from dsl.parser import parse
from formats.currencies import MINOR_UNITS, NUMERIC

D = Decimal


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


@pytest.mark.parametrize("ccy, want", [("EUR", 2), ("eur", 2), ("978", 2), ("JPY", 0), ("392", 0), ("KRW", 0),
                                       ("KWD", 3), ("BHD", 3), ("048", 3), ("48", 3), ("OMR", 3), ("TND", 3),
                                       ("CLF", 4), ("990", 4), ("XXX", None), ("999", None), ("", None)])
def test_minor_units(ccy: str, want) -> None:
    assert ev("minor_units(msg.c)", msg={"c": ccy}) == want
    assert ev("minor_units(null)") is None


@pytest.mark.parametrize("amount, ccy, want", [
    (D("150000.00"), "JPY", True), (D("150000"), "392", True), (D("100.5"), "JPY", False), (7, "JPY", True),
    (D("1.234"), "BHD", True), (D("1.2345"), "BHD", False), (D("1.2340"), "KWD", True), (D("0.0001"), "CLF", True),
    (D("0.00001"), "CLF", False), (D("10.50"), "EUR", True), (D("10.505"), "EUR", False), (D("0.000"), "JPY", True),
    (D("1E+3"), "JPY", True), (D("10.50"), "XXX", False), (None, "EUR", False), ("10.50", "EUR", False),
    (D("10.50"), None, False), (D("1E+999999"), "EUR", True)])
def test_fits_currency(amount, ccy, want) -> None:
    assert ev("fits_currency(msg.a, msg.c)", msg={"a": amount, "c": ccy}) is want


@pytest.mark.parametrize("digits, ccy, want", [
    ("000000012550", "978", "125.50"), ("000000012550", "EUR", "125.50"), ("000000012550", "392", "12550"),
    ("000000012550", "048", "12.550"), ("000000012550", "KWD", "12.550"), ("000000012550", "CLF", "1.2550"),
    ("000000000000", "978", "0.00"), (12550, "JPY", "12550")])
def test_from_minor(digits, ccy, want) -> None:
    got = ev("from_minor(msg.n, msg.c)", msg={"n": digits, "c": ccy})
    assert got == D(want) and str(got) == want


@pytest.mark.parametrize("amount, ccy, want", [(D("125.50"), "EUR", 12550), (D("125.5"), "978", 12550),
                                               (12550, "JPY", 12550), (D("12550.00"), "392", 12550),
                                               (D("12.55"), "BHD", 12550), (D("0.00"), "EUR", 0)])
def test_to_minor(amount, ccy, want) -> None:
    assert ev("to_minor(msg.a, msg.c)", msg={"a": amount, "c": ccy}) == want
    assert ev('pad_left(to_minor(msg.a, msg.c), 12, "0")', msg={"a": amount, "c": ccy}) == str(want).zfill(12)


@pytest.mark.parametrize("text, words", [
    ('to_minor(100.5, "JPY")', "100.5 has more decimals than JPY has (0); round it first: round(x, 0)"),
    ('to_minor(1.2345, "BHD")', "more decimals than BHD has (3)"),
    ('from_minor("000000012550", "XYZ")', "currency 'XYZ' is not one bsp knows"),
    ('from_minor("000000012550", null)', "the currency is null"),
    ('from_minor("12.5", "EUR")', "not a whole number of minor units"),
    ('from_minor("1e3", "EUR")', "is not a number"),
])
def test_errors_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(EvalError, match=None) as info:
        ev(text)
    assert words in str(info.value), info.value


def test_null_amount_gives_null() -> None:
    assert ev('from_minor(null, "EUR")') is None and ev('to_minor(null, "EUR")') is None


def test_every_numeric_code_is_the_iso_4217_one() -> None:
    # the Debian iso-codes list, where the machine has it (no minor units there: the table's own)
    src = Path("/usr/share/iso-codes/json/iso_4217.json")
    assert set(NUMERIC.values()) == set(MINOR_UNITS) and len(NUMERIC) == len(MINOR_UNITS)
    if not src.is_file():
        pytest.skip("no /usr/share/iso-codes here")
    numeric = {c["alpha_3"]: c["numeric"] for c in json.loads(src.read_text(encoding="utf-8"))["4217"]}
    assert {n: a for n, a in NUMERIC.items() if numeric.get(a) != n} == {}


def test_check_knows_the_result_types(tmp_path, registry) -> None:
    src = '''channel front = memory
format Req = json
route r {
    receive from front as Req
    validate {
        fits_currency(msg.amount, msg.currency)   else reject "13" "too many decimals for the currency"
        minor_units(msg.currency) != null         else reject "57" "unknown currency"
    }
    reply Req { amount = from_minor(msg.minor, msg.currency)  minor = to_minor(msg.amount, msg.currency) }
}
'''
    r = compile_source(src, registry, tmp_path / "r.route")
    assert [d.code for d in r.diagnostics if d.severity == "error"] == [], r.diagnostics
    bad = compile_source(src.replace("fits_currency(msg.amount, msg.currency)", "fits_currency(msg.amount)"),
                         registry, tmp_path / "r.route")
    assert "E071" in [d.code for d in bad.diagnostics]
