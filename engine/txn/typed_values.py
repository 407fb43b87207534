"""A call's answer as the transaction log keeps it, with its value types (``tagged`` / ``untagged``).

The log is JSON: written plainly, ``Decimal("120.50")`` would come back from it as the text ``"120.50"``,
a date as ``"2026-11-27"``, raw bytes as hex.  A deal completed or compensated after a crash reads its
calls' answers back from the log (``engine/txn/recovery.py``), and its later steps must see what the
running engine saw: ``c.fee * 2`` must still be a number, and a JSON body built from ``c.amount`` must
carry ``120.50``, not ``"120.50"``.  So each such value is written as a one-key object naming its type
(``{"$dec": "120.50"}``, ``{"$date": "2026-11-27"}``, ``{"$ts": "...T..."}``, ``{"$hex": "00ff"}``),
which ``untagged`` turns back.  An answer logged before this (plain text) reads back as it was written.

Only the full path's step marks use it (a route with compensations, plugin steps or a limit): a light
route logs no answers, so the benchmark's path pays nothing.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

_TAGS = ("$dec", "$date", "$ts", "$hex")


def tagged(value: Any) -> Any:
    """``value`` (decoded message values) as JSON-ready values, each Decimal, date, datetime and bytes
    tagged with its type.  ``TypeError`` for a value JSON cannot hold."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Decimal):
        return {"$dec": format(value, "f") if value.is_finite() else str(value)}
    if isinstance(value, datetime):
        return {"$ts": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$hex": bytes(value).hex()}
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): tagged(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [tagged(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [tagged(v) for v in sorted(value, key=repr)]
    raise TypeError(f"cannot log a {type(value).__name__}")


def untagged(value: Any) -> Any:
    """The values ``tagged`` wrote, with their types back."""
    if isinstance(value, dict):
        if len(value) == 1:
            (k, v), = value.items()
            if k in _TAGS and isinstance(v, str):
                if k == "$dec":
                    return Decimal(v)
                if k == "$date":
                    return date.fromisoformat(v)
                if k == "$ts":
                    return datetime.fromisoformat(v)
                return bytes.fromhex(v)
        return {k: untagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untagged(v) for v in value]
    return value
