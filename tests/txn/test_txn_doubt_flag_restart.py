"""A call without a compensation in doubt at a crash is flagged on restart (engine/txn/recovery.py,
engine/txn/flagging.py; docs/transactions.md "Flagged for an operator").

A keyed payout: a debit (compensated), then a credit with no compensation.  The engine is cut off while the
credit's post waits on a counterpart that does not answer it: the log holds the credit ``sending`` (it may
have been applied).  Under ``on restart compensate`` with ``on doubt compensate`` the debit is cancelled
once (the credit may not have happened), the credit is not sent again, and, nothing being able to undo it,
the deal is flagged for an operator naming it (until 2026-11-27 it failed ``recovered``, not flagged).
With ``on doubt flag`` (the default) the restart follows the running engine's rule: the credit may have gone
through, so the debit is kept (never cancelled) and the deal flagged naming both (until 2026-11-26 a crash
reversed the debit that a timeout would have kept)."""
from __future__ import annotations

from pathlib import Path

import orjson
import trio

from engine.txn.log import TxnLog, log_path
from test_txn_pivot_restart import Silent
from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
route payout {
    receive from front as J
    on restart compensate%s
    deal PAYOUT { ref = msg.ref  amount = msg.amount  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref } expect d.status == "OK"
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


async def _crash_during_the_credit(nursery, tmp_path: Path, doubt: str):
    debit, credit = Counterpart(), Silent()
    ports = [await json_counterpart(nursery, cp.answer) for cp in (debit, credit)]
    program = compile_text(tmp_path, ROUTE % (*ports, doubt))
    ledger = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with running(program, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            try:
                await c.send(b'{"ref":"P1","amount":5}')
                with trio.fail_after(10):                  # a guard against a hang, not a timing
                    await credit.held.wait()               # the credit's post reached its counterpart
                crash.cancel()                             # no drain, no answer, no deal row
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)
    assert deals(ledger) == []
    txlog = TxnLog(log_path(ledger))
    (p,) = txlog.pending.values()
    txlog.close()
    assert p.phases == {"d": "done", "c": "sending"}
    credit.mute = False
    async with running(program, ledger):
        pass
    assert credit.counts == {("post", "P1"): 1}          # never sent again
    (d,) = deals(ledger)
    assert d["status"] == "failed" and d["response_code"] == "96"
    assert d["reason"].endswith("; flagged for an operator"), d["reason"]
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [d["deal_id"]])
    states = [e["to_state"] for e in events]
    [flag] = [orjson.loads(e["detail"]) for e in events if e["to_state"] == "flagged"]
    return debit, d, states, flag


async def test_restart_compensate_flags_a_call_in_doubt_that_nothing_can_undo(nursery, tmp_path: Path) -> None:
    debit, d, states, flag = await _crash_during_the_credit(nursery, tmp_path, "\n    on doubt compensate")
    assert debit.counts[("cancel", "P1")] == 1          # before the call in doubt: undone, once
    assert "compensated on restart (calls undone: d)" in d["reason"], d["reason"]
    assert ("call(s) c may have reached the counterpart (sent, no answer logged): the outcome is unknown and "
            "nothing can undo it (no compensation); ask the counterpart whether it applied it") in d["reason"]
    assert "compensated d" in states and "flagged" in states, states
    assert flag["not_undone"] == ["c"], flag


async def test_restart_keeps_the_debit_under_on_doubt_flag_the_default(nursery, tmp_path: Path) -> None:
    debit, d, states, flag = await _crash_during_the_credit(nursery, tmp_path, "")
    assert ("cancel", "P1") not in debit.counts          # kept: the credit may have gone through
    assert "compensated on restart (calls undone: none)" in d["reason"], d["reason"]
    assert ("call c to credit got no answer it can trust (sent before the crash, no answer logged) and nothing "
            "can undo it (it has no compensation): it may have gone through, so call d to debit is kept, not "
            "undone (on doubt flag)") in d["reason"], d["reason"]
    assert "may have reached the counterpart" not in d["reason"], d["reason"]     # said once
    assert "compensated d" not in states and "flagged" in states, states
    assert flag["not_undone"] == ["d", "c"], flag
