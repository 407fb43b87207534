"""The fast field mapping (``engine.runtime.fastpath.flat_assigns``: one generated function with a dict
display) gives what the general compiler gives, for every shape of scope the engine hands it."""
from __future__ import annotations

from decimal import Decimal

import pytest

from dsl import ir
from dsl.compiler import compile_assigns, compile_expr
from dsl.eval_error import EvalError
from engine.runtime.fastpath import fast_expr, flat_assigns


def _path(root: str, key: str) -> ir.Expr:
    return ir.Attr(ir.Name(root), key)


def _expr(e: ir.Expr):
    return fast_expr(e, compile_expr(e))


# the bench's call (one root) and reply (two roots); keys a source literal must quote as they are
ONE_ROOT = [ir.Assign("reference", _path("msg", "ref")), ir.Assign("amount", _path("msg", "amount")),
            ir.Assign("currency", _path("msg", "currency")), ir.Assign("payer", _path("msg", "payer"))]
TWO_ROOTS = [ir.Assign("ref", _path("msg", "ref")), ir.Assign("status", _path("post", "status")),
             ir.Assign("quoted", _path("post", "it's \"x\"\\n")), ir.Assign("again", _path("msg", "ref"))]

SCOPES = [
    {"msg": {"ref": "R1", "amount": Decimal("120.50"), "currency": "CNY", "payer": None},
     "post": {"status": "OK", "it's \"x\"\\n": 7}},
    {"msg": {"ref": "R2"}, "post": {}},                      # fields left out: null
    {"msg": {}, "post": {"status": ["a", {"b": 1}]}},
]


@pytest.mark.parametrize("assigns", [ONE_ROOT, TWO_ROOTS])
@pytest.mark.parametrize("scope", SCOPES)
def test_fast_fields_equal_the_general_compiler(assigns, scope) -> None:
    fast = flat_assigns(assigns, _expr)
    assert fast is not None
    got = fast(scope)
    want = compile_assigns(assigns)(scope)
    assert got == want
    assert list(got) == list(want)          # the same key order: a JSON request is written in it


@pytest.mark.parametrize("scope", [{"msg": None, "post": {"status": "OK"}}, {"msg": "text", "post": {}},
                                   {"post": {}}, {"msg": {"ref": "R"}, "post": 5}])
def test_a_root_that_is_no_object_takes_the_general_evaluators(scope) -> None:
    fast = flat_assigns(TWO_ROOTS, _expr)
    try:
        want = compile_assigns(TWO_ROOTS)(scope)
    except EvalError as exc:
        with pytest.raises(EvalError) as got:
            fast(scope)
        assert str(got.value) == str(exc)
    else:
        assert fast(scope) == want
