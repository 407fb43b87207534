"""One deal: what the ledger records for every exchange a route handled.

``DealRecord`` is a plain value object.  The runtime fills it in as the
exchange goes through a route and hands it to ``Ledger.commit``; the ledger
turns it into one row of the ``deals`` table (see ``docs/ledger.md``).

``request`` and ``response`` hold the decoded message values (dict / list /
str / int / ``Decimal`` / bool / None / date / datetime / bytes).  They are
stored as JSON without loss: ``Decimal`` becomes its exact string
(``Decimal("120.50")`` -> ``"120.50"``), dates and datetimes ISO 8601
strings, bytes hex strings.  ``to_json`` does that rendering.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson

STATUSES = ("committed", "rejected", "failed")

def new_deal_id(now_ms: int | None = None) -> str:
    """A 32-hex-digit id: 48-bit millisecond time + 80 random bits (ULID layout, in hex).

    Ids sort by creation time (to the millisecond), so ``ORDER BY deal_id``
    is roughly arrival order, and they need no coordination between nodes.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms & 0xFFFF_FFFF_FFFF:012x}{os.urandom(10).hex()}"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"cannot store a {type(value).__name__} in the deal ledger (value {value!r:.60})")


def to_json(value: Any) -> str | None:
    """Render message values as JSON text without losing a digit; None stays None (SQL NULL).

    Decimal -> exact string, date/datetime -> ISO 8601, bytes -> hex.  Dict keys
    that are not strings (ints) are turned into strings.
    """
    if value is None:
        return None
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


_TEXT_FIELDS = ("reference", "currency", "party", "response_code", "reason")


def _text(value: str | int | None) -> str | None:
    """Text columns take str; an int (a numeric trace number) is stored as its digits."""
    return value if value is None or isinstance(value, str) else str(value)


class DealError(ValueError):
    """A DealRecord that the ledger cannot store; the message names the field."""


@dataclass
class DealRecord:
    """One deal, as stored in the ``deals`` table.

    ``received_at`` / ``finished_at`` must be timezone-aware (they are stored as
    TIMESTAMPTZ and shown in UTC); ``duration_ms`` is derived from them.
    """

    deal_type: str
    route: str
    config_version: str
    channel: str
    status: str                                 # "committed" | "rejected" | "failed"
    received_at: datetime
    finished_at: datetime
    reference: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    party: str | None = None
    response_code: str | None = None
    reason: str | None = None
    request: Any = None
    response: Any = None
    deal_id: str = field(default_factory=new_deal_id)

    @property
    def duration_ms(self) -> float:
        return (self.finished_at - self.received_at).total_seconds() * 1000.0

    def validate(self) -> None:
        """Raise ``DealError`` naming the field when this record cannot be stored."""
        if self.status not in STATUSES:
            raise DealError(f"deal {self.deal_id}: field status: {self.status!r} is not one of {', '.join(STATUSES)}")
        for name in ("deal_id", "deal_type", "route", "config_version", "channel"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise DealError(f"deal {self.deal_id}: field {name}: expected a non-empty string, got {v!r}")
        for name in ("received_at", "finished_at"):
            v = getattr(self, name)
            if not isinstance(v, datetime) or v.tzinfo is None or v.utcoffset() is None:
                raise DealError(
                    f"deal {self.deal_id}: field {name}: expected a timezone-aware datetime, got {v!r}",
                )
        for name in _TEXT_FIELDS:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int))):
                raise DealError(f"deal {self.deal_id}: field {name}: expected text, got {type(v).__name__} {v!r:.60}")
        if self.amount is not None:
            if isinstance(self.amount, float) or not isinstance(self.amount, Decimal):
                raise DealError(
                    f"deal {self.deal_id}: field amount: expected a decimal.Decimal, got "
                    f"{type(self.amount).__name__} {self.amount!r} (money is never float)",
                )
            if not self.amount.is_finite():
                raise DealError(f"deal {self.deal_id}: field amount: {self.amount} is not a finite number")

    def to_row(self) -> dict[str, Any]:
        """The row as the ledger stores it (JSON columns rendered to text)."""
        return {
            "deal_id": self.deal_id,
            "deal_type": self.deal_type,
            "route": self.route,
            "config_version": self.config_version,
            "channel": self.channel,
            "reference": _text(self.reference),
            "amount": self.amount,
            "currency": _text(self.currency),
            "party": _text(self.party),
            "status": self.status,
            "response_code": _text(self.response_code),
            "reason": _text(self.reason),
            "received_at": self.received_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
            "request": to_json(self.request),
            "response": to_json(self.response),
        }


def jsonable(value: Any) -> Any:
    """The JSON-compatible form of message values (what the JSON columns hold)."""
    if value is None:
        return None
    return orjson.loads(to_json(value))  # type: ignore[arg-type]


__all__ = ["DealRecord", "DealError", "STATUSES", "new_deal_id", "to_json", "jsonable"]
