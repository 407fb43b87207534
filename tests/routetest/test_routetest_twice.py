"""`given ... sends ... twice`: a route test sends its request again (a repeat) once the first exchange
has finished; the repeat's reply must be the first's byte for byte, `expect reply` holds for each reply,
`expect deal` for some deal of the test, `expect call X ... once` counts the calls of both exchanges, and
the repeat takes the next scripted answer (docs/testing.md, docs/transactions.md#idempotency)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from dsl.load import compile_paths
from dsl.parser import parse
from engine.registry import default_registry
from engine.routetest.runner import run_paths

BILL = Path(__file__).resolve().parents[2] / "routes" / "bill_payment"

REPEAT = '''use "bill_payment.route"
test "repeat" {
    given mainframe sends BillPayReq {
        txn_code = "BP01"  trace_no = "000000000077"  biller_id = "EL0001"  account = "A"  amount = 5.00
        currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    } twice
    given biller answers { status = "OK"  confirmation = "C-1" }
ANSWERS    expect call biller { reference = "000000000077" } COUNT
    expect reply { resp_code = "00"  biller_ref = "C-1" }
    expect deal BILL_PAYMENT { status = "committed" }
    expect deal BILL_PAYMENT { status = "duplicate"  reason = "original answer repeated" }
}
'''


def _run(tmp_path: Path, *, keyed: bool = True, answers: str = "", count: str = "once", dup: bool = True):
    d = tmp_path / "bill"
    d.mkdir(parents=True)
    shutil.copy(BILL / "billers.csv", d / "billers.csv")
    route = (BILL / "bill_payment.route").read_text()
    if not keyed:
        route, n = re.subn(r"\n\s*key\s*=[^\n]*", "", route)
        assert n == 1
    (d / "bill_payment.route").write_text(route)
    test = REPEAT.replace("ANSWERS", answers).replace("COUNT", count)
    if not dup:
        test = test.replace('    expect deal BILL_PAYMENT { status = "duplicate"  reason = "original answer repeated" }\n', "")
    (d / "t_test.route").write_text(test)
    res = run_paths([d], default_registry())
    assert len(res.outcomes) == 1
    return res.outcomes[0]


def test_a_keyed_repeat_passes(tmp_path):
    out = _run(tmp_path)
    assert out.passed, out.failures


def test_without_the_key_the_repeat_runs_again_and_the_test_says_how(tmp_path):
    out = _run(tmp_path, keyed=False)
    text = "\n".join(out.failures)
    assert not out.passed
    # the repeat called the biller and the test scripted one answer only
    assert ("t_test.route:3:5: the repeat: the route called biller (call #1) but the test gives no answer "
            "for it") in text, text
    assert ("t_test.route:8:5: expect call biller once: biller was called twice (1 by the request, 1 by the "
            "repeat)") in text, text
    # the repeat's deal failed: its reply is not the first's
    assert "t_test.route:3:5: twice: the repeat's reply differs from the first's from byte" in text, text
    assert "expect reply (the repeat): field `resp_code`: expected \"00\"" in text, text
    assert ("t_test.route:11:5: expect deal BILL_PAYMENT: none of the test's 2 deals has these values; they are: "
            "BILL_PAYMENT committed, BILL_PAYMENT failed") in text, text


def test_a_repeat_answered_anew_differs_field_by_field(tmp_path):
    out = _run(tmp_path, keyed=False, count="twice",
               answers='    given biller answers { status = "OK"  confirmation = "C-2" }\n')
    text = "\n".join(out.failures)
    assert "twice: the repeat's reply differs from the first's" in text, text
    assert 'fields that differ: `biller_ref` "C-1" then "C-2"' in text, text
    assert "the repeat: the route called" not in text and "expect call" not in text, text


def test_a_repeat_must_not_use_an_answer(tmp_path):
    out = _run(tmp_path, answers='    given biller answers { status = "OK"  confirmation = "C-2" }\n')
    text = "\n".join(out.failures)
    assert not out.passed
    assert ("t_test.route:8:5: given biller answers ...: never used (the route made fewer calls to biller)"
            in text), text


def test_call_counts_count_both_exchanges(tmp_path):
    out = _run(tmp_path, count="twice")
    assert len(out.failures) == 1, out.failures
    assert out.failures[0].endswith("t_test.route:8:5: expect call biller twice: biller was called once "
                                    "(1 by the request, 0 by the repeat)"), out.failures


def test_each_counted_call_has_the_fields(tmp_path):
    out = _run(tmp_path, keyed=False, count="twice", dup=False,
               answers='    given biller answers { status = "OK"  confirmation = "C-1" }\n')
    assert out.passed, out.failures      # the keyless route called twice, each with the reference, same reply
    out2 = _run(tmp_path / "2", keyed=False, count="3 times", dup=False,
                answers='    given biller answers { status = "OK"  confirmation = "C-1" }\n')
    assert any("expect call biller 3 times: biller was called twice" in f for f in out2.failures), out2.failures


def _diags(tmp_path: Path, test: str):
    d = tmp_path / "c"
    d.mkdir(parents=True)
    shutil.copy(BILL / "billers.csv", d / "billers.csv")
    shutil.copy(BILL / "bill_payment.route", d / "bill_payment.route")
    (d / "t_test.route").write_text('use "bill_payment.route"\n' + test)
    res = compile_paths(sorted(d.glob("*.route")), default_registry())
    return res


def test_a_repeat_sent_to_keyless_routes_is_a_warning_that_bsp_test_shows(tmp_path, capsys):
    from engine.commands.routetest import test as bsp_test
    import typer
    out = _run(tmp_path, keyed=False)
    assert not out.passed
    warned = run_paths([tmp_path / "bill"], default_registry()).warnings
    w005 = [d for d, _ in warned if d.code == "W005"]
    assert len(w005) == 1 and (w005[0].pos.line, w005[0].pos.col) == (6, 7), warned
    assert w005[0].severity == "warning" and "channel `mainframe` declares a deal key" in w005[0].message
    assert "`key = msg.ref`" in w005[0].help
    try:
        bsp_test([tmp_path / "bill"], None, False)
    except typer.Exit as exc:
        assert exc.exit_code == 1
    err = capsys.readouterr().err
    assert "t_test.route:6:7: warning[W005]: no route receiving from channel `mainframe`" in err, err
    # the keyed route: no warning
    assert not [d for d, _ in run_paths([_keyed(tmp_path / "k")], default_registry()).warnings]


def _keyed(tmp_path: Path) -> Path:
    _run(tmp_path)
    return tmp_path / "bill"


def test_two_sends_point_to_twice(tmp_path):
    res = _diags(tmp_path, '''test "two" {
    given mainframe sends BillPayReq { txn_code = "BQ01" }
    given mainframe sends BillPayReq { txn_code = "BQ01" }
}
''')
    e091 = [x for x in res.diagnostics if x.code == "E091"]
    assert len(e091) == 1 and (e091[0].pos.line, e091[0].pos.col) == (4, 5)
    assert "write `twice` after it" in e091[0].help


def test_once_without_a_block_and_keywords_as_field_names(tmp_path):
    res = _diags(tmp_path, '''test "words" {
    given mainframe sends BillPayReq { txn_code = "BQ01" } twice
    expect call biller once
}
''')
    assert res.program is not None, [(x.code, x.message) for x in res.diagnostics]
    t = res.program.tests[0]
    assert t.send.twice and t.expects[0].count == 1 and t.expects[0].fields == ()
    # `twice`, `once` and `times` stay usable as field names
    body = parse('''test "t" {
    given front sends R { twice = 1  once = 2  times = 3 } twice
    expect call back { once = 1 } 3 times
}
''', "x.route").decls[0].body
    assert [a.parts[0] for a in body[0].assigns] == ["twice", "once", "times"] and body[0].repeat is not None
    assert body[1].count.value == 3 and body[1].assigns[0].parts == ("once",)
    assert parse('test "t" {\n    given front sends R { a = 1 }\n}\n', "x.route").decls[0].body[0].repeat is None


HTTP_API = Path(__file__).resolve().parent / "http_api" / "payments_api.route"
HTTP_TEST = '''use "payments_api.route"
test "http repeat" {
    given api sends PayReq { amount = 9.00 } http { path = "/payments/P-9"  headers["x-channel"] = "web" } twice
    given biller answers BillerAck { status = "OK"  confirmation = "C-9" }
ANSWERS    expect call biller { reference = "P-9" } once
    expect reply 200 { status = "OK"  confirmation = "C-9" }
    expect deal PAYMENT { status = "duplicate"  ref = "P-9" }
}
'''


def _run_http(tmp_path: Path, *, keyed: bool, answers: str = ""):
    d = tmp_path / "api"
    d.mkdir(parents=True)
    route = HTTP_API.read_text()
    if keyed:
        route = route.replace("deal PAYMENT { ref = http.params.id ", "deal PAYMENT { key = http.params.id  "
                              "ref = http.params.id ")
        assert "key = http.params.id" in route
    (d / "payments_api.route").write_text(route)
    (d / "t_test.route").write_text(HTTP_TEST.replace("ANSWERS", answers))
    res = run_paths([d], default_registry())
    return res.outcomes[0]


def test_an_http_request_is_repeated_through_the_listen_channel(tmp_path):
    out = _run_http(tmp_path, keyed=True)
    assert out.passed, out.failures
    out = _run_http(tmp_path / "2", keyed=False, answers='    given biller answers 503 BillerAck { status = "DOWN" }\n')
    text = "\n".join(out.failures)
    assert "twice: the repeat was answered HTTP status 502, the first request 200" in text, text
    assert "expect reply 200: the repeat: the HTTP status answered is 502" in text, text
    assert "expect call biller once: biller was called twice (1 by the request, 1 by the repeat)" in text, text
