"""``xs:decimal`` as XML Schema writes it: ``[+-]?(digits[.digits] | .digits)``, ASCII digits only.

Python's ``Decimal(text)`` takes more: an exponent (``1E3``), ``NaN``, ``Infinity``, underscores
(``1_000.00``) and the digits of any script (``١٢٠.50``).  None of these is an ISO 20022 amount, and
each would be read as a number nobody wrote (an exponent is also what a spreadsheet leaves when it
has rounded an amount), so an amount or a ``CtrlSum`` is read by ``xs_decimal``."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

XS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def xs_decimal(text: str) -> Decimal:
    """``text`` (already stripped) as a ``Decimal``; ``InvalidOperation`` when it is no ``xs:decimal``."""
    if not XS_DECIMAL.fullmatch(text):
        raise InvalidOperation(text)
    return Decimal(text)


__all__ = ["XS_DECIMAL", "xs_decimal"]
