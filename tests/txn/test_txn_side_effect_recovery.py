"""Recovery of a deal left in flight on a route with a plugin step with side effects, from the marks its log
holds (engine/txn/recovery.py ``_effects_in_doubt``, ``_failing``; docs/transactions.md):

* the step provably never started (its ``begin`` names it among the steps marked ``running``, and it has no
  mark) and the call before it answered: ``on restart complete`` runs the step and the rest of the route,
  the call is not sent again, and a repeat of the key gets that answer;
* the step refused cleanly (a ``failed`` mark: a ``StepFailure`` without ``in_doubt``, nothing done outside
  bsp): it is not taken as "may have run", so the deal is not flagged; the deal was failing, so both
  ``compensate`` and ``complete`` undo the call and fail it, and the step is not run again.

The log is written as a crash leaves it (a real ``TxnLog`` file next to a real DuckDB ledger), then a real
engine starts on it with a real TCP counterpart on 127.0.0.1 port 0."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.deal import new_deal_ids
from engine.registry import default_registry
from engine.txn.log import TxnLog, log_path
from formats.component import ComponentSpec, OptionSpec
from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running

BOOKED: list[str] = []


def _registry():
    from engine.steps.base import FunctionStep

    def book(values, scope):
        BOOKED.append(str(values["ref"]))           # what a real plugin would send to its own system
        return "B-" + str(values["ref"])

    reg = default_registry(plugins=False)
    reg.register(ComponentSpec(category="step", name="book", doc="Books the deal in a system of its own.",
                               options=(OptionSpec("ref", "expr", "The reference."),), side_effects=True,
                               build=lambda step, ctx, route: FunctionStep(step, ctx, book)))
    return reg


ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 10s }
route book {
    receive from front as J
    on restart %s
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    book b { ref = msg.ref }
    reply J { ref = msg.ref  code = "00"  booked = b  conf = c.conf }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


def _crashed_log(ledger: Path, ref: str, marks: list[tuple[str, str]]) -> str:
    """The log a crash leaves: the deal accepted (its begin names ``3:book`` as marked before it runs), its
    call answered (``done`` with the reply), then ``marks``.  Returns the deal id."""
    did = new_deal_ids(1)[0]
    raw = b'{"ref": "%s"}' % ref.encode()
    entries = [{"t": "begin", "id": did, "route": "book", "channel": "front", "key": f"book|{ref}",
                "at": "2026-11-26T10:00:00+00:00", "logged": "2026-11-26T10:00:00+00:00", "raw": raw.hex(),
                "effects": ["3:book"]},
               {"t": "step", "id": did, "step": "c", "phase": "sending"},
               {"t": "step", "id": did, "step": "c", "phase": "done",
                "reply": {"status": "OK", "ref": ref, "conf": f"C-{ref}-post"}}]
    entries += [{"t": "step", "id": did, "step": s, "phase": ph} for s, ph in marks]
    txlog = TxnLog(log_path(ledger))
    txlog.append(entries)
    txlog.close()
    return did


def _events(ledger: Path, did: str) -> list[str]:
    return [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                        [did])]


async def test_complete_runs_a_step_that_provably_never_started_and_answers_its_repeat(nursery, tmp_path: Path) -> None:
    BOOKED.clear()
    credit = Counterpart()
    reg = _registry()
    program = compile_text(tmp_path, ROUTE % (await json_counterpart(nursery, credit.answer), "complete"),
                           registry=reg)
    ledger = tmp_path / "l.duckdb"
    did = _crashed_log(ledger, "A1", [])                 # the crash came after the call, before the step
    async with running(program, ledger, registry=reg) as sb:     # recovery runs before it serves
        assert BOOKED == ["A1"]                          # the step ran on restart, once
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref": "A1"}')                   # the client repeats the deal
        with trio.fail_after(10):
            (again,) = await c.recv_json(1)
        await c.aclose()
    assert again == {"ref": "A1", "code": "00", "booked": "B-A1", "conf": "C-A1-post"}   # the completed answer
    assert BOOKED == ["A1"]                              # the repeat booked nothing
    assert credit.counts[("post", "A1")] == 0           # the call not sent again
    assert credit.counts[("cancel", "A1")] == 0
    d = deals(ledger)
    assert [(x["deal_id"], x["status"]) for x in d] == [(did, "committed"), (d[1]["deal_id"], "duplicate")]
    events = _events(ledger, did)
    assert "recovered" in events and "flagged" not in events and "running 3:book" in events, events
    txlog = TxnLog(log_path(ledger))
    txlog.close()
    assert txlog.pending == {}


@pytest.mark.parametrize("policy", ["compensate", "complete"])
async def test_a_step_that_refused_cleanly_is_not_taken_as_run(nursery, tmp_path: Path, policy: str) -> None:
    """A ``failed`` mark is a clean refusal (engine/txn/effects.py ``acted``): the step did nothing, as in a
    running engine, where it is neither compensated nor flagged.  The deal was failing (its call was being
    undone): it is not flagged, its call is compensated once, the step is not run again, even under
    ``on restart complete`` (completing a deal that had failed would run the refused step again)."""
    BOOKED.clear()
    credit = Counterpart()
    reg = _registry()
    program = compile_text(tmp_path, ROUTE % (await json_counterpart(nursery, credit.answer), policy),
                           registry=reg)
    ledger = tmp_path / "l.duckdb"
    did = _crashed_log(ledger, "R1", [("3:book", "running"), ("3:book", "failed")])
    async with running(program, ledger, registry=reg):
        pass
    (d,) = deals(ledger)
    assert (d["deal_id"], d["status"]) == (did, "failed")
    assert "compensated on restart (calls undone: c)" in d["reason"], d["reason"]
    assert "flagged" not in d["reason"]
    assert BOOKED == []                                  # not run again
    assert credit.counts[("cancel", "R1")] == 1 and credit.counts[("post", "R1")] == 0
    events = _events(ledger, did)
    assert "flagged" not in events and "compensated c" in events, events


ROUTE_FEE = ROUTE.replace("conf = c.conf }", "conf = c.conf  fee = c.fee * 2  on = c.on }")


async def test_a_call_answer_read_back_after_a_crash_keeps_its_numbers_and_dates(nursery, tmp_path: Path) -> None:
    """The log keeps a call's answer with its value types (engine/txn/typed_values.py): a deal completed
    after a crash computes `c.fee * 2` as the running engine would, instead of failing on the text "1.50"
    (or, in a JSON body, sending the text where the number was)."""
    from datetime import date
    from decimal import Decimal

    from engine.txn.log import read
    from engine.txn.typed_values import tagged

    def answer(req: dict) -> dict:
        return {"status": "OK", "ref": req["ref"], "conf": "C-" + req["ref"], "fee": 1.5, "on": "2026-11-27"}

    reg = _registry()
    program = compile_text(tmp_path, ROUTE_FEE % (await json_counterpart(nursery, answer), "complete"), registry=reg)
    ledger = tmp_path / "live.duckdb"
    async with running(program, ledger, registry=reg) as sb:      # what the running engine logs
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref": "L1"}')
        with trio.fail_after(10):
            (live,) = await c.recv_json(1)
        await c.aclose()
        entries, _ = read(log_path(ledger))
    assert live["fee"] == 3.0 and live["code"] == "00"
    (done,) = [e for e in entries if e.get("t") == "step" and e.get("phase") == "done" and e.get("step") == "c"]
    assert done["reply"]["fee"] == {"$dec": "1.5"}

    BOOKED.clear()
    ledger = tmp_path / "l.duckdb"
    did = new_deal_ids(1)[0]
    raw = b'{"ref": "F1"}'
    txlog = TxnLog(log_path(ledger))
    txlog.append([{"t": "begin", "id": did, "route": "book", "channel": "front", "key": "book|F1",
                   "at": "2026-11-26T10:00:00+00:00", "logged": "2026-11-26T10:00:00+00:00", "raw": raw.hex(),
                   "effects": ["3:book"]},
                  {"t": "step", "id": did, "step": "c", "phase": "sending"},
                  {"t": "step", "id": did, "step": "c", "phase": "done",
                   "reply": tagged({"status": "OK", "ref": "F1", "conf": "C-F1", "fee": Decimal("1.50"),
                                    "on": date(2026, 11, 27)})}])
    txlog.close()
    async with running(program, ledger, registry=reg) as sb:      # recovery completes the deal
        assert BOOKED == ["F1"]
        c = await Client.open(sb.channel("front").port)
        await c.send(raw)
        with trio.fail_after(10):
            (again,) = await c.recv_json(1)
        await c.aclose()
    assert again == {"ref": "F1", "code": "00", "booked": "B-F1", "conf": "C-F1", "fee": 3.0, "on": "2026-11-27"}
    assert [x["status"] for x in deals(ledger)] == ["committed", "duplicate"]
