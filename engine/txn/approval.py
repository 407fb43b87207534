"""Which DE 39 of a reversal's acknowledgement (0410 / 0430) says the host applied it: one definition, for the
store-and-forward task that sends reversals (``engine.txn.reversal.Attempt.approved``, kept on the deal's
``reversed NAME`` event as ``approved``) and for the read side that closes a flagged reversal on such an event
(``engine.deal_resolve.approved``, ``engine.ledger_query``'s SQL).  No import beyond the standard library: the
read side (``bsp deals``) loads it without the runtime.

    approves("00")   # True
    approves("25")   # False: original not found; the flag stays open
"""
from __future__ import annotations

from typing import Any

__all__ = ["APPROVED", "approves"]

# DE 39 of a 0430 / 0410 that says the reversal was applied: "00" (1987; "0" when a spec makes it numeric),
# "000" and "400" ("accepted", ISO 8583:1993's reversal answer); any other code, or none, is counted as an
# acknowledgement not approved (``Saf.not_approved``, ``bsp status`` reversals)
APPROVED = frozenset({"00", "0", "000", "400"})


def approves(code: Any) -> bool:
    """Whether a reversal's acknowledgement with DE 39 ``code`` (text as ``reversal.response_code`` gives it, or
    None when it had none) says the host applied it."""
    return code is not None and str(code).strip() in APPROVED
