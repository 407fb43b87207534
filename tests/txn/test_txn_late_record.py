"""While the ledger cannot be written (a full disk), a deal whose call went out and whose journal write failed got
no reply and, until 2026-11-27, appeared in the ledger only after the next restart (written again from the
transaction log; a light route's deal was even resolved as left in flight and flagged).  The running engine now
writes it as soon as the ledger takes writes again, with an event `reply_not_sent` (engine/txn/late_record.py),
and a restart does not write it twice.

The journal's descriptor is swapped for a read-only one (the OS refuses the write: EBADF, as a full disk gives
ENOSPC), a real counterpart on loopback, a real DuckDB ledger, real sockets."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import trio

from txnkit import Client, compile_text, json_counterpart, rows, running

ROUTE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }
route pay {
    receive from front as Req when msg.kind == "pay"
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY"  key = msg.ref }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
route look {
    receive from front as Req when msg.kind == "look"
    deal LOOK { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
"""


def journal_of(sb):
    jl = sb.ledger
    while not hasattr(jl, "_fd"):         # the journaled ledger under any view
        jl = jl._ledger
    return jl


async def test_a_deal_whose_call_went_out_is_recorded_once_the_ledger_can_be_written_again(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    counts: Counter = Counter()

    def ok(req: dict) -> dict:
        counts[req["ref"]] += 1
        return {"status": "OK", "ref": req["ref"]}

    async with trio.open_nursery() as nursery:
        port = await json_counterpart(nursery, ok)
        program = compile_text(tmp_path, ROUTE % port)
        async with running(program, ledger, sync="journal") as sb:
            c = await Client.open(sb.channel("front").port)
            jl = journal_of(sb)
            good, jl._fd = jl._fd, os.open(tmp_path / "read-only", os.O_RDONLY | os.O_CREAT)   # the disk is full
            try:
                await c.send(b'{"kind":"pay","ref":"K1"}', b'{"kind":"look","ref":"L1"}')
                stats = sb.dispatchers["front"].stats
                with trio.fail_after(10):                   # a guard, not a timing
                    while stats.unrecorded < 2:
                        await trio.sleep(0.01)
            finally:
                os.close(jl._fd)
                jl._fd = good                               # room again
            await c.send(b'{"kind":"pay","ref":"K2"}')
            assert [r["ref"] for r in await c.recv_json(1)] == ["K2"]      # no reply came for K1 and L1
            await c.stream.aclose()
        # the running engine wrote them (before: only the next start did, and a light deal came out failed)
        assert sorted(r["reference"] for r in rows(ledger, "SELECT reference FROM deals")) == ["K1", "K2", "L1"]
        # a restart: nothing written twice, nothing flagged
        async with running(program, ledger, sync="journal"):
            pass
        nursery.cancel_scope.cancel()
    found = rows(ledger, "SELECT reference, status, deal_id FROM deals")
    deals = {r["reference"]: (r["status"], r["deal_id"]) for r in found}
    assert sorted(r["reference"] for r in found) == ["K1", "K2", "L1"]
    assert {k: v[0] for k, v in deals.items()} == {"K1": "committed", "K2": "committed", "L1": "committed"}
    events = {r["deal_id"]: (r["to_state"], json.loads(r["detail"])) for r in rows(
        ledger, "SELECT deal_id, to_state, detail FROM deal_events WHERE to_state IN ('reply_not_sent', 'flagged')")}
    assert {d: e[0] for d, e in events.items()} == {deals["K1"][1]: "reply_not_sent", deals["L1"][1]: "reply_not_sent"}
    assert "so no reply was sent; its row was written once it could be" in events[deals["K1"][1]][1]["reason"]
    assert counts == Counter({"K1": 1, "L1": 1, "K2": 1})         # nothing ran twice
