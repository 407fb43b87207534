r"""matches(s, pattern) and is_date(s, fmt): their values, what bsp check says about a pattern (E077, E078;
E111 alone for a pattern's `\d` whose backslash the route string drops) and a date pattern of is_date,
parse_date and format_date (E072), and that the slowest patterns bsp lets through stay fast on the longest text."""
from __future__ import annotations

import re

import pytest

from dsl.compiler import compile_expr
from dsl.eval_error import EvalError, InputError
from dsl.load import compile_source
from dsl.parser import parse
from dsl.regexsafe import FLAGS, MAX_INPUT, problem


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


@pytest.mark.parametrize("text, want", [
    (r'matches("ABC12345678", "[A-Z]{3}\\d{8}")', True),
    (r'matches("ABC1234567", "[A-Z]{3}\\d{8}")', False),
    (r'matches("ABC123456789", "[A-Z]{3}\\d{8}")', False),     # fullmatch: nothing may follow
    (r'matches("xABC12345678", "[A-Z]{3}\\d{8}")', False),     # ... nor come first
    (r'matches("1234567890", "\\d{10}|\\d{16}")', True),       # the alternatives of the whole pattern
    (r'matches("12345678901", "\\d{10}|\\d{16}")', False),
    (r'matches("١٢", "\\d+")', False),                         # ASCII: other scripts' digits are not \d
    (r'matches("é", "\\w")', False),
    (r'matches(null, ".*")', False),
    (r'matches("", ".*")', True),
    (r'matches(123, "\\d+")', True),                           # a number is its text
    (r'matches(12.50, "\\d+\\.\\d{2}")', True),
    ('is_date("20261231", "%Y%m%d")', True),
    ('is_date("20261331", "%Y%m%d")', False),
    ('is_date("2026-12-1", "%Y-%m-%d")', True),                # as lenient as parse_date
    ('is_date("2026-12-01x", "%Y-%m-%d")', False),
    ('is_date("", "%Y%m%d")', False),
    ('is_date(null, "%Y%m%d")', False),
    ('is_date(20261231, "%Y%m%d")', True),
    ('is_date("x", "%Q")', False),                             # never fails, even on a bad pattern
    ('is_date(msg.items, "%Y")', False),
])
def test_values(text, want):
    assert ev(text, msg={"items": [1]}) is want


def test_a_text_longer_than_the_cap_is_never_matched_nor_let_through():
    """Over MAX_INPUT characters the text is not matched at all: answering false let it through a deny-list,
    `not matches(msg.narrative, ".*DROP.*")`; the sender's field is named (a rejected request, 30)."""
    assert ev('matches(msg.t, "a*")', msg={"t": "a" * MAX_INPUT}) is True
    with pytest.raises(InputError) as got:
        ev('not matches(msg.narrative, ".*DROP.*")', msg={"narrative": "DROP" + "x" * MAX_INPUT})
    assert got.value.path == "narrative"
    assert got.value.message == ("narrative: matches: the text is 1,004 characters long, more than the 1,000 a "
                                 "pattern is matched against: send it shorter, or cut it first "
                                 "(substr(s, 0, 1000)) if the route means to look at its start only")
    with pytest.raises(EvalError, match=r"matches: the text is 1,001 characters long") as got:   # the route's own
        ev('matches(trim(msg.t), "a*")', msg={"t": "a" * (MAX_INPUT + 1)})
    assert not isinstance(got.value, InputError)


def test_a_list_or_a_record_is_never_matched_nor_let_through():
    """A list or a record is not text: answering false let ``["DROP TABLE"]`` through a deny-list, `not
    matches(msg.narrative, ".*DROP.*")`; the sender's field is named (a rejected request, 30)."""
    for value, kind in ((["DROP TABLE"], "a list"), ({"t": "DROP TABLE"}, "an object")):
        with pytest.raises(InputError) as got:
            ev('not matches(msg.narrative, ".*DROP.*")', msg={"narrative": value})
        assert got.value.path == "narrative"
        assert got.value.message == f"narrative: matches: expected text, got {kind}"
    with pytest.raises(EvalError, match="matches: expected text, got a list") as got:      # the route's own
        ev('matches([1, 2], "a*")')
    assert not isinstance(got.value, InputError)
    assert ev('matches(null, "a*")') is False and ev('matches(true, "a*")') is False


def test_an_unsafe_pattern_fails_at_run_time_when_no_checker_stopped_it():
    with pytest.raises(EvalError, match=r"matches: the pattern '\(a\+\)\+' has a repeat inside a repeated part"):
        ev('matches("aaa", "(a+)+")')


