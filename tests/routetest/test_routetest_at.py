"""`test "name" at "2026-11-25T10:00:00Z" { ... }`: the test's clock.  now() and today() read that instant,
in the routes and in the test's own values, and so do the calendar functions given now(): a test of a date
computed from today() does not expire.  The clock is the test's alone: the next test reads the wall clock.

A test without `at` reads the engine's clock, the wall clock unless moved (dsl.clock.engine_clock, what
`bsp run --at` does): these tests move it to NOW, a day the holidays below list, so they pass in any year
(on the wall clock, `value_date(now(), ...)` of the test without `at` failed from 2027-01-01: the holidays
list 2025-2026 only)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import trio

from dsl import clock
from dsl.functions import f_now, f_today
from engine.registry import default_registry
from engine.routetest.runner import run_paths

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)   # the engine's clock: a Friday the holidays cover

ROUTE = '''format Req = json
format Rsp = json
channel front = memory
table holidays = csv "holidays.csv" key date
route r {
    receive from front as Req
    reply Rsp {
        booked_on = format_date(today("UTC"), "%Y-%m-%d")
        local_day = format_date(today(), "%Y-%m-%d")
        sent_at   = format_date(now(), "%Y-%m-%dT%H:%M:%S")
        in_berlin = format_date(now("Europe/Berlin"), "%H:%M")
        value_on  = format_date(value_date(now(), "15:00", holidays, "UTC"), "%Y-%m-%d")
    }
}
'''

TESTS = '''use "r.route"

test "a Friday afternoon, after the cut-off" at "2025-03-14T16:30:05Z" {
    given front sends { a = 1 }
    expect reply {
        booked_on = "2025-03-14"  sent_at = "2025-03-14T16:30:05"  in_berlin = "17:30"
        value_on  = "2025-03-17"
        local_day = format_date(today(), "%Y-%m-%d")
    }
}

test "in another zone's offset, before the cut-off" at "2026-11-25T11:00:00+01:00" {
    given front sends { a = 1 }
    expect reply { booked_on = "2026-11-25"  sent_at = "2026-11-25T10:00:00"  value_on = "2026-11-25" }
}

test "before Christmas, rolled over the holidays" at "2026-12-24T15:00:00Z" {
    given front sends { a = 1 }
    expect reply { value_on = "2026-12-28" }
}

test "without at: the wall clock" {
    given front sends { a = 1 }
    expect reply { booked_on = format_date(today("UTC"), "%Y-%m-%d")  value_on ~ "-" }
}
'''


def _config(tmp_path, tests: str = TESTS):
    (tmp_path / "holidays.csv").write_text("date\n2025-01-01\n2026-01-01\n2026-12-25\n")
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text(tests)
    return tmp_path


def test_a_test_at_an_instant_reads_it_in_routes_tests_and_calendars(tmp_path):
    with clock.engine_clock(NOW):
        result = run_paths([_config(tmp_path)], default_registry())
    assert [o.name for o in result.outcomes] == [
        "a Friday afternoon, after the cut-off", "in another zone's offset, before the cut-off",
        "before Christmas, rolled over the holidays", "without at: the wall clock"]
    assert not result.failed, [o.failures for o in result.failed]


def test_a_test_without_at_does_not_read_the_clock_of_the_test_before_it(tmp_path):
    """The last test expects the date of the `at` test before it: it fails with the engine clock's date (NOW)."""
    tests = TESTS.replace('booked_on = format_date(today("UTC"), "%Y-%m-%d")  value_on ~ "-"',
                          'booked_on = "2026-12-24"')
    with clock.engine_clock(NOW):
        result = run_paths([_config(tmp_path, tests)], default_registry())
    assert [o.name for o in result.failed] == ["without at: the wall clock"]
    assert '"2026-11-27"' in result.failed[0].failures[0], result.failed[0].failures


def test_a_wrong_instant_is_told_at_its_place(tmp_path):
    from dsl.load import compile_paths

    cfg = _config(tmp_path, TESTS.replace('at "2025-03-14T16:30:05Z"', 'at "14.03.2025 16:30"'))
    res = compile_paths([cfg / "r_test.route"], default_registry())
    hits = [d for d in res.diagnostics if d.code == "E113"]
    assert [(d.pos.line, d.pos.col) for d in hits] == [(3, 49)]
    assert "is not a time: write it ISO 8601 with its offset" in hits[0].message
    assert res.program is None


