"""`bsp check` and a file watch channel with ``all_or_nothing = true`` (dsl/allornothing.py): W030 at a
``validate`` after the route's first call (its rules are not checked before the file runs); none for rules
before it, for a channel without the option, nor for the shipped payroll route (its place: the catalogue,
tests/dsl/test_dsl_catalogue.py)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths, compile_source

HEAD = ('format Line = csv header false {\n    ref  string\n}\nformat Sent = json\n'
        'channel inbox = file watch {\n    dir = "."\n    all_or_nothing = true\n}\n'
        'channel out = file write {\n    dir = "."\n    name = "R-{ref}.json"\n}\n')
DEAL = '    deal PAY { ref = msg.ref  amount = 1  key = msg.ref }\n'
CALL = '    call w = out as Sent reply Sent { ref = msg.ref } name { ref = msg.ref }\n'
RULES = '    validate {\n        msg.ref != "XX" else reject "30" "bad ref"\n    }\n'


def _route(*body: str) -> str:
    return 'route pay {\n    receive from inbox as Line\n' + "".join(body) + '}\n'


def _w030(tmp_path, registry, src):
    r = compile_source(src, registry, tmp_path / "main.route")
    assert not r.errors, r.errors
    return [d for d in r.warnings if d.code == "W030"]


def test_rules_after_the_first_call_are_told(tmp_path, registry):
    [d] = _w030(tmp_path, registry, HEAD + _route(DEAL, CALL, RULES))
    assert d.message.startswith("route `pay` receives from channel `inbox` with all_or_nothing = true, but this "
                                "validate comes after its call `w` (line 16)")
    assert (d.pos.line, d.pos.col) == (17, 5)


def test_rules_before_it_or_a_channel_without_the_option_are_not(tmp_path, registry):
    assert _w030(tmp_path, registry, HEAD + _route(DEAL, RULES, CALL)) == []
    assert _w030(tmp_path, registry, HEAD.replace("    all_or_nothing = true\n", "") + _route(DEAL, CALL, RULES)) == []


def test_the_payroll_route_checks_all_its_rules_before_any_salary_runs(registry):
    folder = Path(__file__).resolve().parents[2] / "routes" / "payroll"
    r = compile_paths([folder / "payroll.route"], registry)
    assert r.program is not None and not [d for d in r.diagnostics if d.code == "W030"]
