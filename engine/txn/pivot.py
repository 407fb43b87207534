"""The saga pivot rule: a call that cannot be undone and went through is the deal's point of no return.

A call without a ``compensate call`` (and not ISO 8583, which is reversed automatically) cannot be undone:
a pacs.008 credit to a clearing house, say.  Once such a call has **gone through** (answered, its ``expect``
held: the pivot), undoing the calls made before it would not undo the deal, it would only take back what
pays for it (the debit reversed while the credit stands: the bank pays from its own funds).  So when a
later step fails (a call, a ``file write``, a ``validate``, the reply):

* the calls made **after** the newest pivot that have a compensation are compensated, newest first, as
  before;
* the calls made **before** it are **kept**: not compensated;
* when that kept a call that has a compensation (or an ISO 8583 reversal) from being compensated, the deal
  is flagged for an operator (``engine.txn.flagging``: event ``flagged``, its reason, ``error.flagged``
  true, ``error.undone`` false), and its key stays taken (``engine.txn.keyhold``).

A plugin step that acts outside bsp (``ComponentSpec.side_effects``) and whose kind has no ``undo`` hook is
the same: once it completed (``done``) it is a pivot, as a call without a compensation is.

A call that nothing can undo (no compensation, not an ISO 8583 0100/0200, not ``readonly``) left **in doubt**
(its request written, then no answer it can trust: ``timeout``, ``lost``, ``unauthenticated``) may have gone
through, or not.  The route's ``on doubt`` policy says which risk the bank takes (``hold_doubt``):

* ``on doubt flag`` (the default): it is treated as a possible pivot.  The undoable calls before it are
  **kept** (a debit stays: had the credit gone through, reversing the debit would pay it out of the bank's
  own funds), and the deal is flagged for an operator, who learns the outcome from the counterpart: applied,
  nothing is to be undone; not applied, the kept calls are undone by hand (the debit reversed).
* ``on doubt compensate``: it is **not** a pivot (it may not have happened): the calls before it are
  compensated as for any failure, and the deal is flagged for the call in doubt (``engine.txn.flagging``).

A plugin step that acts outside bsp, whose kind has no ``undo`` hook and that failed in doubt, is the same
(``without_undo``).  Either way the deal keeps its key.  A refused call did nothing: never a pivot.  On
restart (``engine.txn.recovery``) under ``on restart compensate``, a call nothing can undo left ``sending``
is in doubt and ``on doubt`` decides alike; a pivot marked ``done`` in the log stops compensation before it;
a plugin step with a mark is always flagged there.
"""
from __future__ import annotations

from typing import Any

from engine.txn.plan import REVERSIBLE


def undoable(plan: Any, i: int) -> bool:
    """Participant ``i`` has a way to be undone: a ``compensate call``, an ISO 8583 call (its automatic
    reversal), a plugin step with an ``undo`` hook."""
    call = plan.calls.get(i)
    if call is not None:
        return call.compensation is not None or call.iso
    runner = plan.effects.get(i)
    return runner is not None and getattr(runner, "undo", None) is not None


def is_pivot(plan: Any, i: int) -> bool:
    """Participant ``i`` (a call, or a plugin step that acts outside bsp) cannot be undone: once it went
    through, it is a pivot."""
    call = plan.calls.get(i)
    if call is not None and call.readonly:      # an enquiry changed nothing: nothing stands
        return False
    return (i in plan.calls or i in plan.effects) and not undoable(plan, i)


def without_undo(plan: Any, st: Any, i: int) -> bool:
    """Participant ``i`` has nothing that undoes it: a call without a ``compensate call`` that is not an ISO
    8583 0100/0200 as sent (whose reversal is its undo), or a plugin step that acts outside bsp whose kind has
    no ``undo`` hook.  A ``readonly`` call changed nothing: it is never counted here."""
    call = plan.calls.get(i)
    if call is None:
        runner = plan.effects.get(i)
        return runner is not None and getattr(runner, "undo", None) is None
    if call.readonly or call.compensation is not None:
        return False
    if call.iso:
        values = st.sent.get(i)
        if call.forward:                        # `store and forward`: its advice is repeated until acknowledged
            return False
        return not (isinstance(values, dict) and str(values.get("t")) in REVERSIBLE)
    return True


