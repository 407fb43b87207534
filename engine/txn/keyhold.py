"""Whether a keyed deal that ended keeps its deal key (docs/transactions.md, "Which failures keep the key").

A key is kept (a repeat, and a ``bsp dead retry`` of the deal's dead letter, is answered as a duplicate and
runs nothing) unless it is certain that nothing of the deal stays at any counterpart:

* committed: kept (the deal is done);
* a call left in doubt (``timeout``, ``lost``, an answer that cannot be trusted) or a plugin step that acts
  outside bsp left in doubt: kept, even when compensated (one that nothing can undo also flags the deal,
  ``engine.txn.flagging``: the reason names the call all the same) (a compensation of a request that may still be on
  its way cannot prove it undone);
* a call the counterpart answered with a refusal (``expect`` false), or that failed after its request
  could have left (a reply that is not valid, ...): kept (the refusal is the deal's answer); a refusal
  frees it under ``on refusal free`` when nothing else of the deal stands (a premium debit refused for
  insufficient funds, presented again: nothing was taken);
* a call (or such a step) that went through and was not undone (no compensation, its compensation failed:
  no answer, or its ``expect`` did not hold on the compensation's own answer; a compensation without
  ``expect``, whose answer alone does not say the counterpart accepted the cancel; an ISO 8583 reversal
  queued and not acknowledged yet): kept;
* a deal the saga pivot rule flagged (``engine.txn.pivot``: a call without a compensation went through and
  the calls before it were kept, not compensated; or, under ``on doubt flag``, was left in doubt): kept;
* a deal left in flight by a crash and resolved on restart (``engine.txn.recovery``), or flagged for an
  operator (a shared key store's claim left by an engine that is gone, ...): kept;
* otherwise (the calls never left: ``unreachable``; or every one that went through was undone by a
  compensation that answered and whose ``expect`` held on that answer; an ISO 8583 reversal acknowledged):
  the key is **free**, a repeat runs as a new deal.

``held(plan, st, status)`` returns None for a free key, else the reason it is kept, which tells the operator
what to do ("" for a deal that did not fail: nothing to explain); it goes with the deal's ``end`` into the key store (``held``) and into the reason of every
duplicate of it.
"""
from __future__ import annotations

from typing import Any

from engine.txn import outcome, pivot

NOT_SENT = "unreachable"        # the only call failure certain to have sent nothing (docs/channels.md)


def held(plan: Any, st: Any, status: str) -> str | None:
    """Why the finished deal ``st`` keeps its key; None when the key is free (see the module)."""
    if status not in ("failed", "rejected"):
        return ""
    show = f"`bsp deals show {st.deal_id}`"
    if st.recovered:
        return (f"it was left in flight by a crash and resolved on restart (what reached a counterpart before "
                f"the crash is not known for certain), so it never runs again under its key: settle it with the "
                f"counterpart ({show})")
    kept = pivot.why(plan, st)      # the saga pivot rule kept calls from being compensated: flagged
    if kept is not None and not st.doubt_pivot:     # `on doubt flag`: said with the call in doubt (below)
        return (f"{kept[0]}, so it was flagged for an operator and never runs again under "
                f"its key: settle it with the counterparts ({show})")
    # flagged for a step left in doubt (or by a restart, a shared key store): that says it; flagged for a
    # compensation that failed: the participant it did not undo says more (below)
    # a call in doubt: the text below names it (the deal may be flagged for it too, engine.txn.flagging)
    calls_doubted = [i for i in st.doubted if i in plan.calls]
    if outcome.flagged(st) and not set(st.undo_failed) - {st.doubt} and not calls_doubted:
        return (f"it was flagged for an operator (in doubt), so it never runs again under its key: settle it "
                f"with the counterpart ({show})")
    for i, kind in st.doubted.items():
        name, where = pivot.label(plan, i)
        flag = ", flagged for an operator," if outcome.flagged(st) else ""
        held = ""
        if kept is not None and i == st.pivot:      # `on doubt flag` kept the calls before it
            held = (f" ({', '.join(' '.join(pivot.label(plan, j)).strip() for j in st.kept)} kept, not undone, "
                    f"until its outcome is known: undo {'it' if len(st.kept) == 1 else 'them'} only if the "
                    f"counterpart did not apply it)")
        return (f"{name} {where}may have reached the counterpart ({kind}: sent, no answer it can trust), so the "
                f"deal is in doubt{flag} and never runs again under its key: ask the counterpart whether it "
                f"applied it and settle it there{held} ({show})")
    for i, kind in st.answered.items():
        if kind == "refused" and getattr(plan, "refusal", "keep") == "free":
            continue        # `on refusal free`: a refusal leaves nothing at the counterpart (what else went through: below)
        name, where = pivot.label(plan, i)
        how = (f"was answered with a refusal ({kind})" if kind == "refused" else
               f"was answered and its answer could not be used ({kind})")
        return (f"{name} {where}{how}: that answer is the deal's and a repeat "
                f"gets it again; to run it again, remove the cause and have the sender send it with a new "
                f"key ({show})")
    left = [i for i in st.done if i not in st.undone]
    if left:
        i = left[-1]
        name, where = pivot.label(plan, i)
        why = ("its reversal is queued, not acknowledged yet"
               if i in st.compensated and _iso(plan, i) and i not in st.undo_failed else
               f"its compensation answered, but has no `expect` to tell a cancel accepted from one refused: "
               f"give it one, e.g. expect {plan.calls[i].name}.status == \"OK\"" if i in st.unproven else
               "its compensation failed (no answer, or its `expect` did not hold on its answer)"
               if i in st.compensated else "it has no compensation")
        return (f"{name} {where}went through and was not undone ({why}), so the deal never runs again under "
                f"its key: settle it with the counterpart ({show})")
    return None


def _iso(plan: Any, i: int) -> bool:
    call = plan.calls.get(i)
    return call is not None and call.iso and call.compensation is None
