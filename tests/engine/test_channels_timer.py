"""timer: ticks on the engine's clock (trio MockClock: minutes pass in no time), daily times in a
time zone, no overlap and no burst after a slow tick, drain, and the options' errors."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import pytest
import trio
import trio.testing

from engine.channels.options import ChannelConfigError
from engine.channels.timer import TimerChannel, next_daily, parse_at
from engine.registry import default_registry
from engine.runtime import Switchboard
from kit import compile_text, deals, running

ROUTE = '''
format Tick = json
format Ask = json

channel tick = timer {
    every     = 5m
    immediate = true
}

channel host = memory { timeout = 15m }

route heartbeat {
    receive from tick as Tick
    validate {
        msg.tick != 3 else reject "91" "third tick refused"
    }
    deal HEARTBEAT { ref = timer.at  amount = 0  currency = "CNY" }
    call echo = host as Ask reply Ask {
        tick = timer.tick
    }
}
'''


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        pytest.skip(f"no IANA time zone data for {name} on this machine")


def test_ticks_every_interval_on_the_engine_clock_and_skip_while_slow(tmp_path: Path) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    prog = compile_text(tmp_path, ROUTE)
    seen: list[tuple[float, int]] = []
    slow = {6}                           # tick 6 takes 12 minutes: ticks at +5 and +10 min are skipped

    async def host(payload: bytes) -> bytes:
        n = orjson.loads(payload)["tick"]
        seen.append((trio.current_time(), n))
        if n in slow:
            await trio.sleep(12 * 60)
        return b'{"ok": true}'

    async def main() -> None:
        sb = Switchboard(prog, default_registry(), ledger=None)
        sb.channel("host").attach(host)
        async with trio.open_nursery() as nursery:
            await nursery.start(sb.run)
            t0 = trio.current_time()
            await trio.sleep(60 * 60 + 1)          # one virtual hour
            timer = sb.channel("tick")
            sb.drain()
        ticks = [(round((t - t0) / 60), n) for t, n in seen]
        # immediate tick at 0, then every 5 minutes; tick 3 is rejected before its call; tick 6
        # (at 25 min) runs 12 minutes, so 30 and 35 are skipped and tick 7 comes at 40
        assert ticks == [(0, 1), (5, 2), (15, 4), (20, 5), (25, 6), (40, 7), (45, 8), (50, 9), (55, 10),
                         (60, 11)]
        assert timer.ticks == 11 and timer.skipped == 2
        assert timer.last is not None and timer.last.status == "committed"
        assert timer.status() == {"ticks": 11, "skipped": 2, "last_tick": "committed"}

    trio.run(main, clock=clock)


async def test_a_tick_is_a_deal_in_the_ledger_and_drain_stops_it(tmp_path: Path) -> None:
    # no immediate tick: the first comes after 50 ms, once the test has attached the host
    prog = compile_text(tmp_path, ROUTE.replace("every     = 5m", "every     = 50ms").replace("immediate = true", ""))
    ledger = tmp_path / "l.duckdb"
    calls: list[int] = []

    async def host(payload: bytes) -> bytes:
        calls.append(orjson.loads(payload)["tick"])
        return b'{"ok": true}'

    async with running(prog, ledger) as sb:
        sb.channel("host").attach(host)
        timer = sb.channel("tick")
        with trio.fail_after(10):
            while timer.ticks < 4:
                await trio.sleep(0.02)
    after = timer.ticks
    await trio.sleep(0.2)
    assert timer.ticks == after, "no tick after the drain"
    rows = deals(ledger)
    assert len(rows) == after
    assert [r["status"] for r in rows][:4] == ["committed", "committed", "rejected", "committed"]
    assert {r["channel"] for r in rows} == {"tick"}
    # tick 3 was rejected before the route's `deal` step: its type is the route's name
    assert [r["deal_type"] for r in rows][:4] == ["HEARTBEAT", "HEARTBEAT", "heartbeat", "HEARTBEAT"]
    assert rows[2]["response_code"] == "91" and "third tick refused" in rows[2]["reason"]
    assert 3 not in calls and calls[:3] == [1, 2, 4]


def test_daily_time_in_a_time_zone() -> None:
    shanghai = _zone("Asia/Shanghai")
    at = parse_at("18:30")
    now = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)           # 18:00 in Shanghai
    assert next_daily(now, at, shanghai) == datetime(2026, 11, 26, 10, 30, tzinfo=timezone.utc)
    now = datetime(2026, 11, 26, 10, 30, tzinfo=timezone.utc)          # exactly 18:30: the next day
    assert next_daily(now, at, shanghai) == datetime(2026, 11, 27, 10, 30, tzinfo=timezone.utc)
    london = _zone("Europe/London")
    # 2026-03-29: clocks go from 01:00 to 02:00 GMT; 01:30 does not exist that day
    gap = next_daily(datetime(2026, 3, 29, 0, 0, tzinfo=timezone.utc), parse_at("01:30"), london)
    assert gap == datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)     # 02:30 BST, once
    # 2026-10-25: clocks go back at 02:00 BST; 01:30 happens twice, the tick comes at the first
    twice = next_daily(datetime(2026, 10, 25, 0, 0, tzinfo=timezone.utc), parse_at("01:30"), london)
    assert twice == datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)
    assert parse_at("07:05:09").second == 9


@pytest.mark.parametrize("options, words", [
    ({}, "needs `every`"),
    ({"every": 60, "at": "18:30"}, "one of the two"),
    ({"every": 0}, "not a positive interval"),
    ({"at": "6pm"}, "not a time of day; write HH:MM"),
    ({"at": "24:00"}, "not a time of day"),
    ({"at": "18:30", "timezone": "Mars/Olympus"}, "not a known time zone"),
    ({"every": 60, "timezone": "Asia/Shanghai"}, "only with `at`"),
])
def test_bad_options_name_the_option(options, words) -> None:
    with pytest.raises(ChannelConfigError, match=words):
        TimerChannel("t", options)


def test_bad_timer_option_is_a_check_error(tmp_path: Path) -> None:
    from dsl.load import compile_paths
    path = tmp_path / "bad.route"
    path.write_text(ROUTE.replace("immediate = true", "immediate = sometimes"))
    res = compile_paths([path], default_registry())
    assert any(d.severity == "error" and d.pos.line == 7 for d in res.diagnostics), res.diagnostics

