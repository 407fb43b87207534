"""Money arithmetic in a route is exact: + - * and unary minus never round (Python's default Decimal context
rounds every result to 28 significant digits, half even, without a word), a result that would need more than
1,000 digits fails the request, a quotient is carried to 28 significant digits whatever the thread's context,
round() rounds half up at any size, and zero has no sign (-0.00 would be written "-0,00" in a SWIFT amount,
"-0.00" in CSV and JSON).  Text read as a number is ASCII digits with a sign and a point, nothing else."""
from __future__ import annotations

from decimal import Context, Decimal, localcontext

import pytest

from dsl.compiler import compile_expr
from dsl.eval_error import EvalError
from dsl.parser import parse

D = Decimal
EXACT = Context(prec=1000)


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


def test_sum_is_exact_past_28_digits() -> None:
    a, b = D("1000000000000000000000000000"), D("0.01")
    assert ev("msg.a + msg.b", msg={"a": a, "b": b}) == D("1000000000000000000000000000.01")
    assert ev("msg.a - msg.b", msg={"a": a, "b": b}) == D("999999999999999999999999999.99")


def test_product_is_exact_so_round_rounds_once() -> None:
    # 100000000000000000.00 x a 32-digit factor: the exact product ends .004999999999995, which rounds to .00;
    # rounded to 28 digits first it was .0050000000, which round(.., 2) then took up to .01
    a, b = D("100000000000000000.00"), D("1.00000000000000000004999999999995")
    assert ev("msg.a * msg.b", msg={"a": a, "b": b}) == EXACT.multiply(a, b)
    assert ev("round(msg.a * msg.b, 2)", msg={"a": a, "b": b}) == D("100000000000000000.00")


def test_minus_and_abs_keep_every_digit() -> None:
    a = D("-123456789012345678901234567.891")
    assert ev("-msg.a", msg={"a": a}) == D("123456789012345678901234567.891")
    assert ev("abs(msg.a)", msg={"a": a}) == D("123456789012345678901234567.891")


def test_round_past_28_digits_rounds_half_up() -> None:
    assert ev("round(msg.a, 2)", msg={"a": D("123456789012345678901234567.895")}) == \
        D("123456789012345678901234567.90")


def test_a_result_past_1000_digits_fails_naming_the_operation() -> None:
    with pytest.raises(EvalError, match=r"more than 1,000 digits"):
        ev("msg.a + 1", msg={"a": D("1E+5000")})


def test_quotient_carries_28_digits_whatever_the_thread_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 5                       # a library that narrows the context must not narrow a route's money
        assert ev("msg.a / 3", msg={"a": D("100")}) == D("33.33333333333333333333333333")
        assert ev("msg.a * msg.b", msg={"a": D("123456.78"), "b": D("1.0001")}) == D("123469.125678")


@pytest.mark.parametrize("text", ["-msg.z", "msg.z * -1", "0 - msg.z - msg.z", "round(msg.small, 2)",
                                  "msg.neg + msg.neg", "round(msg.small)"])
def test_zero_has_no_sign(text: str) -> None:
    got = ev(text, msg={"z": D("0.00"), "small": D("-0.004"), "neg": D("-0.00")})
    assert got == 0 and not got.is_signed(), got


@pytest.mark.parametrize("text", ["1_000", "1e3", "\u0661\u0662", "1,000.00", "Infinity"])
def test_number_of_other_text_is_an_error(text: str) -> None:
    with pytest.raises(EvalError, match=r"is not a number"):
        ev(f'number("{text}")')
    with pytest.raises(EvalError, match=r"is not a number"):
        ev(f'round("{text}", 2)')


def test_number_of_plain_text() -> None:
    assert ev('number(" 86.40 ")') == D("86.40")
    assert ev('number("-3")') == D(-3)


def test_an_amount_sent_as_text_is_not_joined_to_a_number() -> None:
    """`"amount": "12"` + a fee of 1.50 used to give "121.50": text read straight from the request beside a
    number is the sender's number sent as text (an input error naming the field), never joined."""
    from dsl.eval_error import InputError
    with pytest.raises(InputError, match=r"amount: expected a number, got text '12' \(`\+` beside 1.50 would join"):
        ev("msg.amount + 1.50", msg={"amount": "12"})
    with pytest.raises(InputError, match=r"fee: expected a number, got text '1.50'") as info:
        ev("msg.amount + msg.fee", msg={"amount": D("12"), "fee": "1.50"})
    assert info.value.path == "fee"
    # the route's own text joins as before: a literal, or a join started with one
    assert ev('"fee " + msg.fee', msg={"fee": D("0.50")}) == "fee 0.50"
    assert ev('"" + msg.prefix + msg.seq', msg={"prefix": "INV", "seq": 7}) == "INV7"
    assert ev("msg.a + msg.b", msg={"a": "AB", "b": "CD"}) == "ABCD"
    assert ev("msg.amount + 1.50", msg={"amount": D("12")}) == D("13.50")
