"""ISO 8583 store and forward at scale (engine/txn/saf.py): a host back from an outage is not hit by every
queued reversal at once.  At most ``reversal_in_flight`` (the tcp connect channel's option) attempts wait
at the host at a time, counted at the host; the reversals due go oldest first; the pauses between
attempts have jitter, so two reversals queued together do not repeat at the same instant (trio's
MockClock: virtual time, exact instants).  The engine of test_txn_saf.py (tests/txn/safkit.py: in process,
real TCP host on 127.0.0.1 port 0, real journaled DuckDB ledger and transaction log).  No sleep decides
an outcome: the host holds the reversals until the engine is idle (``wait_all_tasks_blocked``)."""
from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from engine.txn.saf import Item
from safkit import ORIGINAL, ROUTE, Host, ask, serving
from txnkit import compile_text, deals


def bounded(n: int) -> str:
    return ROUTE.replace("match = iso8583", f"match = iso8583  reversal_in_flight = {n}")


async def test_the_host_sees_at_most_reversal_in_flight_attempts_at_a_time(nursery, tmp_path: Path) -> None:
    release = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        await release.wait()                  # held: the engine's attempt waits for its 0430
        return True

    host = Host(ack)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    stans = [f"{k:06d}" for k in range(1, 7)]
    answers: dict[str, dict] = {}
    async with serving(compile_text(tmp_path, bounded(2) % (port, "2s")), ledger) as sb:
        (queue,) = sb.saf

        async def one(stan: str) -> None:
            answers[stan] = await ask(sb.channel("pos").port, stan)

        async with trio.open_nursery() as n:          # six deals time out together: six reversals queued
            for stan in stans:
                n.start_soon(one, stan)
        await trio.testing.wait_all_tasks_blocked(0.05)     # whatever the engine sends, the host now holds
        held_then = host.held
        release.set()
        with trio.fail_after(20):                    # a guard against a hang, not a timing
            await queue.wait_empty()
        status = queue.status()
    assert [answers[s]["39"] for s in stans] == ["68"] * 6
    assert held_then == 2 and host.peak == 2          # the bound, and no more, at the host
    assert sorted({m["11"] for m in host.seen if m["t"] in ("0420", "0421")}) == stans
    assert status["pending"] == 0 and status["in_flight"]["issuer"]["limit"] == 2
    assert len(deals(ledger)) == 6


def _item(stan: str, queued_at: str) -> Item:
    return Item(f"deal-{stan}", "auth", "purchase", "pos", {**ORIGINAL, "11": stan}, queued_at)


async def test_the_reversals_due_go_oldest_first(nursery, tmp_path: Path) -> None:
    release = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        await release.wait()
        return True

    host = Host(ack)
    port = await host.serve(nursery)
    async with serving(compile_text(tmp_path, bounded(1) % (port, "5s")), tmp_path / "l.duckdb") as sb:
        (queue,) = sb.saf

        def add(item: Item) -> None:          # a reversal without a deal row (nothing to append to)
            queue.add(item)
            queue.recorded(item.deal_id, False)

        add(_item("000003", "2026-05-01T12:00:03+00:00"))           # the youngest takes the one place
        with trio.fail_after(10):
            await host.saw_reversal.wait()
        add(_item("000002", "2026-05-01T12:00:02+00:00"))           # then two older ones, the older last
        await trio.testing.wait_all_tasks_blocked(0.05)
        add(_item("000001", "2026-05-01T12:00:01+00:00"))
        await trio.testing.wait_all_tasks_blocked(0.05)
        release.set()
        with trio.fail_after(20):
            await queue.wait_empty()
    assert [stan for _, stan, _ in host.at] == ["000003", "000001", "000002"]


async def test_jitter_keeps_two_reversals_queued_together_out_of_step(nursery, tmp_path: Path, mock_clock) -> None:
    mock_clock.autojump_threshold = 0.05        # virtual time jumps once the engine and host are idle

    async def ack(n: int, msg: dict) -> bool:
        return False                            # down: no reversal is ever acknowledged

    host = Host(ack)
    port = await host.serve(nursery)
    async with serving(compile_text(tmp_path, ROUTE % (port, "10s")), tmp_path / "l.duckdb") as sb:
        (queue,) = sb.saf
        for stan in ("000001", "000002"):        # queued in the same instant
            queue.add(_item(stan, "2026-05-01T12:00:00+00:00"))
            queue.recorded(f"deal-{stan}", False)
        with trio.fail_after(600):               # virtual seconds
            while len(host.at) < 6:
                await trio.sleep(1)
    times = {stan: [t for t, s, _ in host.at if s == stan] for stan in ("000001", "000002")}
    first = {s: t[0] for s, t in times.items()}
    assert abs(first["000001"] - first["000002"]) < 1          # both tried at once
    for stan, t in times.items():       # each pause after a 10 s wait: 5-10 s, then 10-20 s
        assert 15 <= t[1] - t[0] <= 20.5 and 20 <= t[2] - t[1] <= 30.5, (stan, t)
    assert times["000001"][1] != times["000002"][1] and times["000001"][2] != times["000002"][2]
