"""Route tests over http channels (tests/routetest/http_api): the request line of an http listen
channel (method, path, params, query, headers) and the status and headers of http call answers."""
from __future__ import annotations

import shutil
from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

HERE = Path(__file__).resolve().parent
API = HERE / "http_api"


def test_the_http_route_tests_pass_with_full_coverage():
    result = run_paths([API], default_registry())
    assert len(result.outcomes) == 7
    assert all(o.passed for o in result.outcomes), [f for o in result.outcomes for f in o.failures]
    assert result.coverage.missed == [], result.coverage.text()


def _copy(tmp_path: Path, tests: str) -> Path:
    d = tmp_path / "api"
    d.mkdir()
    shutil.copy(API / "payments_api.route", d)
    (d / "t_test.route").write_text('use "payments_api.route"\n' + tests)
    return d


def test_wrong_status_and_missing_path_parameter_fail_with_their_place(tmp_path):
    d = _copy(tmp_path, '''test "status" {
    given api sends PayReq { amount = 0 } http { path = "/payments/X"  headers["x-channel"] = "web" }
    expect reply 200 { code = "13" }
}
test "no id" {
    given api sends PayReq { amount = 1 } http { headers["x-channel"] = "web" }
}
test "refused answer" {
    given api sends PayReq { amount = 1 } http { params.id = "Z"  headers["x-channel"] = "web" }
    given biller answers 404 BillerAck { status = "OK" }
    expect reply 200 { }
    expect deal PAYMENT { status = "failed"  reason ~ "answered HTTP 404: {" }
}
''')
    by = {o.name: o.failures for o in run_paths([d], default_registry()).outcomes}
    f, note = by["status"]                          # the rejected deal's reason follows the failure
    assert f.startswith(f"{d / 't_test.route'}:4:5: expect reply 200: the HTTP status answered is 422: ")
    # the body as text, as the caller reads it, not Python's bytes (b'{...}')
    body = f.split("the HTTP status answered is 422: ", 1)[1]
    assert body.startswith("{") and "b'" not in f, f
    assert note.startswith(f"{d / 't_test.route'}:2:1: note: the deal rejected (code 13): ")
    (f,) = by["no id"]
    assert f == (f"{d / 't_test.route'}:7:5: given api sends: http: the channel's path /payments/{{id}} has "
                 f"parameter(s) id: set params.id or path = \"...\"")
    f, *_ = by["refused answer"]
    assert "t_test.route:12:5: expect reply 200: the HTTP status answered is 502: " in f


def test_http_details_on_channels_that_are_not_http_are_refused(tmp_path):
    d = tmp_path / "bill"
    d.mkdir()
    bill = HERE.parents[1] / "routes" / "bill_payment"
    for name in ("bill_payment.route", "billers.csv"):
        shutil.copy(bill / name, d)
    (d / "t_test.route").write_text('''use "bill_payment.route"
test "t" {
    given mainframe sends BillPayReq { txn_code = "BQ01" } http { path = "/x" }
    given biller answers BillerAck { status = "OK" } headers { location = "/y" }
    expect reply 200 { }
}
''')
    res = compile_paths(sorted(d.glob("*.route")), default_registry())
    got = {(x.code, x.pos.line, x.pos.col) for x in res.diagnostics}
    assert ("E099", 3, 67) in got and ("E099", 4, 64) in got and ("E095", 5, 18) in got, got
    e099 = next(x for x in res.diagnostics if x.code == "E099")
    assert "channel `mainframe` (tcp listen) is not an http listen channel" in e099.message


LOOKUP = '''
format Req  = json
format Acct = json
format Ack  = json

channel teller = memory

channel core_api = http call {
    url           = "http://127.0.0.1:1/accounts"
    answer_status = ["2xx", "404"]
}

route account_lookup {
    receive from teller as Req
    deal LOOKUP { ref = msg.account  amount = 0  currency = "EUR" }
    call acct = core_api as Req reply Acct { id = msg.account }
    validate {
        http_status(acct) != 404 else reject "14" "no such account"
    }
    reply Ack { code = "00"  status = http_status(acct)  where = http_header(acct, "Location") }
    on error reply Ack { code = error.code }
}

test "found" {
    given teller sends Req { account = "A1" }
    given core_api answers 200 Acct { name = "Ann" } headers { location = "/accounts/A1" }
    expect reply { code = "00"  status = 200  where = "/accounts/A1" }
}
test "not found is an answer" {
    given teller sends Req { account = "A2" }
    given core_api answers 404 Acct { title = "Not Found" }
    expect reply { code = "14" }
    expect deal LOOKUP { status = "rejected"  reason ~ "no such account" }
}
test "server error is refused" {
    given teller sends Req { account = "A3" }
    given core_api answers 500 Acct { title = "boom" }
    expect reply { code = "05" }
    expect deal LOOKUP { status = "failed"  reason ~ "answered HTTP 500" }
}
'''


def test_answer_status_and_http_status_in_route_tests(tmp_path):
    (tmp_path / "lookup.route").write_text(LOOKUP)
    result = run_paths([tmp_path], default_registry())
    assert [o.name for o in result.outcomes] == ["found", "not found is an answer", "server error is refused"]
    assert all(o.passed for o in result.outcomes), [f for o in result.outcomes for f in o.failures]
