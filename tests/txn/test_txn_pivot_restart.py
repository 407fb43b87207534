"""The saga pivot rule on restart (engine/txn/pivot.py, engine/txn/recovery.py; docs/transactions.md "The
pivot: a call that cannot be undone").

A keyed payout: a debit (compensated), a credit with no compensation (the pivot: it cannot be called back),
then a fee (compensated).  The engine is cut off while the fee's post waits on a counterpart that does not
answer it.  The log holds the credit ``done``: under ``on restart compensate`` the fee (after the pivot) is
cancelled once, the debit (before it) is **not** (the credit stands), and the deal is flagged for an operator.
"""
from __future__ import annotations

from pathlib import Path

import trio

from engine.txn.log import TxnLog, log_path
from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
channel fee = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
route payout {
    receive from front as J
    on restart compensate
    deal PAYOUT { ref = msg.ref  amount = msg.amount  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref } expect d.status == "OK"
    call c = credit as J reply J { op = "post"  ref = msg.ref } expect c.status == "OK"
    call f = fee as J reply J { op = "post"  ref = msg.ref } expect f.status == "OK"
        compensate call fee as J reply J { op = "cancel"  ref = msg.ref } expect f.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


class Silent(Counterpart):
    """Counts every request; holds the ``post`` unanswered while ``mute``."""

    def __init__(self) -> None:
        super().__init__()
        self.mute = True
        self.held = trio.Event()

    def answer(self, req: dict):
        out = super().answer(req)
        if self.mute and req.get("op") == "post":
            self.held.set()
            return None
        return out


async def test_restart_compensate_does_not_undo_the_calls_before_a_pivot_that_went_through(nursery, tmp_path: Path) -> None:
    debit, credit, fee = Counterpart(), Counterpart(), Silent()
    ports = [await json_counterpart(nursery, cp.answer) for cp in (debit, credit, fee)]
    program = compile_text(tmp_path, ROUTE % tuple(ports))
    ledger = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with running(program, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            try:
                await c.send(b'{"ref":"P1","amount":5}')
                with trio.fail_after(10):                  # a guard against a hang, not a timing
                    await fee.held.wait()                  # the fee's post reached its counterpart
                crash.cancel()                             # no drain, no answer, no deal row
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)
    assert deals(ledger) == []
    txlog = TxnLog(log_path(ledger))
    (p,) = txlog.pending.values()
    txlog.close()
    assert p.phases == {"d": "done", "c": "done", "f": "sending"}
    fee.mute = False
    async with running(program, ledger):
        pass
    assert debit.counts[("cancel", "P1")] == 0          # before the pivot: kept (the credit stands)
    assert fee.counts[("cancel", "P1")] == 1            # after it (in doubt, compensated): undone once
    assert credit.counts == {("post", "P1"): 1}
    (d,) = deals(ledger)
    assert d["status"] == "failed" and d["response_code"] == "96"
    assert "calls undone: f" in d["reason"], d["reason"]
    assert "call c to credit went through and has no compensation: call d to debit not undone" in d["reason"]
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [d["deal_id"]])
    states = [e["to_state"] for e in events]
    assert "compensated f" in states and "compensated d" not in states and "flagged" in states, states
