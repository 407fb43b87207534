"""Decimal -> exact scaled integer, for every encoder of fixed-point numbers (copybook
packed / zoned / binary fields, ISO 8583 amounts)."""
from __future__ import annotations

import re
from decimal import Decimal


def exact_stored(value: Decimal, scale: int, max_digits: int) -> int | str:
    """``value * 10**scale`` as an exact int, or why it cannot be one: ``"places"`` (more decimal
    places than ``scale`` holds), ``"digits"`` (more than ``max_digits`` digits), ``"finite"``.

    Works on the digit tuple, never through a context: a context rounds a value with more
    significant digits than its precision (so 1.000...001 would pass as 1.00), and expanding
    1E+999999999 to an int would take minutes."""
    if not value.is_finite():
        return "finite"
    sign, digs, exp = value.as_tuple()
    exp += scale                                  # value * 10**scale = digs * 10**exp
    n = len(digs)
    while n > 1 and digs[n - 1] == 0 and exp < 0:  # trailing zeros below the point are not places
        n -= 1
        exp += 1
    if exp < 0 and any(digs[:n]):
        return "places"
    if not any(digs[:n]):
        return 0
    lead = next(i for i, d in enumerate(digs) if d)
    if n - lead + max(exp, 0) > max_digits:
        return "digits"
    v = int("".join(map(str, digs[:n])))
    v = v * 10 ** exp if exp >= 0 else v
    return -v if sign else v


_PLAIN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)


def plain_decimal(text: str) -> Decimal | None:
    """``text`` as a ``Decimal`` when it is an amount as a bank writes one: ASCII digits with an optional
    sign and decimal point (``120.50``, ``-3``, ``.5``), spaces, tabs and line breaks around it allowed;
    None otherwise.  ``Decimal(text)`` takes more, each an amount nobody wrote: an underscore (``1_000``),
    the digits of any script (``١٢٠.50``), an exponent (``1e3``, what a spreadsheet leaves of a rounded
    amount), ``NaN`` and ``Infinity``."""
    text = text.strip(" \t\r\n")
    if not _PLAIN.fullmatch(text):
        return None
    return Decimal(text)
