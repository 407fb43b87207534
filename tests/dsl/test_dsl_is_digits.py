"""is_digits(s): an account number's or reference's form (only the digits 0-9), which a route had to
test with ten nested replace() calls; what bsp check tells about it."""
from __future__ import annotations

import pytest

from dsl.compiler import compile_expr
from dsl.load import compile_source
from dsl.parser import parse


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


@pytest.mark.parametrize("text, want", [
    ('is_digits("6222000011112222")', True),
    ('is_digits("0")', True),
    ('is_digits("0012")', True),                 # leading zeros are digits
    ('is_digits("62220000111122A2")', False),
    ('is_digits(" 6222")', False),               # a space is not a digit: trim first
    ('is_digits("-12")', False),
    ('is_digits("12.50")', False),
    ('is_digits("")', False),
    ('is_digits(null)', False),
    ('is_digits("\u0661\u0662")', False),         # Arabic-Indic digits are not 0-9
    ('is_digits("\u00b2")', False),               # superscript two
    ('is_digits(msg.account) and len(msg.account) == 16', True),
    ('is_digits(12)', False),                  # a number is not text (a JSON 12 where "0012" was due)
])
def test_values(text, want):
    assert ev(text, msg={"account": "6222000011112222"}) is want


ROUTE = '''channel front = memory
format Req = fixed {
    account  string(16)  personal
    amount   decimal(12, 2)
}
route r {
    receive from front as Req
    validate {
        %s else reject "14" "bad account"
    }
    reply Req { account = msg.account  amount = msg.amount }
}
'''


def test_check_takes_it_as_a_condition_and_types_its_argument(tmp_path, registry):
    def codes(cond: str) -> list[str]:
        r = compile_source(ROUTE % cond, registry, tmp_path / "r.route")
        return [d.code for d in r.diagnostics]
    assert codes("is_digits(msg.account)") == []          # a condition (no W004), the account stays in it (no W006)
    assert "E071" in codes('is_digits(msg.account, "x")')
