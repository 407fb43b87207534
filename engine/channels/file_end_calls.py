"""The calls of a file's end message that went through, kept so that a retry does not make them again.

A route whose `when` reads ``file.end`` (``engine.channels.file_end``) closes a file's results: a summary line
appended to a result file, then a marker, a counterpart told.  When a later call of it fails (the marker's
folder full, the counterpart down), its deal is ``failed`` with a dead letter, and the calls before the one that
failed have been made: the summary line is written.  ``bsp dead retry`` sends the message again; run whole, the
route would append the summary line a second time.  So:

    when the deal fails      its row gets an event ``end calls done``, ``{"calls": {NAME: ANSWER, ...}}``: each call
                             of the route's steps that answered and that nothing undid (not compensated:
                             ``error.not_undone`` when the transaction manager ran it), in the order they ran,
                             with its answer (typed as the transaction log keeps answers:
                             ``engine.txn.typed_values``; a value its reply format classifies is kept as null)
    when it is retried       (``engine.deadletter.switchboard_injector``) the event is read from the letter's
                             deal (the letter's id is its deal's), and each of those calls is not made again: its
                             answer is bound under its name as it came (``line.offset`` reads the offset the line
                             was written at), its ``expect`` held then, and the route goes on with the next call.
                             The retry's deal gets the same event, with the calls it skipped, if it fails too

A call in doubt (sent, no answer: a time-out) is not among them: whether it went through is unknown, and the
retry makes it again (look at its counterpart first: the deal's reason names it).  A call its compensation undid
is made again, as it should be.  Only the end routes' own steps are skipped this way (``CallStep.end_route``);
their ``on error`` and compensation calls run as they always do.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from formats.classify import classified_values

EVENT = "end calls done"


def _end_calls(br: Any) -> list[Any]:
    return [s for s in br.steps if getattr(s, "end_route", False)]


def done_calls(ex: Any, told: bool) -> dict[str, Any]:
    """``{name: answer}`` of the calls of a failed end message's route that went through (see the module).
    ``told``: the transaction manager ran the route, so ``error.undone`` / ``error.not_undone`` say which calls
    its compensations undid (without it nothing undoes a call)."""
    br, f = ex.route, ex.failure
    err = ex.scope.get("error")
    if told and isinstance(err, dict) and err.get("undone") is True:
        told_left: list[Any] | None = []             # every call that went through was undone
    elif told and isinstance(err, dict) and isinstance(err.get("not_undone"), list):
        told_left = err["not_undone"]
    else:
        told_left = None
    tags = dict(getattr(br, "classified_scopes", ()))
    out: dict[str, Any] = {}
    for step in _end_calls(br):
        if f is not None and f.where == step.where:
            break                                    # the call that failed (refused: its answer came, not done)
        name = step.answer_as
        if name not in ex.scope:
            continue
        if told_left is not None and name not in told_left:
            continue                                 # undone by its compensation: made again on retry
        out[name] = _kept(ex.scope[name], tags.get(name))
    return out


def _kept(answer: Any, tags: Mapping[str, str] | None) -> Any:
    """``answer`` as the event keeps it: typed, a classified value (personal, secret) as null."""
    from engine.txn.typed_values import tagged

    hidden = set(classified_values(answer, tags, min_len=1)) if tags else set()

    def strip(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [strip(x) for x in v]
        if v is not None and not isinstance(v, bool) and (v if isinstance(v, str) else str(v)) in hidden:
            return None
        return v

    try:
        return tagged(strip(answer) if hidden else answer)
    except TypeError:
        return None


def note(ex: Any, rec: Any, at: datetime, told: bool) -> None:
    """The event ``end calls done`` on the deal of a failed end message whose route made some call (nothing
    when none went through)."""
    from engine.deal import DealEvent

    calls = done_calls(ex, told)
    if calls:
        rec.events.append(DealEvent(at, None, EVENT, {"calls": calls}))


def skipped_of(ex: Any) -> dict[str, Any]:
    """The calls an end message's retry is not to make again (``EndOrigin.done``), {} for any other message."""
    from engine.runtime.dispatch import _origin

    return getattr(_origin(ex), "done", None) or {}


def answered_before(ex: Any, step: Any) -> bool:
    """True (and its answer bound) when ``step``, a call of an end route, went through in the deal this retry
    is of: it is not made again."""
    done = skipped_of(ex)
    if step.answer_as not in done:
        return False
    from engine.txn.typed_values import untagged

    ex.scope[step.answer_as] = untagged(done[step.answer_as])
    return True


def read_done(store: Any, deal_id: str) -> dict[str, Any]:
    """The calls the deal ``deal_id`` (a failed end message's) noted as done: its newest ``end calls done``
    event, {} when it has none.  ``store``: a ``LedgerStore`` (``Ledger.with_store``)."""
    import orjson

    row = store._con.execute(
        "SELECT detail FROM deal_events WHERE deal_id = ? AND to_state = ? ORDER BY seq DESC LIMIT 1",
        [deal_id, EVENT]).fetchone()
    if row is None or row[0] is None:
        return {}
    d = row[0] if isinstance(row[0], dict) else orjson.loads(row[0])
    calls = d.get("calls") if isinstance(d, dict) else None
    return dict(calls) if isinstance(calls, dict) else {}


async def done_of(ledger: Any, deal_id: str | None) -> dict[str, Any]:
    """``read_done`` through the engine's (or ``bsp dead retry``'s) ledger; {} without one."""
    if ledger is None or deal_id is None or not hasattr(ledger, "with_store"):
        return {}
    if getattr(ledger, "sync", None) == "none" and hasattr(ledger, "wait_loaded"):
        await ledger.wait_loaded()
    return await ledger.with_store(read_done, deal_id)