def no_undo(plan: Any, st: Any, i: int) -> str:
    """Why call ``i`` (in doubt, not compensated) has no undo: no compensation, or an ISO 8583 message that
    has no reversal (its request values unknown, or a type other than 0100/0200); a plugin step's kind that
    has none."""
    call = plan.calls.get(i)
    if call is None:
        return "its kind has no compensation"
    if call.iso and call.compensation is None:
        values = st.sent.get(i)
        mti = values.get("t") if isinstance(values, dict) else None
        return f"an ISO 8583 {mti} has no reversal" if mti else "its request as sent is not known to reverse it"
    return "it has no compensation"


def hold_doubt(plan: Any, st: Any) -> bool:
    """``on doubt flag`` (the default): the newest call left in doubt that nothing can undo becomes the deal's
    pivot (``st.doubt_pivot``) when it is newer than any pivot, so ``split`` keeps the undoable calls made
    before it.  True when it did; never under ``on doubt compensate``."""
    if getattr(plan, "doubt", "flag") != "flag":
        return False
    doubted = [i for i in st.doubted if without_undo(plan, st, i)]
    if not doubted:
        return False
    i = max(doubted)
    if st.pivot is not None and st.pivot > i:
        return False
    st.pivot, st.doubt_pivot = i, True
    return True


def split(plan: Any, st: Any) -> list[int]:
    """The participants of ``st.done`` to compensate (in order: the caller runs them newest first); the
    undoable ones made before the pivot go to ``st.kept``."""
    p = st.pivot
    if p is None:
        return list(st.done)
    for i in st.done:
        if i < p and undoable(plan, i) and i not in st.kept and i not in st.compensated:
            st.kept.append(i)
    return [i for i in st.done if i > p]


def label(plan: Any, i: int) -> tuple[str, str]:
    """Participant ``i`` as the reasons name it: ("call d", "to debit ") or ("step 3:book", "")."""
    call = plan.calls.get(i)
    if call is None:
        return f"step {name(plan, i)}", ""
    channel = getattr(call.runner, "channel_name", None) or getattr(getattr(call.runner, "channel", None), "name", None)
    return f"call {call.name}", (f"to {channel} " if channel else "")


def name(plan: Any, i: int) -> str:
    """Participant ``i``'s own name: the call's (``d``), or the step's (``3:book``)."""
    call = plan.calls.get(i)
    return call.name if call is not None else plan.step_name(i, plan.effects.get(i))


def why(plan: Any, st: Any) -> tuple[str, list[str]] | None:
    """Why the pivot rule kept calls from being compensated, and the names not undone (the calls kept, then
    the pivot); None when it kept none."""
    if st.pivot is None or not st.kept:
        return None
    pivot_label, where = label(plan, st.pivot)
    listed = ", ".join(" ".join(label(plan, i)).strip() for i in st.kept)
    if getattr(st, "doubt_pivot", False):       # `on doubt flag`: a call that nothing can undo left in doubt
        p = st.pivot
        verb = "is" if len(st.kept) == 1 else "are"
        if p in plan.effects:                   # a plugin step that acts outside bsp, failed in doubt
            text = (f"{pivot_label} failed in doubt ({st.doubted.get(p, 'in doubt')}) and nothing can undo it "
                    f"({no_undo(plan, st, p)}): it may have done its work outside bsp, so {listed} {verb} kept, "
                    f"not undone (on doubt flag): the funds stay in place until its outcome is known; check in "
                    f"the system it acts on whether {name(plan, p)} did its work: if it did, nothing is to be "
                    f"undone; if it did not, undo {listed} (e.g. reverse the debit)")
            return text, [name(plan, i) for i in st.kept] + [name(plan, p)]
        text = (f"{pivot_label} {where}got no answer it can trust ({st.doubted.get(p, 'in doubt')}) and nothing "
                f"can undo it ({no_undo(plan, st, p)}): it may have gone through, so {listed} {verb} kept, not "
                f"undone (on doubt flag): the funds stay in place until its outcome is known; ask the "
                f"counterpart whether it applied {name(plan, p)}: if it did, nothing is to be undone; if it did "
                f"not, undo {listed} (e.g. reverse the debit)")
        return text, [name(plan, i) for i in st.kept] + [name(plan, p)]
    how = ("did its work outside bsp and its kind has no compensation" if st.pivot in plan.effects else
           "went through and has no compensation")
    text = (f"{pivot_label} {where}{how}: {listed} not undone (the calls before a call that cannot be undone "
            f"are kept, not compensated)")
    return text, [name(plan, i) for i in st.kept] + [name(plan, st.pivot)]
