"""Specific wording for common slips, next to the example table of ``dsl.syntax_errors``.

Each function looks at one kind of mistake and returns a ``Diagnostic`` when
it recognises it, else None: a number run into letters (``3sec``, ``1e5``),
characters from other languages (``&&``, ``:``, ``!``), an unterminated string.
"""
from __future__ import annotations

import re
from decimal import Decimal

from dsl.diagnostics import ERROR, Diagnostic
from dsl.ir import Pos

_EXPONENT = re.compile(r"[0-9]+(\.[0-9]+)?[eE][+-]?[0-9]+")
_UNITS = (("ms", "ms"), ("milli", "ms"), ("s", "s"), ("min", "m"), ("m", "m"), ("h", "h"))


def bad_number(text: str, pos: Pos) -> Diagnostic:
    """E016 for a BAD_NUMBER token: digits run into letters that make no duration."""
    if _EXPONENT.fullmatch(text):
        plain = format(Decimal(text), "f")      # the pattern admits only valid numbers
        return Diagnostic("E016", ERROR, f"exponent notation is not supported: write {plain}", pos,
                          "numbers are exact decimals, written in full (`100000`, `0.0015`)")
    digits = re.match(r"[0-9]+(\.[0-9]+)?", text).group(0)
    letters = text[len(digits):].lower()
    unit = next((u for prefix, u in _UNITS if letters.startswith(prefix)), None)
    if unit is not None:
        return Diagnostic("E016", ERROR, f"`{text}` is not a duration", pos,
                          f"write a number and a unit: ms, s, m or h (e.g. {digits}{unit})")
    return Diagnostic("E016", ERROR, f"`{text}` is not a number", pos,
                      "a number is digits (`42`, `120.50`); a duration is a number and a unit: "
                      "ms, s, m or h (e.g. 3s); put a space between a number and a word")
