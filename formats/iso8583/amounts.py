"""Amount helpers: ISO 8583 amounts travel as digit strings with an implied exponent.

The codec leaves DE 4/5/6/... as the digit text on the wire (``"000000001000"``)
because the exponent belongs to the currency (DE 49), not to the field.
"""
from __future__ import annotations

from decimal import Decimal

from formats.errors import FormatError
from formats.exact import exact_stored     # exact: no context rounds the amount


def to_decimal(digits: str, exponent: int = 2, *, field: str = "4") -> Decimal:
    """``to_decimal("000000001050", 2) == Decimal("10.50")``."""
    if not isinstance(digits, str) or not (digits.isascii() and digits.isdigit()):
        raise FormatError(f"amount {digits!r} is not digits", field=field)
    return Decimal(int(digits)).scaleb(-exponent)


def from_decimal(amount: Decimal, exponent: int = 2, width: int = 12, *, field: str = "4") -> str:
    """``from_decimal(Decimal("10.50")) == "000000001050"``; refuses fractions the exponent cannot hold."""
    if not isinstance(amount, Decimal):
        raise FormatError(f"amount must be a Decimal, got {type(amount).__name__}", field=field)
    scaled = exact_stored(amount, exponent, width)
    if scaled == "finite":
        raise FormatError(f"amount {amount} is not a finite number", field=field)
    if scaled == "places":
        raise FormatError(f"amount {amount} has more than {exponent} decimal places", field=field,
                          hint="round the amount to the currency's exponent first")
    if scaled == "digits":
        raise FormatError(f"amount {amount} needs more than the {width} digits the field holds", field=field)
    assert isinstance(scaled, int)
    if scaled < 0:
        raise FormatError(f"amount {amount} is negative; the field carries no sign", field=field,
                          hint="the debit/credit indication travels elsewhere (a processing code, or an x+n field)")
    return str(scaled).zfill(width)
