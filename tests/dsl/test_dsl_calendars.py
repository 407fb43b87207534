"""Business-day calendars (dsl/calendars.py): holidays in a route file's table, value dates, cut-offs;
what bsp check says of a calendar that is not one, and what a date outside its years does."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from dsl import ir
from dsl.compiler import compile_expr
from dsl.eval_error import EvalError
from dsl.load import compile_source
from dsl.parser import parse
from dsl.tables import load_table

REPO = Path(__file__).resolve().parents[2]
TARGET2 = REPO / "routes" / "common" / "calendars" / "target2.csv"
CNY = REPO / "routes" / "remittance" / "cny_holidays.csv"


def table(name: str, path: Path):
    return load_table(ir.TableDecl(name, "csv", str(path), "date"))


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    scope.setdefault("target2", table("target2", TARGET2))
    scope.setdefault("cny", table("cny", CNY))
    return compile_expr(m.decls[0].body[0].value)(scope)


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.parametrize("day, want", [
    ("2026-11-27", True),     # a Friday
    ("2026-11-28", False),    # Saturday
    ("2026-11-29", False),    # Sunday
    ("2026-12-25", False),    # Christmas, a Friday
    ("2026-04-03", False),    # Good Friday
    ("2026-04-06", False),    # Easter Monday
    ("2026-04-07", True),
])
def test_is_business_day_target2(day, want):
    assert ev("is_business_day(d, target2)", d=d(day)) is want


@pytest.mark.parametrize("day, want", [
    ("2026-10-01", False),    # National Day, a Thursday
    ("2026-10-10", True),     # a Saturday worked in its place (kind working)
    ("2026-01-04", True),     # a Sunday worked
    ("2026-10-11", False),    # an ordinary Sunday
    ("2026-11-25", True),
])
def test_is_business_day_with_worked_weekend_days(day, want):
    assert ev("is_business_day(d, cny)", d=d(day)) is want


@pytest.mark.parametrize("expr, want", [
    ("next_business_day(d, target2)", "2026-11-30"),            # Friday -> Monday
    ("add_business_days(d, 0, target2)", "2026-11-27"),         # a business day stays
    ("add_business_days(d, 1, target2)", "2026-11-30"),
    ("add_business_days(d, 5, target2)", "2026-12-04"),
    ("add_business_days(d, -5, target2)", "2026-11-20"),
])
def test_moving_by_business_days(expr, want):
    assert ev(expr, d=d("2026-11-27")) == d(want)


def test_rolling_past_a_holiday_weekend():
    # Thursday 2026-12-24: the next business day skips Christmas (Fri), Boxing Day (Sat) and Sunday
    assert ev("next_business_day(d, target2)", d=d("2026-12-24")) == d("2026-12-28")
    # a value date on Good Friday rolls forward past Easter Monday
    assert ev("add_business_days(d, 0, target2)", d=d("2026-04-03")) == d("2026-04-07")
    # Spring Festival: 2026-02-15..23 off, Saturday 2026-02-14 worked
    assert ev("next_business_day(d, cny)", d=d("2026-02-13")) == d("2026-02-14")
    assert ev("next_business_day(d, cny)", d=d("2026-02-14")) == d("2026-02-24")
    assert ev("add_business_days(d, -1, cny)", d=d("2026-02-24")) == d("2026-02-14")


def test_results_are_dates_and_a_timestamp_counts_by_its_day():
    got = ev("next_business_day(t, target2)", t=datetime(2026, 11, 27, 18, 0))
    assert got == d("2026-11-30") and type(got) is date
    assert ev("is_business_day(null, target2)") is None
    assert ev("next_business_day(null, target2)") is None
    assert ev("add_business_days(null, 2, target2)") is None


@pytest.mark.parametrize("at, tz, want", [
    (datetime(2026, 11, 27, 15, 29), "Europe/Berlin", "2026-11-27"),    # before the cut-off: today
    (datetime(2026, 11, 27, 15, 30), "Europe/Berlin", "2026-11-30"),    # at it: the next business day
    (datetime(2026, 11, 28, 9, 0), "Europe/Berlin", "2026-11-30"),      # a Saturday morning
    (datetime(2026, 12, 24, 16, 0), "Europe/Berlin", "2026-12-28"),     # after the cut-off before Christmas
    # a timestamp with a zone is read on the tz's clock: 14:00 UTC is 15:00 in Berlin (before 15:30) ...
    (datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc), "Europe/Berlin", "2026-11-27"),
    # ... and 14:45 UTC is 15:45 there (after); 23:30 UTC Friday is already Saturday in Berlin
    (datetime(2026, 11, 27, 14, 45, tzinfo=timezone.utc), "Europe/Berlin", "2026-11-30"),
    (datetime(2026, 11, 27, 23, 30, tzinfo=timezone.utc), "Europe/Berlin", "2026-11-30"),
    (datetime(2026, 11, 27, 14, 45, tzinfo=timezone.utc), "UTC", "2026-11-27"),
])
def test_value_date_and_the_cut_off(at, tz, want):
    assert ev(f'value_date(t, "15:30", target2, "{tz}")', t=at) == d(want)


def test_value_date_without_a_zone_takes_the_engine_zone(monkeypatch):
    import time
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        # 08:00 UTC is 16:00 in Shanghai: after a 15:30 cut-off there
        assert ev('value_date(t, "15:30", target2)', t=datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)) \
            == d("2026-11-30")
        # a timestamp without a zone is taken as written on the engine's clock
        assert ev('value_date(t, "15:30", target2)', t=datetime(2026, 11, 27, 8, 0)) == d("2026-11-27")
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("expr, scope, message", [
    # a year the calendar does not list is never guessed: the error names the calendar, its file and the year
    ("is_business_day(d, target2)", {"d": date(2029, 1, 2)},
     r"is_business_day: calendar target2 \(target2.csv\) has no dates for 2029 \(asked about 2029-01-02\); "
     r"it covers 2026-2028: add 2029's holidays to target2.csv"),
    ("next_business_day(d, cny)", {"d": date(2026, 12, 31)}, r"calendar cny \(cny_holidays.csv\) has no dates for 2027"),
    ("add_business_days(d, 100000, target2)", {"d": date(2026, 1, 5)}, r"has no dates for 2029"),
    ("add_business_days(d, -3, target2)", {"d": date(2026, 1, 2)}, r"has no dates for 2025"),
    ('value_date(t, "3pm", target2, "UTC")', {"t": datetime(2026, 11, 27, 9)}, r"'3pm' is not a cut-off time"),
    ('value_date(t, "15:30", target2, "UTC")', {"t": date(2026, 11, 27)}, r"expected a timestamp"),
    ('value_date(t, "15:30", target2, "Europe/Berlni")', {"t": datetime(2026, 11, 27, 9)}, r"not a known IANA"),
    ("is_business_day(d, \"target2\")", {"d": date(2026, 1, 5)}, r"must be a table declared in the route file"),
    ("is_business_day(\"2026-01-05\", target2)", {}, r"use parse_date first"),
])
def test_runtime_errors_name_what_is_wrong(expr, scope, message):
    with pytest.raises(EvalError, match=message):
        ev(expr, **scope)


def test_a_table_without_dates_or_with_a_bad_date_fails_naming_it(tmp_path):
    (tmp_path / "bad.csv").write_text("date,name\n2026-01-01,New Year\n2026-02-30,no such day\n")
    (tmp_path / "nodate.csv").write_text("day,name\n2026-01-01,New Year\n")
    bad = table("bad", tmp_path / "bad.csv")
    with pytest.raises(EvalError, match=r"calendar bad \(bad.csv\): '2026-02-30' in column date is not a date"):
        ev("is_business_day(d, bad)", d=date(2026, 1, 5), bad=bad)
    nodate = load_table(ir.TableDecl("nodate", "csv", str(tmp_path / "nodate.csv"), "day"))
    with pytest.raises(EvalError, match=r"table nodate \(nodate.csv\) has no column 'date'"):
        ev("is_business_day(d, nodate)", d=date(2026, 1, 5), nodate=nodate)


ROUTE = '''channel front = memory
format Req = fixed {
    stamp  date(14, "%%Y%%m%%d%%H%%M%%S")
    day    date(8, "%%Y%%m%%d")
    code   string(2)
}
table hols = csv "hols.csv" key date
table other = csv "other.csv" key id
route r {
    receive from front as Req
    let x = %s
    reply Req { code = "00" }
}
'''


@pytest.mark.parametrize("expr, code", [
    ("is_business_day(msg.day, hols)", None),
    ('value_date(msg.stamp, "15:30", hols, "Europe/Berlin")', None),
    ("add_business_days(msg.day, 2, hols)", None),
    ('is_business_day(msg.day, "hols")', "E067"),
    ("is_business_day(msg.day, hosl)", "E067"),
    ("is_business_day(msg.day, msg.code)", "E067"),
    ("is_business_day(msg.day, other)", "E068"),
    ('value_date(msg.stamp, "3:30", hols)', "E069"),
    ('value_date(msg.stamp, "24:00", hols)', "E069"),
    ("value_date(msg.stamp, 1530, hols)", "E069"),
    ('value_date(msg.day, "15:30", hols)', "E072"),        # a date has no time of day
    ('value_date(msg.stamp, "15:30", hols, "Europe/Berlni")', "E072"),
    ("is_business_day(msg.code, hols)", "E072"),
])
def test_check(tmp_path, registry, expr, code):
    (tmp_path / "hols.csv").write_text("date,name\n2026-12-25,Christmas\n")
    (tmp_path / "other.csv").write_text("id,name\n1,x\n")
    r = compile_source(ROUTE % expr, registry, tmp_path / "r.route")
    codes = [x.code for x in r.diagnostics if x.code not in ("W002", "W020")]    # W020: a 2026 calendar, late in 2026
    assert codes == ([code] if code else []), [x.message for x in r.diagnostics]


def test_check_names_a_bad_row_of_the_calendar_file(tmp_path, registry):
    (tmp_path / "hols.csv").write_text("date,kind\n2026-12-25,holiday\n25.12.2027,holiday\n2026-10-10,worked\n")
    (tmp_path / "other.csv").write_text("id,name\n1,x\n")
    r = compile_source(ROUTE % "is_business_day(msg.day, hols)", registry, tmp_path / "r.route")
    [e] = [x for x in r.diagnostics if x.code == "E068"]
    assert "hols.csv:3: '25.12.2027' in column date is not a date written YYYY-MM-DD (and 1 more row(s))" in e.message


def test_the_shipped_calendars_are_well_formed():
    from dsl.calendars import file_problems
    for path in (TARGET2, CNY):
        header, problems = file_problems(str(path))
        assert "date" in header and problems == [], path


def _easter(year: int) -> date:
    """Easter Sunday, Gregorian (the anonymous computus, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    h = (19 * a + b - b // 4 - (b - (b + 8) // 25 + 1) // 3 + 15) % 30
    k = (32 + 2 * (b % 4) + 2 * (c // 4) - h - c % 4) % 7
    m = (a + 11 * h + 22 * k) // 451
    return date(year, (h + k - 7 * m + 114) // 31, (h + k - 7 * m + 114) % 31 + 1)


def test_the_target2_file_holds_the_ecb_rule_for_every_year_it_lists():
    """TARGET closes, besides weekends, on New Year's Day, Good Friday, Easter Monday, 1 May, 25 and 26
    December (ECB, 14 December 2000, cited in routes/common/target2.route): a guard of the shipped data."""
    from datetime import timedelta
    rows = table("target2", TARGET2).rows
    listed = {date.fromisoformat(d) for d in rows}
    assert _easter(2027) == date(2027, 3, 28) and _easter(2026) == date(2026, 4, 5)
    want = set()
    for y in {d.year for d in listed}:
        e = _easter(y)
        want |= {date(y, 1, 1), e - timedelta(days=2), e + timedelta(days=1), date(y, 5, 1),
                 date(y, 12, 25), date(y, 12, 26)}
    assert listed == want
    assert {d.year for d in listed} >= {2026, 2027}
