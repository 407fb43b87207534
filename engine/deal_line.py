"""A deal as one NDJSON line of the ``deals`` columns, built fast (the journal's hot path).

``ledger_store.lines_to_arrow`` reads these lines (pyarrow's JSON reader, explicit
schema, key order free).  ``deal_line`` renders the same values as
``Ledger.prepare`` would store: the amount as its exact digits (trailing zeros
past the column's scale dropped; more digits refused), datetimes ISO 8601 with
their offset, the request and response as JSON text.

It is built from parts rather than one ``orjson.dumps`` of a 17-key dict: the
columns a route's deals share (type, route, configuration version, channel,
status) are rendered once and cached, and so are the received / finished times
(and the duration between them) that all deals of one batch share.  About 1 us a
deal instead of 2.2 us here (1.7 us against 2.4 on the machine of 2026-11-28,
docs/benchmarks.md "Per-message CPU").
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from engine.deal import DealError, DealRecord, to_json
from engine.fieldcrypt import AS_IS, Keyring, protect_side
from engine.ledger_store import _QUANTUM, AMOUNT_MAX_INT_DIGITS, AMOUNT_SCALE, amount_problem

__all__ = ["deal_line"]

_dumps = orjson.dumps
_HEADS: dict[tuple[str, str, str, str, str], bytes] = {}
_HEADS_MAX = 4096
_last_times: list[Any] = [None, None, b""]      # received_at, finished_at, their columns' text


def _head(record: DealRecord) -> bytes:
    key = (record.deal_type, record.route, record.config_version, record.channel, record.status)
    head = _HEADS.get(key)
    if head is None:
        if len(_HEADS) >= _HEADS_MAX:
            _HEADS.clear()
        head = _HEADS[key] = (b',"deal_type":' + _dumps(key[0]) + b',"route":' + _dumps(key[1])
                              + b',"config_version":' + _dumps(key[2]) + b',"channel":' + _dumps(key[3])
                              + b',"status":' + _dumps(key[4]))
    return head


def _times(received: datetime, finished: datetime) -> bytes:
    """``,"received_at":..,"finished_at":..,"duration_ms":..``: the deals of one batch share both times,
    so the three columns are rendered once a batch."""
    last = _last_times
    if last[0] is received and last[1] is finished:
        return last[2]
    text = (b',"received_at":' + _dumps(received) + b',"finished_at":' + _dumps(finished)
            + b',"duration_ms":' + _dumps((finished - received).total_seconds() * 1000.0))
    last[0], last[1], last[2] = received, finished, text
    return text


def _text(value: Any) -> bytes:
    return b"null" if value is None else _dumps(value if type(value) is str else str(value))


def _amount(record: DealRecord) -> bytes:
    amount: Decimal | None = record.amount
    if amount is None:
        return b"null"
    text = str(amount)
    dot = text.find(".")
    whole = len(text) if dot < 0 else dot
    if text[0] == "-":
        whole -= 1
    if whole <= AMOUNT_MAX_INT_DIGITS and (dot < 0 or len(text) - dot - 1 <= AMOUNT_SCALE) \
            and "E" not in text and text[-1].isdigit():
        return b'"' + text.encode("ascii") + b'"'          # plain digits that fit the column
    if not amount.is_finite():
        raise DealError(f"deal {record.deal_id}: field amount: {amount} is not a finite number")
    problem = amount_problem(amount)
    if problem:
        raise DealError(f"deal {record.deal_id}: field amount: {problem}")
    # fits once the zeros past the scale go (1.50000 -> 1.5000), or an exponent form (1E+3)
    return b'"' + str(amount.quantize(_QUANTUM)).encode("ascii") + b'"'


def _side(values: Any, as_json: str | None, tags: Any, keyring: Keyring | None, deal_id: str, root: str) -> bytes:
    """The request or response column: its JSON text as a JSON string.  With classified fields it is
    rendered from the values, masked or encrypted (never the text as received)."""
    stored = protect_side(values, tags, keyring, context=deal_id, root=root)
    if stored is not AS_IS:
        return _text(to_json(stored))
    return _dumps(as_json) if as_json is not None else _text(to_json(values))


def deal_line(record: DealRecord, *, validate: bool = True, keyring: Keyring | None = None) -> bytes:
    """The deals row of ``record`` as one NDJSON line (with its newline); only for records
    without steps or events (``Ledger.has_line``).  Classified fields of the request and
    response are masked, or encrypted with ``keyring``, as ``Ledger.prepare`` does.  Raises
    ``DealError`` naming the field, like ``Ledger.prepare``."""
    if validate:
        record.validate()
    request_json, response_json = record.request_json, record.response_json
    if request_json is not None and response_json is not None and not record.request_tags \
            and not record.response_tags and (keyring is None or not isinstance(record.request, (bytes, bytearray))
                                              and not isinstance(record.response, (bytes, bytearray))):
        # both sides JSON text as it is (nothing classified, no raw bytes to encrypt): what ``_side`` gives,
        # without its calls
        request, response = _dumps(request_json), _dumps(response_json)
    else:
        try:
            request = _side(record.request, request_json, record.request_tags, keyring, record.deal_id,
                            "request")
            response = _side(record.response, response_json, record.response_tags, keyring, record.deal_id,
                             "response")
        except TypeError as exc:
            raise DealError(f"deal {record.deal_id}: field request/response: {exc}") from exc
    reference, currency, party, code, reason = (record.reference, record.currency, record.party,
                                                record.response_code, record.reason)
    return b"".join((
        b'{"deal_id":', _dumps(record.deal_id), _head(record),
        b',"reference":', _dumps(reference) if type(reference) is str else _text(reference),
        b',"amount":', _amount(record),
        b',"currency":', _dumps(currency) if type(currency) is str else _text(currency),
        b',"party":', _dumps(party) if type(party) is str else _text(party),
        b',"response_code":', _dumps(code) if type(code) is str else _text(code),
        b',"reason":', _dumps(reason) if type(reason) is str else _text(reason),
        _times(record.received_at, record.finished_at),
        b',"request":', request, b',"response":', response, b"}\n",
    ))
