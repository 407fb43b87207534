"""Amount helpers: ISO 8583 amounts travel as digit strings with an implied exponent.

The codec leaves DE 4/5/6/... as the digit text on the wire (``"000000001000"``)
because the exponent belongs to the currency (DE 49), not to the field.
"""
from __future__ import annotations

from decimal import Decimal

from formats.errors import FormatError


def to_decimal(digits: str, exponent: int = 2, *, field: str = "4") -> Decimal:
    """``to_decimal("000000001050", 2) == Decimal("10.50")``."""
    if not isinstance(digits, str) or not digits.isdigit():
        raise FormatError(f"amount {digits!r} is not digits", field=field)
    return Decimal(int(digits)).scaleb(-exponent)


def from_decimal(amount: Decimal, exponent: int = 2, width: int = 12, *, field: str = "4") -> str:
    """``from_decimal(Decimal("10.50")) == "000000001050"``; refuses fractions the exponent cannot hold."""
    if not isinstance(amount, Decimal):
        raise FormatError(f"amount must be a Decimal, got {type(amount).__name__}", field=field)
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value() or scaled < 0:
        raise FormatError(f"amount {amount} does not fit {exponent} decimal places / is negative", field=field)
    text = str(int(scaled))
    if len(text) > width:
        raise FormatError(f"amount {amount} needs {len(text)} digits, the field holds {width}", field=field)
    return text.zfill(width)
