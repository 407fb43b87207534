"""Mistakes analysts make, each with the message, the place and the hint bsp gives
(each test failed before its fix: the message was vague, misplaced or bogus)."""
from __future__ import annotations

import pytest

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

@pytest.mark.parametrize("line, old, new, col, message, help_", [
    (48, "receive", "recieve", 5, "unknown statement `recieve`", "did you mean `receive`?"),
    (50, "validate", "valdate", 5, "unknown statement `valdate`", "did you mean `validate`?"),
    (101, "let", "lte", 5, "unknown statement `lte`", "did you mean `let`?"),
    (48, "when", "whn", 42, "unknown statement or step kind `whn`",
     "did you mean `when`? it continues the statement before it, "
     "e.g. `receive from CHANNEL as FORMAT when CONDITION`"),
    (101, "let ", "", 5, "unknown statement or step kind `fee`", "to name a value, write `let fee = ...`"),
])
def test_misspelt_statement_keyword_is_named_at_the_keyword(tmp_path, registry, line, old, new, col,
                                                            message, help_):
    r = _check(tmp_path, registry, _edit(line, old, new))
    assert _only(r) == ("E042", line, col, message, help_)


@pytest.mark.parametrize("line, old, new, col, message, help_", [
    (26, "format", "formt", 1, "unknown declaration `formt`", "did you mean `format`?"),      # after a format
    (41, "channel", "chanel", 1, "unknown declaration `chanel`", "did you mean `channel`?"),  # after a channel body
    (28, "table", "tabel", 1, "unknown declaration `tabel`", "did you mean `table`?"),
    (47, "route", "rout", 1, "unknown declaration `rout`", "did you mean `route`?"),
    (8, "format", "formatt", 1, "unknown declaration `formatt`", "did you mean `format`?"),
])
def test_misspelt_declaration_keyword_is_named_at_the_keyword(tmp_path, registry, line, old, new, col,
                                                              message, help_):
    r = _check(tmp_path, registry, _edit(line, old, new))
    assert _only(r) == ("E013", line, col, message, help_)


def test_misspelt_channel_after_a_channel_without_a_body(tmp_path, registry):
    r = _check(tmp_path, registry, "channel c = memory\nchanel d = memory\n")
    assert _only(r)[:4] == ("E013", 2, 1, "unknown declaration `chanel`")


def test_registered_plugin_steps_keep_their_own_errors(tmp_path, registry):
    head = 'channel mf = memory\nformat Req = json\nroute r {\n    receive from mf as Req\n'
    ok = compile_source(head + '    audit note { text = "x" }\n    reply Req { a = note }\n}\n', registry,
                        tmp_path / "main.route")
    assert ok.diagnostics == [] and ok.program is not None
    # a real step kind with a broken body: the parser's message, not "unknown statement"
    bad = compile_source(head + '    audit note { text = }\n}\n', registry, tmp_path / "main.route")
    assert _only(bad)[:3] == ("E014", 5, 25)
    # the same word without the kind registered is an unknown step, at the word
    bare = compile_source(head + '    audit note extra { text = "x" }\n}\n', registry.without("step", "audit"),
                          tmp_path / "main.route")
    assert _only(bare)[:4] == ("E042", 5, 5, "unknown statement or step kind `audit`")


def test_misspelt_statement_that_parses_as_a_step_gives_no_follow_on_error(tmp_path, registry):
    # `rpely BillPayRsp { ... }` reads as a plugin step named BillPayRsp: only E042, no E032
    r = _check(tmp_path, registry, _edit(84, "reply", "rpely"))
    code, line, col, msg, help_ = _only(r)
    assert (code, line, col) == ("E042", 84, 5)
    assert msg == "unknown statement `rpely`" and help_ == "did you mean `reply`?"


