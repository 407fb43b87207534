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
    (f,) = by["status"]
    assert f.startswith(f"{d / 't_test.route'}:4:5: expect reply 200: the HTTP status answered is 422: ")
    (f,) = by["no id"]
    assert f == (f"{d / 't_test.route'}:7:5: given api sends: http: the channel's path /payments/{{id}} has "
                 f"parameter(s) id: set params.id or path = \"...\"")
    (f,) = by["refused answer"]
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
