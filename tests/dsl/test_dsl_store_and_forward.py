"""`store and forward` on a call (an ISO 8583 advice repeated until acknowledged, engine/txn/saf.py): lowered
into the IR, E124 / E125 / E126 where the call cannot be one, and `store` / `forward` still names elsewhere."""
from __future__ import annotations

import pytest

from dsl.load import compile_paths
from engine.registry import default_registry

HEAD = '''format Iso = iso8583 iso8583_1987_ascii
format J = json
channel front = memory
channel back = memory
route r {
    receive from front as Iso
'''


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def compile_body(tmp_path, registry, body: str):
    p = tmp_path / "main.route"
    p.write_text(HEAD + body + '    reply Iso { t = "0430"  "39" = "00" }\n}\n')
    result = compile_paths([p], registry)
    return result, [d for d in result.diagnostics if d.severity == "error"]


def test_store_and_forward_reaches_the_ir_and_store_and_forward_stay_names(tmp_path, registry):
    result, errs = compile_body(tmp_path, registry,
                                '    let store = msg["11"]\n'
                                '    let forward = 1\n'
                                '    call a = back as Iso { t = "0420"  "11" = store  "90" = msg["90"] }\n'
                                '        expect a["39"] == "00" and forward == 1 timeout 2s store and forward\n'
                                '    call b = back as Iso { t = "0420"  "11" = store }\n')
    assert errs == [] and result.program is not None, errs
    (route,) = result.program.routes
    a, b = [s for s in route.steps if s.kind == "call"]
    assert a.options.get("forward") is True and a.options["timeout"] == 2
    assert "forward" not in b.options


def test_store_and_forward_on_a_json_call_is_E124(tmp_path, registry):
    _, errs = compile_body(tmp_path, registry, '    call a = back as J { op = "x" } store and forward\n')
    assert [e.code for e in errs] == ["E124"], errs
    assert (errs[0].pos.line, errs[0].pos.col) == (7, 37)
    assert "format `J` is json, not ISO 8583" in errs[0].message


def test_store_and_forward_with_a_compensation_is_E125(tmp_path, registry):
    _, errs = compile_body(tmp_path, registry,
                           '    call a = back as Iso { t = "0420" } store and forward\n'
                           '        compensate call back as Iso { t = "0420" }\n')
    assert [e.code for e in errs] == ["E125"], errs
    assert "`compensate call ...`" in errs[0].message and "drop" in errs[0].help


@pytest.mark.parametrize("body, what", [
    ('{ t = "0200" }', "sends a 0200"),
    ('{ "11" = "000001" }', "sets no message type"),
])
def test_store_and_forward_of_what_is_not_an_advice_is_E126(tmp_path, registry, body, what):
    _, errs = compile_body(tmp_path, registry, f'    call a = back as Iso {body} store and forward\n')
    assert [e.code for e in errs] == ["E126"], errs
    assert what in errs[0].message


def test_a_message_type_computed_at_run_time_is_taken(tmp_path, registry):
    _, errs = compile_body(tmp_path, registry,
                           '    call a = back as Iso { t = if msg.t == "0400" then "0400" else "0420" } '
                           'store and forward\n')
    assert errs == [], errs
