"""`bsp test --junit FILE` on route files that do not compile writes FILE too: one testcase with an `error`
naming each diagnostic (file:line:col, code, message), so CI's test view says why no test ran instead of
finding no report.  Exit 1 as before."""
from __future__ import annotations

import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

from typer.testing import CliRunner

from engine.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_a_configuration_that_does_not_compile_still_writes_the_junit_report(tmp_path, monkeypatch):
    shutil.copytree(REPO / "routes" / "bill_payment", tmp_path / "bill_payment")
    route = tmp_path / "bill_payment" / "bill_payment.route"
    route.write_text(route.read_text().replace("msg.amount > 0 ", "msg.amont > 0 "))
    monkeypatch.chdir(tmp_path)

    res = CliRunner().invoke(app, ["test", "bill_payment", "--junit", "build/route-tests.xml"])
    assert res.exit_code == 1, res.output
    root = ET.parse(tmp_path / "build" / "route-tests.xml").getroot()
    assert (root.get("tests"), root.get("errors")) == ("1", "1")
    (case,) = root.iter("testcase")
    err = case.find("error")
    assert err is not None and err.get("type") == "compile"
    assert err.get("message") == "bill_payment/bill_payment.route:56:9: error[E060]: format `BillPayReq` has no field `amont`"
    assert "did you mean `amount`" in err.text and err.text.endswith("the route tests did not run")