ROUTE = '''channel front = memory
format Req = fixed {
    code string(16)
}
route r {
    receive from front as Req
    let p = "[A-Z]+"
    validate {
        %s else reject "13" "bad"
    }
    reply Req { code = "00" }
}
'''


def diags(tmp_path, registry, cond: str):
    r = compile_source(ROUTE % cond, registry, tmp_path / "r.route")
    return [(d.code, d.pos.line, d.pos.col, d.message, d.help) for d in r.diagnostics]


@pytest.mark.parametrize("cond", [
    r'matches(msg.code, "[A-Z]{2}\\d{2}[A-Z0-9]{11,30}")',
    r'matches(msg.code, "(\\d{3}-)*\\d{1,3}")',                 # a fixed count inside a repeat
    r'matches(msg.code, "(a|b)*")',                             # single characters: a class
    r'matches(msg.code, "(?i)[a-z]+-\\d+")',                    # two unbounded repeats: 1,000,000 ways
    r'matches(msg.code, "[A-Z]{1,35}-\\d{1,16}(-\\d{1,6})?")',
    r'matches(msg.code, "a\\.b\\n\\t")',                        # known escapes are not lost
    'is_date(msg.code, "%Y-%m-%d")',
    'is_date(msg.code, "")',
])
def test_good_patterns_pass(tmp_path, registry, cond):
    assert diags(tmp_path, registry, cond) == []


@pytest.mark.parametrize("cond, col", [
    ("matches(msg.code, p)", 27),
    ("matches(msg.code, msg.code)", 27),
    ("matches(msg.code, null)", 27),
    ('matches(msg.code, "[" + "A-Z]")', 27),
])
def test_a_pattern_that_is_not_a_literal_is_E077(tmp_path, registry, cond, col):
    got = diags(tmp_path, registry, cond)
    assert [(c, line, cl) for c, line, cl, *_ in got] == [("E077", 9, col)], got
    assert "must be a string literal" in got[0][3] and got[0][4].startswith("write the pattern itself in quotes")


@pytest.mark.parametrize("pattern, says", [
    ("(a+)+", "has a repeat inside a repeated part"),
    ("(a*)*", "has a repeat inside a repeated part"),
    ("(a?){30}a{30}", "has a repeat inside a repeated part"),
    (r"(\\d{1,3},?)+", "has a repeat inside a repeated part"),
    ("(a|a)*", "has alternatives (`|`) inside a repeated part"),
    ("(ab|a)+", "has alternatives (`|`) inside a repeated part"),
    (r"(a)\\1", "has a backreference"),
    ("(?P<x>a)(?P=x)", "has a backreference"),
    ("(?=A)[A-Z]", "has a lookahead or lookbehind"),
    ("(?<!A)B", "has a lookahead or lookbehind"),
    ("a+b+c+", "1,000,000,000 ways"),
    (r"[A-Z]+-\\d+(-\\d+)?", "2,000,000,000 ways"),
    (r"\\d{0,99}\\d{0,99}\\d{0,99}\\d{0,99}", "100,000,000 ways"),
    # few ways, but a long part tried after each of them (1.5-2 s each on 1,000 characters, measured)
    (r"\\d{0,99}\\d{0,99}\\d{0,99}\\d{700}x", "can take 704,010,099 steps on a 1,000-character text"),
    (r"\\d?" * 19 + r"\\d{980}x", "more than the 10,000,000 allowed"),
    (r"\\d{0,9}" * 6 + r"\\d{900}x", "can take 904,111,109 steps"),
    ("[A-Z", "is not a valid regular expression: unterminated character set at position 0 of the pattern"),
    ("AB(C", "is not a valid regular expression: missing ), unterminated subpattern at position 2 of the pattern"),
    (r"\\d{5,2}", "min repeat greater than max repeat at position"),
    (r"\\d{4}", None),       # control: fine
])
def test_a_bad_or_slow_pattern_is_E078_at_the_literal(tmp_path, registry, pattern, says):
    got = diags(tmp_path, registry, f'matches(msg.code, "{pattern}")')
    if says is None:
        assert got == []
        return
    assert [(c, line, cl) for c, line, cl, *_ in got] == [("E078", 9, 27)], got
    assert says in got[0][3], got[0][3]
    assert "docs/language.md#regular-expressions" in got[0][4]


@pytest.mark.parametrize("written, ch", [(r"\d{4}", "d"), (r"[A-Z]\w+", "w"), (r"a\.b", "."),
                                         (r"\d+\d+\d+", "d"),      # said alone, not also "d+d+d+"'s ways (E078)
                                         (r"(\d+)+", "d")])          # nor "(d+)+"'s repeat in a repeat