def test_two_exchanges_at_once_each_read_their_own_clock():
    """The clock is a context variable: trio tasks running at once, each under its own, never see the other's,
    and outside them the wall clock is back."""
    seen: dict[str, list] = {}

    async def one(name: str, at: datetime) -> None:
        with clock.fixed(at):
            for _ in range(3):
                seen.setdefault(name, []).append((f_now(), f_today("UTC")))
                await trio.sleep(0)

    async def main() -> None:
        async with trio.open_nursery() as n:
            n.start_soon(one, "a", datetime(2025, 3, 14, 23, 59, tzinfo=timezone.utc))
            n.start_soon(one, "b", datetime(2026, 11, 25, 0, 1, tzinfo=timezone.utc))

    trio.run(main)
    assert {d for _, d in seen["a"]} == {datetime(2025, 3, 14).date()}
    assert {d for _, d in seen["b"]} == {datetime(2026, 11, 25).date()}
    assert f_now() not in {t for v in seen.values() for t, _ in v}


@pytest.mark.parametrize("text, ok", [("2026-11-25T10:00:00Z", True), ("2026-11-25T10:00:00.5+08:00", True),
                                      ("2026-11-25T10:00:00", False), ("2026-11-25", False), ("yesterday", False)])
def test_instants(text, ok):
    at, problem = clock.parse_instant(text)
    assert (at is not None) == ok and (problem is None) == ok
    if ok:
        assert clock.parse_instant(clock.instant_text(at))[0] == at


def test_at_takes_the_bare_timestamp_literal_a_route_writes(tmp_path):
    """`at 2026-11-25T11:00:00+01:00` (no quotes, as a timestamp is written in a route) is the same clock as the
    quoted string; every test of TESTS written so passes as before."""
    tests = TESTS.replace('at "2025-03-14T16:30:05Z"', 'at 2025-03-14T16:30:05Z') \
                 .replace('at "2026-11-25T11:00:00+01:00"', 'at 2026-11-25T11:00:00+01:00')
    assert 'at 2025-03-14T16:30:05Z {' in tests and 'at 2026-11-25T11:00:00+01:00 {' in tests
    with clock.engine_clock(NOW):
        result = run_paths([_config(tmp_path, tests)], default_registry())
    assert len(result.outcomes) == 4
    assert not result.failed, [o.failures for o in result.failed]


@pytest.mark.parametrize("at, code, col, words", [
    ("2025-03-14T16:30:05", "E113", 49, "has no time zone"),              # zone-less: whose clock is it
    ("2025-02-30T16:30:05Z", "E134", 49, "2025-02 has no day 30"),
    ("2025-03-14t16:30z", "E133", 49, "write `T` and `Z` in capitals"),
])
def test_a_wrong_bare_instant_is_told_at_its_place(tmp_path, at, code, col, words):
    from dsl.load import compile_paths

    cfg = _config(tmp_path, TESTS.replace('at "2025-03-14T16:30:05Z"', f"at {at}"))
    res = compile_paths([cfg / "r_test.route"], default_registry())
    hits = [d for d in res.diagnostics if d.severity == "error"]
    assert [(d.code, d.pos.line, d.pos.col) for d in hits] == [(code, 3, col)], [str(d) for d in hits]
    assert words in hits[0].message
    assert res.program is None


def test_a_bare_zone_less_at_is_told_the_bare_fix(tmp_path):
    """`at 2025-03-14T16:30:05` (bare, no zone): E113 suggests the bare literal with its offset, as it is written
    (until 2026-11-28 it suggested the quoted "2025-03-14T16:30:05Z"); the quoted `at` is told the quoted fix."""
    from dsl.load import compile_paths

    for n, (written, fix) in enumerate((
            ("at 2025-03-14T16:30:05", "e.g. `2025-03-14T16:30:05Z` (UTC) or `2025-03-14T16:30:05+01:00`"),
            ('at "2025-03-14T16:30:05"', 'e.g. "2025-03-14T16:30:05Z" (UTC)'))):
        (tmp_path / str(n)).mkdir()
        cfg = _config(tmp_path / str(n), TESTS.replace('at "2025-03-14T16:30:05Z"', written))
        res = compile_paths([cfg / "r_test.route"], default_registry())
        hits = [d for d in res.diagnostics if d.code == "E113"]
        assert len(hits) == 1 and fix in hits[0].message, [str(d) for d in hits]


def test_an_instant_before_the_year_1000_is_written_with_four_digits():
    """instant_text is what --to-tests writes bare after `at`: a timestamp literal takes four digits of year
    (strftime's %Y writes 999, which no literal reads)."""
    at = datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert clock.instant_text(at) == "0999-01-02T03:04:05Z"
    assert clock.parse_instant(clock.instant_text(at))[0] == at