def test_readonly_after_a_calls_body_says_where_it_goes(tmp_path, registry):
    # the analyst's tour calls an enquiry `readonly`; written after the body it read as an unknown
    # statement with "did you mean `reply`?", which sent the analyst the wrong way
    r = _check(tmp_path, registry, _edit(82, "} expect", "} readonly expect"))
    code, line, col, msg, help_ = _only(r)
    assert (code, line, col) == ("E042", 82, 7)
    assert msg == "`readonly` is not a statement: it marks a call"
    assert help_ == ("`readonly` goes before the call's body: "
                     "`call NAME = CHANNEL as FORMAT reply FORMAT readonly { ... }`")


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
                        "write a number and a unit: ms, s, m, h or d (e.g. 3s)")
    r = _check(tmp_path, registry, _edit(82, '"OK"', '"OK" timeout 5mins'))     # after a call
    assert _only(r) == ("E016", 82, 42, "`5mins` is not a duration",
                        "write a number and a unit: ms, s, m, h or d (e.g. 5m)")


def test_a_duration_with_a_space_is_named_at_the_value(tmp_path, registry):
    # `timeout = 3 s`: the unit was read as the next option's name and the error fell on the `}` a line
    # later: "45:1: expected `name = value` in a channel's options (found `}`)" (a reload at 3 a.m.)
    r = _check(tmp_path, registry, _edit(44, "3s", "3 s"))
    assert _only(r) == ("E016", 44, 15, "`3 s` is not a duration: write it without the space, `3s`",
                        "a duration is a number and its unit together: ms, s, m, h or d (e.g. 3s, 500ms)")
    r = _check(tmp_path, registry, _edit(44, "3s", "500 ms\n    framing = length4"))    # another option follows
    assert _only(r)[:4] == ("E016", 44, 15, "`500 ms` is not a duration: write it without the space, `500ms`")


def test_exponent_notation_says_how_to_write_the_number(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(57, "50000.00", "1e5"))
    code, line, col, msg, _ = _only(r)
    assert (code, line, col, msg) == ("E016", 57, 23, "exponent notation is not supported: write 100000")
    r = _check(tmp_path, registry, _edit(57, "50000.00", "2.5E-3"))
    assert _only(r)[3] == "exponent notation is not supported: write 0.0025"


def test_a_number_run_into_a_word(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(57, "50000.00", "50000abc"))
    assert _only(r)[:4] == ("E016", 57, 23, "`50000abc` is not a number")


def test_a_channel_option_line_is_worded_for_a_channel(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(44, "timeout = 3s", "timeout 3s"))
    code, line, col, msg, help_ = _only(r)
    assert (code, line, col) == ("E005", 44, 13)
    assert msg == "expected `name = value` in a channel's options (found `3s`)"
    assert "message body" not in help_


# ------------------------------------------------------------------ characters and tokens

@pytest.mark.parametrize("line, old, new, col, message, help_", [
    (58, '"unknown biller"', '"unknown biller', 59, 'unterminated string: the closing `"` is missing',
     'a string ends on the line where it starts: add the closing `"`'),
    (86, "resp_code  =", "resp_code:", 18, "unexpected character `:`",
     "use `=` to give a field its value: `name = value`"),
    (32, "framing   =", "framing:", 12, "unexpected character `:`",
     "use `=` to give an option its value: `name = value`"),
    (56, "> 0 ", "> 0 && msg.amount < 9 ", 24, "unexpected `&&`", "write `and`: `a > 0 and b > 0`"),
    (56, "> 0 ", "> 0 || msg.amount < 9 ", 24, "unexpected `||`", "write `or`: `a > 0 or b > 0`"),
    (56, "msg.amount > 0", "!(msg.amount > 0)", 9, "unexpected character `!`",
     "write `not`: `not (a == b)`; `!=` is written without a space"),
])
def test_characters_from_other_languages_get_a_hint(tmp_path, registry, line, old, new, col, message, help_):
    r = _check(tmp_path, registry, _edit(line, old, new))
    assert _only(r) == ("E001", line, col, message, help_)


def test_not_equal_is_accepted(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(56, "msg.amount > 0", "msg.amount != 0"))
    assert not r.errors


