"""Date literals (`2026-11-25`: a date, never 2026 - 11 - 25 = 1990), dates moved by durations of days,
the time of day in a zone (`local`, `parse_timestamp`) to compare a zone-less field's time with the current
one, and a plain number beside a timestamp or a date: refused by `bsp check` where its type is known and
failing at its place at run time (it is never taken for seconds)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from dsl import clock
from dsl.compiler import EvalError, compile_expr
from dsl.load import compile_source
from dsl.parser import ParseFailure, parse

UTC = timezone.utc


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


# ------------------------------------------------------------------ date literals

@pytest.mark.parametrize("text, want", [
    ("2026-11-25", date(2026, 11, 25)),
    ("2024-02-29", date(2024, 2, 29)),
    ("0999-01-02", date(999, 1, 2)),
    ("2026-11-25 + 3d", date(2026, 11, 28)),
    ("3d + 2026-11-25", date(2026, 11, 28)),
    ("2026-11-25 - 1d", date(2026, 11, 24)),
    ("2026-11-25-1d", date(2026, 11, 24)),                      # run together: still a date and a minus
    ("2026-12-31 + 2d * 1", date(2027, 1, 2)),
    ("2026-11-25 + 48h", date(2026, 11, 27)),                   # whole days, in any unit
    ("add_days(2026-11-25, -25)", date(2026, 10, 31)),
    ("days_between(2026-11-25, 2026-12-01)", 6),
    ("2026-11-25 == parse_date(\"20261125\", \"%Y%m%d\")", True),
    ("2026-11-25 < 2026-11-26", True),
    ("format_date(2026-11-25, \"%d.%m.%Y\")", "25.11.2026"),
    ("2026 - 11 - 25", 1990),                                    # spaced: the arithmetic it says
])
def test_date_literal_values(text, want):
    got = ev(text)
    assert got == want and type(got) is type(want)


def test_the_date_literal_is_the_date_today_and_a_date_field_give():
    with clock.fixed(datetime(2026, 11, 25, 10, tzinfo=UTC)):
        assert ev('today("UTC") == 2026-11-25') is True
        assert ev('today("UTC") + 1d > 2026-11-25') is True
        assert ev('days_between(2026-11-20, today("UTC"))') == 5


@pytest.mark.parametrize("literal, words", [
    ("2026-02-30", "2026-02 has no day 30"),
    ("2026-13-01", "there is no month 13"),
    ("2026-00-10", "there is no month 00"),
    ("0000-01-01", "the year 0000"),
    ("2026-1-5", "month and day take two digits each"),
    ("2026-11-5", "month and day take two digits each"),
])
def test_a_malformed_date_is_e142_at_it(literal, words):
    with pytest.raises(ParseFailure) as exc:
        parse(f"route r {{ let x = {literal} }}", "expr.route")
    d = exc.value.diagnostic
    assert (d.code, d.pos.line, d.pos.col) == ("E142", 1, 19)
    assert words in d.message


@pytest.mark.parametrize("text, words", [
    ("2026-11-25 + 90m", "a date moves by whole days"),
    ("2026-11-25 + n", "`+` beside a date needs a duration: n is an integer (3), not a duration (say its unit: n * 1d)"),
    ("2026-11-25 - 2026-11-20", "cannot apply - to a date"),
    ("9999-12-31 + 1d", "outside the years 0001 to 9999"),
])
def test_what_a_date_cannot_do_fails_at_its_place(text, words):
    with pytest.raises(EvalError) as exc:
        ev(text, n=3)
    assert words in exc.value.message
    assert (exc.value.pos.line, exc.value.pos.col) == (1, 19)


# ------------------------------------------------------------------ a plain number beside a timestamp

@pytest.mark.parametrize("text, want", [
    ("2026-11-25T10:00:00Z + n * 1s", datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z + 1m * n", datetime(2026, 11, 25, 10, 5, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z - (2h + 30m)", datetime(2026, 11, 25, 7, 30, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z + -2h", datetime(2026, 11, 25, 8, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z + 1d / 2", datetime(2026, 11, 25, 22, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z + (2026-11-25T10:00:00Z - 2026-11-25T09:00:00Z)", datetime(2026, 11, 25, 11, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z + (if n > 1 then 1h else 2h)", datetime(2026, 11, 25, 11, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z + abs(2026-11-25T09:00:00Z - 2026-11-25T10:00:00Z)", datetime(2026, 11, 25, 11, tzinfo=UTC)),
])
def test_a_timestamp_moves_by_a_duration_however_it_is_computed(text, want):
    assert ev(text, n=5) == want


def test_a_duration_is_still_a_number_everywhere_else():
    assert ev("2h") == 7200 and ev("2h + 1") == 7201 and type(ev("2h + 1")) is Decimal
    assert ev("2026-11-25T10:00:00Z - 2026-11-25T09:00:00Z > 30m") is True
    assert ev("round(90m / 3600, 1)") == Decimal("1.5")


@pytest.mark.parametrize("text, side", [
    ("now() + n", "n is an integer (5)"),
    ("n + now()", "n is an integer (5)"),
    ("now() - amt", "amt is a decimal (1.50)"),
    ("now() + (2h + n)", "2h + n is a decimal (7205)"),                # named by its source text
    ("now() + round(2h)", "round(...) is a decimal (7200)"),
])
def test_a_plain_number_beside_a_timestamp_fails_at_its_place_not_as_seconds(text, side):
    with clock.fixed(datetime(2026, 11, 25, 10, tzinfo=UTC)):
        with pytest.raises(EvalError) as exc:
            ev(text, n=5, amt=Decimal("1.50"))
    assert "beside a timestamp needs a duration: " + side in exc.value.message
    assert "not a duration (say its unit:" in exc.value.message and "* 1s)" in exc.value.message
    assert (exc.value.pos.line, exc.value.pos.col) == (1, 19)


# ------------------------------------------------------------------ local() and parse_timestamp()

def test_local_is_the_wall_clock_time_in_a_zone_without_one():
    with clock.fixed(datetime(2026, 11, 25, 10, tzinfo=UTC)):
        assert ev('local(now(), "Europe/Paris")') == datetime(2026, 11, 25, 11)          # CET: +01:00
        assert ev('local(now(), "Asia/Shanghai")') == datetime(2026, 11, 25, 18)
        assert ev('local(now(), "Europe/Paris") > 2026-11-25T10:30:00') is True         # zone-less both
        assert ev('local(now(), "Europe/Paris") > b', b=datetime(2026, 11, 25, 10, 59)) is True
    with clock.fixed(datetime(2026, 7, 1, 10, tzinfo=UTC)):
        assert ev('local(now(), "Europe/Paris")') == datetime(2026, 7, 1, 12)             # CEST: +02:00
    assert ev('local(2026-11-25T23:30:00-05:00, "UTC")') == datetime(2026, 11, 26, 4, 30)
    assert ev('local(x, "UTC")', x=None) is None
    for text, words in (('local(2026-11-25T10:00:00, "UTC")', "has no zone already"),
                        ('local(x, "Europe/Nowhere")', "not a known IANA time zone"),
                        ('local(2026-11-25, "UTC")', "expected a timestamp, got a date")):
        with pytest.raises(EvalError) as exc:
            ev(text, x=datetime(2026, 11, 25, tzinfo=UTC))
        assert words in exc.value.message


def test_parse_timestamp_keeps_the_time_of_day_parse_date_drops():
    assert ev('parse_date("2026-11-25 10:30", "%Y-%m-%d %H:%M")') == date(2026, 11, 25)
    got = ev('parse_timestamp("2026-11-25 10:30", "%Y-%m-%d %H:%M")')
    assert got == datetime(2026, 11, 25, 10, 30) and got.utcoffset() is None
    got = ev('parse_timestamp("20261125103000+0100", "%Y%m%d%H%M%S%z")')
    assert got == datetime(2026, 11, 25, 9, 30, tzinfo=UTC) and got.utcoffset() == timedelta(hours=1)
    assert ev('parse_timestamp("", "%H:%M")') is None
    with pytest.raises(EvalError) as exc:
        ev('parse_timestamp("25.11.2026", "%Y-%m-%d %H:%M")')
    assert "parse_timestamp: '25.11.2026' does not match" in exc.value.message


# ------------------------------------------------------------------ bsp check

HEAD = '''channel mainframe = memory
format Req = fixed {
    booked  date(14, "%Y%m%d%H%M%S")
    day     date(8, "%Y%m%d")
    count   integer(3)
    amount  decimal(9, 2)
    stamp   string(19)
}
format Rsp = fixed {
    resp_code string(2)
}
'''


def check(tmp_path, registry, *conds: str):
    body = "".join(f'        {c} else reject "13" "no"\n' for c in conds)
    src = HEAD + ("route r {\n    receive from mainframe as Req\n    validate {\n" + body +
                  '    }\n    reply Rsp { resp_code = "00" }\n}\n')
    r = compile_source(src, registry, tmp_path / "main.route")
    return [(d.code, d.pos.line, d.pos.col, d.message) for d in r.diagnostics if d.severity == "error"], r


def test_check_takes_dates_durations_and_local_times(tmp_path, registry):
    errs, r = check(tmp_path, registry,
                    "msg.day >= 2026-11-25 and msg.day + 3d > today()",
                    "days_between(2026-11-25, msg.day) < 30 and add_days(2026-11-25, 1) > msg.day",
                    'msg.booked < local(now(), "Europe/Paris")',
                    "now() - msg.count * 1m < now() and now() + (now() - now()) >= now()",
                    'parse_timestamp(msg.stamp, "%Y-%m-%dT%H:%M:%S") < local(now(), "UTC")',
                    'parse_timestamp(msg.stamp, "%Y%m%d%H%M%S%z") < now()')
    assert errs == [] and r.program is not None


@pytest.mark.parametrize("cond, col, words", [
    ("now() + msg.count > now()", 9, "`+` beside a timestamp needs a duration: msg.count is an integer, not a duration"),
    ("msg.count + now() > now()", 9, "msg.count is an integer, not a duration"),
    ("now() - msg.amount < now()", 9, "msg.amount is a decimal, not a duration"),
    ("msg.booked + len(msg.stamp) > msg.booked", 9, "len(...) is an integer, not a duration"),
    ("msg.day + msg.count > 2026-11-25", 9, "`+` beside a date needs a duration of days: msg.count is an integer"),
    ("msg.day + 90m > 2026-11-25", 9, "a date moves by whole days: 90m is not"),
    ("msg.booked < now()", 9, "cannot order a timestamp with a zone (now(...)) and one without (msg.booked)"),
    ('parse_timestamp(msg.stamp, "%Y-%m-%d %H:%M") < now()', 9, "cannot order a timestamp with a zone"),
    ('local(now(), "Europe/Nowhere") < msg.booked', 22, "not a known IANA time zone"),
    ("local(msg.count, \"UTC\") < msg.booked", 15, "must be a timestamp"),
])
def test_check_refuses_a_number_for_a_duration_and_a_zone_less_time_beside_now(tmp_path, registry, cond, col, words):
    errs, _ = check(tmp_path, registry, cond)
    assert [(c, line, k) for c, line, k, _ in errs] == [(errs[0][0], 15, col)], errs
    assert words in errs[0][3]


def test_the_docs_dates_example_passes_its_route_tests(tmp_path):
    """docs/language.md#dates-and-local-times: the example (a date literal, a date moved by days, a zone-less
    booking time against local(now(), "Europe/Paris"), tests `at` a bare timestamp) passes under `bsp test`."""
    import re
    from pathlib import Path
    from engine.registry import default_registry
    from engine.routetest.runner import run_paths
    doc = (Path(__file__).resolve().parents[2] / "docs" / "language.md").read_text(encoding="utf-8")
    section = doc.split("### Dates and local times\n", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```route\n(.*?)```", section, flags=re.S)
    (tmp_path / "example_test.route").write_text(block)
    result = run_paths([tmp_path / "example_test.route"], default_registry())
    assert [o.name for o in result.outcomes] == ["booked in Paris a minute ago", "booked in Paris a minute ahead"]
    assert all(o.passed for o in result.outcomes), [f for o in result.outcomes for f in o.failures]


def test_the_program_with_a_date_literal_dumps_to_json(tmp_path, registry):
    """`bsp check --explain` prints the IR as JSON: a date literal is written as it is in the route."""
    import json
    errs, r = check(tmp_path, registry, "msg.day >= 2026-11-25")
    assert errs == [] and r.program is not None
    assert '"2026-11-25"' in json.dumps(r.program.to_json())


# ------------------------------------------------------------------ number() of a duration: its seconds, plain

def test_number_of_a_duration_is_its_seconds_a_plain_number():
    """number(2h) is 7200, a plain number, as bsp check types it (until 2026-11-28 it stayed a duration at run
    time, so `now() + number(2h)` ran where bsp check refused it)."""
    v = ev("number(2h)")
    assert v == 7200 and type(v) is Decimal
    assert ev("number(90m) / 60") == 90 and ev("abs(2h)") == 7200


@pytest.mark.parametrize("text, unit", [("now() + number(2h)", "1s"), ("2026-11-25 + number(1d)", "1d")])
def test_a_timestamp_or_a_date_does_not_move_by_number_of_a_duration_at_run_time(text, unit):
    with clock.fixed(datetime(2026, 11, 25, 10, tzinfo=UTC)):
        with pytest.raises(EvalError) as exc:
            ev(text)
    msg = exc.value.message
    assert "needs a duration: number(...) is a decimal" in msg, msg
    assert "number() gives a plain number (of a duration, its seconds): to move by the duration write it " \
           "without number()" in msg and f"number(...) * {unit}" in msg, msg


@pytest.mark.parametrize("cond, words", [
    ("now() + number(2h) > now()", "`+` beside a timestamp needs a duration: number(...) is a number"),
    ("msg.day + number(1d) > 2026-11-25", "`+` beside a date needs a duration of days: number(...) is a number"),
])
def test_check_refuses_number_of_a_duration_beside_a_timestamp_with_the_hint(tmp_path, registry, cond, words):
    errs, r = check(tmp_path, registry, cond)
    assert len(errs) == 1 and errs[0][0] == "E073" and words in errs[0][3], errs
    hint = [d.help for d in r.diagnostics if d.code == "E073"][0]
    assert "number() gives a plain number (of a duration, its seconds)" in hint, hint


# ------------------------------------------------------------------ how messages name a duration and an expression

@pytest.mark.parametrize("cond, words", [
    ("msg.stamp < 90m", "cannot compare a string (msg.stamp) < a duration (90m)"),          # it said (5400)
    ("msg.stamp < 1.5h", "a duration (1.5h)"),                                              # as written
    ("msg.stamp < -2d", "a duration (-2d)"),
    ("now() + (msg.count + 1) > now()", "needs a duration: msg.count + 1 is an integer"),  # "the expression"
    ("now() + (msg.count + 1) > now()", "(msg.count + 1) * 1s"),                            # not msg.count + 1 * 1s
    ("msg.stamp < (if msg.count > 1 then 2h else 90m)", "a duration (if msg.count > 1 then 2h else 90m)"),
])
def test_check_names_a_duration_as_written_and_an_expression_by_its_text(tmp_path, registry, cond, words):
    errs, r = check(tmp_path, registry, cond)
    said = [f"{d.message} (help: {d.help})" for d in r.diagnostics if d.severity == "error"]
    assert len(said) == 1 and words in said[0], said


def test_show_names_a_duration_in_its_unit_without_its_text():
    """A duration literal the checker made itself (no source text): in its unit, never its seconds."""
    from dsl import ir
    from dsl.types import show
    assert [show(ir.Lit(Decimal(s), "duration")) for s in ("5400", "86400", "0.25", "-7200", "45")] == \
        ["90m", "1d", "250ms", "-2h", "45s"]
    assert show(ir.Binary("+", ir.Name("a"), ir.Name("b"))) == "the expression"


def test_a_long_expression_is_named_by_its_text_shortened():
    with clock.fixed(datetime(2026, 11, 25, 10, tzinfo=UTC)):
        with pytest.raises(EvalError) as exc:
            ev("now() + (n + n + n + n + n + n + n + n + n + n + n + n + n + n)", n=1)
    msg = exc.value.message
    assert "needs a duration: n + n + n + n + n + n + n + n + n + n... is an integer (14)" in msg, msg
    assert "(say its unit: (n + n + n + n + n + n + n + n + n + n...) * 1s)" in msg, msg
