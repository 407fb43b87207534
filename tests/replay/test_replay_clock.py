"""The replay clock: a capture recorded on another day replays identical, and the route tests written from
it do not expire.

A real session of bill payment on loopback (mainframe simulator -> bsp -> biller simulator), its biller
call carrying `booked_on = today("UTC")` and `sent_at = now()`; then the capture is moved to past days as
if it had been recorded then (each exchange to another day, so exchanges replayed at once must each read
their own clock): its recorded times, the instants its routes read (`frames.clock`) and the dates in the
recorded calls.  Half of the exchanges lose `frames.clock` (a capture of before it): they replay on the
time they were received (`recorded_at`)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from replaykit import config_copy, record_session, replay_cli as cli
from engine.registry import default_registry
from engine.routetest.runner import run_paths

PAST = datetime(2025, 3, 14, 16, 30, 5, tzinfo=timezone.utc)

CLOCKED = (lambda t: t.replace('        due       = format_date(msg.value_date, "%Y-%m-%d")\n',
                               '        due       = format_date(msg.value_date, "%Y-%m-%d")\n'
                               '        booked_on = format_date(today("UTC"), "%Y-%m-%d")\n'
                               '        sent_at   = format_date(now(), "%Y-%m-%dT%H:%M:%SZ")\n'))


def move_to_the_past(capture) -> dict[int, datetime]:
    """Each exchange n moved to PAST - n days (its frames, its clock reads, the dates of its biller call);
    the odd ones without frames.clock, received at the instant the route read.  -> exchange: its instant."""
    con = duckdb.connect(str(capture))
    try:
        con.execute("SET TimeZone = 'UTC'")
        moved: dict[int, datetime] = {}
        rows = con.execute("SELECT exchange, recorded_at, clock FROM frames WHERE role = 'inbound' AND "
                           "direction = 'in' ORDER BY exchange").fetchall()
        for n, (ex, received, clock) in enumerate(rows):
            reads = [datetime.fromisoformat(r) for r in json.loads(clock)] if clock else []
            first = reads[0] if reads else received
            at = PAST - timedelta(days=n, microseconds=PAST.microsecond) + timedelta(microseconds=first.microsecond)
            delta = at - first
            con.execute("UPDATE frames SET recorded_at = recorded_at + ? WHERE exchange = ?", [delta, ex])
            if reads and n % 2:          # a capture of before frames.clock: received when the route read it
                con.execute("UPDATE frames SET clock = NULL, recorded_at = ? WHERE exchange = ? AND role = 'inbound' "
                            "AND direction = 'in'", [at, ex])
            elif reads:
                con.execute("UPDATE frames SET clock = ? WHERE exchange = ? AND role = 'inbound' AND direction = 'in'",
                            [json.dumps([(r + delta).isoformat() for r in reads]), ex])
            for seq, raw in con.execute("SELECT seq, raw FROM frames WHERE exchange = ? AND channel = 'biller' AND "
                                        "direction = 'out'", [ex]).fetchall():
                body = json.loads(raw)
                assert body["booked_on"] == first.strftime("%Y-%m-%d"), body      # what the route read then
                body["booked_on"] = at.strftime("%Y-%m-%d")
                body["sent_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
                con.execute("UPDATE frames SET raw = ? WHERE seq = ?", [json.dumps(body).encode(), seq])
                moved[ex] = at
        return moved
    finally:
        con.close()


@pytest.fixture(scope="module")
def past_capture(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clock")
    config = config_copy(tmp / "config", CLOCKED)
    capture = record_session(tmp, config, 40)
    con = duckdb.connect(str(capture), read_only=True)
    read = con.execute("SELECT count(*) FROM frames WHERE clock IS NOT NULL").fetchone()[0]
    con.close()
    assert read > 20          # the recording kept what now() and today() read (frames.clock)
    moved = move_to_the_past(capture)
    assert len(moved) > 20 and len({m.date() for m in moved.values()}) == len(moved)
    return capture, config, moved


def test_a_capture_of_past_days_replays_identical_today(past_capture, tmp_path):
    capture, config, _moved = past_capture
    res = cli(str(capture), "--config", str(config), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["identical"] == 40 and summary["clock"] == "recorded"
    assert "result: PASS" in res.output


def test_on_the_wall_clock_the_same_replay_differs_in_the_dates(past_capture, tmp_path):
    capture, config, moved = past_capture
    res = cli(str(capture), "--config", str(config), "--clock", "now", "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    fields = {(d["field"], d["exchange"]) for d in data["differences"] if d["unexpected"]}
    assert {f for f, _ in fields} == {"booked_on", "sent_at"}
    assert {e for _, e in fields} == set(moved)
    assert "clock now: now() and today() read the wall clock" in res.output


def test_a_bad_clock_option_is_a_usage_error(past_capture):
    capture, config, _moved = past_capture
    res = cli(str(capture), "--config", str(config), "--clock", "wall")
    assert res.exit_code == 2
    assert "--clock 'wall': expected recorded" in res.output


def test_route_tests_written_from_it_carry_its_time_and_pass_on_a_later_day(past_capture, tmp_path):
    capture, config, moved = past_capture
    out = tmp_path / "recorded"
    res = cli(str(capture), "--config", str(config), "--to-tests", str(out))
    assert res.exit_code == 0, res.output
    path = out / "session_test.route"
    result = run_paths([path], default_registry())
    assert result.outcomes and not result.failed, [f.failures for f in result.failed][:3]
    text = path.read_text()
    for ex, at in moved.items():
        assert f'test "recorded exchange {ex} (ref ' in text
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S") + (f".{at.microsecond:06d}" if at.microsecond else "") + "Z"
        assert f' at {stamp} {{' in text, (ex, stamp)            # the bare timestamp literal
        assert f'booked_on = "{at:%Y-%m-%d}"' in text