def test_single_equals_in_a_condition_suggests_double(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(48, "==", "="))
    assert _only(r) == ("E002", 48, 60, "unexpected `=`: did you mean `==`?",
                        "`==` compares two values; a single `=` gives a field or a name its value")
    r = _check(tmp_path, registry, _edit(56, ">", "="))            # in a validation rule
    assert _only(r)[:4] == ("E002", 56, 20, "unexpected `=`: did you mean `==`?")


def test_keyword_as_a_field_name_suggests_quoting_it(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(85, "msg.trace_no", "msg.trace_no\n        in = 1"))
    code, line, col, msg, help_ = _only(r)
    assert (code, line, col, msg) == ("E002", 86, 12, "unexpected `=` after `in`")
    assert help_ == ('`in` is a keyword, read here as part of the expression before it; '
                     'to use it as a field name, quote it: `"in" = ...`')
    # and quoting it works (the checker then judges the field name)
    quoted = _check(tmp_path, registry, _edit(85, "msg.trace_no", 'msg.trace_no\n        "in" = 1'))
    assert [d.code for d in quoted.diagnostics] == ["E061"]


def test_a_byte_order_mark_inside_the_text_is_named(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(25, "format", "\ufeffformat"))
    assert _only(r)[:4] == ("E001", 25, 1, "unexpected byte-order mark (U+FEFF)")


def test_colon_in_a_channel_error_reply_is_a_field_not_an_option(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(36, "resp_code =", "resp_code :"))
    assert _only(r) == ("E001", 36, 19, "unexpected character `:`",
                        "use `=` to give a field its value: `name = value`")


def test_a_stray_closing_brace_between_declarations(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(96, "}", "}\n}"))
    assert _only(r) == ("E013", 97, 1, "unexpected `}`: it closes no `{`",
                        "remove it, or look above for a `{` that is missing")


def test_equals_between_a_formats_options(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(26, "json", "json\n    schema = \"x.json\""))
    assert _only(r)[:4] == ("E013", 27, 12, "unexpected `=` in a format declaration")


@pytest.mark.parametrize("line, old, new, col, message, help_", [
    (13, "decimal(12, 2)", "decimal(12.2)", 27, "unexpected `.` in the arguments of field type `decimal`",
     "write the width and scale with a comma: decimal(12, 2)"),
    (13, "decimal(12, 2)", "decimal(15 3)", 28, "unexpected `3` in the arguments of field type `decimal`",
     "write the width and scale with a comma: decimal(15, 3)"),
])
def test_a_decimal_width_and_scale_without_a_comma(tmp_path, registry, line, old, new, col, message, help_):
    assert _only(_check(tmp_path, registry, _edit(line, old, new))) == ("E002", line, col, message, help_)


_BODY_HELP = "fields are separated by spaces or line breaks, not commas: `{ a = 1  b = 2 }`"


@pytest.mark.parametrize("line, old, new, col, message, help_", [
    (76, "api_code", "api_code,", 52, "unexpected `,` between the fields of a `{ ... }` body", _BODY_HELP),
    (69, "msg.amount", "msg.amount,", 30, "unexpected `,` between the fields of a `{ ... }` body", _BODY_HELP),
    (85, "msg.trace_no", "trim(msg.trace_no),", 40, "unexpected `,` between the fields of a `{ ... }` body",
     _BODY_HELP),
    (31, '"127.0.0.1:7001"', '"127.0.0.1:7001",', 33, "unexpected `,` between a channel's options",
     'options are separated by spaces or line breaks, not commas: '
     '`{ address = "127.0.0.1:7001"  framing = length2 }`'),
    (13, "decimal(12, 2)", "decimal(12, 2),", 31, "unexpected `,` between the fields of a format",
     "declare each field on a line of its own, without commas: `code string(4)` then, "
     "on the next line, `amount decimal(12, 2)`"),
])
def test_a_comma_between_the_lines_of_a_block_says_none_is_needed(tmp_path, registry, line, old, new, col,
                                                                   message, help_):
    assert _only(_check(tmp_path, registry, _edit(line, old, new))) == ("E002", line, col, message, help_)


