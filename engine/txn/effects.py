"""Plugin steps that act outside bsp (``ComponentSpec.side_effects``) as transaction participants.

Such a step is handled like a call by ``TxnManager.run_steps``:

    before it runs   the deal's ``begin`` (if not written yet) and a ``running`` mark are written
                     durably: a crash while it runs leaves a deal in flight, which recovery flags
                     for an operator (``engine.txn.recovery``), never nothing; a deal in flight
                     without the mark (its ``begin`` names the marked steps) never started it, and
                     recovery follows the route's ``on restart`` policy
    after it         ``done`` (lazy; a kind without ``undo`` that completed is the deal's pivot,
                     ``engine.txn.pivot``); a clean refusal (``StepFailure`` without ``in_doubt``): ``failed``,
                     nothing to undo; any other failure leaves the step **in doubt** (it may have done
                     its work: ``engine.runtime.stepfail``), to be compensated like a call that timed out
    on failure       the step's ``undo(ex)`` (``FunctionStep(..., compensate=fn)``), if it has one, runs
                     with the calls' compensations, newest first, at most once per deal, one trace line
                     ``NAME.compensate``; a step left in doubt that is not undone (no hook, or the hook
                     failed), or any step whose hook failed, gets the deal event ``flagged`` with the
                     reason, for an operator (``engine.txn.flagging``)
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from engine.deal import DealStep
from engine.runtime.exchange import StepFailure
from engine.txn.backlog import log_fault
from engine.txn import pivot
from engine.txn.log import TxnLogError

_UTC = timezone.utc


async def acting(mgr: Any, plan: Any, i: int, name: str, live: list[Any]) -> None:
    """Durable before step ``i`` runs: the begin records (first participant) and ``running`` marks.
    If the log cannot be written the step does not run: its exchanges fail (``internal``)."""
    entries: list[dict[str, Any]] = []
    for ex in live:
        st = mgr.states[ex]
        if st.admitted:
            if st.begin is not None:
                entries.append(st.begin)
                st.begin = None
            entries.append({"t": "step", "id": st.deal_id, "step": name, "phase": "running"})
            st.done.append(i)              # from now on it may have happened: compensate on failure
    try:
        await mgr.write(entries)
    except TxnLogError as exc:
        for ex in live:
            st = mgr.states[ex]
            if not st.admitted:
                continue
            st.done.remove(i)
            if not st.logged:
                mgr._unadmit(st)
            ex.fail(log_fault(exc, f"step {name} not run", str(plan.route.pos)))
        return
    for ex in live:
        st = mgr.states[ex]
        if st.admitted:
            st.logged = True
            st.move(f"running {name}")


def acted(mgr: Any, plan: Any, i: int, name: str, live: list[Any]) -> None:
    """After step ``i``: done, refused (nothing to undo) or in doubt (kept to compensate, then flag).  A
    step done whose kind has no ``undo`` is the deal's pivot (``engine.txn.pivot``), as a call without a
    compensation is.  Its ``done`` stays lazy (a call pivot's is made durable at once): a restart flags a
    deal whose step has any mark, ``running`` or ``done``, so it never undoes the calls before it."""
    entries = []
    for ex in live:
        st = mgr.states[ex]
        if not st.admitted:
            continue
        f = ex.failure
        if f is None:
            entries.append({"t": "step", "id": st.deal_id, "step": name, "phase": "done"})
            if pivot.is_pivot(plan, i):
                st.pivot = i
        elif getattr(f, "in_doubt", False):
            st.doubt = i
            st.doubted[i] = f.kind           # the deal keeps its key, undone or not (engine.txn.keyhold)
        else:
            st.done.remove(i)
            entries.append({"t": "step", "id": st.deal_id, "step": name, "phase": "failed"})
    mgr._lazy.extend(entries)             # no fsync of their own: they reach the disk with the next write


async def undo(mgr: Any, plan: Any, i: int, ex: Any, st: Any) -> None:
    """Compensate step ``i`` with its ``undo`` hook, once per deal; nothing when it has none."""
    runner = plan.effects[i]
    hook = getattr(runner, "undo", None)
    if hook is None or i in st.compensated:
        return
    st.compensated.add(i)
    name = plan.step_name(i, runner)
    started = datetime.now(_UTC)
    t0 = time.perf_counter()
    failure = None
    try:
        hook(ex)
    except StepFailure as f:
        failure = f
    except Exception as exc:
        failure = StepFailure("internal", f"{type(exc).__name__}: {exc}", where=getattr(runner, "where", None))
    ok = failure is None
    if failure is not None:            # the plugin's text may quote the values it was given
        known = ex.classified()
        if known:
            failure.mask(known)
    st.trace.append(DealStep(f"{name}.compensate", "compensate", "ok" if ok else failure.kind, started,
                             round((time.perf_counter() - t0) * 1000.0, 3), None,
                             None if ok else {"code": failure.code, "reason": failure.reason()}))
    st.move(f"compensated {name}" if ok else f"compensation of {name} failed", None if ok else failure.reason())
    if ok:
        st.undone.add(i)                 # undone: the deal may free its key (engine.txn.keyhold)
    else:
        st.undo_failed[i] = failure.reason()     # flagged for an operator (engine.txn.flagging)
    if ok and st.doubt == i:
        st.doubt = None
    mark = {"t": "step", "id": st.deal_id, "step": name, "phase": "compensated" if ok else "compensation_failed"}
    await mgr.write_or_later([mark])     # it happened: the mark follows with the next write that works
