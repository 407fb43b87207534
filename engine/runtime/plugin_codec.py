"""A plugin format's codec as the engine calls it: what its ``decode`` returns is checked.

A message's values are kept in the deal ledger and read by the routes, so a plugin's decoder must return
plain values (docs/plugins.md, "A format"): dict, list, str, int, ``Decimal``, bool, None, date, datetime
(bytes and time are stored too).  An object with no JSON form reached the ledger, which refused the deal's
row: the request was never answered.  A float is money that lost its exactness.  Either is a bug in the
codec, and so is an exception that is not a ``FormatError``: each becomes a ``FormatError`` naming the
field, the format kind and its plugin, so the request is malformed (answered, recorded, dead-lettered) and
the engine goes on.  bsp's own codecs are not wrapped (their values are tested, and the hot path stays
as it is).
"""
from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any

from formats.errors import FormatError

_PLAIN = (str, bool, int, Decimal, _dt.date, _dt.time, bytes, type(None))   # datetime is a date
_ALLOWED = "dict, list, str, int, Decimal, bool, None, date or datetime"


_FAST = frozenset((str, int, bool, Decimal, type(None)))     # exact types: one set lookup per value


def odd_value(value: Any, path: str = "") -> str | None:
    """What is wrong with the first value in ``value`` a message cannot hold, and where; else None."""
    if type(value) is dict and all(type(v) in _FAST for v in value.values()) \
            and all(type(k) is str for k in value):
        return None                     # the common message: a flat record of text, numbers and amounts
    if isinstance(value, _PLAIN):
        return None
    where = path or "the top"
    if isinstance(value, float):
        return f"a float at {where}: money is never a float; return a Decimal"
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                return f"a key of type {type(k).__name__} at {where}: keys are text"
            bad = odd_value(v, f"{path}.{k}" if path else str(k))
            if bad is not None:
                return bad
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            bad = odd_value(v, f"{path}[{i}]")
            if bad is not None:
                return bad
        return None
    return (f"a value of type {type(value).__name__} at {where}, which a message cannot hold (it has no JSON form); "
            f"return {_ALLOWED}")


class CheckedCodec:
    """``codec`` with its ``decode`` checked; ``note`` names the format kind and plugin."""

    def __init__(self, codec: Any, note: str) -> None:
        self.codec = codec
        self.note = note

    def decode(self, data: bytes) -> Any:
        try:
            values = self.codec.decode(data)
        except FormatError:
            raise
        except Exception as exc:
            raise FormatError(f"decode raised {type(exc).__name__}: {exc}{self.note}") from exc
        bad = odd_value(values)
        if bad is not None:
            raise FormatError(f"decode returned {bad}{self.note}")
        return values

    def encode(self, values: Any) -> bytes:
        return self.codec.encode(values)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.codec, name)
