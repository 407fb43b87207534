"""`bsp test`: the shipped route tests pass; failures name the place and say what differed;
coverage lists what no test reached; JUnit XML for CI."""
from __future__ import annotations

import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import typer
from typer.testing import CliRunner

from engine.commands import routetest
from engine.registry import default_registry
from engine.routetest.runner import run_paths

REPO = Path(__file__).resolve().parents[2]
ROUTES = REPO / "routes"
BILL = ROUTES / "bill_payment"


def cli(*args: str):
    app = typer.Typer()
    routetest.register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing to a single command
        pass

    return CliRunner().invoke(app, ["test", *args])


def test_bsp_test_routes_passes_and_writes_junit_with_coverage(tmp_path):
    # the one run of `bsp test routes/` through the command (all services' tests, ~5 s): it also checks
    # what tests/services/test_route_tests.py's command test checked (full coverage shown, 0 failed)
    junit = tmp_path / "junit.xml"
    res = cli(str(ROUTES), "--junit", str(junit))
    assert res.exit_code == 0, res.output
    assert "0 failed" in res.output
    assert not [line for line in res.output.splitlines() if line.startswith("FAIL")], res.output
    assert "routes, steps and branches reached" in res.output
    assert "coverage:" in res.output and "(100%)" in res.output      # every service reached, as shown
    root = ET.parse(junit).getroot()
    bill = next(s for s in root.iter("testsuite") if s.get("name").endswith("bill_payment"))
    props = {p.get("name"): p.get("value") for p in bill.iter("property")}
    reached, total = map(int, props["coverage"].split("/"))
    assert reached == total > 20 and props["coverage.unreached"] == "0", bill.find("system-out").text
    assert int(root.get("tests")) >= 11 and root.get("failures") == "0"
    names = {c.get("name") for c in root.iter("testcase")}
    assert {"pays a known biller", "rejects an unknown biller without calling it",
            "a refusing biller fails the deal"} <= names


def _copy_bill(tmp_path: Path) -> Path:
    d = tmp_path / "bill"
    d.mkdir()
    for name in ("bill_payment.route", "billers.csv"):
        shutil.copy(BILL / name, d / name)
    return d


def test_a_wrong_expectation_fails_with_its_place_and_both_values(tmp_path):
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "wrong code" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers { status = "OK"  confirmation = "C1" }
    expect reply { resp_code = "99" }
    expect call biller { amount = 6.00 }
    expect deal BILL_PAYMENT { status = "failed" }
}
''')
    junit = tmp_path / "j.xml"
    res = cli(str(d), "--junit", str(junit))
    assert res.exit_code == 1, res.output
    out = res.output
    assert "FAIL  wrong code" in out
    assert 't_test.route:8:20: expect reply: field `resp_code`: expected "99", got "00"' in out
    assert "t_test.route:9:26: expect call biller: field `amount`: expected 6.00, got 5.00" in out
    assert 't_test.route:10:32: expect deal BILL_PAYMENT: field `status`: expected "failed", got "committed"' in out
    assert "none of the test's" not in out        # one request, one deal: the message is the deal's own
    # coverage: only the good path was taken
    assert "not reached by any test:" in out and 'rule rejects with "12" (unknown biller)' in out
    assert "bill_payment: call post fails" in out
    fail = ET.parse(junit).getroot().find(".//failure")
    assert fail is not None and "resp_code" in fail.get("message")


def test_a_failure_hidden_by_an_error_reply_names_the_deals_reason(tmp_path):
    """The route answers "96" from its `on error` handler: the failing test says why the deal failed."""
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "garbage from the biller" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers { status = "OK"  confirmation = "C-0123456789ABCDEFGHIJ" }
    expect reply { resp_code = "00" }
}
test "expects the failure" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "2"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers { status = "OK"  confirmation = "C-0123456789ABCDEFGHIJ" }
    expect reply { resp_code = "96" }
}
''')
    by = {o.name: o for o in run_paths([d], default_registry()).outcomes}
    failures = by["garbage from the biller"].failures
    assert failures[0].endswith('expect reply: field `resp_code`: expected "00", got "96"')
    assert len(failures) == 2 and "t_test.route:2:1: note: the deal failed (code 96): " in failures[1]
    assert "biller_ref" in failures[1] and "16" in failures[1], failures[1]
    assert by["expects the failure"].passed, by["expects the failure"].failures     # a passing test has no note


