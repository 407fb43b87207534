"""Timestamp literals (dsl/timestamps.py): `2026-11-25T10:00:00Z`, with an offset, or without a zone (a local
time as a fixed-width or CSV field holds one); parsed, checked, compiled, and their arithmetic with durations."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from dsl import clock, timestamps
from dsl.compiler import EvalError, compile_expr
from dsl.load import compile_source
from dsl.parser import ParseFailure, parse
from dsl.ir import FieldDecl as F
from formats.fixed import FixedCodec

UTC = timezone.utc
CET = timezone(timedelta(hours=1))


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


@pytest.mark.parametrize("text, want", [
    ("2026-11-25T10:00:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("2026-11-25T11:00:00+01:00", datetime(2026, 11, 25, 11, tzinfo=CET)),
    ("2026-11-25T05:00:00-05:00", datetime(2026, 11, 25, 5, tzinfo=timezone(timedelta(hours=-5)))),
    ("2026-11-25T10:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("2026-11-25T10:00:00.250Z", datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=UTC)),
    ("2026-11-25T10:00:00.123456Z", datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-25T10:00:00", datetime(2026, 11, 25, 10)),                   # no zone: a local time
    ("2024-02-29T23:59:59+00:00", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
    ("0999-01-02T03:04:05", datetime(999, 1, 2, 3, 4, 5)),                  # written back with 4 digits
])
def test_literal_values(text, want):
    got = ev(text)
    assert got == want and type(got) is datetime
    assert (got.utcoffset() is None) == (want.utcoffset() is None)
    assert got.utcoffset() == want.utcoffset()        # the offset as written is kept
    assert timestamps.parse(timestamps.text(got)) == got and timestamps.text(got).count("T") == 1


def test_the_literal_is_the_type_now_gives_and_compares_with_it():
    at = datetime(2026, 11, 25, 10, tzinfo=UTC)
    with clock.fixed(at):
        assert ev("now() == 2026-11-25T11:00:00+01:00") is True       # one instant, two offsets
        assert ev("now() < 2026-11-25T10:00:01Z") is True
        assert ev("now() >= 2026-11-25T10:00Z") is True
        assert type(ev("now()")) is type(ev("2026-11-25T10:00:00Z"))
    assert ev('format_date(2026-11-25T11:00:00+01:00, "%H:%M")') == "11:00"
    assert ev("add_days(2026-11-25T10:00:00Z, 1) == 2026-11-26T10:00:00Z") is True
    assert ev("days_between(2026-11-25T23:00:00Z, 2026-11-27T01:00:00Z)") == 2


@pytest.mark.parametrize("text, want", [
    ("2026-11-25T10:00:00Z + 2h", datetime(2026, 11, 25, 12, tzinfo=UTC)),
    ("2h + 2026-11-25T10:00:00Z", datetime(2026, 11, 25, 12, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z - 30m", datetime(2026, 11, 25, 9, 30, tzinfo=UTC)),
    ("2026-11-25T10:00:00Z-1d", datetime(2026, 11, 24, 10, tzinfo=UTC)),          # no spaces: still a minus
    ("2026-11-25T10:00:00Z-1000s", datetime(2026, 11, 25, 9, 43, 20, tzinfo=UTC)),
    ("2026-11-25T10:00:00 + 250ms", datetime(2026, 11, 25, 10, 0, 0, 250000)),
    ("2026-11-25T10:00:00Z - 2026-11-24T22:00:00Z", Decimal(43200)),           # seconds, as a duration
    ("2026-11-25T10:00:00.5Z - 2026-11-25T10:00:00Z", Decimal("0.5")),
    ("2026-11-25T10:00:00Z - 2026-11-25T09:00:00Z == 1h", True),
    ("2026-11-25T10:00:00Z - 2026-11-25T09:00:00Z > 30m", True),
    ("2026-11-25T10:00:00Z + 2h > 2026-11-25T11:59:59Z", True),
])
def test_arithmetic_with_durations(text, want):
    assert ev(text) == want


@pytest.mark.parametrize("text, words", [
    ("2026-11-25T10:00:00Z < 2026-11-25T10:00:00", "cannot order a timestamp with a zone (2026-11-25T10:00:00Z) "
                                                   "and one without (2026-11-25T10:00:00)"),
    ("2026-11-25T10:00:00Z - 2026-11-25T10:00:00", "cannot subtract a timestamp with a zone"),
    ("2026-11-25T10:00:00Z + 0.0000001 * 1s", "finer than a microsecond"),
    ("9999-12-31T23:00:00Z + 2h", "outside the years 0001 to 9999"),
    ("2026-11-25T10:00:00Z * 2", "cannot apply * to a timestamp"),
])
def test_what_cannot_be_done_fails_at_its_place(text, words):
    with pytest.raises(EvalError) as exc:
        ev(text)
    assert words in exc.value.message
    assert (exc.value.pos.line, exc.value.pos.col) == (1, 19)


def test_a_zone_less_literal_equals_a_fixed_width_time_field():
    """A fixed-width (or CSV) field with a time pattern decodes to a zone-less timestamp: the literal without a
    zone is equal to it and ordered with it; one with a zone is another kind of value."""
    codec = FixedCodec([F("booked", "date", width=14, pattern="%Y%m%d%H%M%S")])
    booked = codec.decode(b"20261125100000")["booked"]
    assert codec.encode({"booked": ev("2026-11-25T10:00:00")}) == b"20261125100000"     # and encodes back
    assert ev("msg.booked == 2026-11-25T10:00:00", msg={"booked": booked}) is True
    assert ev("msg.booked < 2026-11-25T10:00:01", msg={"booked": booked}) is True
    assert ev("msg.booked == 2026-11-25T10:00:00Z", msg={"booked": booked}) is False


@pytest.mark.parametrize("literal, code, col, words", [
    ("2026-11-25t10:00z", "E133", 19, "write `T` and `Z` in capitals"),
    ("2026-11-25T1000Z", "E133", 19, "with colons"),
    ("2026-11-25T10:00:00+0100", "E133", 19, "the offset with a colon, +01:00"),
    ("2026-1-5T10:00Z", "E133", 19, "two digits each"),
    ("20261125T100000Z", "E133", 19, "the basic form"),
    ("2026-11-25T10:00:00.1234567Z", "E133", 19, "microseconds at most"),
    ("2026-13-25T10:00:00Z", "E134", 19, "there is no month 13"),
    ("2026-02-29T10:00:00Z", "E134", 19, "2026-02 has no day 29"),
    ("2026-11-25T24:00:00Z", "E134", 19, "there is no hour 24"),
    ("2026-11-25T10:60:00Z", "E134", 19, "there is no minute 60"),
    ("2026-11-25T10:00:60Z", "E134", 19, "there is no second 60"),
    ("2026-11-25T10:00:00+24:00", "E134", 19, "is no time zone's"),
    ("0000-01-01T00:00:00Z", "E134", 19, "the year 0000"),
])
def test_a_malformed_literal_is_a_diagnostic_at_it(literal, code, col, words):
    with pytest.raises(ParseFailure) as exc:
        parse(f"route r {{ let x = {literal} }}", "expr.route")
    d = exc.value.diagnostic
    assert (d.code, d.pos.line, d.pos.col) == (code, 1, col)
    assert words in d.message + " " + (d.help or "")


HEAD = '''channel mainframe = memory
format Req = fixed {
    booked  date(14, "%Y%m%d%H%M%S")
    count   integer(3)
}
format Rsp = fixed {
    resp_code string(2)
    stamp     date(14, "%Y%m%d%H%M%S")
}
'''


def check(tmp_path, registry, body: str):
    src = HEAD + "route r {\n    receive from mainframe as Req\n" + body + "\n}\n"
    return compile_source(src, registry, tmp_path / "main.route")


def test_check_takes_timestamp_arithmetic_and_a_literal_for_a_time_field(tmp_path, registry):
    r = check(tmp_path, registry, '''    validate {
        msg.booked >= 2026-11-25T00:00:00 and msg.booked - 2026-11-25T00:00:00 < 12h else reject "13" "late"
        now() + 2h > 2026-11-25T10:00:00Z else reject "13" "old"
    }
    reply Rsp { resp_code = "00"  stamp = 2026-11-25T10:00:00 + 90s }''')
    assert [d for d in r.diagnostics if d.severity == "error"] == [] and r.program is not None


def test_check_refuses_a_number_without_a_unit_beside_a_timestamp(tmp_path, registry):
    r = check(tmp_path, registry, '    let late = now() + 1\n    reply Rsp { resp_code = "00" }')
    errs = [d for d in r.diagnostics if d.severity == "error"]
    assert [(d.code, d.pos.line, d.pos.col) for d in errs] == [("E073", 12, 24)]
    assert "takes a duration: 1 has no unit" in errs[0].message and "1s, 1m, 1h or 1d" in errs[0].help


def test_check_refuses_what_never_holds(tmp_path, registry):
    r = check(tmp_path, registry, '''    validate {
        2026-11-25T10:00:00Z > msg.count else reject "13" "x"
        msg.count == 2026-11-25T10:00:00Z else reject "13" "y"
    }
    reply Rsp { resp_code = "00" }''')
    got = [(d.code, d.message) for d in r.diagnostics if d.severity == "error"]
    assert ("E073", "cannot compare a timestamp (2026-11-25T10:00:00Z) > an integer (msg.count)") in got
    assert any(c == "E073" and "never holds" in m for c, m in got)


def test_the_docs_timestamp_example_passes_its_route_test(tmp_path):
    """docs/language.md#timestamps: the example's route test (a partner's zone-less time in a fixed-width
    record, after the cut-off written as a literal) passes under `bsp test`."""
    import re
    from pathlib import Path
    from engine.registry import default_registry
    from engine.routetest.runner import run_paths
    doc = (Path(__file__).resolve().parents[2] / "docs" / "language.md").read_text(encoding="utf-8")
    section = doc.split("### Timestamps\n", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```route\n(.*?)```", section, flags=re.S)
    (tmp_path / "example_test.route").write_text(block)
    result = run_paths([tmp_path / "example_test.route"], default_registry())
    assert [o.name for o in result.outcomes] == ["a booking after the cut-off is late"]
    assert all(o.passed for o in result.outcomes), [f for o in result.outcomes for f in o.failures]


def test_the_program_with_a_timestamp_literal_dumps_to_json(tmp_path, registry):
    """`bsp check --explain` prints the IR as JSON: a timestamp literal is written as it is in the route."""
    import json
    r = check(tmp_path, registry, '    reply Rsp { resp_code = "00"  stamp = 2026-11-25T10:00:00 + 90s }\n'
                                  '    on error reply Rsp { resp_code = "96"  stamp = 2026-11-25T11:00:00+01:00 }')
    assert r.program is not None, r.diagnostics
    text = json.dumps(r.program.to_json())
    assert '"2026-11-25T10:00:00"' in text and '"2026-11-25T11:00:00+01:00"' in text


@pytest.mark.parametrize("body, words", [
    ('msg.booked > 2026-11-25T16:30:00Z else reject "13" "late"',
     "cannot order a timestamp with a zone (2026-11-25T16:30:00Z) and one without (msg.booked)"),
    ('now() - msg.booked < 5m else reject "13" "old"', "cannot subtract a timestamp with a zone (now(...))"),
    ('msg.booked == add_days(now(), -1) else reject "13" "x"', "cannot compare a timestamp with a zone"),
])
def test_check_refuses_a_zoned_and_a_zone_less_timestamp_together(tmp_path, registry, body, words):
    """A fixed-width record's time has no zone: ordered with `now()` or a `Z` literal it fails every request at
    run time, so `bsp check` refuses it (E073, at the operator's expression)."""
    r = check(tmp_path, registry, f'    validate {{\n        {body}\n    }}\n    reply Rsp {{ resp_code = "00" }}')
    errs = [d for d in r.diagnostics if d.severity == "error"]
    assert [(d.code, d.pos.line, d.pos.col) for d in errs] == [("E073", 13, 9)], [str(d) for d in errs]
    assert words in errs[0].message and "write both with a zone, or both without" in errs[0].help


def test_check_takes_a_field_read_with_its_offset_beside_now(tmp_path, registry):
    head = HEAD.replace('booked  date(14, "%Y%m%d%H%M%S")', 'booked  date(19, "%Y%m%d%H%M%S%z")')
    src = head + ('route r {\n    receive from mainframe as Req\n    validate {\n'
                  '        now() - msg.booked < 5m and msg.booked > 2026-11-25T10:00:00+01:00 else reject "13" "old"\n'
                  '    }\n    reply Rsp { resp_code = "00" }\n}\n')
    r = compile_source(src, registry, tmp_path / "main.route")
    assert [str(d) for d in r.diagnostics if d.severity == "error"] == []
