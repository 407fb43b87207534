"""has_control(s): a text a partner sent holding a control character (NUL, line breaks, tab, C1), checked by the
route before it goes into a file name, an XML element or a record (claims payout: a beneficiary name with a
NUL was debited, then the pacs.008 could not be written: 500 `96` after the debit, 2026-11-27)."""
from __future__ import annotations

import pytest

from dsl.compiler import compile_expr
from dsl.load import compile_source
from dsl.parser import parse


def ev(text: str, **scope):
    m = parse(f"route r {{ let x = {text} }}", "expr.route")
    return compile_expr(m.decls[0].body[0].value)(scope)


@pytest.mark.parametrize("text, want", [
    ('has_control("ANNA SCHMIDT")', False),
    ('has_control("M\u00dcLLER \u674e\u56db \U0001F600")', False),   # accents, CJK, emoji are text
    ('has_control("")', False),
    ('has_control(null)', False),
    ('has_control(12)', False),
    ('has_control(msg.nul)', True),
    ('has_control(msg.line)', True),
    ('has_control(msg.tab)', True),
    ('has_control(msg.delete)', True),
    ('has_control(msg.c1)', True),
    ('not has_control(trim(msg.nul))', False),
    ('not has_control(msg.ok)', True),
])
def test_values(text, want):
    msg = {"nul": "A\x00B", "line": "line\nbreak", "tab": "tab\there", "delete": "del\x7f", "c1": "c1\x85",
           "ok": "ANNA SCHMIDT"}
    assert ev(text, msg=msg) is want


def test_check_takes_it_as_a_condition_and_counts_its_arguments(tmp_path, registry):
    route = '''channel front = memory
format Req = json
route r {
    receive from front as Req
    validate {
        %s else reject "30" "the name holds a control character"
    }
    reply Req { name = msg.name }
}
'''
    def codes(cond: str) -> list[str]:
        r = compile_source(route % cond, registry, tmp_path / "r.route")
        return [d.code for d in r.diagnostics]
    assert codes("not has_control(msg.name)") == []
    assert "E071" in codes('has_control(msg.name, "x")')
