"""Mistakes analysts make, each with the message, the place and the hint bsp gives
(each test failed before its fix: the message was vague, misplaced or bogus)."""
from __future__ import annotations

from dsl.diagnostics import render
from dsl.load import compile_paths, compile_source

from dslkit import BILL_PAYMENT

SAMPLE = BILL_PAYMENT.read_text()
CSV = (BILL_PAYMENT.parent / "billers.csv").read_text()


def _check(tmp_path, registry, text: str):
    (tmp_path / "billers.csv").write_text(CSV)
    (tmp_path / "main.route").write_text(text, encoding="utf-8")
    return compile_paths([tmp_path / "main.route"], registry)


def _edit(line: int, old: str, new: str) -> str:
    """The sample with ``old`` replaced by ``new`` on line ``line``."""
    lines = SAMPLE.splitlines(keepends=True)
    assert lines[line - 1].count(old) == 1, (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new)
    return "".join(lines)


def _only(result):
    """The one diagnostic, as (code, line, col, message, help)."""
    shown = "\n\n".join(render(d, result.sources) for d in result.diagnostics)
    assert len(result.diagnostics) == 1, shown
    d = result.diagnostics[0]
    return d.code, d.pos.line, d.pos.col, d.message, d.help


# ------------------------------------------------------------------ statement and declaration keywords

def test_misspelt_statement_that_parses_as_a_step_gives_no_follow_on_error(tmp_path, registry):
    # `rpely BillPayRsp { ... }` reads as a plugin step named BillPayRsp: only E042, no E032
    r = _check(tmp_path, registry, _edit(73, "reply", "rpely"))
    code, line, col, msg, help_ = _only(r)
    assert (code, line, col) == ("E042", 73, 5)
    assert msg == "unknown statement `rpely`" and help_ == "did you mean `reply`?"


# ------------------------------------------------------------------ files

def test_a_byte_order_mark_is_accepted_and_columns_stay_right(tmp_path, registry):
    r = _check(tmp_path, registry, "\ufeff" + SAMPLE)
    assert [render(d, r.sources) for d in r.diagnostics] == [] and r.program is not None
    bad = _check(tmp_path, registry, "\ufeff" + "formt F = json\n")
    code, line, col, _, _ = _only(bad)
    assert (line, col) == (1, 1)
    assert render(bad.diagnostics[0], bad.sources).splitlines()[1] == " 1 | formt F = json"


def test_use_of_a_csv_file_says_use_takes_a_route_file(tmp_path, registry):
    r = _check(tmp_path, registry, 'use "billers.csv"\n' + SAMPLE)
    code, line, col, msg, help_ = _only(r)
    assert (code, line, col) == ("E012", 1, 1)
    assert msg == "`use` takes a .route file: billers.csv is not one"
    assert help_ == 'a CSV file is read with `table NAME = csv "FILE.csv" key COLUMN`'


def test_use_of_a_folder_says_so_without_errno_text(tmp_path, registry):
    r = _check(tmp_path, registry, 'use "."\n' + SAMPLE)
    code, line, col, msg, help_ = _only(r)
    assert (code, line, col) == ("E012", 1, 1)
    assert msg == f"`use` takes a .route file, not a folder: {tmp_path.resolve()}"
    assert "Errno" not in msg


def test_use_of_a_missing_route_file_is_still_e010(tmp_path, registry):
    r = _check(tmp_path, registry, 'use "nothere.route"\n' + SAMPLE)
    assert _only(r)[:3] == ("E010", 1, 1)


# ------------------------------------------------------------------ numbers and channel options

def test_a_bad_duration_is_named_at_the_value(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(44, "3s", "3sec"))
    assert _only(r) == ("E016", 44, 15, "`3sec` is not a duration",
                        "write a number and a unit: ms, s, m or h (e.g. 3s)")
    r = _check(tmp_path, registry, _edit(71, '"OK"', '"OK" timeout 5mins'))     # after a call
    assert _only(r) == ("E016", 71, 42, "`5mins` is not a duration",
                        "write a number and a unit: ms, s, m or h (e.g. 5m)")


def test_exponent_notation_says_how_to_write_the_number(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(52, "50000.00", "1e5"))
    code, line, col, msg, _ = _only(r)
    assert (code, line, col, msg) == ("E016", 52, 23, "exponent notation is not supported: write 100000")
    r = _check(tmp_path, registry, _edit(52, "50000.00", "2.5E-3"))
    assert _only(r)[3] == "exponent notation is not supported: write 0.0025"


def test_a_number_run_into_a_word(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(52, "50000.00", "50000abc"))
    assert _only(r)[:4] == ("E016", 52, 23, "`50000abc` is not a number")


def test_a_channel_option_line_is_worded_for_a_channel(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(44, "timeout = 3s", "timeout 3s"))
    code, line, col, msg, help_ = _only(r)
    assert (code, line, col) == ("E005", 44, 13)
    assert msg == "expected `name = value` in a channel's options (found `3s`)"
    assert "message body" not in help_
