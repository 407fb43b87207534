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
    assert len(res.outcomes) == 7
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


def _extra(tmp_path: Path, tests: str) -> list:
    d = tmp_path / "routes"
    shutil.copytree(ROUTES, d)
    (d / "transfer_test.route").unlink()
    (d / "extra_test.route").write_text('use "transfer.route"\n' + tests)
    return run_paths([d], default_registry()).outcomes


def test_answers_unreachable_fails_the_call_as_never_sent_so_an_undone_deal_frees_its_key(tmp_path: Path) -> None:
    """`given CHANNEL answers unreachable`: the call never leaves (kind unreachable, 91), unlike `answers
    error` (lost: it may have arrived). The debit is cancelled and its cancel accepted, so nothing is
    left anywhere and the key is free: the same transfer sent again runs as a new deal. After a `lost`
    credit the key stays taken: the repeat is a duplicate and calls nothing."""
    outcomes = _extra(tmp_path, '''
test "credit unreachable" {
    given front sends J { ref = "U1"  amount = 10 }
    given debit answers J { status = "OK" }
    given credit answers unreachable
    given debit answers J { status = "OK" }
    expect call debit { op = "cancel"  ref = "U1" }
    expect reply { ref = "U1"  code = "91" }
    expect deal TRANSFER { status = "failed"  response_code = "91"  reason = "unreachable" }
}
test "sent again: a new deal" {
    given front sends J { ref = "U1"  amount = 10 }
    given debit answers J { status = "OK" }
    given credit answers J { status = "OK" }
    expect reply { ref = "U1"  code = "00" }
    expect deal TRANSFER { status = "committed" }
}
test "credit lost" {
    given front sends J { ref = "U2"  amount = 10 }
    given debit answers J { status = "OK" }
    given credit answers error
    given credit answers J { status = "OK" }
    given debit answers J { status = "OK" }
    expect reply { ref = "U2"  code = "91" }
    expect deal TRANSFER { status = "failed"  reason = "lost" }
}
test "lost, sent again: a duplicate" {
    given front sends J { ref = "U2"  amount = 10 }
    expect no call debit
    expect reply { ref = "U2"  code = "91" }
    expect deal TRANSFER { status = "duplicate"  reason = "may have reached the counterpart" }
}
''')
    assert [(o.name, o.failures) for o in outcomes if not o.passed] == []
    assert len(outcomes) == 4
