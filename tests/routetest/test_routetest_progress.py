"""`bsp test` prints each result as its test finishes (also when stdout is a pipe, as in CI), and a
configuration that does not compile is reported (file:line:col, an error in the summary, the JUnit report
and the exit code) while the other configurations' tests still run."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as ET

from typer.testing import CliRunner

from engine.cli import app

REPO = Path(__file__).resolve().parents[2]
BILL = REPO / "routes" / "bill_payment"
BSP = Path(sys.executable).parent / "bsp"
N = len(re.findall(r'^test "', (BILL / "bill_payment_test.route").read_text(), re.M))   # tests of one copy


def _service(root: Path, name: str) -> Path:
    """A copy of the bill_payment service (its routes, table and shipped tests) as routes/NAME."""
    d = root / name
    shutil.copytree(BILL, d)
    return d


def test_each_result_is_printed_as_its_test_finishes_on_a_pipe(tmp_path):
    for name in ("a_first", "b_second", "c_third", "d_fourth"):
        _service(tmp_path, name)
    arrived = []
    with subprocess.Popen([str(BSP), "test", ".", "--no-coverage"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
                          env={**os.environ, "NO_COLOR": "1"}) as proc:
        for line in proc.stdout:
            if line.startswith(("PASS", "FAIL")):
                arrived.append((time.monotonic(), line))
        assert proc.wait(timeout=120) == 0
    assert len(arrived) == 4 * N
    first_of = {name: next(t for t, line in arrived if f"({name}/" in line)
                for name in ("a_first", "d_fourth")}
    # the first service's lines came while the others were still compiling and running, not in one burst
    # at the end (three more configurations take well over 0.3 s)
    assert first_of["d_fourth"] - first_of["a_first"] > 0.3, arrived


def test_a_folder_that_does_not_compile_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    _service(tmp_path, "good")
    bad = _service(tmp_path, "bad") / "bill_payment.route"
    bad.write_text(bad.read_text().replace("msg.amount > 0 ", "msg.amont > 0 "))
    _service(tmp_path, "zlast")
    monkeypatch.chdir(tmp_path)

    res = CliRunner().invoke(app, ["test", ".", "--junit", "out/junit.xml"])
    assert res.exit_code == 1, res.output
    out = res.output
    assert "bad/bill_payment.route:56:9: error[E060]: format `BillPayReq` has no field `amont`" in out
    assert "bad: 1 error, 0 warnings: the route tests did not run" in out
    assert out.count("PASS  ") == 2 * N and "FAIL" not in out       # good/ and zlast/ ran, all of their tests
    assert (f"{2 * N} passed, 0 failed, {2 * N} test(s) in 2 configuration(s); 1 configuration does not compile "
            "(error: its tests did not run): bad") in out
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (str(2 * N + 1), "0", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["bad"].get("errors") == "1"
    (err,) = suites["bad"].iter("error")
    assert err.get("message") == "bad/bill_payment.route:56:9: error[E060]: format `BillPayReq` has no field `amont`"
    assert suites["good"].get("tests") == str(N) and suites["good"].get("errors") == "0"


def test_a_shared_file_that_does_not_compile_is_shown_once(tmp_path, monkeypatch):
    """routes/common is used by every service: its error is each service's, shown in full once."""
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "shared.route").write_text("format Shared = json classify [\"x:nope\"]\n")
    for name in ("one", "two"):
        d = _service(tmp_path, name)
        route = d / "bill_payment.route"
        route.write_text('use "../common/shared.route"\n' + route.read_text())
    monkeypatch.chdir(tmp_path)

    res = CliRunner().invoke(app, ["test", "."])
    assert res.exit_code == 1, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("common/shared.route:1:22:")]
    assert len(lines) == 2 and lines[1].endswith("(shown above)"), res.output
    assert "one: 1 error, 1 warning: the route tests did not run" in res.output
    assert "two: 1 error, 1 warning: the route tests did not run" in res.output


def test_junit_testsuites_have_the_counts_and_times_ci_parsers_expect(tmp_path, monkeypatch):
    d = _service(tmp_path, "bill")
    test = d / "bill_payment_test.route"
    test.write_text(test.read_text().replace('resp_code = "00"', 'resp_code = "99"', 1))
    monkeypatch.chdir(tmp_path)

    res = CliRunner().invoke(app, ["test", "bill", "--junit", "junit.xml"])
    assert res.exit_code == 1, res.output
    root = ET.parse(tmp_path / "junit.xml").getroot()
    (suite,) = root.iter("testsuite")
    for el in (root, suite):
        assert {k: el.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
            "tests": str(N), "failures": "1", "errors": "0", "skipped": "0"}, el.attrib
        assert float(el.get("time")) > 0
    assert all(float(c.get("time")) >= 0 for c in suite.iter("testcase"))
    assert abs(float(suite.get("time")) - sum(float(c.get("time")) for c in suite.iter("testcase"))) < 0.01
