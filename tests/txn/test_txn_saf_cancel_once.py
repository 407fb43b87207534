"""An operator's resolution that comes while a reversal's attempt has just ended (its line being written on
the deal, engine/txn/saf.py ``_attempt``) cancels the reversal once (engine/txn/safcancel.py): one ``reversal
cancelled`` event, ``cancelled`` counted once.  It was dropped twice: by the resolution (the attempt was no
longer in flight) and again by the attempt once its line was written, the resolution being on the reversal
(``bsp status`` said 2 cancelled, the deal got two events and the log two marks; seen as a CI-load flake of
tests/ops/test_ops_resolve_cancels_reversal.py).  trio's MockClock with the engine of tests/txn/safkit.py."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import trio

from engine.txn import safcancel
from safkit import ROUTE, Host, ask, serving, story
from txnkit import compile_text


async def test_a_resolution_as_an_attempt_is_recorded_cancels_its_reversal_once(
        nursery, tmp_path: Path, mock_clock) -> None:
    mock_clock.autojump_threshold = 0.1

    async def silent(n: int, msg: dict) -> bool:
        return False                                   # no 0430: each attempt times out

    host = Host(silent)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with serving(compile_text(tmp_path, ROUTE % (port, "5s")), ledger) as sb:
        (queue,) = sb.saf
        assert (await ask(sb.channel("pos").port, guard=60))["39"] == "68"   # virtual seconds
        with trio.fail_after(60):
            while not (host.reversals and queue.items and next(iter(queue.items.values())).busy):
                await trio.sleep(0.01)
        (item,) = queue.items.values()                 # its first attempt is at the host, waiting for a 0430
        mock_clock.autojump_threshold = math.inf       # time moves only by hand now
        mock_clock.jump(6)                             # past the attempt's 5 s: it ends unacknowledged
        for _ in range(100_000):                       # (no clock moves: a guard by turns)
            if not item.busy:
                break
            await trio.sleep(0)
        else:
            raise AssertionError("the attempt did not end")
        # the attempt is over and its line on the deal is being written: not in flight, not queued again yet
        assert item.ticket == 0 and queue.items.get(item.key) is item
        resolution = {"outcome": "applied", "by": "alice", "at": datetime.now(timezone.utc).isoformat()}
        (what,) = safcancel.cancel(queue, item.deal_id, resolution)
        assert what["state"] == "cancelled"
        mock_clock.autojump_threshold = 0.1
        await trio.sleep(30)                           # its attempt's end, and more: nothing is sent again
        status = queue.status()
        reversals = host.reversals
    assert status["cancelled"] == 1 and status["pending"] == 0, status
    assert reversals == 1
    _, events = story(ledger, item.deal_id)
    assert [e[2] for e in events].count(safcancel.CANCELLED) == 1, events
