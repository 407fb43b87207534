"""Content checks for ISO 8583 field values: character classes, dates and times, track 2.

The codec checks the *shape* of a field (digits for n, hex for b, the 4-bit set for
z); these checks look at what the value means, the way a network's spec does:

* character classes of the text types (ISO 8583:1987 §4.1):
  ``a`` letters, ``an`` letters and digits, ``as`` letters and specials, ``ns`` digits
  and specials, ``ans`` any printable character.  Space counts as a special and is
  also allowed in ``a`` / ``an`` (fixed fields are space padded).
* ``format:`` on a field: a date/time layout made of ``CCYY``/``YYYY``, ``YY``, ``MM``,
  ``DD``, ``hh``, ``mm``, ``ss`` (``MMDDhhmmss`` for DE 7, ``hhmmss`` DE 12, ``MMDD``
  DE 13/15-17, ``YYMM`` DE 14, ``YYMMDD`` DE 73), or ``track2`` (DE 35: PAN of
  1-19 digits, ``=`` or ``D`` separator, YYMM expiry, 3-digit service code, then
  discretionary data).

Each compiled check takes the decoded text and returns ``None`` when it is fine, or
``(index, message)``: the character index of the first problem and what is wrong.
With ``show=False`` (fields classified pan or secret) the message never quotes the
value or a character of it: it says which position is wrong (1-based) and why.
"""
from __future__ import annotations

import calendar
import re
import string
from typing import Callable

Check = Callable[[str], "tuple[int, str] | None"]

_PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F))
_LETTERS = frozenset(string.ascii_letters)
_DIGITS = frozenset(string.digits)
_SPECIALS = _PRINTABLE_ASCII - _LETTERS - _DIGITS       # includes space
CLASS_CHARS = {
    "a": _LETTERS | {" "},
    "an": _LETTERS | _DIGITS | {" "},
    "as": _LETTERS | _SPECIALS,
    "ns": _DIGITS | _SPECIALS,
}
CLASS_TEXT = {"a": "letters and spaces", "an": "letters, digits and spaces",
              "as": "letters, spaces and special characters", "ns": "digits, spaces and special characters",
              "ans": "printable characters"}

_TOKEN = re.compile(r"CCYY|YYYY|YY|MM|DD|hh|mm|ss")
_RANGES = {"MM": (1, 12, "month"), "DD": (1, 31, "day"), "hh": (0, 23, "hour"), "mm": (0, 59, "minute"),
           "ss": (0, 59, "second")}


def parse_date_format(fmt: str) -> list[tuple[str, int, int]] | None:
    """``"MMDDhhmmss"`` -> [("MM", 0, 2), ("DD", 2, 4), ...]; None if it is not made of known tokens."""
    out = []
    pos = 0
    while pos < len(fmt):
        m = _TOKEN.match(fmt, pos)
        if not m:
            return None
        out.append((m.group(), pos, m.end()))
        pos = m.end()
    tokens = [t for t, _, _ in out]
    if len(set(tokens)) != len(tokens) or not out:
        return None
    return out


FORMAT_HELP = ("a date/time layout of CCYY, YY, MM, DD, hh, mm, ss (e.g. MMDDhhmmss, hhmmss, MMDD, YYMM, "
               "YYMMDD) or track2")


def format_length(fmt: str) -> int | None:
    """The number of digits a date format takes, None for track2 / unknown."""
    parts = parse_date_format(fmt)
    return parts[-1][2] if parts else None


_SMALLEST = {"CCYY": "2000", "YYYY": "2000", "YY": "00", "MM": "01", "DD": "01", "hh": "00", "mm": "00", "ss": "00"}


def date_filler(fmt: str) -> str | None:
    """The smallest valid value of a date layout (``YYMM`` -> ``0001``, ``MMDDhhmmss`` -> ``0101000000``): a
    filler that carries nothing of a masked value and still passes ``date_check``; None for an unknown one."""
    parts = parse_date_format(fmt)
    return "".join(_SMALLEST[tok] for tok, _a, _b in parts) if parts else None


