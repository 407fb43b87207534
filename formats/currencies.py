"""ISO 4217 minor units: how many decimals an amount in a currency has.  Shared by the SWIFT writer
(network validated rule C03) and the ISO 20022 writer (an amount written at its currency's scale)."""
from __future__ import annotations

from decimal import Decimal

# Currencies not listed are not checked (SWIFT rule C03: an amount has at most as many decimals as its currency).
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
    **dict.fromkeys(("AED", "ARS", "AUD", "BGN", "BRL", "CAD", "CHF", "CNY", "COP", "CZK", "DKK", "EGP", "EUR",
                     "GBP", "HKD", "HUF", "IDR", "ILS", "INR", "KES", "MAD", "MXN", "MYR", "NGN", "NOK", "NZD",
                     "PEN", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SEK", "SGD", "THB", "TRY",
                     "TWD", "UAH", "USD", "ZAR"), 2),
}

# ISO 4217 numeric codes of the currencies above (ISO 8583 DE 49, ISO 20022 and SWIFT carry the letters)
NUMERIC: dict[str, str] = {
    "108": "BIF", "152": "CLP", "262": "DJF", "324": "GNF", "352": "ISK", "392": "JPY", "174": "KMF", "410": "KRW",
    "600": "PYG", "646": "RWF", "800": "UGX", "940": "UYI", "704": "VND", "548": "VUV", "950": "XAF", "952": "XOF",
    "953": "XPF",
    "048": "BHD", "368": "IQD", "400": "JOD", "414": "KWD", "434": "LYD", "512": "OMR", "788": "TND",
    "990": "CLF", "927": "UYW",
    "784": "AED", "032": "ARS", "036": "AUD", "975": "BGN", "986": "BRL", "124": "CAD", "756": "CHF", "156": "CNY",
    "170": "COP", "203": "CZK", "208": "DKK", "818": "EGP", "978": "EUR", "826": "GBP", "344": "HKD", "348": "HUF",
    "360": "IDR", "376": "ILS", "356": "INR", "404": "KES", "504": "MAD", "484": "MXN", "458": "MYR", "566": "NGN",
    "578": "NOK", "554": "NZD", "604": "PEN", "608": "PHP", "586": "PKR", "985": "PLN", "634": "QAR", "946": "RON",
    "941": "RSD", "643": "RUB", "682": "SAR", "752": "SEK", "702": "SGD", "764": "THB", "949": "TRY", "901": "TWD",
    "980": "UAH", "840": "USD", "710": "ZAR",
}


def alpha_code(code: str) -> str | None:
    """The letters of a currency given by its letters (``"jpy"``, ``" JPY "``) or ISO 4217 number (``"392"``,
    ``"48"`` for ``"048"``); None for a code this table does not list."""
    text = code.strip()
    if text.isascii() and text.isdigit() and 1 <= len(text) <= 3:
        return NUMERIC.get(text.zfill(3))
    text = text.upper()
    return text if text in MINOR_UNITS else None


def minor_units(code: str) -> int | None:
    """How many decimals an amount in the currency ``code`` (letters or number) has; None when not listed."""
    alpha = alpha_code(code)
    return None if alpha is None else MINOR_UNITS[alpha]


def decimals(amount: Decimal | int) -> int:
    """How many decimals a finite ``amount`` carries, trailing zeros not counted (never rounded, no
    context): ``150000.00`` has 0, ``100.50`` 1, ``12.345`` 3, ``1E+3`` 0."""
    if isinstance(amount, int):
        return 0
    _, digits, exp = amount.as_tuple()
    assert isinstance(exp, int)
    if exp >= 0 or not any(digits):
        return 0
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))   # trailing zeros are no decimals
    return max(0, -(exp + zeros))


_BY_CODE: dict[str, tuple[str, int] | None] = {}      # a code as given -> (letters, minor units), or None
_MISS = object()


def _listed(code: str) -> tuple[str, int] | None:
    hit = _BY_CODE.get(code, _MISS)
    if hit is _MISS:
        alpha = alpha_code(code)
        hit = None if alpha is None else (alpha, MINOR_UNITS[alpha])
        if len(_BY_CODE) < 4096:          # codes a sender makes up do not grow it without end
            _BY_CODE[code] = hit
    return hit  # type: ignore[return-value]


def listed_places(code: str) -> int | None:
    """The minor units of the currency ``code`` (letters or number) as ``too_fine`` reads them (the look-up
    cached); None when the table does not list it."""
    hit = _listed(code)
    return None if hit is None else hit[1]


def too_fine(amount: object, code: object, text: str | None = None) -> tuple[str, int, int] | None:
    """``(letters, minor units, decimals)`` when ``amount`` (a Decimal or int) has more decimals than the
    currency ``code`` (letters or ISO 4217 number) has: ``too_fine(Decimal("100.5"), "JPY")`` is
    ``("JPY", 0, 1)``.  None when it fits, when the currency is not listed (nothing to check it against) or
    either is not one.  On the deal step's path: ~0.4 us (the code's look-up cached, the decimals read from
    the amount's text; ``text``: ``str(amount)`` of a Decimal, when the caller has it)."""
    if type(code) is not str or isinstance(amount, bool):
        return None
    listed = _listed(code)
    if listed is None:
        return None
    if type(amount) is Decimal:
        if text is None:
            text = str(amount)
        if "E" in text or not text[-1].isdigit():       # an exponent, NaN, Infinity: read from its digits
            if not amount.is_finite():
                return None
            have = decimals(amount)
        else:
            dot = text.find(".")
            have = 0 if dot < 0 else len(text) - dot - 1 - (len(text) - len(text.rstrip("0")))
    elif isinstance(amount, (int, Decimal)):
        if isinstance(amount, Decimal) and not amount.is_finite():
            return None
        have = decimals(amount)
    else:
        return None
    alpha, places = listed
    return (alpha, places, have) if have > places else None
