"""What a step's exception makes of its exchange: the failure, its reason and whether it is in doubt.

A step kind from a plugin (or one that acts outside bsp) carries a ``kind_label`` set when it is built
(``Switchboard._build_step``): "step kind book, from plugin bsp-x 0.1.0 (entry point ...)".  A run-time
bug in it (any exception but ``StepFailure``) names that label in the deal's reason, next to the place.

A step that acts outside bsp (``side_effects``) and raises anything but a clean refusal (a
``StepFailure`` without ``in_doubt``) may have done its work before it failed: its deal fails **in
doubt** (kind ``in_doubt``, code 96, unless the step's own ``StepFailure(..., in_doubt=True)`` says
otherwise), compensated and flagged by the transaction manager (``engine.txn.effects``).

An expression that failed on a value of the received message of the wrong shape (``InputError``,
``dsl.inbound``) is the sender's error: ``input_failure`` makes it a rejected request, code 30.
"""
from __future__ import annotations

from typing import Any

from dsl.eval_error import InputError
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
    if isinstance(exc, InputError) and not effects:
        return input_failure(exc)
    if label is not None:
        text = f"{text} ({label})"
    if effects:
        failure = StepFailure("in_doubt", f"{text}; {_MAY}", code="96", where=where, text=IN_DOUBT_TEXT,
                              in_doubt=True)
        failure.raised = True        # a bug as much as an internal error: logged once per kind
    else:
        failure = StepFailure("internal", text, where=where)
    failure.__cause__ = exc          # its type, place and traceback for the log (engine/runtime/internal_log.py)
    return failure


_MAY = "it acts outside bsp and may have done its work before it failed"


INPUT_CODE = "30"       # "format error": the request is not of the shape the route reads


def input_failure(exc: InputError, where: str | None = None) -> StepFailure:
    """The failure of a request whose value at ``exc.path`` has the wrong shape: kind ``rejected``, code 30,
    its text "beneficiary: expected an object, got text 'ACME'" (the sender's to fix; no route file place in
    it: an HTTP client reads it), the place of the expression that read it as ``where``.  The message itself
    of the wrong shape (a JSON list or text where the route reads fields) is ``malformed``, as a body the
    format cannot decode (answered by the channel's error reply, not the route's ``on error``)."""
    place = str(exc.pos) if exc.pos is not None else where
    failure = StepFailure("malformed" if exc.root else "rejected", exc.message, code=INPUT_CODE,
                          text=exc.message, where=place)
    failure.not_object = exc.root
    if exc.path:            # the message itself (a list where an object is read) is no field
        failure.field = exc.path
    return failure
