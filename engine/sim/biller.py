"""A biller counterpart: JSON over length-prefixed TCP, one reply per request, in order.

Answers ``{"status": "OK", "confirmation": "..."}``; refuses (``{"status":
"REFUSED", ...}``) every request whose reference ends with a digit in
``refuse_digits``.  Replies to one chunk's requests leave in one write.
Counts its calls per reference in ``calls`` (``twice()``: those called more than once).
"""
from __future__ import annotations

from typing import Any

import orjson

from engine.sim.framed import FramedServer


class BillerSim(FramedServer):
    def __init__(self, *, framing: str = "length4", refuse_digits: str = "7") -> None:
        self.framing = framing
        self.refuse_digits = refuse_digits
        self.requests = 0
        self.refused = 0
        self.calls: dict[str, int] = {}

    def answer(self, req: Any) -> dict[str, Any]:
        ref = str(req.get("reference", "")) if isinstance(req, dict) else ""
        self.requests += 1
        self.calls[ref] = self.calls.get(ref, 0) + 1
        if ref and ref[-1] in self.refuse_digits:
            self.refused += 1
            return {"status": "REFUSED", "confirmation": None, "reason": "account closed"}
        return {"status": "OK", "confirmation": "CF" + ref[-12:]}

    def reply_frame(self, payload: bytes) -> bytes:
        return orjson.dumps(self.answer(orjson.loads(payload)))
