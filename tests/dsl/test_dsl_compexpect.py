"""A compensation's `expect` judges the compensation's own answer (dsl/compexpect.py, E106;
docs/transactions.md "In the route language"): inside it the call's name is the compensation's answer,
in the compensation's body the call's answer."""
from __future__ import annotations

import pytest

from dsl.load import compile_paths
from engine.registry import default_registry

HEAD = '''format J = json
format Post = fixed {
    status string(2)
    conf   string(8)
}
format Cancel = fixed {
    result string(8)
}
channel front = memory
channel debit = memory
route r {
    receive from front as J
'''


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def errors(tmp_path, registry, body: str):
    p = tmp_path / "main.route"
    p.write_text(HEAD + body + '    reply J { code = "00" }\n}\n')
    result = compile_paths([p], registry)
    return result, [d for d in result.diagnostics if d.severity == "error"]


def test_a_field_of_the_calls_answer_that_the_cancels_answer_has_not_is_E106(tmp_path, registry):
    # written when `d` there was the call's answer: `d.status` of the post, always "OK" by then
    result, errs = errors(tmp_path, registry,
                          '    call d = debit as J reply Post { op = "post" } expect d.status == "OK"\n'
                          '        compensate call debit as J reply Cancel { op = "cancel"  conf = d.conf }'
                          ' expect d.status == "OK"\n')
    assert [e.code for e in errs] == ["E106"], errs
    e = errs[0]
    assert (e.pos.line, e.pos.col) == (14, 89), e.pos
    assert "the compensation's answer (format `Cancel`), which has no field `status`" in e.message
    assert "the call's answer (format `Post`) has it" in e.message
    assert "own answer, not the call's" in e.help and "result" in e.help
    assert result.program is None


def test_an_expect_that_reads_nothing_of_the_answer_is_E106(tmp_path, registry):
    _, errs = errors(tmp_path, registry,
                     '    call d = debit as J reply Post { op = "post" } expect d.status == "OK"\n'
                     '        compensate call debit as J reply Cancel { op = "cancel" } expect msg.op != "x"\n')
    assert [e.code for e in errs] == ["E106"], errs
    assert "does not read its answer `d`" in errs[0].message
    assert "expect d.result == \"OK\"" in errs[0].help


def test_the_cancels_own_fields_check_and_its_body_reads_the_calls_answer(tmp_path, registry):
    # `conf = d.conf` in the body: the post's answer; `d.result` in the expect: the cancel's
    result, errs = errors(tmp_path, registry,
                          '    call d = debit as J reply Post { op = "post" } expect d.status == "OK"\n'
                          '        compensate call debit as J reply Cancel { op = "cancel"  conf = d.conf }'
                          ' expect d.result == "DONE"\n')
    assert errs == [] and result.program is not None
    # a field neither answer has: E060, as for any call
    _, errs = errors(tmp_path, registry,
                     '    call d = debit as J reply Post { op = "post" } expect d.status == "OK"\n'
                     '        compensate call debit as J reply Cancel { op = "cancel" } expect d.reslt == "DONE"\n')
    assert [e.code for e in errs] == ["E060"] and "format `Cancel` has no field `reslt`" in errs[0].message
