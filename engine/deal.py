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

from engine.defaults import DEAD_STATUSES, DEAL_STATUSES

STATUSES = DEAL_STATUSES    # committed, rejected, failed, duplicate (a repeated business key, engine/txn)

def new_deal_id(now_ms: int | None = None) -> str:
    """A 32-hex-digit id: 48-bit millisecond time + 80 random bits (ULID layout, in hex).

    Ids sort by creation time (to the millisecond), so ``ORDER BY deal_id``
    is roughly arrival order, and they need no coordination between nodes.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms & 0xFFFF_FFFF_FFFF:012x}{os.urandom(10).hex()}"


def new_deal_ids(n: int, now_ms: int | None = None) -> list[str]:
    """``n`` ids like ``new_deal_id``, with one clock read and one ``os.urandom`` call for all."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    head = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
    rnd = os.urandom(10 * n).hex()
    return [head + rnd[i:i + 20] for i in range(0, 20 * n, 20)]


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
    try:
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
    # an integer past 64 bits (a 25-digit JSON number, a copybook PIC 9(20)): orjson refuses it, so it is
    # written as its exact digits (still a JSON number), never dropped nor rounded
    return orjson.dumps(_wide(value), default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1       # what orjson writes itself


def _wide(value: Any) -> Any:
    """``value`` with every integer orjson cannot write as an ``orjson.Fragment`` of its digits (as a
    dict key: its digits as text, as ``OPT_NON_STR_KEYS`` writes any integer key).  The decoders keep
    integers below 4300 digits (Python's ``str(int)`` limit): the JSON codec refuses longer ones."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _INT_MIN <= value <= _INT_MAX else orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {(str(k) if isinstance(k, int) and not isinstance(k, bool) and not _INT_MIN <= k <= _INT_MAX
                 else k): _wide(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wide(v) for v in value]
    return value


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
    # The per-step trace and the state transitions, stored in deal_steps /
    # deal_events in the same transaction as the deal row.
    steps: list["DealStep"] = field(default_factory=list)
    events: list["DealEvent"] = field(default_factory=list)
    # Classified field paths of the request / response ({"card.number": "pan"},
    # see formats.classify.tags_of); the ledger masks or encrypts them before
    # storing (engine/fieldcrypt.py, docs/security.md).
    request_tags: dict[str, str] | None = None
    response_tags: dict[str, str] | None = None
    # The request / response already rendered as JSON text (e.g. the bytes of a
    # JSON message as received): stored as is instead of rendering ``request`` /
    # ``response`` again.  Ignored when the side has classified fields (tags),
    # which must be masked from the values.
    request_json: str | None = None
    response_json: str | None = None
    # A rejected or failed deal's dead letter (not a column): stored in the same transaction as the
    # deal row, and journaled in the same record, so a crash never keeps the one without the other.
    dead_letter: "DeadLetter | None" = None

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
        for i, step in enumerate(self.steps):
            if not isinstance(step, DealStep):
                raise DealError(f"deal {self.deal_id}: field steps[{i}]: expected a DealStep, got {type(step).__name__}")
            step.validate(f"deal {self.deal_id}: field steps[{i}]")
        for i, event in enumerate(self.events):
            if not isinstance(event, DealEvent):
                raise DealError(f"deal {self.deal_id}: field events[{i}]: expected a DealEvent, got {type(event).__name__}")
            event.validate(f"deal {self.deal_id}: field events[{i}]")

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
            "request": self.request_json if self.request_json is not None else to_json(self.request),
            "response": self.response_json if self.response_json is not None else to_json(self.response),
        }


def _aware(value: Any, where: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise DealError(f"{where}: expected a timezone-aware datetime, got {value!r}")


@dataclass
class DealStep:
    """One step of a deal's route, as it ran: one row of ``deal_steps``.

    ``kind`` is the step kind (``decode``, ``validate``, ``call`` ...), ``vote``
    the participant's vote (``prepared``, ``aborted``, ``readonly`` or None),
    ``outcome`` what happened (``ok``, ``rejected``, ``failed``, ``timeout`` ...).
    ``detail`` is any JSON-able value (a call's target and reply code, ...).
    """

    name: str
    kind: str
    outcome: str
    started_at: datetime
    duration_ms: float = 0.0
    vote: str | None = None
    detail: Any = None

    def validate(self, where: str) -> None:
        for name in ("name", "kind", "outcome"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise DealError(f"{where}.{name}: expected a non-empty string, got {v!r}")
        _aware(self.started_at, f"{where}.started_at")
        if isinstance(self.duration_ms, bool) or not isinstance(self.duration_ms, (int, float, Decimal)):
            raise DealError(f"{where}.duration_ms: expected a number of milliseconds, got {self.duration_ms!r}")


@dataclass
class DealEvent:
    """A state transition of a deal (``received`` -> ``routed`` -> ...): one row of ``deal_events``."""

    at: datetime
    from_state: str | None
    to_state: str
    detail: Any = None

    def validate(self, where: str) -> None:
        _aware(self.at, f"{where}.at")
        if not isinstance(self.to_state, str) or not self.to_state:
            raise DealError(f"{where}.to_state: expected a non-empty string, got {self.to_state!r}")
        if self.from_state is not None and not isinstance(self.from_state, str):
            raise DealError(f"{where}.from_state: expected text or None, got {self.from_state!r}")




@dataclass
class DeadLetter:
    """An exchange that was rejected or failed (no route took it, it did not decode, a rule or a counterpart
    refused it ...), kept with its message: one row of ``dead_letters``.

    ``raw`` is the message exactly as received; a retry re-injects it into
    ``channel`` through the configuration running at that time.
    """

    route: str | None
    channel: str
    reason: str
    raw: bytes
    config_version: str
    error_kind: str | None = None          # "unrouted", "malformed", "timeout", "internal" ...
    error_code: str | None = None          # the reply code, when one was answered
    at: datetime = field(default_factory=_utcnow)
    id: str = field(default_factory=new_deal_id)
    status: str = "new"

    def validate(self) -> None:
        where = f"dead letter {self.id}"
        for name in ("id", "channel", "reason", "config_version"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise DealError(f"{where}: field {name}: expected a non-empty string, got {v!r}")
        if not isinstance(self.raw, (bytes, bytearray, memoryview)):
            raise DealError(f"{where}: field raw: expected the received bytes, got {type(self.raw).__name__}")
        _aware(self.at, f"{where}: field at")
        if self.status not in DEAD_STATUSES:
            raise DealError(f"{where}: field status: {self.status!r} is not one of {', '.join(DEAD_STATUSES)}")


def jsonable(value: Any) -> Any:
    """The JSON-compatible form of message values (what the JSON columns hold)."""
    if value is None:
        return None
    return orjson.loads(to_json(value))  # type: ignore[arg-type]


__all__ = ["DealRecord", "DealStep", "DealEvent", "DeadLetter", "DEAD_STATUSES", "DealError", "STATUSES", "new_deal_id", "new_deal_ids", "to_json", "jsonable"]
