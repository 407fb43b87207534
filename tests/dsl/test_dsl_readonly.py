"""`readonly` on a call (an enquiry): lowered into the IR, and E107 where the call cannot be one."""
from __future__ import annotations

import pytest

from dsl.load import compile_paths
from engine.registry import default_registry

HEAD = '''format J = json
channel front = memory
channel back = memory
channel out = file write {
    dir  = "."
    name = "R-{uuid}.json"
}
route r {
    receive from front as J
'''


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def compile_body(tmp_path, registry, body: str):
    p = tmp_path / "main.route"
    p.write_text(HEAD + body + '    reply J { code = "00" }\n}\n')
    result = compile_paths([p], registry)
    return result, [d for d in result.diagnostics if d.severity == "error"]


def test_readonly_reaches_the_ir_and_a_plain_call_reads_as_before(tmp_path, registry):
    result, errs = compile_body(tmp_path, registry,
                                '    call e = back as J readonly { op = "enq" } expect e.status == "OK"\n'
                                '    call p = back as J { op = "post" }\n')
    assert errs == [] and result.program is not None
    (route,) = result.program.routes
    e, p = [s for s in route.steps if s.kind == "call"]
    assert e.options.get("readonly") is True
    assert "readonly" not in p.options


def test_a_readonly_call_with_a_compensation_is_E107(tmp_path, registry):
    result, errs = compile_body(tmp_path, registry,
                                '    call e = back as J readonly { op = "enq" }\n'
                                '        compensate call back as J { op = "cancel" }\n')
    assert [e.code for e in errs] == ["E107"], errs
    assert (errs[0].pos.line, errs[0].pos.col) == (11, 9), errs[0].pos
    assert "nothing to compensate" in errs[0].message and "drop" in errs[0].help
    assert result.program is None


def test_a_readonly_call_through_a_file_write_is_E107(tmp_path, registry):
    _, errs = compile_body(tmp_path, registry, '    call w = out as J readonly { op = "enq" }\n')
    assert [e.code for e in errs] == ["E107"], errs
    assert (errs[0].pos.line, errs[0].pos.col) == (10, 23), errs[0].pos
    assert "channel `out` (file write) writes a file" in errs[0].message
