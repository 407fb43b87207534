"""A plugin step that acts outside bsp (``ComponentSpec.side_effects``) and fails: a clean refusal
(``StepFailure`` without ``in_doubt``) did nothing; anything else leaves its deal in doubt, as a call that
timed out: the deal fails saying the work may have been done; the step's own ``compensate`` hook (if any)
runs, with the calls before it; a step whose kind has none may have done its work that nothing can undo, so
under ``on doubt flag`` (the default) the calls before it are kept, as for a call left in doubt, and under
``on doubt compensate`` they are compensated; what nothing undid is flagged for an operator."""
from __future__ import annotations

from pathlib import Path

import orjson
import trio

from engine.registry import default_registry
from formats.component import ComponentSpec, OptionSpec
from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running

BOOKED: list[str] = []
UNDONE: list[str] = []


def _book(values, scope):
    from engine.steps.base import StepFailure

    ref = str(values["ref"])
    if ref.startswith("R"):                        # refused before anything was sent
        raise StepFailure("rejected", f"book: {ref} is on the stop list", code="57", text="not permitted")
    BOOKED.append(ref)                             # what a real plugin would send to its own system
    if ref.startswith(("X", "U")):                 # a bug after it was sent
        raise RuntimeError("the booking system's answer has no id")
    if ref.startswith("D"):                        # the step's own words: it may have been booked
        raise StepFailure("internal", f"book: no answer for {ref}", in_doubt=True)
    return "B-" + ref


def _undo(values, scope):
    if str(values["ref"]).startswith("U"):
        raise RuntimeError("the booking system refuses the cancel")
    UNDONE.append(str(values["ref"]))


