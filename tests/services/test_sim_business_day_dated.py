"""The simulators' business days are the engine's: ``business_day`` (engine/sim/services/common.py) reads the
calendar table the route file declares, effective dates included, through the engine's own code (dsl.load,
dsl.tables, dsl.calendars), so a calendar change with an effective date is honoured by both; before, it read
the CSV file on its own and took every row of it as a holiday, whatever the date it applies from."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from dsl.calendars import f_add_business_days
from dsl.load import compile_paths
from dsl.tables import load_versioned
from engine.sim.services.common import TARGET2, CalendarRef, business_day
from engine.sim.services.registry import services_registry

ROUTE = 'table target2 = csv "calendars/target2.csv" key date effective from valid_from\n'
CSV = ("date,name,kind,valid_from\n"
       "2026-12-24,Christmas Eve (closing announced in November),holiday,2026-11-01\n"
       "2026-12-25,Christmas Day,holiday,2026-01-01\n"
       "2026-12-28,Closing cancelled,holiday,2026-01-01\n"
       "2026-12-28,Closing cancelled,working,2026-12-15\n"
       "2026-12-31,New Year's Eve (announced too late: applies from 2027),holiday,2027-01-15\n"
       "2027-01-01,New Year's Day,holiday,2026-01-01\n")


def _engine_next(route: Path, day: date) -> date:
    """What the engine answers: the table bound as the engine binds it (its version's sources), read by the
    routes' add_business_days(day, 0, target2)."""
    res = compile_paths([route], services_registry())
    assert res.program is not None, res.diagnostics
    table = load_versioned(res.program.tables["target2"], res.sources)
    return f_add_business_days(day, 0, table)


@pytest.fixture()
def dated(tmp_path: Path) -> CalendarRef:
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "target2.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "target2.route").write_text(ROUTE, encoding="utf-8")
    return CalendarRef(tmp_path / "target2.route", "target2")


@pytest.mark.parametrize("day, want", [
    (date(2026, 12, 24), date(2026, 12, 28)),   # Thu closed (in force since November), Fri closed, weekend
    (date(2026, 12, 28), date(2026, 12, 28)),   # its closing cancelled from 15 December: open
    (date(2026, 12, 31), date(2026, 12, 31)),   # the row applies only from 2027: never counts (W033), open
    (date(2027, 1, 1), date(2027, 1, 4)),       # Friday closed, weekend
])
def test_the_simulator_reads_an_effective_dated_calendar_as_the_engine(dated: CalendarRef, day: date,
                                                                      want: date) -> None:
    assert business_day(day, dated) == want == _engine_next(dated.route, day)


def test_a_calendar_change_is_read_again_by_the_simulator(dated: CalendarRef) -> None:
    assert business_day(date(2026, 12, 29), dated) == date(2026, 12, 29)
    csv = dated.route.parent / "calendars" / "target2.csv"
    csv.write_text(CSV + "2026-12-29,Extra closing,holiday,2026-12-01\n", encoding="utf-8")
    assert business_day(date(2026, 12, 29), dated) == date(2026, 12, 30) == _engine_next(dated.route,
                                                                                          date(2026, 12, 29))


def test_the_built_in_target2_is_the_routes_table() -> None:
    """routes/common/target2.route's table: Good Friday 2026 (3 April) and Easter Monday (6 April) closed."""
    assert business_day(date(2026, 4, 3)) == date(2026, 4, 7) == _engine_next(TARGET2.route, date(2026, 4, 3))
    assert business_day(date(2026, 11, 27)) == date(2026, 11, 27)
    assert business_day(date(2026, 11, 28)) == date(2026, 11, 28) + timedelta(days=2)
