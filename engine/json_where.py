"""Where a field is in one line of JSON text: ``bsp encode`` names the column of the key an error is about.

    where(b'{"A": 1, "COLOUR": "red"}', "COLOUR")     # (10, 9): column 10, byte 9 of the line
    where(line, "STATIC_DETAILS.COMPANY_NAME")          # the key inside the object under STATIC_DETAILS
    where(line, "ITEMS[2].AMOUNT")                      # list items by index; the item itself for "ITEMS[2]"
    where(b'{"fx.rate": "x"}', "fx.rate")               # a key holding a dot: (2, 1)

A field path is the ``FormatError.field`` of an encoder (dotted keys, ``[i]`` for list items).  Only the
path is followed: the rest of the line is skipped with the stdlib decoder, so a long line costs one scan.
None when the path is not in the line (a field the error says is missing) or the line is not JSON.
"""
from __future__ import annotations

import json
import re

_STEP = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


def steps(path: str) -> list[str | int]:
    """``"A.B[2].C"`` -> ``["A", "B", 2, "C"]``."""
    return [int(m.group(1)) if m.group(1) is not None else m.group(2) for m in _STEP.finditer(path)]


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _find(text: str, i: int, path: list[str | int]) -> int | None:
    """The index of the key (or list item) ``path`` leads to from the value at ``i``."""
    i = _skip(text, i)
    want = path[0]
    if text.startswith("{", i) and isinstance(want, str):
        i = _skip(text, i + 1)
        while i < len(text) and text[i] == '"':
            start = i
            key, i = json.decoder.scanstring(text, i + 1)
            i = _skip(text, i)
            if not text.startswith(":", i):
                return None
            k = _consumes(key, path)
            if k:
                return start if len(path) == k else _find(text, i + 1, path[k:])
            _, i = _DECODER.raw_decode(text, _skip(text, i + 1))
            i = _skip(text, i)
            if not text.startswith(",", i):
                return None
            i = _skip(text, i + 1)
        return None
    if text.startswith("[", i) and isinstance(want, int):
        i = _skip(text, i + 1)
        n = 0
        while i < len(text) and text[i] != "]":
            if n == want:
                return i if len(path) == 1 else _find(text, i, path[1:])
            _, i = _DECODER.raw_decode(text, i)
            i = _skip(text, i)
            if not text.startswith(",", i):
                return None
            i = _skip(text, i + 1)
            n += 1
    return None


def _consumes(key: str, path: list[str | int]) -> int:
    """How many steps of ``path`` the object key ``key`` stands for: 1 when it is the first, more when the
    key itself holds dots (``"ccy.code"`` for the steps ``ccy``, ``code``: a field path cannot tell the
    two apart), 0 when neither."""
    if key == path[0]:
        return 1
    if "." not in key:
        return 0
    joined = path[0] if isinstance(path[0], str) else None
    for n in range(1, len(path)):
        step = path[n]
        if joined is None or not isinstance(step, str) or len(joined) >= len(key):
            return 0
        joined = f"{joined}.{step}"
        if joined == key:
            return n + 1
    return 0


def where(line: bytes, path: str | None) -> tuple[int, int] | None:
    """(1-based column in characters, 0-based byte in ``line``) of the field ``path`` in one JSON line."""
    if not path:
        return None
    try:
        text = line.decode("utf-8")
        at = _find(text, 0, steps(path))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if at is None:
        return None
    return at + 1, len(text[:at].encode("utf-8"))


__all__ = ["steps", "where"]
