"""The event loop's lag (engine/ops/looplag.py): a stall of the loop is measured, counted, logged once a
minute at most, and shown by `bsp status` and /metrics, so a counterpart's timeouts under load can be told
from the engine's own.  The stall is made with MockClock (the clock jumps while a task holds the loop)."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import trio
import trio.testing

from engine.ops.looplag import LoopLag, watch_loop_lag
from opskit import serve_with_admin

TOKEN = "ops-looplag-token-" + "z" * 20

ROUTE = '''
format Pay = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route pay {
    receive from front as Pay
    reply Pay { ok = true }
}
'''


async def _hold_the_loop(clock: trio.testing.MockClock, seconds: float) -> None:
    """A task that keeps the loop for ``seconds`` of the (mock) clock without letting anything else run."""
    clock.jump(seconds)
    await trio.sleep(0)


def test_a_stall_is_measured_counted_and_warned_once_a_minute(caplog) -> None:
    clock = trio.testing.MockClock()

    async def main() -> LoopLag:
        lag = LoopLag()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_loop_lag, lag, None, 0.25)
            await trio.testing.wait_all_tasks_blocked()   # the probe sleeps: asked at 0, due at 0.25
            await _hold_the_loop(clock, 1.5)              # it wakes at 1.5: 1.25 s late
            await trio.testing.wait_all_tasks_blocked()
            assert lag.stalls == 1 and lag.worst == pytest.approx(1.25) and lag.last == pytest.approx(1.25)
            clock.jump(0.25)                               # an ordinary wake: on time
            await trio.testing.wait_all_tasks_blocked()
            assert lag.last == pytest.approx(0.0) and lag.stalls == 1
            await _hold_the_loop(clock, 0.9)               # a second stall within the minute: counted, not warned
            await trio.testing.wait_all_tasks_blocked()
            assert lag.stalls == 2
            clock.jump(60.0)                               # a minute on: the next stall is warned, with the count
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        return lag

    with caplog.at_level(logging.WARNING, logger="bsp.engine"):
        lag = trio.run(main, clock=clock)
    warned = [r.getMessage() for r in caplog.records if "event loop stalled" in r.getMessage()]
    assert len(warned) == 2, warned
    assert warned[0].startswith("event loop stalled 1250 ms") and "more since" not in warned[0]
    assert "(1 more since the last warning)" in warned[1]
    assert lag.stalls == 3 and lag.worst == pytest.approx(59.75)
    assert lag.as_dict()["max_lag_ms"] == pytest.approx(59750.0) and lag.as_dict()["max_lag_at"]


def test_an_ordinary_wake_is_no_stall() -> None:
    lag = LoopLag()
    lag.note(0.002, 10.0)
    lag.note(-0.001, 10.25)          # a clock read a hair early: no negative lag
    assert (lag.stalls, lag.last) == (0, 0.0) and lag.worst == pytest.approx(0.002)


async def test_status_and_metrics_show_the_loop_lag(nursery, tmp_path: Path) -> None:
    route = tmp_path / "pay.route"
    route.write_text(ROUTE)
    engine, client = await serve_with_admin(route, tmp_path, nursery, TOKEN)
    async with client:
        with trio.fail_after(10):
            while True:                # the probe's first wake has been observed
                text = (await client.get("/metrics")).text
                m = re.search(r"^bsp_event_loop_lag_seconds_count (\S+)$", text, re.M)
                if m and float(m.group(1)) >= 1:
                    break
                await trio.sleep(0.05)
        loop = (await client.get("/status")).json()["event_loop"]
        assert set(loop) == {"lag_ms", "max_lag_ms", "max_lag_at", "stalls"}
        assert loop["max_lag_ms"] >= loop["lag_ms"] >= 0
    engine.drain()
