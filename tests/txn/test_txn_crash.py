"""Durability: a real `bsp run` under load is SIGKILLed; after a restart every acknowledged deal is
in the ledger with a final status, no call reached the counterpart twice, nothing is left in flight."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import trio

from engine.txn.log import TxnLog, log_path
from txnkit import Client, deals, engine_serving, load_until_sigkill, rows, gated_counterpart

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 60s }
route pay {
    receive from front as J
    on restart compensate
    deal PAY { ref = msg.ref  amount = 1.00  key = msg.ref }
    call post = back as J reply J { op = "post"  ref = msg.ref } expect post.status == "OK"
        compensate call back as J reply J { op = "cancel"  ref = msg.ref }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""
N = 80


async def test_sigkill_under_load_loses_no_acknowledged_deal_and_runs_no_call_twice(nursery, tmp_path: Path) -> None:
    counts: Counter = Counter()
    back, gate = await gated_counterpart(nursery, counts, N // 4)   # then held: in flight at the kill
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % back)
    ledger = tmp_path / "ledger.duckdb"
    refs = [f"P{i:03d}" for i in range(N)]
    _, acked = await load_until_sigkill(route, ledger, gate, refs)
    in_flight_before = len(TxnLog(log_path(ledger)).pending)

    # restart; the client resends what it never saw answered (and repeats one it did)
    async with engine_serving(route, ledger) as served:
        c = await Client.open(served.ports["front"])
        again = [r for r in refs if r not in acked] + [next(iter(acked))]
        for ref in again:
            await c.send(orjson.dumps({"ref": ref}))
            with trio.fail_after(20):
                (r,) = await c.recv_json()
            if ref not in acked:
                acked[ref] = r
            else:
                assert r == acked[ref]                          # the original answer, repeated
        await c.aclose()

    ledger_deals = deals(ledger)
    final = {d["reference"]: d["status"] for d in ledger_deals if d["status"] != "duplicate"}
    for ref, answer in acked.items():
        if answer["code"] == "00" and ref in final:
            assert final[ref] == "committed", ref
    assert set(final) == set(refs)                              # every deal has its final row
    assert all(v in ("committed", "failed") for v in final.values())
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]   # nothing ran twice
    assert TxnLog(log_path(ledger)).pending == {}               # nothing left in flight
    recovered = rows(ledger, "SELECT count(DISTINCT deal_id) AS n FROM deal_events "
                             "WHERE to_state = 'in flight at restart'")[0]["n"]
    assert recovered == in_flight_before
