"""What became of a failed deal's participants, for its ``on error`` steps: ``error.undone``, ``error.flagged``.

The transaction manager tells each failed exchange after its compensations have run (and its ``flagged``
event, ``engine.txn.flagging``, is decided) and before the route's ``on error`` steps build the answer, so
the answer can say whether the customer's money is back (docs/language.md, "Scope"):

    error.flagged   true when the deal is flagged for an operator: a compensation failed (no answer it can
                    trust, or its ``expect`` did not hold on its own answer), a call left in doubt that
                    nothing can undo (no compensation), a plugin step failed in doubt and was not undone, the pivot rule kept calls from being compensated (a call without a
                    compensation went through before the failure, ``engine.txn.pivot``), or its deal key
                    was claimed by an engine that is gone
    error.not_undone  the names of the calls (and plugin steps acting outside bsp) that went through or may
                    have and that nothing undid, in the order they ran: ``"debit" in error.not_undone`` is
                    true when the debit stays (its compensation failed, or the pivot rule kept it), false
                    when it was cancelled although the deal is flagged for a later call left in doubt
    error.undone    true when nothing the deal made stays at a counterpart: no call (nor plugin step that acts
                    outside bsp) went through, or every one that did was undone by a compensation whose
                    ``expect`` held on its own answer (an ISO 8583 reversal acknowledged inline).  False when
                    the deal is flagged, when a call or step is in doubt (a timeout, a lost connection: even
                    compensated, it may still be on its way), when one went through with no compensation, or
                    with one that has no ``expect``, or when its ISO 8583 reversal is queued to be stored and
                    forwarded (sent after the answer: not acknowledged yet when ``on error`` runs)
    error.forwarded true when a call ``store and forward`` left in doubt (its ISO 8583 advice sent, no answer) was
                    handed to store and forward: the engine repeats it (0421) until the host acknowledges it,
                    so the route may answer "accepted for forwarding" (the switch took responsibility for it)

These are the rules that decide whether the failed deal keeps its key (``engine.txn.keyhold``): ``undone`` true
is a key freed, except for a call the counterpart answered with a refusal (it did nothing: undone, but its
refusal is the deal's answer and keeps the key).
"""
from __future__ import annotations

from typing import Any

from engine.txn import pivot
from engine.txn.plan import plan_of


def flagged(st: Any) -> bool:
    """The deal has its ``flagged`` event (so far: a stored-and-forwarded reversal is flagged later, if ever)."""
    return any(e.to_state == "flagged" for e in st.events)


def undone(st: Any) -> bool:
    """Nothing the deal made stays at a counterpart (see the module)."""
    if st.doubted or st.doubt is not None or flagged(st):
        return False
    return all(i in st.undone for i in st.done)


def not_undone(plan: Any, st: Any) -> list[str]:
    """The names of the participants that went through (or may have) and that nothing undid, in the order
    they ran: ``error.not_undone``."""
    return [pivot.name(plan, i) for i in st.done if i not in st.undone]


def tell(states: Any, group: list[Any], left: dict[Any, list[str]] | None = None) -> None:
    """Set ``error.undone``, ``error.flagged``, ``error.forwarded`` and ``error.not_undone`` of each failed exchange of ``group``
    from its transaction state; one without a state (a light route's, not reversed nor flagged) from
    ``left``: the names of its calls that went through or may have (nothing on a light route undoes them)."""
    for ex in group:
        if ex.failure is None:
            continue
        err = ex.scope.get("error")
        if not isinstance(err, dict):
            continue
        st = states.get(ex)
        if st is not None:
            err["flagged"] = flagged(st)
            err["forwarded"] = bool(st.forwarded)
            err["undone"] = undone(st)
            if ex.route is not None:
                err["not_undone"] = not_undone(plan_of(ex.route), st)
        elif left is not None and left.get(ex):
            err["undone"] = False
            err["not_undone"] = list(left[ex])
