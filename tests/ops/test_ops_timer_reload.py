"""A reload that changes a timer channel: the new timer ticks, the old one stops (no tick after)."""
from __future__ import annotations

from pathlib import Path

import trio

from opskit import live, rows

TICKER = '''
format Tick = json

channel tick = timer {
    every     = %s
    immediate = true
}

route beat {
    receive from tick as Tick
    deal BEAT { ref = "%s"  amount = 0  currency = "CNY" }
}
'''


async def test_a_reload_replaces_the_timer_and_the_old_one_stops(tmp_path: Path) -> None:
    route = tmp_path / "beat.route"
    route.write_text(TICKER % ("40ms", "v1"))
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        old = eng.channels["tick"]
        with trio.fail_after(10):
            while old.ticks < 3:
                await trio.sleep(0.01)
        route.write_text(TICKER % ("30ms", "v2"))
        with trio.fail_after(10):
            result = await eng.reload()
        assert result.ok, result.diagnostics
        assert result.plan["channels"]["changed"] == ["tick"]
        new = eng.channels["tick"]
        assert new is not old
        stopped_at = old.ticks
        with trio.fail_after(10):
            while new.ticks < 3:
                await trio.sleep(0.01)
        assert old.ticks == stopped_at, "the replaced timer ticked after the reload"
    refs = [r for (r,) in rows(ledger, "SELECT reference FROM deals ORDER BY received_at")]
    assert refs.count("v1") == stopped_at and refs.count("v2") >= 3
    assert refs == sorted(refs)                          # no v1 tick after the first v2 one


async def test_the_new_timer_starts_only_once_the_old_one_stopped(tmp_path: Path) -> None:
    """A busy timer (a tick every 2 ms) across a reload: no v1 tick after the first v2 one, although the new
    generation is bound (and would have started) before the switch."""
    route = tmp_path / "beat.route"
    route.write_text(TICKER % ("2ms", "v1"))
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        with trio.fail_after(10):
            while eng.channels["tick"].ticks < 5:
                await trio.sleep(0.005)
        route.write_text(TICKER % ("3ms", "v2"))
        with trio.fail_after(10):
            assert (await eng.reload()).ok
            while eng.channels["tick"].ticks < 5:
                await trio.sleep(0.005)
    refs = [r for (r,) in rows(ledger, "SELECT reference FROM deals ORDER BY received_at")]
    assert refs == sorted(refs) and refs.count("v2") >= 5
