"""An expectation that cannot be evaluated is told as such, with its place and why: a route call's
`expect` that raises is not the counterpart's refusal (kind `refused`, 05) but the route's own error
(`internal`, 96); a test's `expect` whose value raises fails that test (it never stops `bsp test`)."""
from __future__ import annotations

import shutil
from pathlib import Path

from engine.registry import default_registry
from engine.routetest.runner import run_paths

BILL = Path(__file__).resolve().parents[2] / "routes" / "bill_payment"

REQUEST = '''    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "%s"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%%Y%%m%%d")
    }
    given biller answers { status = "OK"  confirmation = "C1" }
'''


def _bill(tmp_path: Path, expect: str = 'post.status == "OK"') -> Path:
    d = tmp_path / "bill"
    d.mkdir()
    shutil.copy(BILL / "billers.csv", d / "billers.csv")
    text = (BILL / "bill_payment.route").read_text(encoding="utf-8")
    assert '} expect post.status == "OK"' in text
    (d / "bill_payment.route").write_text(text.replace('} expect post.status == "OK"', "} expect " + expect),
                                          encoding="utf-8")
    return d


def _failures(d: Path) -> list[str]:
    res = run_paths([d], default_registry())
    assert res.outcomes, res.broken
    return [f for o in res.outcomes for f in o.failures]


def test_a_call_expect_that_cannot_be_evaluated_is_internal_not_refused(tmp_path):
    d = _bill(tmp_path, "number(post.status) == 1")
    (d / "t_test.route").write_text('use "bill_payment.route"\ntest "t" {\n' + REQUEST % "000000000001" + '''
    expect call biller once
    expect reply { resp_code = "96" }
    expect deal BILL_PAYMENT { status = "failed"  response_code = "96" }
    expect dead letter { error_kind = "internal"  error_code = "96" }
}
''', encoding="utf-8")
    failures = _failures(d)
    assert failures == [], failures
    # the reason (the deal's, its dead letter's) names the expect's place, says it could not be evaluated and why
    (d / "t_test.route").write_text('use "bill_payment.route"\ntest "t" {\n' + REQUEST % "000000000002" + '''
    expect deal BILL_PAYMENT { reason = "nothing like this" }
}
''', encoding="utf-8")
    res = run_paths([d], default_registry())
    text = "\n".join(f for o in res.outcomes for f in o.failures)
    line = next(i for i, x in enumerate((d / "bill_payment.route").read_text().splitlines(), 1)
                if "expect number(post.status)" in x)
    assert f"bill_payment.route:{line}:" in text, text
    assert "its expect at " in text and "could not be evaluated on the answer of biller" in text, text
    assert "'OK' is not a number" in text and "fix the expression" in text, text
    assert "refused" not in text, text


def test_a_test_expect_whose_value_raises_fails_that_test_with_its_place(tmp_path):
    d = _bill(tmp_path)
    (d / "t_test.route").write_text('use "bill_payment.route"\ntest "bad value" {\n' + REQUEST % "000000000003" + '''
    expect reply { resp_code = "00"  message = billers["NOPE"].name }
    expect call biller { amount = number("x") }
    expect deal BILL_PAYMENT { status = "committed" }
}

test "the next test still runs" {
''' + REQUEST % "000000000004" + '''
    expect reply { resp_code = "00" }
}
''', encoding="utf-8")
    res = run_paths([d], default_registry())
    assert [(o.name, o.passed) for o in res.outcomes] == [("bad value", False), ("the next test still runs", True)]
    f = res.outcomes[0].failures
    assert len(f) == 2, f
    assert "t_test.route:9:38: expect reply: field `message`: the expected value could not be evaluated: " in f[0]
    assert "table billers (billers.csv) has no row with biller_id = 'NOPE' (at " in f[0]
    assert "t_test.route:10:26: expect call biller: field `amount`: the expected value could not be evaluated: " in f[1]
    assert "not a number" in f[1] and "fix the expression in the test" in f[1]


def test_the_repeat_of_such_a_deal_does_not_call_it_a_refusal(tmp_path):
    d = _bill(tmp_path, "number(post.status) == 1")
    (d / "t_test.route").write_text('use "bill_payment.route"\ntest "t" {\n'
                                    + REQUEST.replace("    }\n", "    } twice\n", 1) % "000000000005" + '''
    expect call biller once
    expect deal BILL_PAYMENT { status = "duplicate"  reason = "was answered and its answer could not be used (internal)" }
}
''', encoding="utf-8")
    failures = _failures(d)
    assert failures == [], failures


def test_http_values_of_a_test_that_cannot_be_evaluated_fail_that_test(tmp_path):
    d = tmp_path / "api"
    d.mkdir()
    shutil.copy(Path(__file__).parent / "http_api" / "payments_api.route", d / "payments_api.route")
    (d / "t_test.route").write_text('''use "payments_api.route"
test "bad header" {
    given api sends PayReq { amount = 120.50 } http { params.id = "P-1"  headers["x-channel"] = "web" }
    given biller answers 201 BillerAck { status = "OK"  confirmation = "C-1" } headers { location = number("x") }
}
test "bad request line" {
    given api sends PayReq { amount = 120.50 } http { params.id = number("y") }
}
test "next" {
    given api sends PayReq { amount = 120.50 } http { params.id = "P-3"  headers["x-channel"] = "web" }
    given biller answers 201 BillerAck { status = "OK"  confirmation = "C-1" }
    expect reply { status = "OK" }
}
''', encoding="utf-8")
    res = run_paths([d], default_registry())
    assert [(o.name, o.passed) for o in res.outcomes] == [
        ("bad header", False), ("bad request line", False), ("next", True)], [o.failures for o in res.outcomes]
    header, line = res.outcomes[0].failures[0], res.outcomes[1].failures[0]
    assert "t_test.route:4:5: given biller answers ... headers { ... }: a value could not be evaluated: " in header
    assert "t_test.route:4:101: number: 'x' is not a number" in header
    assert "t_test.route:7:5: given api sends ... http { ... }: a value could not be evaluated: " in line
    assert "t_test.route:7:67: number: 'y' is not a number" in line
