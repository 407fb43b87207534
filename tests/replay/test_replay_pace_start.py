"""``--pace original`` keeps the recorded times between requests, counted from the first request: the quiet
between the start of ``bsp run --record`` and the first request (the engine starting, a recording begun
the evening before the day's traffic) is not waited out again.  It was: a capture whose first request
came ten hours into the recording sat at 0% for ten hours.

The test shifts a real capture's frames ten hours later (as if the first request came then) and records
the waits the replay asks trio for, without sleeping them when they are long."""
from __future__ import annotations

import duckdb
import trio

import muxkit as mk
from engine.registry import default_registry
from engine.replay.session import replay_file

TEN_HOURS_MS = 10 * 3600 * 1000.0


def test_pace_original_does_not_wait_for_the_first_request(tmp_path, monkeypatch):
    route = mk.write_config(tmp_path / "cfg")
    capture, _ = mk.record(tmp_path, route)
    con = duckdb.connect(str(capture))
    try:
        con.execute("UPDATE frames SET t_ms = t_ms + ?", [TEN_HOURS_MS])
    finally:
        con.close()

    asked: list[float] = []
    real = trio.sleep_until

    async def sleep_until(deadline: float) -> None:
        wait = deadline - trio.current_time()
        asked.append(wait)
        if wait > 60:               # the bug: do not actually wait ten hours
            return
        await real(deadline)

    monkeypatch.setattr(trio, "sleep_until", sleep_until)
    report = replay_file(capture, [route], default_registry(), pace="original")
    assert report.passed and report.diff.identical == 12, report.text()
    assert len(asked) >= 12 and max(asked) < 60, f"the replay asked to wait {max(asked):.0f} s before a request"
