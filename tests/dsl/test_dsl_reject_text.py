"""E004 for a `reject` whose text is left out (`else reject "30"` at the end of its line): told at that
`reject`, not at the next line's first token (the next rule, or the `}` closing `validate`)."""
from __future__ import annotations

from dsl.load import compile_source

SRC = '''format J = json
channel front = memory
route r {
    receive from front as J
    validate {
        msg.ref != "" else reject "30"
        msg.amount > 0 else reject "13" "invalid amount"
    }
    reply J { ok = true }
}
'''


def test_a_reject_without_its_text_is_told_at_the_reject(tmp_path, registry):
    [d] = compile_source(SRC, registry, tmp_path / "main.route").diagnostics
    assert d.code == "E004" and (d.pos.line, d.pos.col) == (6, 28), (d.code, d.pos, d.message)
    assert d.message == '`reject` needs a code and a text, both quoted (found nothing after `reject "30"`)', d.message


def test_the_last_rule_too(tmp_path, registry):
    src = SRC.replace('        msg.amount > 0 else reject "13" "invalid amount"\n', "")
    [d] = compile_source(src, registry, tmp_path / "main.route").diagnostics
    assert (d.code, d.pos.line, d.pos.col) == ("E004", 6, 28), (d.code, d.pos, d.message)


def test_on_one_line_it_stays_at_the_token_found(tmp_path, registry):
    src = SRC.replace('else reject "30"\n', 'else reject "30" x\n')
    [d] = compile_source(src, registry, tmp_path / "main.route").diagnostics
    assert (d.code, d.pos.line, d.pos.col) == ("E004", 6, 40) and "(found `x`)" in d.message, (d.pos, d.message)
