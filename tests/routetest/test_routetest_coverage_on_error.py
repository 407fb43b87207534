"""Coverage names a route's `on error` steps as such: an unreached `on error reply` is not listed as
a bare `reply`, which reads as the route's own reply (reached by every good-path test)."""
from __future__ import annotations

from engine.registry import default_registry
from engine.routetest.runner import run_paths


def test_an_unreached_on_error_reply_is_named_on_error_reply(tmp_path):
    (tmp_path / "r.route").write_text('''format J = json
channel front = memory
channel back = memory
route r {
    receive from front as J
    call c = back as J { x = msg.x }
    reply J { code = "00" }
    on error reply J { code = error.code }
}
''')
    (tmp_path / "r_test.route").write_text('''use "r.route"
test "good path only" {
    given front sends J { x = 1 }
    given back answers J { ok = true }
    expect reply { code = "00" }
}
''')
    result = run_paths([tmp_path], default_registry())
    assert all(o.passed for o in result.outcomes), [o.failures for o in result.outcomes]
    missed = [(i.where, i.label) for i in result.coverage.missed]
    assert any(w.endswith("r.route:8:5") and label == "r: on error reply" for w, label in missed), missed
    assert not any(label == "r: reply" for _, label in missed), missed
