"""A date sent to a copybook number field (`due_date = parse_date(...)` for PIC 9(8)): `bsp check` says so
(E074), with the form the host reads (`number(format_date(d, "%Y%m%d"))`), instead of every call failing
at run time (96, "expected int or Decimal, got date")."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dsl.load import compile_source
from engine.registry import default_registry
from formats.copybook.codec import CopybookCodec
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError

REPO = Path(__file__).resolve().parents[2]
CPY = REPO / "routes" / "customs_duty" / "copybooks" / "CD-REQ.cpy"


def _errors(tmp_path: Path, value: str):
    src = ('channel front = memory\nchannel host = memory\nformat Req = json\n'
           f'format Cb = copybook "{CPY}" encoding cp037 names lower\n'
           'route r {\n    receive from front as Req\n'
           f'    call h = host as Cb reply Cb {{ due_date = {value} }}\n'
           '    reply Req { ok = true }\n}\n')
    r = compile_source(src, default_registry(), tmp_path / "main.route")
    return [d for d in r.diagnostics if d.severity == "error"]


def test_a_date_into_a_pic_9_field_is_e074_with_the_number_to_send(tmp_path: Path) -> None:
    [e] = _errors(tmp_path, 'parse_date(msg.due, "%Y-%m-%d")')
    assert e.code == "E074" and (e.pos.line, e.pos.col) == (7, 47), (e.code, e.pos)
    assert e.message == ('field `due_date` of format `Cb` is a number (integer): it cannot take a date '
                         '(parse_date(...))'), e.message
    assert e.help == ('send the number the host reads, e.g. `due_date = number(format_date(parse_date(...), '
                      '"%Y%m%d"))` for a PIC 9(8) date'), e.help


def test_the_number_of_the_date_and_an_unknown_value_pass(tmp_path: Path) -> None:
    assert _errors(tmp_path, 'number(format_date(parse_date(msg.due, "%Y-%m-%d"), "%Y%m%d"))') == []
    assert _errors(tmp_path, "msg.due") == []          # known at run time only
    assert _errors(tmp_path, "today()")[0].code == "E074"


def test_at_run_time_the_encoder_says_how_to_write_the_date() -> None:
    codec = CopybookCodec.from_file(CPY, CopybookOptions(encoding="cp037", names="lower", missing_numbers="zero"))
    with pytest.raises(FormatError) as exc:
        codec.encode({"due_date": dt.date(2026, 12, 10)})
    assert 'PIC 9(8) holds a date as the number the host reads: in a route, number(format_date(d, "%Y%m%d"))' \
        in str(exc.value), str(exc.value)


def test_a_date_written_as_text_says_how_to_send_it() -> None:
    codec = CopybookCodec.from_file(CPY, CopybookOptions(encoding="cp037", names="lower", missing_numbers="zero"))
    with pytest.raises(FormatError) as exc:
        codec.encode({"due_date": "2026-12-10"})
    assert 'number(format_date(parse_date(text, "%Y-%m-%d"), "%Y%m%d"))' in str(exc.value), str(exc.value)
    with pytest.raises(FormatError) as exc:
        codec.encode({"due_date": "abc"})
    assert "holds a date" not in str(exc.value), str(exc.value)
