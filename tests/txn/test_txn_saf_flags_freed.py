"""Acknowledged reversals leave the store-and-forward queue's memory (engine/txn/saf.py).

Every reversal due goes into its lane's heap of reversals to flag by time (``Lane.flags``), whose entries
were popped only while the channel's attempts failed: with a host that acknowledges, every reversal stayed
there for good, with its call step and, through it, its generation's whole configuration (bench/soak.py:
the card payments' reversals kept one configuration per reload, ~10 MB each).  Here: many deals time out,
their reversals are acknowledged, and the heap holds none once the lane is idle (while it is busy, at most
about twice the reversals live, plus ``FLAGS_PRUNE``), not one per reversal.

The engine of test_txn_saf.py (tests/txn/safkit.py: in process, real TCP host on 127.0.0.1 port 0, real
journaled DuckDB ledger and transaction log)."""
from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from engine.txn import saf
from safkit import ROUTE, Host, ask, serving
from txnkit import compile_text

DEALS = 4 * saf.FLAGS_PRUNE


async def test_acknowledged_reversals_do_not_stay_in_the_flag_heap(nursery, tmp_path: Path) -> None:
    async def ack(n: int, msg: dict) -> bool:
        return True                            # the host acknowledges every reversal (0430, 00)

    host = Host(ack)
    port = await host.serve(nursery)
    answers: list[str] = []
    async with serving(compile_text(tmp_path, ROUTE % (port, "1s")), tmp_path / "l.duckdb") as sb:
        (queue,) = sb.saf

        async def one(stan: str) -> None:
            answers.append((await ask(sb.channel("pos").port, stan, guard=60))["39"])

        async with trio.open_nursery() as n:      # the host never answers a 0200: each times out, is reversed
            for k in range(1, DEALS + 1):
                n.start_soon(one, f"{k:06d}")
        with trio.fail_after(60):                 # a guard against a hang, not a timing
            await queue.wait_empty()
        await trio.testing.wait_all_tasks_blocked(0.05)     # the lane's task has seen its last attempt end
        status = queue.status()
        lane = queue.lanes["issuer"]
        entries = len(lane.flags)
        live = sum(1 for _, _, item in lane.flags if item.ack is None and queue.items.get(item.key) is item)
    assert answers == ["68"] * DEALS
    assert host.acked == DEALS and status["pending"] == 0
    assert live == 0
    assert entries == 0, f"{entries} entries for {DEALS} acknowledged reversals"      # the idle lane pruned it
