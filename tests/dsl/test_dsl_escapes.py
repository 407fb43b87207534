r"""E111: an escape a route string does not know (``"\d"`` reads ``d``, ``"C:\data"`` reads ``C:data``), in
every place a string stands, at its backslash; and nothing else said about the string as misread."""
from __future__ import annotations

import pytest

from dsl.load import compile_paths, compile_source
from dsl.parser import parse, unquote

# Each case: a route file with one string holding `\q` (or `\d` ...) and the line the string is on; the
# caret goes to the backslash (the column of the first backslash of the line).
HEAD = 'channel mf = memory\nformat Req = json\n'       # 2 lines: `route r {` is line 3, its body from line 5


def _route(*body: str) -> str:
    return HEAD + 'route r {\n    receive from mf as Req\n' + "".join(f"    {b}\n" for b in body) + "}\n"


PLACES = {
    "a let value": _route(r'let x = "a\qb"', 'reply Req { a = x }'),
    "a reply value": _route(r'reply Req { a = "a\qb" }'),
    "a list item": _route(r'reply Req { a = ["x", "a\qb"][1] }'),
    "a quoted body field (ISO 8583's \"39\")": _route(r'reply Req { "3\q9" = "00" }'),
    "a quoted key in a body path": _route(r'reply Req { a["k\q"] = "00" }'),
    "a rule's reject code": _route('validate {', r'    msg.a != "" else reject "1\q3" "bad"', '}',
                                   'reply Req { a = 1 }'),
    "a rule's reject text": _route('validate {', r'    msg.a != "" else reject "13" "bad\q"', '}',
                                   'reply Req { a = 1 }'),
    "a matches() pattern": _route('validate {', r'    matches(msg.a, "\d{4}") else reject "13" "bad"', '}',
                                  'reply Req { a = 1 }'),
    "a channel option": 'channel mf = memory\nchannel back = tcp connect {\n' + r'    address = "127.0.0.1:\q1"' + '\n}\n',
    "a format argument": r'format F = json schema "dir\q.json"' + '\n',
    "a format list item": r'format F = json classify ["a:pan", "b\q:pan"]' + '\n',
    "a field argument": 'format F = fixed {\n' + r'    a date(8, "%Y\q%m%d")' + '\n}\n',
    "a table path": r'table t = csv "C:\qdata.csv" key id' + '\n',
    "a use path": r'use "sub\qx.route"' + '\n',
    "a test name": _route('reply Req { a = 1 }') + r'test "t\q" {' + '\n    given mf sends { a = 1 }\n}\n',
    "a test value": _route('reply Req { a = 1 }') + 'test "t" {\n' + r'    given mf sends { a = "\q" }' + '\n}\n',
    "a channel's on error reply": ('channel mf = memory {\n' + r'    on error reply Req { a = "\q" }'
                                   + '\n}\nformat Req = json\n'),
}


def _backslash(text: str) -> tuple[int, int]:
    for n, line in enumerate(text.splitlines(), 1):
        if "\\" in line:
            return n, line.index("\\") + 1
    raise AssertionError("no backslash")


@pytest.mark.parametrize("where", sorted(PLACES))
def test_an_unknown_escape_is_E111_at_its_backslash_wherever_the_string_stands(tmp_path, registry, where):
    text = PLACES[where]
    r = compile_source(text, registry, tmp_path / "main.route")
    line, col = _backslash(text)
    at = [(d.code, d.pos.line, d.pos.col, d.pos.end_col) for d in r.diagnostics if d.code == "E111"]
    assert at == [("E111", line, col, col + 2)], r.diagnostics
    ch = text.splitlines()[line - 1][col]
    d = next(d for d in r.diagnostics if d.code == "E111")
    assert d.message.startswith(f"unknown escape `\\{ch}` in a string: a route string knows only "
                                r'\" \\ \n \t \r \0,'), d.message
    assert d.help.startswith(f"write \\\\{ch} for a backslash followed by {ch}"), d.help
    assert d.is_error and r.program is None
    # nothing else is said at the string itself (E047's missing file, E010's missing `use`, E078 ...)
    others = [x for x in r.diagnostics if x.code != "E111" and x.is_error]
    assert not [x for x in others if x.pos.line == line], others


@pytest.mark.parametrize("written", [r'"say \"hi\""', r'"a\\d"', r'"\n\t\r\0"', r'"C:\\data\\x"', '"é\\\\"',
                                     r'"\\\""'])
