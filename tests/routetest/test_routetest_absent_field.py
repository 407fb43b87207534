"""`expect reply { statsu = "PAID" }` on a JSON reply (no field list, so `bsp check` cannot tell): the failure
says the reply has no such field, the closest it has and what it has, not only `got "<none>"`."""
from __future__ import annotations

from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format J = json
channel front = memory
route r {
    receive from front as J
    reply J { request_id = msg.id  status = "PAID"  code = "00"  nested.inner = 1 }
}
'''


def _failures(tmp_path, expect: str) -> str:
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text('use "r.route"\ntest "t" {\n    given front sends J { id = "R1" }\n'
                                           f"    {expect}\n}}\n")
    [outcome] = run_paths([tmp_path], default_registry()).outcomes
    assert not outcome.passed
    return "\n".join(outcome.failures)


def test_a_misspelt_reply_field_names_the_closest_and_the_fields_there_are(tmp_path):
    text = _failures(tmp_path, 'expect reply { statsu = "PAID" }')
    assert 'field `statsu`: expected "PAID", got "<none>" (the reply has no field `statsu`: did you mean ' \
           '`status`? it has `code`, `nested`, `request_id`, `status`)' in text, text


def test_a_field_it_has_but_with_another_value_says_no_more(tmp_path):
    text = _failures(tmp_path, 'expect reply { status = "FAILED" }')
    assert text.endswith('field `status`: expected "FAILED", got "PAID"'), text


def test_a_missing_field_inside_a_group_it_has_says_no_more(tmp_path):
    text = _failures(tmp_path, 'expect reply { nested.other = 1 }')
    assert text.endswith('field `nested.other`: expected 1, got "<none>"'), text
