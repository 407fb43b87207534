"""Whose error an expression's failure is (dsl/inbound.py): a value read from the received message of the
wrong shape raises ``InputError`` (the sender's: rejected, 30) naming the field path, what was expected
and what came; a failure on a value the route built (a literal, a table cell, a let, a call's answer)
stays a plain ``EvalError`` (internal, 96).  The engine's answers: tests/engine/test_input_shape.py."""
from __future__ import annotations

from decimal import Decimal

import pytest

from dsl.compiler import EvalError, compile_expr
from dsl.eval_error import InputError
from dsl.parser import parse
from dsl.tables import Table


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


def sender(text: str, **scope) -> InputError:
    with pytest.raises(InputError) as info:
        ev(text, **scope)
    return info.value


def route_bug(text: str, **scope) -> EvalError:
    with pytest.raises(EvalError) as info:
        ev(text, **scope)
    assert not isinstance(info.value, InputError), info.value
    return info.value


LIMITS = Table("limits", "product", {"P1": {"product": "P1", "max": "1000"}})


def test_a_field_of_text_is_the_senders_and_names_the_path_the_place_and_the_value() -> None:
    e = sender("msg.beneficiary.name", msg={"beneficiary": "ACME"})
    assert e.path == "beneficiary" and not e.root
    assert e.message == "beneficiary: expected an object (with field 'name'), got text 'ACME'"
    assert str(e.pos) == "expr.route:1:19"


@pytest.mark.parametrize("text, msg, message", [
    ("msg.items[0]", {"items": "abc"}, "items: expected a list, got text 'abc'"),
    ('msg.items["a"]', {"items": [1, 2]}, "items: expected an object (with field 'a'), got a list of 2"),
    ("msg.b.c", {"b": [1]}, "b: expected an object (with field 'c'), got a list of 1"),
    ("msg.amount > 0", {"amount": "5"}, "amount: expected a number, got text '5'"),
    ("msg.amount > 0", {}, "amount: expected a number, got nothing (absent or null)"),
    ('msg.code < "B"', {"code": 7}, "code: expected text, got a number (7)"),
    ("0 < msg.amount", {"amount": [1]}, "amount: expected a number, got a list of 1"),
    ("msg.amount * 2", {"amount": "5"}, "amount: expected a number, got text '5'"),
    ("msg.a - msg.b", {"a": 1, "b": True}, "b: expected a number, got boolean true"),
    ("-msg.amount", {"amount": "5"}, "amount: expected a number, got text '5'"),
    ('"x" in msg.tags', {"tags": 5}, "tags: expected a list or text, got a number (5)"),
    ("msg.items[msg.i]", {"items": [1], "i": "first"},
     "i: expected a whole number (a list index), got text 'first'"),
    ("round(msg.amount, 2)", {"amount": {"v": 1}}, "amount: round: expected a number, got a record"),
    ('number(msg.amount)', {"amount": "abc"}, "amount: number: 'abc' is not a number: write ASCII digits with an "
                                              "optional sign and decimal point (120.50), no exponent, thousands "
                                              "separator or underscore"),
    ('msg["11"].x', {"11": "000123"}, "11: expected an object (with field 'x'), got text '000123'"),
    # an object or a list where a text function reads text (until 2026-11-27 Python's rendering "{'x': 1}",
    # paid on as a beneficiary's name)
    ("trim(msg.b.name)", {"b": {"name": {"x": 1}}}, "b.name: expected text, got an object"),
    ("upper(msg.p)", {"p": ["A"]}, "p: expected text, got a list of 1"),
    ('substr(msg.p, 0, 4)', {"p": {"a": 1}}, "p: expected text, got an object"),
    ('replace(msg.iban, " ", "")', {"iban": {"a": 1}}, "iban: expected text, got an object"),
    ('coalesce(trim(msg.c), "")', {"c": {"a": 1}}, "c: expected text, got an object"),
    ('"CLAIM " + msg.c', {"c": {"a": 1}}, "c: expected text, got an object"),
    ('msg.c + "/"', {"c": [1, 2]}, "c: expected text, got a list of 2"),
])
def test_shapes_the_sender_sent_wrong(text: str, msg: dict, message: str) -> None:
    assert sender(text, msg=msg).message == message


def test_http_query_values_are_the_senders() -> None:
    e = sender("http.query.limit > 5", http={"query": {"limit": "ten"}})
    assert e.message == "http.query.limit: expected a number, got text 'ten'"


def test_the_message_itself_of_the_wrong_shape_is_the_root() -> None:
    e = sender("msg.claim_id", msg=[{"claim_id": "C1"}])
    assert e.root and e.message == "the request: expected an object (with field 'claim_id'), got a list of 1"
    assert sender("msg.claim_id", msg="hello").root


def test_a_long_text_is_not_quoted_whole() -> None:
    e = sender("msg.b.name", msg={"b": "x" * 500})
    assert "500 characters" in e.message and len(e.message) < 120


@pytest.mark.parametrize("text, scope", [
    ('"abc".x', {}),                                               # the route's own constant
    ('"abc"[0]', {}),
    ("c.x", {"c": "text"}),                                        # a let (or a call's answer)
    ('debit.resp_code > 0', {"debit": {"resp_code": "00"}}),       # a counterpart's answer
    ("msg.amount > limits[msg.p].max", {"msg": {"amount": 5, "p": "P1"}, "limits": LIMITS}),   # a table cell is text
    ('msg.amount - "1"', {"msg": {"amount": 5}}),                  # the route's operand is not a number
    ("msg.amount > z", {"msg": {"amount": 5}, "z": None}),         # the route's side cannot be compared
    ("msg.d > today()", {"msg": {"d": "2026-01-01"}}),             # JSON has no dates: the route's to read
    ('substr(msg.s, 0, "x")', {"msg": {"s": "abc"}}),              # not a reader function
    ("trim(c)", {"c": {"a": 1}}),                                  # a let's object: the route's
    ('"A" + c', {"c": {"a": 1}}),
])
def test_values_the_route_built_stay_the_routes(text: str, scope: dict) -> None:
    route_bug(text, **scope)


def test_a_sound_message_still_evaluates() -> None:
    assert ev("msg.beneficiary.name", msg={"beneficiary": {"name": "A"}}) == "A"
    assert ev("msg.amount > 0 and msg.items[0] == 1", msg={"amount": Decimal("1.5"), "items": [1]}) is True
    assert ev("msg.missing.deeper", msg={}) is None
    assert ev("trim(msg.n)", msg={"n": 12}) == "12" and ev("trim(msg.n)", msg={}) == ""   # a number, null: as before
