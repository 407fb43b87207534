"""``formats.currencies.too_fine``: an amount with more decimals than its currency's ISO 4217 minor units, the
check the deal step and the ISO 20022 writer share; trailing zeros are no decimals, nothing is rounded."""
from __future__ import annotations

from decimal import Decimal

import pytest

from formats.currencies import decimals, too_fine


@pytest.mark.parametrize("amount, ccy, expected", [
    ("100.5", "JPY", ("JPY", 0, 1)), ("150000.00", "JPY", None), ("150000", "392", None),
    ("12.345", "EUR", ("EUR", 2, 3)), ("12.340", "eur", None), ("12.34", "978", None),
    ("1.2345", "048", ("BHD", 3, 4)), ("1.2340", "BHD", None), ("1.23456", "CLF", ("CLF", 4, 5)),
    ("-100.50", "JPY", ("JPY", 0, 1)), ("0.000", "JPY", None), ("-0.00", "JPY", None),
    ("1E+3", "JPY", None), ("1E-3", "EUR", ("EUR", 2, 3)), ("1.0E-2", "EUR", None),
    ("1.5", "XTS", None), ("NaN", "JPY", None), ("Infinity", "EUR", None),
])
def test_too_fine(amount: str, ccy: str, expected) -> None:
    assert too_fine(Decimal(amount), ccy) == expected


def test_not_an_amount_or_a_currency_is_not_checked() -> None:
    assert too_fine(7, "JPY") is None and too_fine(True, "JPY") is None and too_fine("100.5", "JPY") is None
    assert too_fine(Decimal("100.5"), None) is None and too_fine(Decimal("100.5"), 392) is None


@pytest.mark.parametrize("text", ["0", "10", "10.10", "1E+5", "1.000E-7", "-3.14159", "123456789012345678901.5"])
def test_decimals_from_text_and_digits_agree(text: str) -> None:
    d = Decimal(text)
    _, digits, exp = d.as_tuple()
    want = max(0, -exp - (len(digits) - len("".join(map(str, digits)).rstrip("0")))) if any(digits) else 0
    assert decimals(d) == want
    fine = too_fine(d, "JPY")
    assert (fine[2] if fine else 0) == want
