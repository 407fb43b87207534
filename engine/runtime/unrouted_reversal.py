"""An ISO 8583 reversal that no route of its channel takes (docs/formats-iso8583.md#answering-what-cannot-be-read).

A 0400 / 0420 (repeats 0401 / 0421) reaches a channel with no route for reversals: nobody here can locate its
original, and nobody forwards it to the issuer.  The failure stays ``unrouted`` (rejected), but its
``error.code`` is ``25`` ("unable to locate original"), not ``12`` ("invalid transaction"): the channel's
``on error reply`` answers 0410 / 0430 with 25, an acknowledgement in every scheme, so the acquirer stops
repeating it (a 12 is repeated by acquirers that end a reversal's repeats only on 00 or 25, each repeat one more
unrouted deal, and none ever forwarded).  Not 00: nothing was reversed.  So that nothing is lost, its deal is
flagged for an operator (event ``flagged``: ``bsp deals --flagged``), and its dead letter keeps the message with
a reason that says what to settle (the issuer may have approved the original: a purchase that stands) and how
(a route that forwards reversals, then ``bsp dead retry``).  A scheme that wants another code for it writes it
in the channel's ``on error reply`` (``error.kind == "unrouted"`` and ``msg.t``).
"""
from __future__ import annotations

from typing import Any

from formats.iso8583.codec import Iso8583Codec

REVERSALS = frozenset({"0400", "0401", "0420", "0421"})
CODE = "25"       # ISO 8583:1987 DE 39 25: unable to locate original (record) in file


def is_reversal(msg: Any, codec: Any) -> bool:
    """``msg`` is an ISO 8583 reversal (or reversal advice, or a repeat of either) read by an ISO 8583 format."""
    return isinstance(codec, Iso8583Codec) and isinstance(msg, dict) and str(msg.get("t") or "") in REVERSALS


def why(channel: str, msg: dict[str, Any]) -> str:
    """The flag's (and the reason's) explanation: what may stand, and what to do."""
    t = str(msg.get("t"))
    de90 = msg.get("90")
    original = f"the original (DE 90 {de90})" if de90 not in (None, "") else "its original (no DE 90)"
    return (f"the ISO 8583 {t} reversal on channel {channel} was acknowledged with {CODE} (unable to locate "
            f"original) so that the acquirer stops repeating it, but no route forwarded it: if the issuer approved "
            f"{original}, it stands; check it with the issuer and reverse it there, or add a route that takes "
            f"{t} and run this message again (`bsp dead retry ID`), then `bsp deals resolve ID`")


def flagged_note(channel: str, msg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The ``flagged`` event of its deal (``Exchange.notes``)."""
    return "flagged", {"why": why(channel, msg), "not_undone": [], "unrouted_reversal": str(msg.get("t"))}
