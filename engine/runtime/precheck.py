"""Check records against their routes without running them: ``file watch`` with ``all_or_nothing = true``.

Each frame is routed as ``Dispatcher.handle`` routes it (decoded with the route's receive format, its
``when`` evaluated), then the route's leading steps that only compute run on it, in order: ``let``,
``deal`` (its amount, currency and text columns checked; the key is not looked up) and ``validate``.  The
first step of any other kind (a ``call``, a ``limit``, a ``screen``, a plugin step ...) ends the check:
what follows it depends on a counterpart or on the engine's state.  Nothing is sent, nothing is recorded
(no deal, no dead letter, no transaction log line, no running total): a record the check refuses is
refused as the route would refuse it when run (the same kind, code and text), so a file can be refused
whole before any of its records is a deal.

A record that repeats a deal already answered (its key in the ledger) is not looked up here: one that
passes the checks is answered as a duplicate when it runs, one that fails them is a failure of the file.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from engine.runtime.dispatch import Dispatcher
from engine.runtime.exchange import Exchange, StepFailure

# the step kinds that only compute from the request and the tables: run by the check
PURE_STEPS = frozenset({"let", "deal", "validate"})


def dispatcher_of(handler: Any) -> Dispatcher | None:
    """The runtime dispatcher a channel's handler forwards to (``bsp run``'s ``HandlerRef``: ``dispatcher``;
    a recording tap: ``inner``; a route test's per-record handler: ``dispatcher``), or None."""
    h = handler
    for _ in range(8):
        if isinstance(h, Dispatcher):
            return h
        nxt = getattr(h, "dispatcher", None) or getattr(h, "inner", None) or getattr(h, "real", None)
        if nxt is None or nxt is h:
            return None
        h = nxt
    return None


def check_frames(disp: Dispatcher, conn: Any, frames: list[bytes]) -> list[StepFailure | None]:
    """For each frame, the failure the route's checks give it (see the module), or None when it passes."""
    now = datetime.now(timezone.utc)
    return [check(disp, Exchange(disp.channel, conn, raw, now, i)).failure for i, raw in enumerate(frames)]


def check(disp: Dispatcher, ex: Exchange) -> Exchange:
    """``ex`` routed and run through its route's leading pure steps (its failure set when one refuses it): its
    deal's values (type, reference, amount, currency, party) are those the ``deal`` step gave, if it ran."""
    r = disp._route(ex)
    if r is not None:
        br = disp.routes[r]
        for ir_step, step in zip(br.route.steps, br.steps):
            if ir_step.kind not in PURE_STEPS or getattr(step, "batch", False):
                break
            disp._run_sync(step, ex)
            if ex.failure is not None:
                break
    return ex
