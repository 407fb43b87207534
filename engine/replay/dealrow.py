"""The deal an exchange recorded in the ledger, in a capture (``frames.deal``), so a replay compares it.

The reply and the calls are not all a configuration changes: the ledger's deal (its type, the route that
served it, its reference, amount, currency, party and response code) feeds reports, reconciliation and
``bsp deal``.  A candidate that books ``round(msg.amount, 0)``, or serves a request under a renamed
route, answers and calls exactly as before; only the deal shows it.

The tap stores these fields on the exchange's request row as a JSON object (text values; the amount as
its decimal text), masked as the exchange's frames are when the capture is (a value that is a classified
value of the exchange whole, or that holds one).  A capture written before this column replays without
comparing them (the deal's status, ``frames.deal_status``, is compared as before).  Pure: no engine.
"""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from formats.classify import mask_text, mask_value

# report field -> DealRecord attribute; the names of `expect deal` in route tests, and `type` for its type
FIELDS = {"type": "deal_type", "route": "route", "ref": "reference", "amount": "amount", "currency": "currency",
          "party": "party", "response_code": "response_code"}


def values(deal: Any, known: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The compared fields of a deal record (None: no deal), text values masked with ``known`` (the
    exchange's classified values) when given."""
    if deal is None:
        return None
    out: dict[str, Any] = {}
    for name, attr in FIELDS.items():
        v = getattr(deal, attr, None)
        if v is None:
            out[name] = None
        elif name == "amount":
            out[name] = Decimal(str(v))
        else:
            out[name] = masked(str(v), known) if known else str(v)
    return out


def masked(text: str, known: Mapping[str, str]) -> str:
    """``text`` masked: whole when it is a classified value of the exchange, else where it holds one."""
    tag = known.get(text) or known.get(text.strip())
    return str(mask_value(text, tag)) if tag else mask_text(text, known)


def dump(deal: Any, known: Mapping[str, str] | None = None) -> str | None:
    got = values(deal, known)
    if got is None:
        return None
    return json.dumps({k: (str(v) if isinstance(v, Decimal) else v) for k, v in got.items()}, sort_keys=True)


def load(text: str | None) -> dict[str, Any] | None:
    """The stored deal fields, or None (none stored).  ``ValueError`` saying what is wrong for a value that
    is not one (a capture edited by hand, or damaged)."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the exchange's deal is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("the exchange's deal is not a JSON object")
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k not in FIELDS:
            raise ValueError(f"the exchange's deal has an unknown field {k!r} (known: {', '.join(FIELDS)})")
        if v is not None and not isinstance(v, str):
            raise ValueError(f"the exchange's deal field {k!r} is not text")
        if k == "amount" and v is not None:
            try:
                out[k] = Decimal(v)
            except InvalidOperation:
                raise ValueError(f"the exchange's deal amount {v!r} is not a decimal") from None
        else:
            out[k] = v
    return out
