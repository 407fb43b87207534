"""The compiler's fast paths (``msg["11"]``, ``msg.ref``, flat bodies of field copies) give the same
values and the same errors as the general evaluator, for dicts, dict subclasses and everything else.
A ``msg`` that is not an object is the sender's error (``InputError``, dsl/inbound.py), on both paths."""
from __future__ import annotations

from decimal import Decimal

import pytest

from dsl import ir
from dsl.compiler import EvalError, _show, compile_assigns, compile_expr
from dsl.parser import parse
from dsl.tables import Table

TABLE = Table("billers", "id", {"EL01": {"id": "EL01", "code": "ELEC"}})


class Message(dict):
    """A dict subclass, as a decoded ISO 8583 message (IsoMessage) is."""


def expr(text: str):
    m = parse(f"route r {{ let x = {text} }}", "fast.route")
    return m.decls[0].body[0].value


def body(text: str):
    m = parse(f"route r {{ reply Out {{ {text} }} }}", "fast.route")
    return tuple(ir.Assign(a.path, a.value, pos=a.pos) for a in m.decls[0].body[0].assigns)


def _general(e):
    """The same Index through the general evaluator: the key wrapped in coalesce(), so the literal-key
    fast path does not apply (the base is kept: a path read from the request stays one, whose errors are
    the sender's, InputError, on either path)."""
    g = ir.Index(base=e.base, index=ir.Call(func="coalesce", args=(e.index,)), pos=e.pos)
    return compile_expr(g), g


SCOPES = [
    {"msg": {"11": "000001", "ref": "R1", "n": {"11": "X"}}},
    {"msg": Message({"11": "000002", "ref": "R2", "n": Message({"11": "Y"})})},
    {"msg": {}},
    {"msg": None},
    {},
    {"msg": TABLE},
    {"msg": ["a", "b"]},
    {"msg": "text"},
    {"msg": Decimal("1.5")},
]


def outcome(fn, scope, e=None, g=None):
    try:
        return ("ok", fn(scope))
    except EvalError as exc:
        text = exc.message
        if e is not None:     # the general evaluator's messages render the wrapped expression
            text = text.replace(_show(g), _show(e))
        return ("error", type(exc).__name__, text)


@pytest.mark.parametrize("text", ['msg["11"]', 'msg["n"]["11"]', 'msg["EL01"]', 'msg["zz"]'])
@pytest.mark.parametrize("scope", SCOPES, ids=range(len(SCOPES)))
def test_literal_index_equals_general(text, scope):
    e = expr(text)
    fast = outcome(compile_expr(e), scope)
    fn, g = _general(e)
    general = outcome(fn, scope, e, g)
    assert fast == general


@pytest.mark.parametrize("scope", SCOPES, ids=range(len(SCOPES)))
def test_attr_on_dict_subclass_and_others(scope):
    fn = compile_expr(expr("msg.ref"))
    got = outcome(fn, scope)
    msg = scope.get("msg")
    if isinstance(msg, dict):
        assert got == ("ok", msg.get("ref"))
    elif msg is None:
        assert got == ("ok", None)
    elif isinstance(msg, Table):
        assert got[:2] == ("error", "EvalError") and "is a table" in got[2]
    else:       # the request itself is no object: the sender's error (dsl/inbound.py), naming the field read
        assert got[:2] == ("error", "InputError")
        assert got[2].startswith("the request: expected an object (with field 'ref'), got ")


def test_attr_on_a_value_the_route_built_is_the_routes_error():
    with pytest.raises(EvalError, match="cannot read field 'ref' of a string") as info:
        compile_expr(expr("own.ref"))({"own": "text"})
    assert type(info.value) is EvalError


def test_literal_index_reads_a_table_row_and_a_missing_list_entry():
    assert compile_expr(expr('billers["EL01"]'))({"billers": TABLE})["code"] == "ELEC"
    with pytest.raises(EvalError, match="list index must be a whole number"):
        compile_expr(expr('own["1"]'))({"own": ["a"]})
    # the request a list where the route reads field "1": the sender's (dsl/inbound.py)
    with pytest.raises(EvalError, match=r"the request: expected an object \(with field '1'\), got a list of 1"):
        compile_expr(expr('msg["1"]'))({"msg": ["a"]})


def test_flat_body_of_copies_keeps_order_values_and_repeats():
    fields = body('t = "0210"  "11" = msg["11"]  ref = msg.ref  "39" = auth["39"]  "11" = auth["11"]  '
                  'code = upper(msg.ref)')
    build = compile_assigns(fields)
    got = build({"msg": Message({"11": "000001", "ref": "r1"}), "auth": {"39": "00", "11": "000009"}})
    assert got == {"t": "0210", "11": "000009", "ref": "r1", "39": "00", "code": "R1"}
    assert list(got) == ["t", "11", "ref", "39", "code"]       # a repeated name keeps its first place


@pytest.mark.parametrize("scope", [
    {"msg": None, "auth": {"39": "05"}},
    {"msg": {"11": "1", "ref": "r"}, "auth": None},
    {"msg": {"11": "1", "ref": "r"}},
])
def test_flat_body_with_a_root_that_is_not_a_dict(scope):
    build = compile_assigns(body('"11" = msg["11"]  ref = msg.ref  "39" = auth["39"]'))
    msg, auth = scope.get("msg") or {}, scope.get("auth") or {}
    assert build(scope) == {"11": msg.get("11"), "ref": msg.get("ref"), "39": auth.get("39")}


def test_flat_body_error_names_the_place():
    build = compile_assigns(body('"11" = msg["11"]'))
    with pytest.raises(EvalError, match="the request: expected an object, got text 'not a record'") as info:
        build({"msg": "not a record"})
    assert info.value.pos is not None and info.value.pos.line == 1


def test_nested_paths_still_build_nested_values():
    build = compile_assigns(body('a.b = msg["11"]  lines[1].amount = 2.50'))
    assert build({"msg": {"11": "x"}}) == {"a": {"b": "x"}, "lines": [None, {"amount": Decimal("2.50")}]}