def test_an_expression_that_fails_gives_its_own_message_as_the_reason(tmp_path):
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "unknown biller row" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers { status = "OK"  confirmation = "C1" }
    expect reply { resp_code = "00" }
}
''')
    route = (d / "bill_payment.route").read_text()
    (d / "bill_payment.route").write_text(route.replace("billers[msg.biller_id].name", "billers[\"NOPE\"].name", 1))
    (failure, note) = {o.name: o for o in run_paths([d], default_registry()).outcomes}["unknown biller row"].failures
    assert "note: the deal failed (code 96): " in note and "NOPE" in note
    assert "EvalError" not in note and "Error:" not in note, note


def test_unscripted_call_and_unused_answer_are_reported(tmp_path):
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "forgot the biller" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    expect reply { resp_code = "91" }
}
test "answers too many" {
    given mainframe sends BillPayReq {
        txn_code = "BQ01"  trace_no = "2"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers { status = "OK" }
}
''')
    result = run_paths([d], default_registry())
    by = {o.name: o for o in result.outcomes}
    assert not by["forgot the biller"].passed
    assert "the route called biller (call #1) but the test gives no answer" in by["forgot the biller"].failures[0]
    assert not by["answers too many"].passed
    assert "t_test.route:14:5: given biller answers ...: never used" in by["answers too many"].failures[0]


def test_timeout_and_delay_use_virtual_time(tmp_path):
    """`answers timeout` waits for the channel's 3s timeout and a 5s delay outlasts it, in virtual time."""
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "too slow" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers { status = "OK"  confirmation = "late" } delay 5s
    expect reply { resp_code = "68" }
    expect deal BILL_PAYMENT { status = "failed"  reason = "no reply" }
}
''')
    result = run_paths([d], default_registry())
    (o,) = result.outcomes
    assert o.passed, o.failures
    assert o.seconds < 2.0


def test_configurations_without_tests_are_not_compiled(tmp_path):
    (tmp_path / "broken.route").write_text("this is not a route file\n")
    result = run_paths([tmp_path], default_registry())
    assert result.outcomes == [] and result.configurations == 0
    res = cli(str(tmp_path))
    assert res.exit_code == 1 and "no route tests found" in res.output


def test_a_test_file_that_does_not_compile_is_an_error(tmp_path):
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('use "bill_payment.route"\ntest "x" {\n    given mainframe sends Nope { }\n}\n')
    res = cli(str(d))
    assert res.exit_code == 1
    assert "t_test.route:3:27: error[E020]: unknown format `Nope`" in res.output
    assert res.output.rstrip().endswith("1 error, 0 warnings: the route tests did not run"), res.output
    missing = cli(str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "nowhere: no such file or directory" in missing.output


def test_places_below_the_working_folder_are_shown_relative(tmp_path, monkeypatch):
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "wrong code" {
    given mainframe sends BillPayReq {
        txn_code = "BQ01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    expect reply { resp_code = "99" }
}
''')
    monkeypatch.chdir(tmp_path)
    res = cli("bill", "--no-coverage")
    assert res.exit_code == 1
    assert "FAIL  wrong code  (bill/t_test.route:2:1)" in res.output
    assert "      bill/t_test.route:7:20: expect reply: field `resp_code`" in res.output
    assert str(tmp_path) not in res.output


def test_coverage_and_the_places_a_help_names_are_shown_relative_too(tmp_path, monkeypatch):
    """The unreached list, and a diagnostic's help naming another place, as the PASS/FAIL lines name theirs."""
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "pays" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers BillerAck { status = "OK"  confirmation = "C-1" }
    expect reply { resp_code = "00" }
}
''')
    monkeypatch.chdir(tmp_path)
    res = cli("bill")
    assert res.exit_code == 0, res.output
    assert "not reached by any test:\n  bill/bill_payment.route:" in res.output
    assert str(tmp_path) not in res.output
    (d / "t_test.route").write_text('use "bill_payment.route"\nformat BillerAck = json\n'
                                    'test "t" {\n    expect no reply\n}\n')
    res = cli("bill")
    assert res.exit_code == 1
    assert "bill/t_test.route:2:8: error[E022]" in res.output
    assert "help: first declared as a format at bill/bill_payment.route:" in res.output, res.output
    assert str(tmp_path) not in res.output


BRANCHY = '''
format Req = json
format Rsp = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route small {
    receive from front as Req when msg.kind == "S"
    let label = if msg.amount > 100 then "big" else "small"
    reply Rsp { label = label }
}
route large {
    receive from front as Req when msg.kind == "L"
    reply Rsp { label = if msg.vip then "vip" else "plain" }
}
'''


def _branchy(tmp_path: Path, tests: str) -> Path:
    d = tmp_path / "branchy"
    d.mkdir()
    (d / "main.route").write_text(BRANCHY)
    (d / "main_test.route").write_text('use "main.route"\n' + tests)
    return d


def test_coverage_reports_unreached_if_arms_and_when_outcomes_with_their_place(tmp_path):
    d = _branchy(tmp_path, '''
