"""Route tests (`bsp test`) script compensation calls and ISO 8583 reversals: `given CHANNEL answers`
answers them in call order, `expect call CHANNEL` sees them (tests/txn/routes/transfer_test.route)."""
from __future__ import annotations

import shutil
from pathlib import Path

from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTES = Path(__file__).resolve().parent / "routes"


def test_the_compensation_and_reversal_route_tests_pass_with_full_coverage() -> None:
    res = run_paths([ROUTES], default_registry())
    assert [o.failures for o in res.outcomes if not o.passed] == []
    assert len(res.outcomes) == 6
    assert res.coverage.missed == []


def _variant(tmp_path: Path, old: str, new: str) -> list:
    d = tmp_path / "routes"
    shutil.copytree(ROUTES, d)
    t = d / "transfer_test.route"
    text = t.read_text()
    assert old in text
    t.write_text(text.replace(old, new, 1))
    return run_paths([d], default_registry()).outcomes


def test_a_compensation_the_test_does_not_answer_fails_naming_the_channel(tmp_path: Path) -> None:
    outcomes = _variant(tmp_path, '    given credit answers J { status = "NO" }\n    given debit answers J { status = "OK" }\n',
                        '    given credit answers J { status = "NO" }\n')   # no answer for the cancel
    (bad,) = [o for o in outcomes if not o.passed]
    assert bad.name.startswith("credit refused")
    assert any("the route called debit (call #3) but the test gives no answer" in f for f in bad.failures)


def test_expect_call_checks_the_compensation_request(tmp_path: Path) -> None:
    outcomes = _variant(tmp_path, 'expect call debit { op = "cancel"  ref = "T2" }',
                        'expect call debit { op = "cancel"  ref = "T9" }')
    (bad,) = [o for o in outcomes if not o.passed]
    assert any('field `ref`: expected "T9", got "T2"' in f for f in bad.failures), bad.failures


def test_expect_call_checks_the_reversal_and_its_de90(tmp_path: Path) -> None:
    outcomes = _variant(tmp_path, '"4" = "000000001000"\n        "90" = "0200000123',
                        '"4" = "000000001000"\n        "90" = "0200000999')
    (bad,) = [o for o in outcomes if not o.passed]
    assert bad.name.startswith("an unanswered 0200 is reversed")
    assert any('field `["90"]`: expected "0200000999' in f for f in bad.failures), bad.failures
