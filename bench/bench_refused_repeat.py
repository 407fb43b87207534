"""What answering a refused repeat from its key (engine/txn/refused_repeat.py) costs.

``TxnManager.run_steps`` over batches of a keyed route without a call (decode, deal, validate, reply; the key
checked after the last step), run on the engine's own dispatcher and manager, a real ledger in a temporary
folder: per exchange, best of 7 rounds of ``--batches`` batches of ``--size``:

    passing       every request passes its validate: the success path (one length comparison per batch
                  is all this change adds there)
    refused new   every request refused by its validate, its key held by nobody (looked up: one dict
                  look-up per key in the log's ends)
    refused rep.  every request refused, its key held by an answered deal: answered as its duplicate

Run it on this branch and on a tree without the change (``--tree /work/main``) to compare the success path:

    .venv/bin/python bench/bench_refused_repeat.py [--size 32] [--batches 200] [--tree DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route book {
    receive from front as J
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }
    validate { msg.ok == true else reject "57" "cut-off passed" }
    reply J { ref = msg.ref  code = "00" }
}
"""


async def measure(size: int, batches: int) -> dict[str, float]:
    from engine.channels.base import ConnInfo
    from engine.ledger import open_ledger
    from engine.registry import default_registry
    from engine.runtime.exchange import Exchange
    from engine.runtime.switchboard import Switchboard
    from engine.txn import manager_for
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))
    from kit import compile_text

    tmp = Path(tempfile.mkdtemp(prefix="bench_refused_"))
    program = compile_text(tmp, ROUTE)
    out: dict[str, float] = {}
    async with open_ledger(tmp / "l.duckdb") as ledger:
        sb = Switchboard(program, default_registry(), ledger=ledger)
        disp = sb.dispatchers["front"]
        txn = manager_for(ledger)
        conn = ConnInfo("front", "127.0.0.1:1", 1)
        br = disp.routes[0]
        # an answered deal for each key of the "refused rep." rows: its end in the log's key store
        for i in range(size):
            txn.log.ends[f"book|R{i}"] = {"id": f"d{i}", "status": "committed", "code": "00",
                                          "reply": b'{"code":"00"}'.hex(), "fp": "1||"}

        async def rounds(prefix: str, ok: bool) -> float:
            best = float("inf")
            raws = [b'{"ref": "%s%d", "amount": 1, "ok": %s}' % (prefix.encode(), i, b"true" if ok else b"false")
                    for i in range(size)]
            for _ in range(7):
                total = 0.0
                for _ in range(batches):
                    now = datetime.now(timezone.utc)
                    group = [Exchange("front", conn, raw, now, i) for i, raw in enumerate(raws)]
                    for ex in group:
                        disp._route(ex)
                    t0 = time.perf_counter()
                    await txn.run_steps(disp, br, group, 0)
                    total += time.perf_counter() - t0
                    txn.states.clear()
                    for ev in txn._inflight.values():
                        ev.set()
                    txn._inflight.clear()
                best = min(best, total)
            return best / (batches * size) * 1e6

        await txn.ready(disp)
        out["passing"] = await rounds("P", True)
        out["refused new"] = await rounds("N", False)
        out["refused rep."] = await rounds("R", False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--tree", help="run the engine of another source tree (e.g. /work/main)")
    a = ap.parse_args()
    if a.tree:
        sys.path.insert(0, a.tree)
    import trio
    res = trio.run(measure, a.size, a.batches)
    import engine
    print(f"engine: {Path(engine.__file__).resolve().parents[1]}; batches of {a.size}")
    for name, us in res.items():
        print(f"{name:14s} {us:7.2f} us per exchange (run_steps)")


if __name__ == "__main__":
    main()