test "a small one" {
    given front sends { kind = "S"  amount = 5 }
    expect reply { label = "small" }
}
''')
    junit = tmp_path / "j.xml"
    res = cli(str(d), "--junit", str(junit))
    assert res.exit_code == 0, res.output
    main = str(d / "main.route")
    missed = res.output.split("not reached by any test:")[1]
    # the `then` arm of the `let` (line 7), route small's `when` false, route large entirely, both its arms
    assert f"{main}:7:42: route small: `if` at 7:17 takes its `then` branch" in missed
    assert "`if` at 7:17 takes its `else` branch" not in missed
    assert f"{main}:6:36: route small: `when` is false" in missed
    assert "route small: `when` is true" not in missed
    assert f"{main}:11:36: route large: `when` is true" in missed
    assert f"{main}:11:36: route large: `when` is false" in missed
    assert f"{main}:12:41: route large: `if` at 12:25 takes its `then` branch" in missed
    assert f"{main}:12:52: route large: `if` at 12:25 takes its `else` branch" in missed
    suite = ET.parse(junit).getroot().find("testsuite")
    out = suite.find("system-out").text
    assert f"{main}:7:42: route small: `if` at 7:17 takes its `then` branch" in out
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["coverage.unreached"] == str(missed.count(main))


def test_coverage_reaches_100_percent_when_every_branch_is_taken(tmp_path):
    d = _branchy(tmp_path, '''
test "small" {
    given front sends { kind = "S"  amount = 5 }
    expect reply { label = "small" }
}
test "small but big" {
    given front sends { kind = "S"  amount = 500 }
    expect reply { label = "big" }
}
test "large vip" {
    given front sends { kind = "L"  vip = true }
    expect reply { label = "vip" }
}
test "large plain" {
    given front sends { kind = "L"  vip = false }
    expect reply { label = "plain" }
}
test "neither" {
    given front sends { kind = "X" }
    expect deal UNROUTED { status = "rejected" }
}
''')
    result = run_paths([d], default_registry())
    assert all(o.passed for o in result.outcomes), [o.failures for o in result.outcomes]
    assert result.coverage.missed == [], result.coverage.text()
    # 2 routes, 3 steps (let, reply, reply), 2 x 2 `when` outcomes, 2 x 2 `if` arms
    assert len(result.coverage.items) == 13, result.coverage.text()


def test_dead_letter_and_contains_expectations_fail_with_their_place(tmp_path):
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "paid, so no dead letter" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers { status = "OK"  confirmation = "C1" }
    expect reply { message ~ "NORTHERN"  biller_ref ~ "C9" }
    expect dead letter { reason ~ "anything" }
}
test "rejected, with the wrong kind" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "2"  biller_id = "ZZ9999"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    expect dead letter { error_kind = "timeout"  reason ~ "unknown biller" }
    expect deal bill_payment { reason ~ "over the limit" }
}
''')
    result = run_paths([d], default_registry())
    by = {o.name: o.failures for o in result.outcomes}
    f = by["paid, so no dead letter"]
    assert len(f) == 2, f
    assert 't_test.route:8:42: expect reply: field `biller_ref`: expected "C9" (within the text), got "C1"' in f[0]
    assert "t_test.route:9:5: expect dead letter: no dead letter was written" in f[1]
    f = by["rejected, with the wrong kind"]
    assert len(f) == 2, f
    assert 't_test.route:16:26: expect dead letter: field `error_kind`: expected "timeout", got "rejected"' in f[0]
    assert 't_test.route:17:32: expect deal bill_payment: field `reason`: expected "over the limit" (within the ' \
           'text), got "rejected: unknown biller' in f[1]


def test_a_scripted_answer_that_cannot_be_built_fails_the_test_not_the_run(tmp_path):
    d = _copy_bill(tmp_path)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "bad scripted answer" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "1"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }
    given biller answers { status = "OK"  confirmation = billers["NO-SUCH"].name }
    expect reply { resp_code = "00" }
}
''')
    result = run_paths([d], default_registry())
    (outcome,) = [o for o in result.outcomes if o.name == "bad scripted answer"]
    assert not outcome.passed
    assert any("t_test.route:7:5: given biller answers" in f and "cannot encode the scripted answer" in f
               for f in outcome.failures), outcome.failures
