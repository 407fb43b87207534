"""Currency functions of the route language: ISO 4217 minor units (``minor_units``), whether an amount fits its
currency (``fits_currency``), and amounts counted in minor units as ISO 8583 DE 4 carries them (``from_minor``,
``to_minor``: the exponent is the currency's, DE 49's, never a fixed 2).  Registered into ``dsl.functions``'
tables, as ``dsl.statements`` is; the table is ``formats/currencies.py`` (the SWIFT and ISO 20022 writers')."""
from __future__ import annotations

from decimal import Decimal, Inexact
from typing import Any, Callable

from dsl.money import EXACT, MAX_DIGITS
from dsl.functions import FUNCTIONS, SIGNATURES, FunctionError, Sig, _num, _str
from formats.currencies import MINOR_UNITS, alpha_code, minor_units
from formats.exact import exact_stored

RESULTS = {"minor_units": "integer", "fits_currency": "bool", "from_minor": "decimal", "to_minor": "integer"}


def _places(ccy: Any, fn: str) -> tuple[str, int]:
    if ccy is None:
        raise FunctionError(f"{fn}: the currency is null")
    text = _str(ccy, fn)
    alpha = alpha_code(text)
    if alpha is None:
        shown = text if len(text) <= 12 else text[:9] + "..."
        raise FunctionError(f"{fn}: currency {shown!r} is not one bsp knows the minor units of (ISO 4217 letters "
                            f"such as EUR or numbers such as 978: docs/money.md); check minor_units(c) != null "
                            f"first")
    return alpha, MINOR_UNITS[alpha]


def f_minor_units(ccy: Any) -> int | None:
    """2 for EUR or "978", 0 for JPY, 3 for BHD, 4 for CLF; null for null or a code the table does not list."""
    if ccy is None:
        return None
    return minor_units(_str(ccy, "minor_units"))


def f_fits_currency(amount: Any, ccy: Any) -> bool:
    """True when ``amount`` has no more decimals than its currency has (150000.00 JPY fits: trailing zeros are
    no decimals); false for null, text, an unlisted currency or one decimal too many.  Never fails."""
    if isinstance(amount, bool) or not isinstance(amount, (int, Decimal)) or ccy is None:
        return False
    if isinstance(ccy, (dict, list, tuple)):
        return False
    places = minor_units(_str(ccy, "fits_currency"))
    if places is None:
        return False
    if isinstance(amount, int):
        return True
    if not amount.is_finite():
        return False
    _, digits, exp = amount.as_tuple()
    assert isinstance(exp, int)
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))   # trailing zeros are no decimals
    return not any(digits) or exp + zeros >= -places


def f_from_minor(n: Any, ccy: Any) -> Decimal | None:
    """The amount ``n`` minor units make: from_minor("000000012550", "978") is 125.50, in JPY ("392") 12550, in BHD
    ("048") 12.550; null n gives null."""
    if n is None:
        return None
    count = _num(n, "from_minor")
    if isinstance(count, Decimal):
        if count != count.to_integral_value():
            raise FunctionError(f"from_minor: {n!r} is not a whole number of minor units")
        count = int(count)
    _, places = _places(ccy, "from_minor")
    try:
        return Decimal(count).scaleb(-places, context=EXACT)
    except Inexact:
        raise FunctionError(f"from_minor: {str(count)[:20]}... has more than {MAX_DIGITS:,} digits") from None


def f_to_minor(amount: Any, ccy: Any) -> int | None:
    """The whole number of minor units ``amount`` is: to_minor(125.50, "EUR") is 12550, to_minor(12550, "JPY")
    12550; an amount with more decimals than the currency has fails (it is never rounded); null gives null."""
    if amount is None:
        return None
    v = _num(amount, "to_minor")
    alpha, places = _places(ccy, "to_minor")
    stored = exact_stored(Decimal(v), places, 1000)
    if stored == "places":
        raise FunctionError(f"to_minor: {v} has more decimals than {alpha} has ({places}); round it first: "
                            f"round(x, {places})")
    if not isinstance(stored, int):
        raise FunctionError(f"to_minor: {v} is not an amount (finite, at most 1,000 digits)")
    return stored


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "minor_units": f_minor_units, "fits_currency": f_fits_currency, "from_minor": f_from_minor,
    "to_minor": f_to_minor,
}

_SIGNATURES: dict[str, Sig] = {
    "minor_units": Sig(1, 1, ("ccy",), ("string",),
                       "how many decimals an amount in the currency ccy has (ISO 4217 minor units): 2 for \"EUR\" or "
                       "\"978\", 0 for \"JPY\" and \"KRW\", 3 for \"BHD\", \"KWD\", \"OMR\" and \"TND\", 4 for "
                       "\"CLF\"; letters in any case or the number; null for null or a currency bsp does not list "
                       "([money](money.md#currencies))"),
    "fits_currency": Sig(2, 2, ("x", "ccy"), ("number", "string"),
                         "true when the amount x has no more decimals than its currency ccy has (150000.00 JPY "
                         "fits, 100.5 JPY and 1.2345 BHD do not); false for null, text, or a currency bsp does "
                         "not list; never fails: `fits_currency(msg.amount, msg.currency) else reject ...`"),
    "from_minor": Sig(2, 2, ("n", "ccy"), ("any", "string"),
                      "the amount n minor units of ccy make, the currency's exponent applied: "
                      "from_minor(\"000000012550\", \"978\") is 125.50, with \"392\" (JPY) 12550, with \"048\" "
                      "(BHD) 12.550: ISO 8583 DE 4 read with DE 49's currency; null n gives null; a currency bsp "
                      "does not list fails the request"),
    "to_minor": Sig(2, 2, ("x", "ccy"), ("number", "string"),
                    "the whole number of minor units the amount x is in ccy: to_minor(125.50, \"EUR\") is 12550, "
                    "to_minor(12550, \"JPY\") 12550; more decimals than the currency has fails (never rounded); "
                    "pad_left(to_minor(x, c), 12, \"0\") is an ISO 8583 DE 4; null x gives null"),
}

FUNCTIONS.update(_FUNCTIONS)
SIGNATURES.update(_SIGNATURES)
