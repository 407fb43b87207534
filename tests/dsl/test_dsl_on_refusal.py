"""`on refusal keep|free` (docs/transactions.md "Which failures keep the key"): parsed, lowered into the IR
with the policy in force (keep when the route has none), shown by `bsp check --explain`, E114 for an unknown
policy (did you mean), E115 for a second one. Its effect on the deal key: tests/txn/test_txn_on_refusal.py."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app
from engine.registry import default_registry

HEAD = '''format J = json
channel front = memory
channel back = memory
route r {
    receive from front as J
'''


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def compile_body(tmp_path, registry, body: str):
    p = tmp_path / "main.route"
    p.write_text(HEAD + body + '    call d = back as J { op = "post" } expect d.status == "OK"\n'
                 '    reply J { code = "00" }\n}\n')
    result = compile_paths([p], registry)
    return result, [d for d in result.diagnostics if d.severity == "error"], p


@pytest.mark.parametrize("body, policy", [("", "keep"), ("    on refusal keep\n", "keep"),
                                          ("    on refusal free\n", "free")])
def test_the_policy_in_force_reaches_the_ir_and_explain(tmp_path, registry, body, policy):
    result, errs, path = compile_body(tmp_path, registry, body)
    assert errs == [] and result.program is not None
    (route,) = result.program.routes
    assert route.on_refusal == policy
    out = CliRunner().invoke(app, ["check", "--explain", str(path)])
    assert out.exit_code == 0, out.output
    assert f'"on_refusal": "{policy}"' in out.output


def test_an_unknown_policy_says_what_it_takes(tmp_path, registry):
    _, errs, _ = compile_body(tmp_path, registry, "    on refusal fre\n")
    assert [e.code for e in errs] == ["E114"]
    assert errs[0].message == "unknown refusal policy `fre`" and "free" in errs[0].help
    _, errs, _ = compile_body(tmp_path, registry, "    on refusal retry\n")
    assert "`on refusal keep`" in errs[0].help and "`on refusal free`" in errs[0].help


def test_a_second_policy_is_refused_naming_the_first(tmp_path, registry):
    _, errs, _ = compile_body(tmp_path, registry, "    on refusal keep\n    on refusal free\n")
    assert [e.code for e in errs] == ["E115"]
    assert errs[0].message == "route `r` has more than one `on refusal`"
    assert errs[0].help.startswith("the first is at ") and errs[0].help.endswith(": keep one")
