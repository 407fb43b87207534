"""JSON read with its numbers as written: ``1.50``, ``1e400``, a 25-digit integer.

    stored_json(text)      # a ledger JSON column (a request kept as received): every fraction exact
    api_json(text)         # an admin API answer: a deal's numbers exact, its durations floats

A float would make ``1.50`` 1.5 and ``1e400`` Infinity, and orjson cannot write an integer past 64 bits
back.  Such numbers come back as ``orjson.Fragment`` of their digits, which ``orjson.dumps`` writes as
they were.  Kept light (json, orjson): the command line's ``--live`` paths import it.
"""
from __future__ import annotations

import json
from typing import Any

import orjson


def stored_json(text: str) -> Any:
    """A JSON column's text as values, every number as stored: a request kept as received holds the
    sender's numbers (``1.50``, a 25-digit integer, ``1e400``), which orjson would read as floats (1.5, 1e+29)
    or refuse (past a double's range: every listing of the ledger failed on such a deal).  Integers within
    64 bits are ints, text is text."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass                       # a number past a double's range: read exactly below
    else:
        if not _has_float(value):
            return value
    return json.loads(text, parse_float=orjson.Fragment, parse_int=exact_int, parse_constant=orjson.Fragment)


def api_json(text: str) -> Any:
    """The admin API's answer as values, a deal's numbers as it stored them (``stored_json``): a float that
    reads back as it was written (a duration: ``0.25``, orjson's ``1e-7``) is a float, another number a
    ``Fragment``."""
    return json.loads(text, parse_float=_exact_float, parse_int=exact_int, parse_constant=orjson.Fragment)


def exact_int(digits: str) -> Any:
    return int(digits) if len(digits) < 19 else orjson.Fragment(digits)   # 19 digits or more: may not fit


def _exact_float(digits: str) -> Any:
    f = float(digits)
    return f if repr(f) == digits or orjson.dumps(f) == digits.encode() else orjson.Fragment(digits)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False
