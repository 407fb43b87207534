"""What a step's exception makes of its exchange: the failure, its reason and whether it is in doubt.

A step kind from a plugin (or one that acts outside bsp) carries a ``kind_label`` set when it is built
(``Switchboard._build_step``): "step kind book, from plugin bsp-x 0.1.0 (entry point ...)".  A run-time
bug in it (any exception but ``StepFailure``) names that label in the deal's reason, next to the place.

A step that acts outside bsp (``side_effects``) and raises anything but a clean refusal (a
``StepFailure`` without ``in_doubt``) may have done its work before it failed: its deal fails **in
doubt** (kind ``in_doubt``, code 96, unless the step's own ``StepFailure(..., in_doubt=True)`` says
otherwise), compensated and flagged by the transaction manager (``engine.txn.effects``).
"""
from __future__ import annotations

from typing import Any

from engine.runtime.exchange import StepFailure

IN_DOUBT_TEXT = "outcome unknown"          # error.text of a step left in doubt: short, for a reply field


def label_of(kind: str, origin: str | None) -> str:
    """``step kind book, from plugin bsp-x 0.1.0 (entry point x = bsp_x:register)``."""
    return f"step kind {kind}" + (f", from {origin}" if origin else "")


def step_failure(step: Any, exc: Exception, text: str) -> StepFailure:
    """The failure of ``step``, which raised ``exc`` (``text``: the exception as a reason)."""
    label = getattr(step, "kind_label", None)
    where = getattr(step, "where", None)
    effects = getattr(step, "side_effects", False)
    if isinstance(exc, StepFailure):
        if exc.where is None and label is not None:
            exc.where = where
        if effects and exc.in_doubt:
            exc.detail = f"{exc.detail} ({label}: {_MAY})"
            exc.args = (exc.detail,)
        return exc
    if label is not None:
        text = f"{text} ({label})"
    if effects:
        return StepFailure("in_doubt", f"{text}; {_MAY}", code="96", where=where, text=IN_DOUBT_TEXT,
                           in_doubt=True)
    return StepFailure("internal", text, where=where)


_MAY = "it acts outside bsp and may have done its work before it failed"