def date_check(fmt: str, show: bool = True) -> Check:
    parts = parse_date_format(fmt)
    if parts is None:
        raise ValueError(f"unknown date format {fmt!r}")
    width = parts[-1][2]
    ranged = [(tok, a, b) + _RANGES[tok] for tok, a, b in parts if tok in _RANGES]
    year = next(((a, b) for tok, a, b in parts if tok in ("YY", "CCYY", "YYYY")), None)
    day = next(((a, b) for tok, a, b in parts if tok == "DD"), None)
    month = next(((a, b) for tok, a, b in parts if tok == "MM"), None)

    def check(text: str) -> tuple[int, str] | None:
        if len(text) != width or not text.isdigit():
            if not show:
                return 0, f"the value is not a {fmt} value ({width} digits; {len(text)} characters given)"
            return 0, f"{text!r} is not a {fmt} value ({width} digits)"
        for tok, a, b, lo, hi, what in ranged:
            v = int(text[a:b])
            if not lo <= v <= hi:
                if not show:
                    return a, (f"the value is not a valid {fmt}: the {what} (positions {a + 1}-{b}) is outside "
                               f"{lo:0{b - a}}-{hi}")
                return a, f"{text!r} is not a valid {fmt}: {what} {text[a:b]} is outside {lo:0{b - a}}-{hi}"
        if day is not None and month is not None:
            m = int(text[month[0]:month[1]])
            d = int(text[day[0]:day[1]])
            if year is not None:
                y = int(text[year[0]:year[1]])
                if year[1] - year[0] == 2:
                    y += 2000
                last = calendar.monthrange(y, m)[1]
            else:
                last = 29 if m == 2 else calendar.monthrange(2001, m)[1]
            if d > last:
                if not show:
                    return day[0], f"the value is not a valid {fmt}: the day is past the end of its month"
                return day[0], f"{text!r} is not a valid {fmt}: month {m:02} has no day {d:02}"
        return None
    return check


def track2_check(text: str, show: bool = True) -> tuple[int, str] | None:
    """ISO/IEC 7813 track 2 without sentinels: PAN, separator, YYMM, service code, discretionary data.

    ``show=False``: messages name positions (1-based), never characters of the track."""
    n = len(text)
    i = 0
    while i < n and "0" <= text[i] <= "9":
        i += 1
    if i == 0:
        return 0, "track 2 must start with the card number (1-19 digits)"
    if i > 19:
        return 19, f"track 2 card number is {i} digits long, at most 19 allowed"
    if i == n or text[i] not in "=D":
        where = "ends" if i == n else (f"has {text[i]!r}" if show else f"has another character (position {i + 1})")
        return i, f"track 2 {where} after the card number; expected the separator '=' (or 'D')"
    i += 1
    exp = text[i:i + 4]
    if len(exp) < 4 or not exp.isdigit():
        got = f"got {exp!r}" if show else f"positions {i + 1}-{i + 4} are not 4 digits"
        return i, f"track 2 expiry date after the separator should be YYMM (4 digits), {got}"
    if not 1 <= int(exp[2:]) <= 12:
        if not show:
            return i + 2, f"track 2 expiry date (positions {i + 1}-{i + 4}) has a month outside 01-12"
        return i + 2, f"track 2 expiry date {exp} has month {exp[2:]}, expected 01-12"
    i += 4
    svc = text[i:i + 3]
    if len(svc) < 3 or not svc.isdigit():
        got = f"got {svc!r}" if show else f"positions {i + 1}-{i + 3} are not 3 digits"
        return i, f"track 2 service code after the expiry date should be 3 digits, {got}"
    i += 3
    for j in range(i, n):
        if text[j] not in "0123456789ABCDEF=":
            if not show:
                return j, f"character {j + 1} is not allowed in track 2 discretionary data (0-9, A-F, '=')"
            return j, f"{text[j]!r} is not allowed in track 2 discretionary data"
    return None


def class_check(ftype: str, show: bool = True) -> Check | None:
    if ftype == "ans":
        def check(text: str) -> tuple[int, str] | None:
            if text.isprintable():
                return None
            bad = next(i for i, c in enumerate(text) if not c.isprintable())
            if not show:
                return bad, f"character {bad + 1} of {len(text)} is not a printable character (type ans)"
            return bad, f"{text[bad]!r} is not a printable character (type ans)"
        return check
    allowed = CLASS_CHARS.get(ftype)
    if allowed is None:
        return None
    what = CLASS_TEXT[ftype]

    def check_class(text: str) -> tuple[int, str] | None:
        if allowed.issuperset(text):
            return None
        bad = next(i for i, c in enumerate(text) if c not in allowed)
        if not show:
            return bad, f"character {bad + 1} of {len(text)} is not allowed in a type {ftype} field ({what} only)"
        return bad, f"{text[bad]!r} is not allowed in a type {ftype} field ({what} only)"
    return check_class


def compile_content(ftype: str, fmt: str | None, show: bool = True) -> Check | None:
    """The content check for a field of type ``ftype`` with optional ``format``; None when nothing to check.
    ``show=False``: messages without the value (fields classified pan or secret)."""
    checks: list[Check] = []
    cls = class_check(ftype, show)
    if cls is not None:
        checks.append(cls)
    if fmt == "track2":
        checks.append(track2_check if show else lambda text: track2_check(text, False))
    elif fmt:
        checks.append(date_check(fmt, show))
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def both(text: str) -> tuple[int, str] | None:
        for c in checks:
            r = c(text)
            if r is not None:
                return r
        return None
    return both
