"""When a reversal is flagged for an operator (engine/txn/saf.py): after ``alert_after`` attempts, or, when the
channel's ``reversal_in_flight`` places kept it waiting behind the others while the host does not acknowledge,
once the time those attempts take on their own schedule has passed since it was queued (``Saf.window``):
the cap does not push the flag back by the length of the queue ahead of it.  A queue that drains behind a
host that acknowledges is not flagged for waiting.  trio's MockClock (virtual time, exact instants) with the
engine of tests/txn/safkit.py (real TCP host on 127.0.0.1 port 0, real journaled, audited DuckDB ledger and
transaction log)."""
from __future__ import annotations

from pathlib import Path

import trio

from safkit import ROUTE, Host, ask, serving, story
from txnkit import audit_clean, compile_text, deals


def bounded(n: int) -> str:
    return ROUTE.replace("match = iso8583", f"match = iso8583  reversal_in_flight = {n}")


async def _queue(sb, stans: list[str]) -> None:
    """One deal per STAN, asked together: each 0200 times out, answers 68 and queues its reversal."""
    async def one(stan: str) -> None:
        assert (await ask(sb.channel("pos").port, stan, guard=60))["39"] == "68"   # virtual seconds

    async with trio.open_nursery() as n:
        for stan in stans:
            n.start_soon(one, stan)


async def test_reversals_waiting_behind_the_cap_of_a_silent_host_are_flagged_on_time(
        nursery, tmp_path: Path, mock_clock) -> None:
    mock_clock.autojump_threshold = 0.1        # virtual time jumps once the engine and host are idle

    async def ack(n: int, msg: dict) -> bool:
        return False                           # silent: no reversal is ever acknowledged

    host = Host(ack)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    stans = ["000001", "000002", "000003", "000004"]
    async with serving(compile_text(tmp_path, bounded(1) % (port, "5s")), ledger) as sb:
        (queue,) = sb.saf
        queue.alert_after = 2            # 2 attempts of 5 s and the longest pause between them: 15 s
        assert queue.window(5.0) == 15.0
        await _queue(sb, stans)                # the 0200s time out together: four reversals, one place
        # on their own, each would be flagged 15 s after it was queued (its 2nd attempt over); behind the one
        # place, oldest first, the first two repeat before the fourth is even tried: by their attempts alone
        # only the first two would be flagged by 21 s (their 2nd attempts end at 15 and 20), the others 20 s
        # later.  At 15 s the ones waiting for the place are flagged; the one in flight when its attempt ends.
        await trio.sleep(21)
        status = queue.status()
        attempts_then = host.reversals
    assert status["pending"] == 4 and status["flagged"] == 4, status
    assert attempts_then <= 6                  # one place, 5 s an attempt: the flag did not wait for more
    for d in deals(ledger):
        _, events = story(ledger, d["deal_id"])
        names = [e[2] for e in events]
        assert names.count("reversal flagged") == 1, names
        assert names.count("reversal 0420") + names.count("reversal 0421") <= 2, names
    audit_clean(ledger)


async def test_a_queue_draining_behind_a_host_that_acknowledges_is_not_flagged(
        nursery, tmp_path: Path, mock_clock) -> None:
    mock_clock.autojump_threshold = 0.1

    async def ack(n: int, msg: dict) -> bool:
        await trio.sleep(15)                   # slow, but it acknowledges every reversal
        return True

    host = Host(ack)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    stans = [f"{k:06d}" for k in range(1, 7)]
    async with serving(compile_text(tmp_path, bounded(1) % (port, "20s")), ledger) as sb:
        (queue,) = sb.saf
        queue.alert_after = 2            # 2 attempts of 20 s and a pause of 20 s: 60 s
        await _queue(sb, stans)
        queued = trio.current_time()
        with trio.fail_after(300):             # virtual seconds
            await queue.wait_empty()
        took = trio.current_time() - queued
        flagged = queue.status()["flagged_total"]
    assert took > 85 > queue.window(20.0)       # six acknowledged 15 s apart: the last waited past the window
    assert host.acked == 6 and host.reversals == 6 and flagged == 0
    for d in deals(ledger):
        _, events = story(ledger, d["deal_id"])
        assert "reversal flagged" not in [e[2] for e in events]
        assert [e[2] for e in events][-1] == "reversed auth"
    audit_clean(ledger)
