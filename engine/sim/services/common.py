"""Helpers the service simulators share."""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any, Callable

from engine.sim.services.model import refuses


def money(rng: random.Random, low: int, high: int) -> Decimal:
    """An amount between low and high (whole units), with cents."""
    return Decimal(rng.randrange(low * 100, high * 100)) / 100


def dig(values: Any, *path: Any) -> Any:
    """values[path[0]][path[1]]... or None when any step is missing."""
    for p in path:
        try:
            values = values[p]
        except (KeyError, IndexError, TypeError):
            return None
    return values


def mainframe_answer(ref_field: str, *, amount: Callable[[Any], Any] | None = None, message: str = "posted",
                     refuse_field: str | None = None) -> Callable[[Any], dict[str, Any]]:
    """The core mainframe as a counterpart: answers an MF-RSP record; refuses a request whose
    ``refuse_field`` (default: the reference) ends in F."""
    counter = {"n": 0}

    def answer(req: Any) -> dict[str, Any]:
        req = req or {}
        ref = str(req.get(ref_field) or "")
        counter["n"] += 1
        if refuses(req.get(refuse_field) if refuse_field else ref):
            return {"trace_no": ref[-16:], "resp_code": "51", "host_ref": "", "amount": Decimal(0),
                    "currency": req.get("currency") or "", "message_text": "account blocked at the host"}
        amt = amount(req) if amount else (req.get("amount") or Decimal(0))
        return {"trace_no": ref[-16:], "resp_code": "00", "host_ref": f"HOST{counter['n']:012d}", "amount": amt,
                "currency": req.get("currency") or "CNY", "message_text": message}
    return answer


def mf_code(reply: Any) -> str:
    return str(reply["resp_code"])


def ref_at(*path: Any) -> Callable[[Any], Any]:
    """A counterpart's ``ref``: the value at ``path`` of its decoded request."""
    return lambda req: dig(req, *path)


def mt_ref(req: Any) -> Any:
    """A SWIFT MT's reference: field 20 of block 4."""
    return next((f.get("value") for f in dig(req, "block4") or [] if isinstance(f, dict) and f.get("tag") == "20"),
                None)


def every(_values: Any) -> bool:
    """A service's ``keyed``: every good request goes to a keyed route."""
    return True
