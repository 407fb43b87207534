"""A crash in the middle of compensating a deal: recovery runs each compensation not yet started exactly once
and never sends one again that had started (engine/txn/manager.py ``compensate_step``: a ``compensating`` mark
is durable before a compensation leaves; engine/txn/recovery.py; docs/transactions.md "Compensation and a
crash").

A keyed transfer makes three calls (debit, credit, fee); the fee is refused, so the credit then the debit are
compensated, newest first.  One of the two compensations goes to a real loopback counterpart that never
answers it, and the engine is cut off there (its task tree cancelled: no drain, no answer, no deal row).  The
restart sends no request: by the time it serves, the deal is final, every counterpart saw each compensation
at most once, and the refused fee was never compensated.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.txn import manager_for
from engine.txn.log import TxnLog, log_path
from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
channel fee = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
route transfer {
    receive from front as J
    on restart %s
    deal TRANSFER { ref = msg.ref  amount = msg.amount  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref }
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    call f = fee as J reply J { op = "post"  ref = msg.ref } expect f.status == "OK"
        compensate call fee as J reply J { op = "cancel"  ref = msg.ref }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


class Hanging(Counterpart):
    """Counts every request; never answers a ``cancel`` while ``mute`` (the compensation stays under way)."""

    def __init__(self, mute: bool) -> None:
        super().__init__()
        self.mute = mute
        self.held = trio.Event()

    def answer(self, req: dict):
        out = super().answer(req)
        if self.mute and req.get("op") == "cancel":
            self.held.set()
            return None
        return out


async def _crash_while_compensating(tmp_path: Path, nursery, hang: str, policy: str):
    debit, credit = Hanging(hang == "debit"), Hanging(hang == "credit")
    fee = Counterpart(refuse={"S1"})
    ports = [await json_counterpart(nursery, cp.answer) for cp in (debit, credit, fee)]
    program = compile_text(tmp_path, ROUTE % (*ports, policy))
    ledger = tmp_path / "l.duckdb"
    held = debit if hang == "debit" else credit
    with trio.CancelScope() as crash:
        async with running(program, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            try:
                await c.send(b'{"ref":"S1","amount":5}')
                with trio.fail_after(10):                  # a guard against a hang, not a timing
                    await held.held.wait()                 # the compensation has reached the counterpart
                crash.cancel()                             # no drain, no answer, no deal row
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)
    assert deals(ledger) == []
    debit.mute = credit.mute = False
    return program, ledger, debit, credit, fee


@pytest.mark.parametrize("policy", ["compensate", "complete"])
async def test_a_compensation_not_started_runs_once_and_one_under_way_is_not_sent_again(
        nursery, tmp_path: Path, policy: str) -> None:
    """Cut off while the credit's compensation waits for its answer: the debit's has not started.  The log
    tells the three apart: the fee ``failed`` (refused: nothing to undo), the credit ``compensating`` (it
    may have reached the counterpart), the debit ``done``.  The restart undoes the debit once, does not
    send the credit's cancel again and flags the deal for an operator; the fee is never cancelled.  (Before,
    the log showed the fee ``sending`` and the credit ``done``: all three were cancelled, the credit twice;
    under ``complete`` the deal was flagged with the debit not undone.)"""
    program, ledger, debit, credit, fee = await _crash_while_compensating(tmp_path, nursery, "credit", policy)
    txlog = TxnLog(log_path(ledger))
    (p,) = txlog.pending.values()
    txlog.close()
    assert p.phases == {"d": "done", "c": "compensating", "f": "failed"}
    async with running(program, ledger) as sb:                  # serving: not one request is sent
        assert list(manager_for(sb.ledger).log.pending) == []
    assert debit.counts[("cancel", "S1")] == 1                  # not started before the crash: run once
    assert credit.counts[("cancel", "S1")] == 1                 # under way at the crash: not sent again
    assert fee.counts[("cancel", "S1")] == 0                    # refused: nothing to undo
    assert [cp.counts[("post", "S1")] for cp in (debit, credit, fee)] == [1, 1, 1]
    (d,) = deals(ledger)
    assert d["status"] == "failed" and d["response_code"] == "96"
    assert "calls undone: d" in d["reason"]
    assert "compensation of c" in d["reason"] and "not run again" in d["reason"]
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [d["deal_id"]])
    states = [e["to_state"] for e in events]
    assert states[0] == "in flight at restart" and "compensated d" in states and "compensated c" not in states
    assert "flagged" in states and states[-1] == "failed"
    (flag,) = [e for e in events if e["to_state"] == "flagged"]
    assert "compensation of c" in flag["detail"]
    txlog = TxnLog(log_path(ledger))
    assert txlog.pending == {}
    txlog.close()


async def test_a_compensation_done_before_the_crash_is_not_run_again(nursery, tmp_path: Path) -> None:
    """Cut off while the debit's compensation waits, the credit's answered: neither is sent again (the credit's
    is ``compensated`` in the log, the debit's ``compensating``), the fee is never cancelled."""
    program, ledger, debit, credit, fee = await _crash_while_compensating(tmp_path, nursery, "debit", "compensate")
    txlog = TxnLog(log_path(ledger))
    (p,) = txlog.pending.values()
    txlog.close()
    assert p.phases == {"d": "compensating", "c": "compensated", "f": "failed"}
    async with running(program, ledger):
        pass
    assert (debit.counts[("cancel", "S1")], credit.counts[("cancel", "S1")], fee.counts[("cancel", "S1")]) == (1, 1, 0)
    (d,) = deals(ledger)
    assert d["status"] == "failed" and "calls undone: none" in d["reason"] and "compensation of d" in d["reason"]


async def test_under_flag_nothing_is_sent_and_the_reason_names_the_compensation_under_way(nursery, tmp_path: Path) -> None:
    """``on restart flag`` sends nothing, and tells the operator which compensation may have happened."""
    program, ledger, debit, credit, fee = await _crash_while_compensating(tmp_path, nursery, "credit", "flag")
    async with running(program, ledger):
        pass
    assert (debit.counts[("cancel", "S1")], credit.counts[("cancel", "S1")], fee.counts[("cancel", "S1")]) == (0, 1, 0)
    (d,) = deals(ledger)
    assert d["status"] == "failed" and "flagged for an operator" in d["reason"]
    assert "compensation of c was under way" in d["reason"]


class Refusing(Hanging):
    """Refuses every ``cancel`` (``{"status": "REFUSED"}``): a compensation whose `expect` fails."""

    def answer(self, req: dict):
        out = super().answer(req)
        if req.get("op") == "cancel":
            return {"status": "REFUSED", "ref": req.get("ref")}
        return out


async def test_a_compensation_that_failed_before_the_crash_is_flagged_not_run_again(nursery, tmp_path: Path) -> None:
    """The credit's cancel was refused (its `expect` false on its own answer: ``compensation_failed``), then the
    engine was cut off while the debit's waited.  A running engine flags a deal whose compensation failed
    (docs/transactions.md "Flagged for an operator"); the restart does too, and sends neither cancel again.
    (Before, the deal ended `recovered`, not flagged: the refused credit was in no flag or count.)"""
    debit, credit, fee = Hanging(True), Refusing(False), Counterpart(refuse={"S1"})
    ports = [await json_counterpart(nursery, cp.answer) for cp in (debit, credit, fee)]
    route = ROUTE.replace('compensate call credit as J reply J { op = "cancel"  ref = msg.ref }',
                          'compensate call credit as J reply J { op = "cancel"  ref = msg.ref } expect c.status == "OK"')
    assert route != ROUTE
    program = compile_text(tmp_path, route % (*ports, "compensate"))
    ledger = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with running(program, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            try:
                await c.send(b'{"ref":"S1","amount":5}')
                with trio.fail_after(10):                  # a guard against a hang, not a timing
                    await debit.held.wait()
                crash.cancel()
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)
    debit.mute = False
    txlog = TxnLog(log_path(ledger))
    (p,) = txlog.pending.values()
    txlog.close()
    assert p.phases == {"d": "compensating", "c": "compensation_failed", "f": "failed"}
    async with running(program, ledger):
        pass
    assert (debit.counts[("cancel", "S1")], credit.counts[("cancel", "S1")], fee.counts[("cancel", "S1")]) == (1, 1, 0)
    (d,) = deals(ledger)
    assert d["status"] == "failed" and d["response_code"] == "96" and "flagged for an operator" in d["reason"]
    assert "compensation of c failed before the crash" in d["reason"], d["reason"]
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [d["deal_id"]])
    (flag,) = [e for e in events if e["to_state"] == "flagged"]
    assert "compensation of c failed before the crash" in flag["detail"]
