"""``on refusal free`` with a refused repeat (engine/txn/refused_repeat.py, engine/txn/keyhold.py): an order
the counterpart refused frees its key; its repeat, refused now by a step (the cut-off passed), must keep that
step's refusal (its key is held by no answered deal: never the first refusal as a duplicate), and a repeat
the next day that passes the steps runs as a new deal, once.  A review check of 2026-11-27 (it passed as
merged): the two changes do not combine into a lost or doubled deal.

Real engine in process, a real JSON counterpart over TCP on 127.0.0.1 port 0, a real DuckDB ledger and
transaction log; ``now()`` reads a fixed clock the test moves."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from test_txn_refused_repeat import AT_1459, AT_1506, CUTOFF, DEAL, ask, clocked, order, statuses
from txnkit import Counterpart, compile_text, json_counterpart, rows, running

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel ta = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route order {
    receive from front as J
    on refusal free
    %s
    %s
    call d = ta as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00"  conf = d.conf }
    on error reply J { ref = msg.ref  code = error.code  kind = error.kind }
}
"""


async def test_a_freed_refusal_is_not_answered_to_a_refused_repeat(nursery, tmp_path: Path) -> None:
    ta = Counterpart(refuse={"O1"})
    program = compile_text(tmp_path, ROUTE % (await json_counterpart(nursery, ta.answer), DEAL, CUTOFF))
    ledger = tmp_path / "l.duckdb"
    async with clocked(AT_1459) as now:
        async with running(program, ledger) as sb:
            (refused,) = await ask(sb, order())
            now.fixed = AT_1506
            ta.refuse.clear()                           # the counterpart would take it now
            (late,) = await ask(sb, order(msg_id="m2"))
        now.fixed = AT_1459 + timedelta(days=1)
        async with running(program, ledger) as sb:      # after a restart: the key is free in the log too
            (next_day, again) = await ask(sb, order(msg_id="m3"), order(msg_id="m4"))
    assert refused["code"] != "00" and refused["kind"] != "duplicate"
    assert late == {"ref": "O1", "code": "57", "kind": "rejected"}      # the step's own refusal stands
    assert next_day == {"ref": "O1", "code": "00", "conf": "C-O1-post"} and again == next_day
    assert ta.counts[("post", "O1")] == 2                                # refused once, taken once
    assert [s for _, s, _ in statuses(ledger)] == ["failed", "rejected", "committed", "duplicate"]
    committed = [d for d in rows(ledger, "SELECT deal_id, status FROM deals") if d["status"] == "committed"]
    assert rows(ledger, "SELECT deal_id FROM deal_keys WHERE key = 'order|O1'") == [
        {"deal_id": committed[0]["deal_id"]}]
