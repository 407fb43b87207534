"""Durability of the light path: a plain call route (no key, no compensation, no `on restart`) under
load in a real `bsp run` is SIGKILLed; after a restart every acknowledged deal is final in the ledger,
nothing is left in flight, and the deals in flight at the crash are flagged for an operator."""
from __future__ import annotations

from collections import Counter
from pathlib import Path


from engine.txn.log import TxnLog, log_path
from txnkit import deals, engine_serving, load_until_sigkill, gated_counterpart

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 60s }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00 }
    call post = back as J reply J { op = "post"  ref = msg.ref } expect post.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
"""
N = 120


async def test_sigkill_on_a_plain_call_route_leaves_every_acked_deal_final_and_flags_the_in_flight(
        nursery, tmp_path: Path) -> None:
    counts: Counter = Counter()
    back, gate = await gated_counterpart(nursery, counts, N // 4)   # then held: in flight at the kill
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % back)
    ledger = tmp_path / "ledger.duckdb"
    _, acked = await load_until_sigkill(route, ledger, gate, [f"L{i:03d}" for i in range(N)])
    txlog = TxnLog(log_path(ledger))
    in_flight = {i: p for i, p in txlog.pending.items()}
    txlog.close()
    assert in_flight and all(p.light for p in in_flight.values())   # light `a` records, nothing per step

    # restart with no traffic at all: recovery resolves the in-flight deals before serving
    async with engine_serving(route, ledger):
        pass

    by_id = {d["deal_id"]: d for d in deals(ledger)}
    by_ref: dict[str, list[dict]] = {}
    for d in by_id.values():
        by_ref.setdefault(d["reference"], []).append(d)
    for ref, answer in acked.items():                         # every acknowledged deal: final, committed
        assert answer["code"] == "00", (ref, answer)
        assert [d["status"] for d in by_ref[ref]] == ["committed"], ref
    assert all(d["status"] in ("committed", "failed") for d in by_id.values())
    flagged = [d for d in by_id.values() if d["status"] == "failed"]
    assert len(flagged) >= gate.held >= 1     # every call held at the counterpart: in flight at the kill
    for d in flagged:
        assert d["deal_id"] in in_flight                      # only what the log had in flight
        assert "in flight at crash; flagged" in d["reason"], d["reason"]
        assert d["reference"] not in acked                    # never answered, so never acknowledged
    # every in-flight deal is now final: flagged, or committed already (its row was its end)
    assert set(in_flight) <= set(by_id)
    assert TxnLog(log_path(ledger)).pending == {}             # nothing left in flight
    assert max(counts.values()) == 1                          # no call sent twice