def test_the_known_escapes_pass(tmp_path, registry, written):
    r = compile_source(_route(f'reply Req {{ a = {written} }}'), registry, tmp_path / "main.route")
    assert r.diagnostics == [] and r.ok, r.diagnostics


def test_the_known_escapes_are_read():
    assert unquote(r'"a\"b\\c\nd\te\rf\0g"') == 'a"b\\c\nd\te\rf\rg'.replace("\rg", "\0g")
    assert unquote(r'"\d"') == "d"         # what E111 refuses: the backslash is dropped


def test_one_string_gives_one_diagnostic_naming_the_others(tmp_path, registry):
    text = _route('validate {', r'    matches(msg.a, "[A-Z]{3}\d{8}\.\d") else reject "13" "bad"', '}',
                  'reply Req { a = 1 }')
    r = compile_source(text, registry, tmp_path / "main.route")
    assert [(d.code, d.pos.line, d.pos.col) for d in r.diagnostics] == [("E111", 6, 33)], r.diagnostics
    assert r.diagnostics[0].message.endswith("; the string has 2 more: `\\.` (col 38), `\\d` (col 40)")


def test_two_strings_give_two_and_the_rest_of_the_file_is_still_checked(tmp_path, registry):
    text = _route(r'let x = "a\qb"', r'reply Req { a = "\w"  b = mgs.a }')
    r = compile_source(text, registry, tmp_path / "main.route")
    assert [(d.code, d.pos.line, d.pos.col) for d in r.diagnostics] == [
        ("E111", 5, 15), ("E111", 6, 22), ("E024", 6, 31)], r.diagnostics


def test_the_caret_counts_characters_after_a_tab_and_non_ascii(tmp_path, registry):
    text = _route('reply Req {', '\ta = "€€\\q"', '}')          # line 6: 4 spaces, a tab: col 13
    r = compile_source(text, registry, tmp_path / "main.route")
    assert [(d.code, d.pos.line, d.pos.col) for d in r.diagnostics] == [("E111", 6, 13)], r.diagnostics


def test_an_escape_of_a_space_or_a_control_character_is_named(tmp_path, registry):
    r = compile_source(_route('reply Req { a = "a\\ b" }'), registry, tmp_path / "main.route")
    assert r.diagnostics[0].message.startswith("unknown escape (a backslash followed by a space) in a string")
    assert r.diagnostics[0].help.startswith("write \\\\  for a backslash followed by a space")


def test_an_included_file_is_reported_in_its_own_file(tmp_path, registry):
    (tmp_path / "common.route").write_text('channel mf = memory\nformat Req = json\n'
                                           'channel back = tcp connect { address = "127.0.0.1:\\q" }\n')
    (tmp_path / "main.route").write_text('use "common.route"\nroute r {\n    receive from mf as Req\n'
                                         '    call c = back as Req { a = 1 }\n    reply Req { a = 1 }\n}\n')
    r = compile_paths([tmp_path / "main.route"], registry)
    assert [(d.code, d.pos.file.rsplit("/", 1)[1], d.pos.line, d.pos.col) for d in r.diagnostics] == [
        ("E111", "common.route", 3, 51)], r.diagnostics


def test_a_use_path_with_an_escape_names_the_escape_not_the_missing_file(tmp_path, registry):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "common.route").write_text("channel mf = memory\n")
    (tmp_path / "main.route").write_text('use "sub\\common.route"\n')
    r = compile_paths([tmp_path / "main.route"], registry)
    assert [(d.code, d.pos.line, d.pos.col) for d in r.diagnostics] == [("E111", 1, 9)], r.diagnostics


def test_a_file_that_does_not_parse_says_only_why(tmp_path, registry):
    """The escapes are found in the parse tree: a syntax error comes alone, as before."""
    r = compile_source(_route('let x = "\\q" +'), registry, tmp_path / "main.route")
    assert [d.code for d in r.diagnostics] == ["E014"], r.diagnostics


def test_the_module_carries_its_findings():
    m = parse('route r {\n    let x = "\\q"  let y = "\\\\q"\n}\n', "x.route")
    assert [(f.diagnostic.pos.line, f.diagnostic.pos.col, f.literal.col) for f in m.escapes] == [(2, 14, 13)]
