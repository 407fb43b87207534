"""`expect deal T { record.NAME.FIELD = .. }`: the values a route's `record NAME { }` step kept with the deal
(its ledger event `recorded`); an amount kept as decimal text compared as a decimal; a record or field the deal
did not keep names the records it did; `bsp check` takes no other dotted deal field (E096)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route r {
    receive from front as Req
    deal PAYOUT { ref = msg.id  amount = msg.amount }
    record kept { policy = msg.id  premium = round(0 - msg.amount, 2) }
    reply Req { ok = true }
}
test "kept" {
    given front sends Req { id = "P1"  amount = 12.50 }
    expect deal PAYOUT { status = "committed"  EXPECT }
}
'''


def _run(tmp_path: Path, expect: str):
    (tmp_path / "r_test.route").write_text(ROUTE.replace("EXPECT", expect))
    return run_paths([tmp_path], default_registry()).outcomes[0]


def test_a_recorded_value_is_expected_an_amount_as_a_decimal(tmp_path: Path) -> None:
    out = _run(tmp_path, 'record.kept.policy = "P1"  record.kept.premium = -12.5')
    assert out.passed, out.failures


def test_a_record_the_deal_did_not_keep_names_the_ones_it_did(tmp_path: Path) -> None:
    out = _run(tmp_path, "record.bordereau.premium = -12.50")
    assert not out.passed
    text = "\n".join(out.failures)
    assert "field `record.bordereau.premium`: expected -12.50" in text, text
    assert "expect deal PAYOUT: the deal kept the records kept (policy, premium)" in text, text
    out = _run(tmp_path, "record.kept.premium = -12.49")
    assert "field `record.kept.premium`: expected -12.49, got -12.50" in "\n".join(out.failures)


def test_check_refuses_another_dotted_deal_field(tmp_path: Path) -> None:
    (tmp_path / "r_test.route").write_text(ROUTE.replace("EXPECT", "record.kept = 1"))
    res = compile_paths([tmp_path / "r_test.route"], default_registry())
    assert any(d.code == "E096" for d in res.diagnostics), res.diagnostics