def test_a_comma_inside_a_call_or_list_is_still_an_argument_separator(tmp_path, registry):
    """Only a comma the block itself meets gets the hint: `pad_left(x, 4,)` stays an expression error."""
    r = _check(tmp_path, registry, _edit(76, "billers[msg.biller_id].api_code", "pad_left(msg.account, 4,)"))
    code, *_rest, help_ = _only(r)
    assert code == "E014" and "commas" not in help_


# ------------------------------------------------------------------ a missing `}`: at the `{` left open

_ADD = "add its `}`: every `{` needs a matching `}`"


def test_a_missing_brace_at_the_end_points_at_the_brace_left_open(tmp_path, registry):
    r = _check(tmp_path, registry, _edit(107, "}", ""))
    assert _only(r) == ("E007", 99, 20, "unexpected end of file: the `{` opened at 99:20 (route `bill_enquiry`) "
                        "is never closed", _ADD)


@pytest.mark.parametrize("strings_and_comments", [False, True])
def test_a_missing_inner_brace_names_the_brace_its_neighbour_closed(tmp_path, registry, strings_and_comments):
    """The reply's `}` is missing: the route's `}` closes the reply, and the route's `{` is left open."""
    text = _edit(106, "}", "")
    if strings_and_comments:        # braces inside a string or a comment are no braces
        text = text.replace('"fee " + fee', '"fee {" + fee   # closes the reply }')
    r = _check(tmp_path, registry, text)
    assert _only(r) == ("E007", 99, 20, "unexpected end of file: the `{` opened at 99:20 (route `bill_enquiry`) "
                        "is never closed",
                        _ADD + "; the `}` at 107:1 lines up with line 99 but closes the `{` opened at 102:22: "
                        "is the `}` of 102:22 the one missing?")


def test_a_missing_brace_before_the_next_declaration(tmp_path, registry):
    """Before its fix: `unknown statement or step kind `route`` at 99:1."""
    r = _check(tmp_path, registry, _edit(96, "}", ""))
    assert _only(r) == ("E007", 47, 20, "a `}` is missing: the `{` opened at 47:20 (route `bill_payment`) is not "
                        "closed before `route` at 99:1",
                        "add its `}` before line 99: every `{` needs a matching `}`")


def test_a_missing_format_brace_before_the_next_format(tmp_path, registry):
    """Before its fix: `unknown declaration `format`: did you mean `format`?`."""
    r = _check(tmp_path, registry, _edit(16, "}", ""))
    assert _only(r)[:4] == ("E007", 8, 27, "a `}` is missing: the `{` opened at 8:27 (format `BillPayReq`) is not "
                            "closed before `format` at 18:1")


@pytest.mark.parametrize("line, where, owner, before", [
    (73, "67:23", "`deal BILL_PAYMENT` in route `bill_payment`", "call` at 75:5"),     # was E005 at `post`
    (60, "50:14", "`validate` in route `bill_payment`", "deal` at 67:5"),              # was E003
    (89, "84:22", "`reply BillPayRsp` in route `bill_payment`", "on` at 91:5"),
])
def test_a_missing_brace_before_the_next_statement(tmp_path, registry, line, where, owner, before):
    r = _check(tmp_path, registry, _edit(line, "}", ""))
    code, l, c, message, _help = _only(r)
    assert (code, f"{l}:{c}") == ("E007", where)
    assert message == f"a `}}` is missing: the `{{` opened at {where} ({owner}) is not closed before `{before}"


def test_a_missing_brace_in_a_route_test(tmp_path, registry):
    """Before its fix: `expected `name = value` in a message body (found `call`)`."""
    test = (BILL_PAYMENT.parent / "bill_payment_test.route").read_text()
    (tmp_path / "bill_payment.route").write_text(SAMPLE)
    r = _check(tmp_path, registry, test.replace('confirmation = "C-77" }', 'confirmation = "C-77"', 1))
    assert _only(r)[:4] == ("E007", 12, 36, "a `}` is missing: the `{` opened at 12:36 (`given biller answers "
                            "BillerAck` in test \"pays a known biller\") is not closed before `expect` at 13:5")