def test_an_escape_the_route_string_drops_is_E111_alone(tmp_path, registry, written, ch):
    """One mistake, one diagnostic: the unknown escape (E111, at its backslash), not also what E078 finds in
    the pattern as the route string misread it."""
    got = diags(tmp_path, registry, f'matches(msg.code, "{written}")')
    assert [(c, line, cl) for c, line, cl, *_ in got] == [("E111", 9, 28 + written.index("\\"))], got
    assert f"unknown escape `\\{ch}` in a string" in got[0][3]
    assert got[0][4].startswith(f"write \\\\{ch} for a backslash followed by {ch}")


def test_a_bad_date_pattern_is_E072(tmp_path, registry):
    got = diags(tmp_path, registry, 'is_date(msg.code, "%Y-%Q")')
    assert [(c, line, cl) for c, line, cl, *_ in got] == [("E072", 9, 27)], got
    assert "is not a date pattern: 'Q' is a bad directive" in got[0][3]


@pytest.mark.parametrize("cond, col", [
    ('parse_date(msg.code, "%Y-%Q") != null', 30),
    ('format_date(today(), "%Y-%Q") != ""', 30),
    ('format_date(today(), "%F") != ""', 30),          # the C library's extra: parse_date cannot read it
    ('format_date(parse_date(msg.code, "%Y%m%d"), "%Y-%") != ""', 53),
])
def test_a_bad_date_pattern_of_parse_date_and_format_date_is_E072(tmp_path, registry, cond, col):
    got = diags(tmp_path, registry, cond)
    assert [(c, line, cl) for c, line, cl, *_ in got] == [("E072", 9, col)], got
    func = cond.split("(")[0]
    assert got[0][3].startswith(f"{func}(): argument 2 (fmt) is not a date pattern: "), got[0][3]
    assert got[0][4] == f"usage: {func}({'d' if func == 'format_date' else 's'}, fmt)"


@pytest.mark.parametrize("cond", [
    'parse_date(msg.code, "%Y%m%d") != null',
    'format_date(today(), "%d.%m.%Y %H:%M %%") != ""',
    'format_date(parse_date(msg.code, p), p) != ""',       # not a literal: nothing to check before run time
    'format_date(null, "%Y") != ""',
])
def test_good_or_unknown_date_patterns_of_parse_date_and_format_date_pass(tmp_path, registry, cond):
    assert diags(tmp_path, registry, cond) == []


def test_results_are_conditions_and_keep_no_classified_value(tmp_path, registry):
    """bool results: a condition without W004, and a PAN tested never reaches the reply (no W006)."""
    src = ('channel front = memory\nformat Card = fixed {\n    pan string(16) pan\n    ok string(5)\n}\n'
           'route r {\n    receive from front as Card\n'
           '    let good = matches(msg.pan, "\\\\d{16}") and is_date(msg.ok, "%Y%m")\n'
           '    validate {\n        good else reject "14" "bad"\n    }\n'
           '    reply Card { pan = "" ok = if good then "yes" else "no" }\n}\n')
    r = compile_source(src, registry, tmp_path / "r.route")
    assert r.diagnostics == [], r.diagnostics
    assert r.ok


# The slowest patterns the rules let through, against the text that makes them try every way: each runs
# in milliseconds (figures in the report); a rule that let a slow one through would hang this test.
WORST = [
    (r"\d*\d*x", "1" * MAX_INPUT),
    (r"\d*\d{0,999}x", "1" * MAX_INPUT),
    (r"\d{0,99}\d{0,99}\d{0,99}x", "1" * MAX_INPUT),
    (r"\d{0,9}\d{0,9}\d{0,9}\d{0,9}\d{0,9}\d{0,9}x", "1" * MAX_INPUT),
    (r"(\d{3}-)*\d*x", "123-" * (MAX_INPUT // 4)),
    (r"[a-z]{1,35}[a-z]{1,35}[a-z]{1,35}!", "a" * MAX_INPUT),
    (r"\d{0,9}" * 6 + r"\d{4}x", "1" * MAX_INPUT),                 # 8,111,109 steps: near MAX_STEPS
    (r"\d*\d*\d{4}x", "1" * MAX_INPUT),
]


@pytest.mark.parametrize("pattern, text", WORST)
def test_the_slowest_allowed_patterns_finish(pattern, text):
    assert problem(pattern) is None
    assert re.fullmatch(pattern, text, FLAGS) is None
