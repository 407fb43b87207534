"""`expect deal T` where the request never reached a route's `deal` step: the failure names the type the
deal was recorded under (MALFORMED, UNROUTED), its status, and the expectation to write instead."""
from __future__ import annotations

from pathlib import Path

from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Req = json
format NotJson = fixed {
    text string(8)
}
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route r {
    receive from front as Req
    deal PAYOUT { ref = msg.id  amount = 1 }
    reply Req { ok = true }
}
test "a body that is not JSON" {
    given front sends NotJson { text = "not json" }
    expect deal PAYOUT { status = "rejected" }
}
'''


def test_a_malformed_request_names_its_deal_type_and_what_to_expect(tmp_path: Path) -> None:
    (tmp_path / "r_test.route").write_text(ROUTE)
    res = run_paths([tmp_path], default_registry())
    out = res.outcomes[0]
    assert not out.passed
    text = "\n".join(out.failures)
    assert ("expect deal PAYOUT: the deal recorded is of type MALFORMED (status rejected): the request did not "
            "decode in the receive format, so no route ran; expect deal MALFORMED { ... }") in text, text


def test_expecting_malformed_passes(tmp_path: Path) -> None:
    (tmp_path / "r_test.route").write_text(ROUTE.replace("expect deal PAYOUT", "expect deal MALFORMED"))
    out = run_paths([tmp_path], default_registry()).outcomes[0]
    assert out.passed, out.failures
