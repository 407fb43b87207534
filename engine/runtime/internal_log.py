"""One log line per kind of internal error, not one per deal (docs/operations.md#repeated-faults).

A route (or a plugin) with a bug fails every message it takes the same way: an expression failing on the
route's own values, a plugin step raising, a codec raising something unexpected.  Each such deal is still
recorded failed (``internal``, 96) with its reason and its dead letter; the log gets the first of each
kind in full, at ERROR, with the traceback's frames, and the same kind again is counted and summed up
(engine/faultlog.py, the switchboard's ``FaultLog``: its ``run`` writes the summaries when due, its
``flush`` at the stop)::

    route pay: internal error at pay.route:12:5 (KeyError), deal 01J...: internal: KeyError: 'fee' ...
    Traceback (most recent call last):
      ...
    route pay: 4,999 more internal errors at pay.route:12:5 (KeyError) since 21:40:02 (counted, not logged
    one by one), last deal 01J...: internal: KeyError: 'fee' ...

The kind is (route, place, exception type): the place is the failing expression's (file:line:col) when
the exception names one, else the step's; a new place or route is logged at once.  The texts are the
deals' reasons, masked as the ledger has them (``Exchange.fail``); the traceback shows its frames, not
its text (which may quote a classified value).  The log's scrubber masks card numbers and secrets in
every line, the summaries too.  Nothing of this runs for a deal that did not fail internal.
"""
from __future__ import annotations

import logging
import traceback
from typing import Any

import trio

from engine.faultlog import FaultLog
from formats.errors import FormatError

__all__ = ["new_faults", "internal", "on_error_failed", "frames_of"]

log = logging.getLogger("bsp.dispatch")


def new_faults() -> FaultLog:
    """The engine's log of repeated internal errors (one per switchboard; its clock is trio's)."""
    return FaultLog(log, "engine", clock=trio.current_time)


def frames_of(exc: BaseException | None) -> str:
    """``\\nTraceback (most recent call last):\\n  File ...`` (the frames, not the exception's text), or ""."""
    tb = getattr(exc, "__traceback__", None)
    if tb is None:
        return ""
    return "\nTraceback (most recent call last):\n" + "".join(traceback.format_tb(tb)).rstrip("\n")


def internal(faults: FaultLog, route: str, failure: Any, deal_id: str, reason: str,
             channel: str | None = None) -> None:
    """Deal ``deal_id`` of ``route`` (received on ``channel``) failed internal (``failure``; ``reason``: its
    reason as recorded), or in doubt because a step with side effects raised (``failure.raised``).

    A format that refused the values a step built (``FormatError``: a reply or call body that cannot be
    encoded, "field resp_code: 3 bytes do not fit PIC X(2)") is no bug in bsp: the line says it in one line,
    naming the route, the step's place, the channel and the reason, and the traceback (the codec's own
    frames, of no use to whoever fixes the route) goes to DEBUG.  Any other exception is unexpected: its
    traceback stays in the line."""
    if getattr(failure, "logged", False):        # reported where it happened (a storage fault)
        return
    cause = failure.__cause__
    pos = getattr(cause, "pos", None)
    place = str(pos) if pos is not None else (failure.where or "?")
    kind_name = type(cause).__name__ if cause is not None else ""
    at = f"{place} ({kind_name})" if kind_name else place
    if isinstance(cause, FormatError) and failure.kind == "internal":
        on = f" on channel {channel}" if channel else ""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("route %s: deal %s: the format refused the values%s", route, deal_id, frames_of(cause))
        faults.occurred(
            (failure.kind, route, place, kind_name),
            lambda: f"step at {place} failed{on}, deal {deal_id}: {reason} (the format refused the values the "
                    f"route built: fix the route or the values it copies; the same error again is counted, not "
                    f"logged one by one)",
            noun=f"format refusals at {place}", source=f"deal {deal_id}", reason=reason, level=logging.ERROR,
            what=f"route {route}", last="")
        return
    if failure.kind == "in_doubt":      # a step with side effects raised: the deal failed in doubt (stepfail.py)
        head, noun = "step failed in doubt", "deals failed in doubt"
        why = "a bug in a plugin step that acts outside bsp"
    else:
        head, noun, why = "internal error", "internal errors", "a bug in the route or a plugin"
    faults.occurred(
        (failure.kind, route, place, kind_name),
        lambda: f"{head} at {at}, deal {deal_id}: {reason} ({why}: the "
                f"same error again is counted, not logged one by one){frames_of(cause)}",
        noun=f"{noun} at {at}", source=f"deal {deal_id}", reason=reason, level=logging.ERROR,
        what=f"route {route}", last="")


def on_error_failed(faults: FaultLog, subject: str, where: Any, text: str, exc: BaseException | None = None) -> None:
    """An ``on error`` step (or a channel's error reply) at ``where`` failed for one exchange (``text``: why,
    masked); ``subject``: ``route pay`` or ``channel front``."""
    faults.occurred(("on error", subject, where, type(exc).__name__ if exc is not None else ""),
                    lambda: f"on error step at {where} failed: {text}{frames_of(exc)}",
                    noun=f"on error step failures at {where}", reason=text, what=subject)
