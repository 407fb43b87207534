"""A failed deal that left something at a counterpart nobody undid: flagged for an operator.

After a failed deal's compensations (``TxnManager.compensate``, and the restart's ``engine.txn.recovery``)
the deal gets one event ``flagged`` (``{"why": ..., "not_undone": [names]}``) when

* a plugin step with side effects failed in doubt and was not undone (its kind has no compensation, or
  its compensation failed): it may have done its work outside bsp;
* a call left in doubt (its request written, then no answer it can trust: ``timeout``, ``lost``,
  ``unauthenticated``) that nothing can undo: no ``compensate call``, and not an ISO 8583 0100/0200 (whose
  reversal is its undo): the counterpart may have applied it (a credit), and nobody knows; under ``on doubt
  flag`` (the default) the undoable calls before it were kept (``engine.txn.pivot.hold_doubt``) and one reason
  names them with it and says what to do either way;
* any participant's compensation failed: a ``compensate call`` that got no answer it can trust, an
  answer it cannot read, or one its ``expect`` did not hold on (the counterpart refused the cancel), or a
  plugin step's compensation hook that failed: the call (the step's work) may stand at the counterpart;
* the saga pivot rule (``engine.txn.pivot``) kept a call that has a compensation from being compensated: a
  call made after it that cannot be undone (no compensation) went through, so the call stands at the
  counterpart by design, and the deal as a whole is left for an operator to settle.

The deal keeps the kind and code of the failure that made it fail (its answer does not change); its
reason adds "flagged for an operator: WHY" (``TxnManager.fill``), so its dead letter says so too, and
the engine counts it (``bsp status`` routes' ``flagged``, ``bsp_route_flagged_total``); ``bsp deals
--flagged`` lists such deals (docs/transactions.md, "Flagged for an operator").  An ISO 8583 reversal
stored and forwarded is flagged by its own rules (``engine.txn.saf``), after the deal's row: its event
``reversal flagged`` is appended, the route's count follows then (``ObservedLedger.deal_flagged``) and
``bsp deals --flagged`` finds it by that event (``engine.ledger_query.FLAGGED_EVENTS``).
"""
from __future__ import annotations

from typing import Any

from engine.txn import outcome, pivot


def flag(plan: Any, st: Any) -> None:
    """The event ``flagged`` on ``st`` when a participant is left not undone (see the module); else nothing."""
    whys, names = [], []
    kept = pivot.why(plan, st)          # the saga pivot rule kept calls made before a call that cannot be undone
    i = st.doubt
    if i is not None and kept is not None and st.doubt_pivot and i == st.pivot:
        i = None                        # `on doubt flag` kept the calls before the step: said below, with them
    if i is not None:                   # a plugin step left in doubt and not undone
        runner = plan.effects[i]
        name = plan.step_name(i, runner)
        label = getattr(runner, "kind_label", None) or "step"
        how = ("its compensation failed" if i in st.compensated else
               "its kind has no compensation" if getattr(runner, "undo", None) is None else "it was not compensated")
        whys.append(f"step {name} ({label}) failed in doubt: it may have done its work outside bsp and {how}; "
                    f"check it in the system it acts on")
        names.append(name)
    for i, kind in st.doubted.items():  # a call in doubt that nothing undid: its outcome is unknown
        if kept is not None and st.doubt_pivot and i == st.pivot:
            continue                    # `on doubt flag` kept the calls before it: said below, with them
        if i in plan.calls and i not in st.compensated and i not in st.undone:
            what, where = pivot.label(plan, i)
            whys.append(f"{what} {where}got no answer it can trust ({kind}): its outcome at the counterpart is "
                        f"unknown (it may have applied it) and nothing can undo it ({pivot.no_undo(plan, st, i)}); "
                        f"ask the counterpart whether it applied it and settle it there")
            names.append(pivot.name(plan, i))
    for i, why in st.undo_failed.items():       # newest first, as they ran
        if i == st.doubt:
            continue
        what, where = pivot.label(plan, i)
        if i in plan.effects:
            whys.append(f"{what} did its work outside bsp and its compensation failed ({why}); check it in "
                        f"the system it acts on")
        else:
            how = "may have reached the counterpart (no answer it can trust)" if i in st.doubted else "went through"
            whys.append(f"{what} {where}{how} and its compensation failed ({why}): it may stand at the "
                        f"counterpart; settle it there")
        names.append(pivot.name(plan, i))
    if kept is not None:
        whys.append(kept[0] if st.doubt_pivot else f"{kept[0]}; settle the deal with the counterparts")
        names.extend(n for n in kept[1] if n not in names)
    if whys and not outcome.flagged(st):
        st.move("flagged", {"why": "; ".join(whys), "not_undone": names})


def reason_note(st: Any, reason: str | None) -> str | None:
    """The deal's reason with "flagged for an operator: WHY" added when a running engine flagged it here
    (recovery's reasons say it already)."""
    if not reason or "flagged for an operator" in reason:
        return reason
    for e in st.events:
        if e.to_state == "flagged" and isinstance(e.detail, dict) and "not_undone" in e.detail:
            return f"{reason}; flagged for an operator: {e.detail['why']}"
    return reason
