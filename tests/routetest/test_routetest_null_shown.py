"""A failed expectation shows values as the route language writes them: `null`, `true`, `false`
(not Python's None / True / False, which an analyst cannot write in a test)."""
from __future__ import annotations

from engine.registry import default_registry
from engine.routetest.runner import run_paths


def test_a_failed_expectation_says_null_true_and_false(tmp_path):
    (tmp_path / "r.route").write_text('''format J = json
channel front = memory
route r {
    receive from front as J
    reply J { a = null  b = false  c = "x" }
}
''')
    (tmp_path / "r_test.route").write_text('''use "r.route"
test "values the language writes" {
    given front sends J { x = 1 }
    expect reply { a = "x"  b = true  c = null }
}
''')
    [outcome] = run_paths([tmp_path], default_registry()).outcomes
    assert not outcome.passed
    text = "\n".join(outcome.failures)
    assert 'field `a`: expected "x", got null' in text, text
    assert "field `b`: expected true, got false" in text, text
    assert 'field `c`: expected null, got "x"' in text, text
    assert "None" not in text and "True" not in text and "False" not in text, text