# ------------------------------------------------------------------ keywords end at a word boundary

@pytest.mark.parametrize("line, old, new, col, message, help_", [
    # before: read as `receive from mainframe`, no error at all
    (48, "from mainframe", "frommainframe", 13, "`frommainframe`: expected `from` after `receive`",
     "put a space after `from`: `from mainframe`"),
    # before: `from` `x`, then E042 "unknown statement or step kind `mainframe`"
    (48, "from", "fromx", 13, "`fromx`: expected `from` after `receive`", "did you mean `from`?"),
    # before: read as `as BillerPost`, no error
    (75, "as BillerPost", "asBillerPost", 24, "`asBillerPost`: expected `as`", "put a space after `as`: `as BillerPost`"),
    # before: read as `reply BillPayRsp`, no error
    (91, "reply BillPayRsp", "replyBillPayRsp", 14, "`replyBillPayRsp`: expected one of: `reply`, `{` after `error`",
     "put a space after `reply`: `reply BillPayRsp`"),
    # before: "unexpected `s`" (the `s` of `errors`)
    (91, "error", "errors", 8, "`errors`: expected one of: `doubt`, `error`, `refusal`, `restart` after `on`", "did you mean `error`?"),
    # before: E004 "`reject` needs a code and a text, both quoted (found `s`)"
    (56, "reject", "rejects", 47, "`rejects`: expected `reject` after `else`", "did you mean `reject`?"),
])
def test_a_keyword_run_into_a_word_is_named_as_the_whole_word(tmp_path, registry, line, old, new, col,
                                                              message, help_):
    r = _check(tmp_path, registry, _edit(line, old, new))
    assert _only(r) == ("E002", line, col, message, help_)


@pytest.mark.parametrize("line, old, new, message, help_", [
    (47, "route", "router", "unknown declaration `router`", "did you mean `route`?"),   # was `unexpected `bill_payment``
    # before: both read as `route bill_payment` and `format BillPayReq`, no error
    (47, "route ", "route", "unknown declaration `routebill_payment`", "put a space after `route`: `route bill_payment`"),
    (8, "format ", "format", "unknown declaration `formatBillPayReq`", "put a space after `format`: `format BillPayReq`"),
])
def test_a_declaration_keyword_run_into_a_word(tmp_path, registry, line, old, new, message, help_):
    r = _check(tmp_path, registry, _edit(line, old, new))
    assert _only(r) == ("E013", line, 1, message, help_)


def _route_test(tmp_path, registry, old: str, new: str):
    """The shipped bill payment route test with ``old`` (once) replaced by ``new``."""
    test = (BILL_PAYMENT.parent / "bill_payment_test.route").read_text()
    assert test.count(old) >= 1, old
    (tmp_path / "bill_payment.route").write_text(SAMPLE)
    return _check(tmp_path, registry, test.replace(old, new, 1))


