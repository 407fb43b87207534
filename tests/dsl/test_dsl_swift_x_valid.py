"""swift_x_valid(s): a free-text value an MT field can carry (the SWIFT FIN X set), checked by the route before
an MT is built from it; what bsp check tells about it."""
from __future__ import annotations

import pytest

from dsl.compiler import compile_expr
from dsl.load import compile_source
from dsl.parser import parse


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


@pytest.mark.parametrize("text, want", [
    ('swift_x_valid("LI SI")', True),
    ('swift_x_valid("ACME (UK) LTD./LONDON, 2-4 O\'NEIL ST?+:")', True),
    ('swift_x_valid("line one\\nline two")', True),       # multi-line fields (4*35x) keep their line breaks
    ('swift_x_valid("")', True),
    ('swift_x_valid("SMITH & SONS")', False),
    ('swift_x_valid("INFO@ACME")', False),
    ('swift_x_valid("NO. #12")', False),
    ('swift_x_valid("50% ; X")', False),
    ('swift_x_valid("M\u00dcLLER")', False),                # an accented letter: transliterate (MUELLER) first
    ('swift_x_valid("A_B")', False),
    ('swift_x_valid(null)', False),
    ('swift_x_valid(12)', False),
    ('swift_x_valid(upper(msg.name))', True),
])
def test_values(text, want):
    assert ev(text, msg={"name": "zhang san"}) is want


def test_check_takes_it_as_a_condition_and_counts_its_arguments(tmp_path, registry):
    route = '''channel front = memory
format Req = fixed {
    name     string(35)  personal
    amount   decimal(12, 2)
}
route r {
    receive from front as Req
    validate {
        %s else reject "30" "the name has characters an MT103 cannot carry"
    }
    reply Req { name = msg.name  amount = msg.amount }
}
'''
    def codes(cond: str) -> list[str]:
        r = compile_source(route % cond, registry, tmp_path / "r.route")
        return [d.code for d in r.diagnostics]
    assert codes("swift_x_valid(msg.name)") == []
    assert "E071" in codes('swift_x_valid(msg.name, "x")')
