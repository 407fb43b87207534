"""replace, add_days, days_between and the time zone of today() / now(): their values, and what
`bsp check` tells about them (argument counts, literal types, time zone names, result types)."""
from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest

from dsl.compiler import EvalError, compile_expr
from dsl.load import compile_source
from dsl.parser import parse

HEAD = '''channel mainframe = memory
format Req = fixed {
    ref         string(10)
    amount      decimal(12, 2)
    iban        string(34)
    due_date    date(8, "%Y%m%d")
    stamp       date(14, "%Y%m%d%H%M%S")
}
format Rsp = fixed {
    code  string(2)
    text  string(40)
    n     integer(5)
    day   date(8, "%Y%m%d")
}
'''


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


def D(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


@pytest.mark.parametrize("text, want", [
    ('replace("DE89 3704 0044 0532 0130 00", " ", "")', "DE89370400440532013000"),
    ('replace("a-b-c", "-", "")', "abc"),
    ('replace("a.b", ".", "\\\\.")', "a\\.b"),                 # plain text: "." is no pattern
    ('replace("x*y", "*", "+")', "x+y"),
    ('replace("aaa", "aa", "b")', "ba"),                    # left to right, no overlap
    ('replace(null, " ", "")', ""),
    ('replace("a b", " ", null)', "ab"),
    ('replace(12.50, ".", ",")', "12,50"),                  # a decimal as written
    ('iban_valid(replace(upper(" de89 3704 0044 0532 0130 00 "), " ", ""))', True),
    ('add_days(parse_date("2026-01-31", "%Y-%m-%d"), 1)', D("2026-02-01")),
    ('add_days(parse_date("2024-02-28", "%Y-%m-%d"), 1)', D("2024-02-29")),   # a leap year
    ('add_days(parse_date("2026-03-01", "%Y-%m-%d"), -1)', D("2026-02-28")),
    ('add_days(parse_date("2026-03-01", "%Y-%m-%d"), 0 - 365)', D("2025-03-01")),
    ('add_days(parse_date("2026-03-01", "%Y-%m-%d"), 2.0)', D("2026-03-03")),   # a whole decimal
    ('add_days(null, 3)', None),
    ('days_between(parse_date("2026-01-01", "%Y-%m-%d"), parse_date("2026-03-01", "%Y-%m-%d"))', 59),
    ('days_between(parse_date("2026-03-01", "%Y-%m-%d"), parse_date("2026-01-01", "%Y-%m-%d"))', -59),
    ('days_between(parse_date("2026-03-01", "%Y-%m-%d"), null)', None),
    ('days_between(today(), add_days(today(), 30))', 30),
    ('days_between(today(), add_days(today(), 30)) <= 30', True),
])
def test_values(text, want):
    got = ev(text)
    assert got == want and type(got) is type(want)


def test_add_days_keeps_a_timestamp_time_and_days_between_counts_dates():
    stamp = datetime.datetime(2026, 3, 1, 23, 30, tzinfo=datetime.timezone.utc)
    assert ev("add_days(t, 1)", t=stamp) == datetime.datetime(2026, 3, 2, 23, 30, tzinfo=datetime.timezone.utc)
    assert ev("days_between(t, d)", t=stamp, d=D("2026-03-02")) == 1
    assert ev("days_between(msg.a, msg.b)", msg={"a": D("2026-03-02"), "b": stamp}) == -1


@pytest.mark.parametrize("text, message", [
    ('replace("abc", "", "x")', "replace: the text to replace (old) is empty"),
    ('add_days("2026-01-31", 1)', "add_days: expected a date, got the string '2026-01-31' (use parse_date first)"),
    ('add_days(today(), 1.5)', "add_days: expected a whole number, got 1.5"),
    ('add_days(today(), null)', "add_days: expected a number, got null"),
    ('add_days(parse_date("9999-12-31", "%Y-%m-%d"), 1)',
     "add_days: 9999-12-31 moved by 1 days is outside the years 1 to 9999"),
    ('days_between(12, today())', "days_between: expected a date, got an integer"),
    ('today("Mars/Olympus")', "today: 'Mars/Olympus' is not a known IANA time zone"),
    ('now("../../etc/passwd")', "now: '../../etc/passwd' is not a time zone name"),
])
def test_errors_name_the_function_and_the_fix(text, message):
    with pytest.raises(EvalError, match=None) as e:
        ev(text)
    assert message in e.value.message


def test_today_and_now_in_a_time_zone():
    # UTC+14 and UTC-12 are 26 hours apart: their dates always differ, by one day or two
    east, west = ev('today("Pacific/Kiritimati")'), ev('today("Etc/GMT+12")')
    assert type(east) is datetime.date and days(west, east) in (1, 2)
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12", "Europe/Berlin"):
        before = datetime.datetime.now(ZoneInfo(zone)).date()
        got = ev(f'today("{zone}")')
        assert got in (before, datetime.datetime.now(ZoneInfo(zone)).date())
    t = ev('now("Europe/Berlin")')
    assert t.tzinfo == ZoneInfo("Europe/Berlin")
    assert abs((t - ev("now()")).total_seconds()) < 5                 # the same instant, another zone
    assert ev("now()").utcoffset() == datetime.timedelta(0)


def days(a, b):
    return (b - a).days


def check(tmp_path, body: str, registry):
    src = HEAD + "route r {\n    receive from mainframe as Req\n" + body + "\n    reply Rsp { code = \"00\" }\n}\n"
    return compile_source(src, registry, tmp_path / "main.route")


def diags(r):
    return [(d.code, d.message) for d in r.diagnostics if d.code not in ("W001", "W003")]


def test_a_route_using_them_checks_clean(tmp_path, registry):
    r = check(tmp_path, '''    let iban = replace(upper(trim(msg.iban)), " ", "")
    validate {
        iban_valid(iban)                                        else reject "30" "bad IBAN"
        days_between(today("Europe/Berlin"), msg.due_date) <= 30 else reject "57" "due too far ahead"
        msg.due_date <= add_days(today(), 30)                    else reject "57" "due too far ahead"
        days_between(msg.stamp, now("Europe/Berlin")) <= 1       else reject "57" "stale"
    }''', registry)
    assert diags(r) == []
    # msg.stamp is a fixed-width time, without a zone: ordered with now() it failed every request at run time
    # (Python refuses to order a naive and an aware datetime), which `bsp check` refuses since 2026-11-28
    r = check(tmp_path, '''    validate {
        add_days(msg.stamp, 1) > now("Europe/Berlin")            else reject "57" "stale"
    }''', registry)
    assert [c for c, _ in diags(r)] == ["E073"] and "and one without (add_days(...))" in diags(r)[0][1]


@pytest.mark.parametrize("body, message", [
    ('    let x = replace(msg.iban, " ")', "replace() takes 3 arguments, got 2"),
    ('    let x = replace(msg.iban, "", "-")',
     "replace(): argument 2 (old) must not be empty (it would match between every two characters)"),
    ('    let x = replace(msg.iban, 1, "")', "replace(): argument 2 (old) must be a string, got int 1"),
    ('    let x = add_days(msg.due_date)', "add_days() takes 2 arguments, got 1"),
    ('    let x = add_days(msg.due_date, 1.5)', "add_days(): argument 2 (n) must be a whole number, got decimal 1.5"),
    ('    let x = add_days("2026-01-01", 1)',
     'add_days(): argument 1 (d) must be a date, got the string "2026-01-01"'),
    ('    let x = add_days(msg.amount, 1)', "add_days(): argument 1 (d) must be a date, got a decimal (msg.amount)"),
    ('    let x = days_between(msg.due_date, msg.ref)',
     "days_between(): argument 2 (b) must be a date, got a string (msg.ref)"),
    ('    let x = today("Europe/Berlni")',
     "today(): argument 1 (tz) 'Europe/Berlni' is not a known IANA time zone; write one such as "
     '"Europe/Berlin", "Asia/Shanghai" or "UTC"'),
    ('    let x = now(8)', "now(): argument 1 (tz) must be a string, got int 8"),
    ('    let x = today("UTC", "x")', "today() takes 0 to 1 arguments, got 2"),
    # the types of the results: a date is no number, a count of days is no date
    ('    let x = add_days(msg.due_date, 1) + 1', "`+` beside a date needs a duration of days: 1 is an integer"),
    ('    let x = days_between(msg.due_date, today()) == msg.due_date',
     "an integer (days_between(...)) == a date (msg.due_date) never holds: values of different types are never equal"),
    ('    let x = replace(msg.ref, "-", "") > 0', 'cannot compare a string (replace(...)) > an integer (0)'),
])
def test_bsp_check_tells(tmp_path, registry, body, message):
    code = "E071" if " takes " in message else "E072" if "argument" in message else "E073"
    assert diags(check(tmp_path, body, registry)) == [(code, message)]


def test_date_arithmetic_hint_names_the_functions(tmp_path, registry):
    r = check(tmp_path, "    let x = msg.due_date + 1", registry)
    (d,) = [d for d in r.diagnostics if d.code == "E073"]
    assert "write the unit: 1d (or add_days(date, n) for a number n of days)" in d.help


def test_a_timestamp_moved_by_days_is_still_a_timestamp(tmp_path, registry):
    r = check(tmp_path, "    let x = add_days(msg.stamp, 1)", registry)
    assert diags(r) == []
    r = compile_source(HEAD + 'route r {\n    receive from mainframe as Req\n'
                       '    reply Rsp { code = "00"  day = add_days(msg.due_date, 1)  n = days_between(msg.due_date, '
                       'today()) }\n}\n', registry, tmp_path / "m2.route")
    assert diags(r) == []
    r = compile_source(HEAD + 'route r {\n    receive from mainframe as Req\n'
                       '    reply Rsp { code = "00"  text = add_days(msg.due_date, 1) }\n}\n', registry,
                       tmp_path / "m3.route")
    assert [c for c, _ in diags(r)] == ["E074"]


def test_today_without_a_zone_is_the_date_of_the_engines_tz_variable():
    """The deployment's business time zone (docs/language.md): the TZ variable `bsp run` starts with."""
    import os
    import subprocess
    import sys
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
        out = subprocess.run([sys.executable, "-c", "from dsl.functions import f_today; print(f_today())"],
                             env={**os.environ, "TZ": zone}, capture_output=True, text=True, check=True)
        got = datetime.date.fromisoformat(out.stdout.strip())
        assert got in (datetime.datetime.now(ZoneInfo(zone)).date(),
                       (datetime.datetime.now(ZoneInfo(zone)) - datetime.timedelta(seconds=5)).date())
