"""`on doubt flag|compensate` (docs/transactions.md "A call left in doubt that nothing can undo"): parsed,
lowered into the IR with the policy in force (flag when the route has none), shown by `bsp check --explain`,
E108 for an unknown policy (did you mean), E109 for a second one."""
from __future__ import annotations

import orjson
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
    p.write_text(HEAD + body + '    reply J { code = "00" }\n}\n')
    result = compile_paths([p], registry)
    return result, [d for d in result.diagnostics if d.severity == "error"]


@pytest.mark.parametrize("body, policy", [("", "flag"), ("    on doubt flag\n", "flag"),
                                          ("    on doubt compensate\n", "compensate")])
def test_the_policy_in_force_reaches_the_ir(tmp_path, registry, body, policy):
    result, errs = compile_body(tmp_path, registry, body + '    call d = back as J { op = "post" }\n')
    assert errs == [] and result.diagnostics == [] and result.program is not None
    (route,) = result.program.routes
    assert route.on_doubt == policy
    assert route.on_restart is None                  # `on doubt` is not `on restart`
    assert [s.kind for s in route.steps] == ["call", "reply"]


def test_check_explain_shows_the_policy(tmp_path):
    p = tmp_path / "main.route"
    p.write_text(HEAD + '    on doubt compensate\n    call d = back as J { op = "post" }\n'
                 '    reply J { code = "00" }\n}\n')
    res = CliRunner().invoke(app, ["check", "--explain", str(p)])
    assert res.exit_code == 0, res.output
    plan = orjson.loads(res.stdout)
    (route,) = plan["routes"]
    assert route["on_doubt"] == "compensate" and route["on_restart"] is None, route


def test_an_unknown_policy_is_E108_with_did_you_mean(tmp_path, registry):
    result, errs = compile_body(tmp_path, registry, '    on doubt compensat\n')
    assert [e.code for e in errs] == ["E108"], errs
    assert (errs[0].pos.line, errs[0].pos.col) == (6, 14), errs[0].pos
    assert errs[0].message == "unknown doubt policy `compensat`"
    assert errs[0].help == "did you mean `compensate`?"
    assert result.program is None


def test_an_unknown_policy_far_from_any_says_both(tmp_path, registry):
    _, errs = compile_body(tmp_path, registry, '    on doubt keep\n')
    assert [e.code for e in errs] == ["E108"], errs
    assert "`on doubt flag`" in errs[0].help and "`on doubt compensate`" in errs[0].help, errs[0].help


def test_complete_is_told_to_be_a_restart_policy(tmp_path, registry):
    _, errs = compile_body(tmp_path, registry, '    on doubt complete\n')
    assert [e.code for e in errs] == ["E108"], errs
    assert errs[0].help.startswith("`complete` is an `on restart` policy"), errs[0].help


def test_a_second_on_doubt_is_E109(tmp_path, registry):
    result, errs = compile_body(tmp_path, registry, '    on doubt flag\n    on doubt compensate\n')
    assert [e.code for e in errs] == ["E109"], errs
    assert (errs[0].pos.line, errs[0].pos.col) == (7, 5), errs[0].pos
    assert errs[0].message == "route `r` has more than one `on doubt`"
    assert "main.route:6:5" in errs[0].help, errs[0].help
    assert result.program is None


def test_on_doubt_and_on_restart_live_side_by_side(tmp_path, registry):
    result, errs = compile_body(tmp_path, registry, '    on restart compensate\n    on doubt compensate\n')
    assert errs == [] and result.program is not None
    (route,) = result.program.routes
    assert (route.on_restart, route.on_doubt) == ("compensate", "compensate")