def registry():
    from engine.steps.base import FunctionStep

    reg = default_registry(plugins=False)
    opts = (OptionSpec("ref", "expr", "The reference."),)
    reg.register(ComponentSpec(category="step", name="book", doc="Books; no compensation.", options=opts,
                               build=lambda step, ctx, route: FunctionStep(step, ctx, _book), side_effects=True))
    reg.register(ComponentSpec(category="step", name="hold", doc="Books; cancelled when the deal fails.",
                               options=opts, side_effects=True,
                               build=lambda step, ctx, route: FunctionStep(step, ctx, _book, compensate=_undo)))
    return reg


ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 10s }
route pay {
    receive from front as J%s
    deal PAY { key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }
    call d = debit as J reply J { op = "post"  ref = msg.ref } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref }
    %s b { ref = msg.ref }
    validate { msg.ref != "LATE" else reject "05" "late" }
    reply J { ref = msg.ref  code = "00"  booked = b }
    on error reply J { ref = msg.ref  code = error.code  text = error.text }
}
"""


async def _run(nursery, tmp_path: Path, kind: str, refs: list[str], doubt: str = "") -> tuple[dict, Counterpart, Path]:
    BOOKED.clear()
    UNDONE.clear()
    debit = Counterpart()
    reg = registry()
    program = compile_text(tmp_path, ROUTE % (await json_counterpart(nursery, debit.answer), doubt, kind), registry=reg)
    ledger = tmp_path / "l.duckdb"
    answers = {}
    async with running(program, ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        with trio.fail_after(10):
            for ref in refs:
                await c.send(b'{"ref": "%s"}' % ref.encode())
                (answers[ref],) = await c.recv_json(1)
        await c.aclose()
    return answers, debit, ledger


def _deal(ledger: Path, ref: str) -> tuple[dict, list[str], list[dict]]:
    (d,) = [d for d in deals(ledger) if d["reference"] == ref]
    events = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                          [d["deal_id"]])]
    steps = rows(ledger, "SELECT step AS name, outcome FROM deal_steps WHERE deal_id = ? ORDER BY seq", [d["deal_id"]])
    return d, events, steps


async def test_a_step_that_raises_leaves_its_deal_in_doubt_compensates_the_calls_and_is_flagged(
        nursery, tmp_path: Path) -> None:
    answers, debit, ledger = await _run(nursery, tmp_path, "book", ["X1"], "\n    on doubt compensate")
    assert answers["X1"] == {"ref": "X1", "code": "96", "text": "outcome unknown"}
    assert BOOKED == ["X1"]
    d, events, _ = _deal(ledger, "X1")
    assert d["status"] == "failed" and d["response_code"] == "96"
    assert d["reason"].startswith("in_doubt: RuntimeError: the booking system's answer has no id (step kind book); "
                                  "it acts outside bsp and may have done its work before it failed (at "), d["reason"]
    assert debit.counts[("cancel", "X1")] == 1                     # on doubt compensate: the call before it undone
    assert events[-3:] == ["compensated d", "flagged", "failed"], events
    (flag,) = rows(ledger, "SELECT detail FROM deal_events WHERE deal_id = ? AND to_state = 'flagged'", [d["deal_id"]])
    assert "step 3:book (step kind book) failed in doubt" in flag["detail"] and "no compensation" in flag["detail"]
    (letter,) = rows(ledger, "SELECT error_kind, reason FROM dead_letters")
    assert letter["error_kind"] == "in_doubt" and "may have done its work" in letter["reason"]


async def test_a_step_in_doubt_without_undo_keeps_the_calls_before_it_by_default(nursery, tmp_path: Path) -> None:
    """`on doubt flag` (the default), as for a call left in doubt: the booking may have been made and nothing
    undoes it, so the debit that pays for it is kept and the deal flagged naming both (until 2026-11-26 the
    debit was cancelled while the booking may have stood)."""
    answers, debit, ledger = await _run(nursery, tmp_path, "book", ["X1", "D1"])
    assert answers["X1"]["code"] == answers["D1"]["code"] == "96"
    assert ("cancel", "X1") not in debit.counts and ("cancel", "D1") not in debit.counts, debit.counts
    for ref in ("X1", "D1"):
        d, events, _ = _deal(ledger, ref)
        assert d["status"] == "failed" and "compensated d" not in events and "flagged" in events, events
        (flag,) = rows(ledger, "SELECT detail FROM deal_events WHERE deal_id = ? AND to_state = 'flagged'",
                       [d["deal_id"]])
        detail = orjson.loads(flag["detail"])
        assert detail["not_undone"] == ["d", "3:book"], detail
        assert detail["why"].startswith("step 3:book failed in doubt (") and (
            "nothing can undo it (its kind has no compensation): it may have done its work outside bsp, so call d "
            "to debit is kept, not undone (on doubt flag)") in detail["why"], detail


async def test_a_step_failure_in_doubt_keeps_its_words_and_is_treated_alike(nursery, tmp_path: Path) -> None:
    answers, debit, ledger = await _run(nursery, tmp_path, "book", ["D1"], "\n    on doubt compensate")
    assert answers["D1"]["code"] == "96"
    d, events, _ = _deal(ledger, "D1")
    assert d["status"] == "failed"
    assert d["reason"].startswith("internal: book: no answer for D1 (step kind book: it acts outside bsp and may "
                                  "have done its work before it failed) (at "), d["reason"]
    assert debit.counts[("cancel", "D1")] == 1
    assert "flagged" in events


async def test_a_clean_refusal_did_nothing_and_is_not_flagged(nursery, tmp_path: Path) -> None:
    answers, debit, ledger = await _run(nursery, tmp_path, "book", ["R1"])
    assert answers["R1"] == {"ref": "R1", "code": "57", "text": "not permitted"}
    assert BOOKED == []
    d, events, _ = _deal(ledger, "R1")
    assert d["status"] == "rejected" and d["reason"].startswith("rejected: book: R1 is on the stop list (at ")
    assert debit.counts[("cancel", "R1")] == 1                     # the deal failed after the call: undone
    assert "flagged" not in events


async def test_the_compensate_hook_undoes_a_step_in_doubt_before_the_calls_and_once(nursery, tmp_path: Path) -> None:
    answers, debit, ledger = await _run(nursery, tmp_path, "hold", ["X2", "LATE", "U1", "OK1"])
    assert [answers[r]["code"] for r in ("X2", "LATE", "U1", "OK1")] == ["96", "05", "96", "00"]
    assert UNDONE == ["X2", "LATE"]                               # in doubt, and booked then failed later
    d, events, steps = _deal(ledger, "X2")
    assert [s["name"] for s in steps][-2:] == ["3:hold.compensate", "d.compensate"]   # newest first
    assert [s["outcome"] for s in steps][-2:] == ["ok", "ok"]
    assert "compensated 3:hold" in events and "flagged" not in events   # undone: nothing left to an operator
    d, events, _ = _deal(ledger, "LATE")
    assert d["status"] == "rejected" and "compensated 3:hold" in events and "flagged" not in events
    d, events, steps = _deal(ledger, "U1")                          # its undo failed: flagged
    assert "compensation of 3:hold failed" in events and "flagged" in events
    (flag,) = rows(ledger, "SELECT detail FROM deal_events WHERE deal_id = ? AND to_state = 'flagged'", [d["deal_id"]])
    assert "its compensation failed" in flag["detail"]
    assert any(s["name"] == "3:hold.compensate" and s["outcome"] == "internal" for s in steps)
    assert UNDONE.count("OK1") == 0 and debit.counts[("cancel", "OK1")] == 0


async def test_a_completed_step_without_undo_is_a_pivot_the_call_before_it_is_kept_and_flagged(
        nursery, tmp_path: Path) -> None:
    """The saga pivot rule (engine/txn/pivot.py) holds for a plugin step as for a call: ``book`` has no
    ``compensate`` hook and completed, then the ``validate`` after it rejects the deal.  Cancelling the debit
    would not undo the booking (it pays for it): the debit is kept, not cancelled, and the deal is flagged
    for an operator, naming the step and the debit.  (Until 2026-11-27 the debit was cancelled while the
    booking stood, and nothing was flagged.)"""
    answers, debit, ledger = await _run(nursery, tmp_path, "book", ["LATE"])
    assert answers["LATE"]["code"] == "05"
    assert BOOKED == ["LATE"] and UNDONE == []
    assert debit.counts[("cancel", "LATE")] == 0                   # before the pivot: kept
    d, events, _ = _deal(ledger, "LATE")
    assert d["status"] == "rejected" and "flagged" in events and "compensated d" not in events, events
    (flag,) = rows(ledger, "SELECT detail FROM deal_events WHERE deal_id = ? AND to_state = 'flagged'", [d["deal_id"]])
    detail = orjson.loads(flag["detail"])
    assert detail["not_undone"] == ["d", "3:book"], detail
    assert detail["why"].startswith("step 3:book did its work outside bsp and its kind has no compensation: call d "
                                    "to debit not undone"), detail
    assert "flagged for an operator: step 3:book did its work outside bsp" in d["reason"], d["reason"]