@pytest.mark.parametrize("old, new, where, message, help_", [
    # before: "unexpected `name`" (4 of its 5 letters)
    ('expect reply { trace_no = "000000000001"  resp_code = "00"  biller_ref = "C-77"  message = "paid NORTHERN ELECTRIC" }',
     'expect reply BillPayRsp { trace_no = "000000000001" } names { x = "1" }', (0, 59),
     "`names`: expected one of: `expect`, `given`, `}`", "did you mean `name`? it does not fit here"),
    # before: "unexpected `s`", expected only `{`; the list left out `name` (its terminal is __ANON_0)
    ('due = "2026-11-25"\n    }', 'due = "2026-11-25"\n    } names { ref = "1" }', (1, 7),
     "`names`: expected one of: `expect`, `given`, `name`, `once`, `twice`, `}`, a number", "did you mean `name`?"),
    # before: read as `expect call biller`, no error
    ("expect call biller {", "expect callbiller {", (0, 12),
     "`callbiller`: expected one of: `call`, `dead`, `deal`, `no`, `reply` after `expect`",
     "put a space after `call`: `call biller`"),
    # before: read as `expect deal BILL_PAYMENT`, no error
    ("expect deal BILL_PAYMENT", "expect dealBILL_PAYMENT", (0, 12),
     "`dealBILL_PAYMENT`: expected one of: `call`, `dead`, `deal`, `no`, `reply` after `expect`",
     "put a space after `deal`: `deal BILL_PAYMENT`"),
    # before: read as `given mainframe sends`, no error
    ("given mainframe sends", "givenmainframe sends", (0, 5),
     "`givenmainframe`: expected one of: `expect`, `given`, `}`", "put a space after `given`: `given mainframe`"),
    # before: read as `expect no call biller`, no error
    ("expect no call biller", "expect nocall biller", (0, 12),
     "`nocall`: expected one of: `call`, `dead`, `deal`, `no`, `reply` after `expect`",
     "put a space after `no`: `no call`"),
])
def test_a_route_test_keyword_run_into_a_word(tmp_path, registry, old, new, where, message, help_):
    r = _route_test(tmp_path, registry, old, new)
    # ``where``: the line within ``old`` (0: its first) and the column; the file's line is where ``old``
    # stands in the shipped test file now, so a test added above it does not break this one
    text = (BILL_PAYMENT.parent / "bill_payment_test.route").read_text()
    line = text[:text.index(old)].count("\n") + 1 + where[0]
    assert _only(r) == ("E002", line, where[1], message, help_)


def test_a_misspelt_test_keyword_is_named_at_the_keyword(tmp_path, registry):
    """Before: `test` then "unexpected `s`", expected a quoted string."""
    r = _route_test(tmp_path, registry, 'test "pays a known biller"', 'tests "pays a known biller"')
    assert _only(r) == ("E013", 7, 1, "unknown declaration `tests`", "did you mean `test`?")


def test_a_keyword_next_to_punctuation_still_is_the_keyword(tmp_path, registry):
    """Only a letter, a digit or `_` runs into a keyword: `{`, `"` and `(` end it."""
    text = SAMPLE.replace("validate {", "validate{", 1).replace("reply BillPayRsp {", "reply BillPayRsp{", 1)
    r = _check(tmp_path, registry, text.replace("let fee = if msg.amount", "let fee = if(msg.amount", 1)
               .replace("then round", ")then round", 1))
    assert r.diagnostics == [] and r.program is not None


@pytest.mark.parametrize("line", [34, 91])            # a channel's error reply, a route's
def test_on_error_reply_without_its_format_says_to_name_it(tmp_path, registry, line):
    # a route's `reply { ... }` may leave its format out (the receive format); `on error reply` may not:
    # it used to be "unexpected `{`" with the help "expected one of: a name"
    r = _check(tmp_path, registry, _edit(line, "on error reply BillPayRsp {", "on error reply {"))
    assert _only(r) == ("E002", line, 20, "`on error reply` needs the reply's format: `on error reply FORMAT { ... }`",
                        "name the format the error reply is written in, e.g. `on error reply Rsp { code = "
                        "error.code }`; only a route's own `reply` may leave it out (it then uses the receive format)")


def test_membership_in_a_table_column_says_in_tests_the_keys(tmp_path, registry):
    # `x in billers.biller_id` (as one would write it in SQL) used to get the help for reading a cell,
    # `billers[KEY].biller_id` or lookup(...), which is not what a membership test needs
    r = _check(tmp_path, registry, _edit(58, "msg.biller_id in billers ", "msg.biller_id in billers.biller_id "))
    assert _only(r) == ("E065", 58, 26, "`billers` is a table: `x in billers` tests its key column (biller_id)",
                        "write `... in billers`: the table itself, no column; a cell of a row is read with `billers[KEY].biller_id`")
    r = _check(tmp_path, registry, _edit(58, "msg.biller_id in billers ", "msg.biller_id not in billers.name "))
    assert _only(r)[:4] == ("E065", 58, 30, "`billers` is a table: `x not in billers` tests its key column (biller_id)")
