"""`bsp replay --junit FILE`: the replay report as JUnit XML for a CI job's test view (as `bsp test --junit`):
a testcase per place that differs, a failure when unexpected (its count, example and differences, values
masked as in the other reports), passed when a profile rule expected it; a `replay` testcase with the
summary.  A recorded bill payment session (real loopback sockets, replaykit.py)."""
from __future__ import annotations

import shutil
from xml.etree import ElementTree as ET

import pytest

from replaykit import config_copy, record_session, replay_cli as cli


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("junit")
    config = config_copy(tmp / "config")
    return record_session(tmp, config, 40), config


def test_unexpected_and_expected_places_as_junit_testcases(session, tmp_path):
    capture, config = session
    cand = tmp_path / "cand"
    shutil.copytree(config, cand)
    p = cand / "bill_payment.route"
    p.write_text(p.read_text().replace('"paid " + upper(', '"paid " + lower(')
                 .replace("else 0.50", "else 0.75"))
    prof = tmp_path / "cr.yaml"
    prof.write_text('expect:\n  - {channel: mainframe, what: reply, field: message, recorded: "fee 0.50", '
                    'produced: "fee 0.75", reason: CR-1 fee}\n')
    out = tmp_path / "replay.xml"
    res = cli(str(capture), "--config", str(cand), "--profile", str(prof), "--junit", str(out))
    assert res.exit_code == 1, res.output
    assert f"report: {out}" in res.output
    root = ET.parse(out).getroot()
    suite = root.find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert "replay" in cases and cases["replay"].find("failure") is None
    paid = cases["reply mainframe message"]
    fail = paid.find("failure")
    assert fail is not None and "unexpected difference(s); e.g. exchange" in fail.get("message")
    assert '"paid ' in fail.text and "ACC" not in ET.tostring(root, encoding="unicode")   # accounts never in clear
    expected = [c for c in suite.iter("testcase") if c.find("system-out") is not None
                and "expected by" in (c.find("system-out").text or "")]
    assert expected and expected[0].find("failure") is None and "CR-1 fee" in expected[0].find("system-out").text
    assert suite.get("failures") == "1" and root.get("failures") == "1"
    assert suite.get("tests") == str(len(cases)) and suite.get("errors") == "0"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["result"] == "fail" and props["profile"] == str(prof)


def test_a_pass_is_one_passing_testcase_and_junit_is_refused_with_to_tests(session, tmp_path):
    capture, config = session
    out = tmp_path / "replay.xml"
    res = cli(str(capture), "--config", str(config), "--junit", str(out))
    assert res.exit_code == 0, res.output
    root = ET.parse(out).getroot()
    assert root.get("tests") == "1" and root.get("failures") == "0" and root.get("errors") == "0"
    res = cli(str(capture), "--config", str(config), "--to-tests", str(tmp_path / "t"), "--junit", str(out))
    assert res.exit_code == 2 and "--junit: --to-tests writes route tests" in res.output
    res = cli(str(capture), "--config", str(config), "--junit", str(tmp_path / "no" / "r.xml"))
    assert res.exit_code == 2 and "does not exist" in res.output
