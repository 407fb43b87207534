"""Expressions run as closures: Decimal money, null for missing keys, no way out to Python."""
from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from dsl import ir
from dsl.compiler import EvalError, compile_assigns, compile_expr, split_path
from dsl.parser import parse
from dsl.tables import Table


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


BILLERS = Table("billers", "biller_id", {
    "EL0001": {"biller_id": "EL0001", "api_code": "ELEC", "name": "Northern Electric"},
})


@pytest.mark.parametrize("text, want", [
    ("120.50 + 0.25", Decimal("120.75")),
    ("0.1 + 0.2", Decimal("0.3")),
    ("10 / 4", Decimal("2.5")),
    ("7 % 3", 1),
    ("7.5 % 2", Decimal("1.5")),
    ("2 * 3.10", Decimal("6.20")),
    ('"fee " + 0.50', "fee 0.50"),
    ('1 + "x"', "1x"),
    ('"a" + null', "a"),
    ("round(2.345, 2)", Decimal("2.35")),
    ("round(-2.345, 2)", Decimal("-2.35")),
    ("round(2.5)", Decimal("3")),
    ('pad_left("42", 6, "0")', "000042"),
    ('pad_right("ab", 4)', "ab  "),
    ('substr("ABCDEF", 1, 3)', "BCD"),
    ('substr("ABCDEF", 4)', "EF"),
    ('trim("  x ") + upper("y") + lower("Z")', "xYz"),
    ('len("abc") + len(null) + len([1, 2])', 5),
    # ISO 13616 examples (Germany, UK, Norway the shortest at 15, Malta 31 with letters in the BBAN)
    ('iban_valid("DE89370400440532013000")', True),
    ('iban_valid("GB29NWBK60161331926819")', True),
    ('iban_valid("NO9386011117947")', True),
    ('iban_valid("MT84MALT011000012345MTLCAST001S")', True),
    ('iban_valid("DE88370400440532013000")', False),        # a check digit wrong
    ('iban_valid("DE89370400440532013001")', False),        # a digit of the account wrong
    ('iban_valid("DE89 3704 0044 0532 0130 00")', False),   # the paper form: spaces
    ('iban_valid("de89370400440532013000")', False),        # lower case
    ('iban_valid(upper(trim(" de89370400440532013000 ")))', True),
    ('iban_valid("370400440532013000")', False),            # no country code
    ('iban_valid("DE8937040044")', False),                  # too short
    ('iban_valid("DE89-370400440532013000")', False),       # not a letter or digit
    ('iban_valid(null)', False),
    ('iban_valid(12)', False),
    ('coalesce(null, "", "c")', "c"),
    ('coalesce(trim(null), "")', ""),                       # the fallback as given, never null (claims_payout)
    ('coalesce(null, "")', ""),
    ('coalesce("", null)', None),                           # the last argument, whatever it is
    ("abs(-3.5)", Decimal("3.5")),
    ('format_date(parse_date("20260102", "%Y%m%d"), "%d/%m/%Y")', "02/01/2026"),
    ('format_date(null, "%Y%m%d")', ""),                    # as docs/language.md says
    ('"" in "ABC"', True),                                  # as docs/language.md says
    ("if 3 > 2 then \"y\" else \"n\"", "y"),
    ('"CNY" in ["CNY", "USD"]', True),
    ('"EUR" not in ["CNY", "USD"]', True),
    ("1 == 1.0", True),
    ('1 == "1"', False),
    ("null == null", True),
    ("not null", True),
    ("1 < 2 and 2 <= 2 and 3 > 2 and 3 >= 3 and 1 != 2", True),
    ("-(2 + 3)", -5),
])
def test_values(text, want):
    got = ev(text)
    assert got == want and type(got) is type(want)


def test_paths_tables_and_missing_keys():
    msg = {"items": [{"amount": Decimal("1.10")}], "biller_id": "EL0001", "party": None}
    assert ev("msg.items[0].amount", msg=msg) == Decimal("1.10")
    assert ev("msg.items[5].amount", msg=msg) is None           # missing index: null
    assert ev("msg.nothing.deeper", msg=msg) is None            # missing key: null
    assert ev("msg.party.name", msg=msg) is None
    assert ev("billers[msg.biller_id].api_code", msg=msg, billers=BILLERS) == "ELEC"
    assert ev("msg.biller_id in billers", msg=msg, billers=BILLERS) is True
    assert ev('"XX" in billers', billers=BILLERS) is False
    assert ev('lookup(billers, "EL0001", "name")', billers=BILLERS) == "Northern Electric"
    assert ev('lookup(billers, "nope", "name", "?")', billers=BILLERS) == "?"


def test_errors_carry_the_position():
    with pytest.raises(EvalError) as info:
        ev('billers["XX"].name', billers=BILLERS)
    assert str(info.value) == "expr.route:1:19: table billers has no row with biller_id = 'XX'"
    with pytest.raises(EvalError) as info:
        ev("n > 0", n=None)
    assert info.value.pos.col == 19 and "cannot compare null (n) > an integer" in info.value.message
    # the same on a field of the request is the sender's error, named by its path (dsl/inbound.py)
    with pytest.raises(EvalError) as info:
        ev("msg.amount > 0", msg={})
    assert info.value.pos.col == 19 and info.value.message == "amount: expected a number, got nothing (absent or null)"
    with pytest.raises(EvalError, match="division by zero"):
        ev("1 / 0")
    with pytest.raises(EvalError, match=r"round: 'x' is not a number"):
        ev('round("x", 2)')
    with pytest.raises(EvalError, match="cannot apply - to a string"):
        ev('"a" - 1')


def test_no_python_attributes_are_reachable():
    class Secret:
        password = "hunter2"

        def __getitem__(self, k):
            return "leak"

    with pytest.raises(EvalError, match="cannot read field 'password'"):
        ev("x.password", x=Secret())
    with pytest.raises(EvalError, match="cannot read field '__class__'"):
        ev('"s".__class__', )
    with pytest.raises(EvalError, match="cannot read field 'upper'"):
        ev("s.upper", s="abc")
    # only library functions: an unknown name in a call is refused at compile time
    with pytest.raises(EvalError, match="unknown function 'open'"):
        compile_expr(ir.Call("open", (ir.Lit("/etc/passwd", "string"),)))


def test_compile_assigns_builds_nested_bodies():
    m = parse('route r { reply X { a = 1  party.name = msg.n  lines[1].amount = 2.50  lines[0].amount = 1 } }',
              "t.route")
    assigns = tuple(ir.Assign(a.path, a.value, pos=a.pos) for a in m.decls[0].body[0].assigns)
    body = compile_assigns(assigns)({"msg": {"n": "Ann"}})
    assert body == {"a": 1, "party": {"name": "Ann"},
                    "lines": [{"amount": 1}, {"amount": Decimal("2.50")}]}
    assert split_path("lines[0].amount") == ("lines", 0, "amount")


def test_dates_compare_and_today_is_a_date():
    assert ev("today() <= today()") is True
    assert isinstance(ev("now()"), datetime.datetime)
    assert len(ev("uuid()")) == 36
