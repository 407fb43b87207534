"""`bsp replay`: exit codes for CI, profile rules, JSON and HTML reports, --to-tests, masking."""
from __future__ import annotations

import json

import duckdb
import pytest

from replaykit import config_copy, record_session, replay_cli as cli
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.profile import ProfileError, load_profile
from engine.replay.replayer import PaceError, RecordedAnswers, parse_pace
from engine.replay.context import CallRecord, ExchangeCtx
from engine.routetest.runner import run_paths

LOWER = (lambda t: t.replace('message    = "paid " + upper(', 'message    = "paid " + lower('))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    config = config_copy(tmp / "config")
    return record_session(tmp, config, 60), config


def test_exit_1_on_unexpected_differences_and_reports_written(small, tmp_path):
    capture, _ = small
    cand = config_copy(tmp_path / "cand", LOWER)
    res = cli(str(capture), "--config", str(cand), "--json", str(tmp_path / "r.json"),
              "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 1, res.output
    assert "reply mainframe    message" in res.output and "result: FAIL" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["result"] == "fail"
    assert data["summary"]["unexpected_differences"] == len(data["differences"]) > 0
    assert {d["field"] for d in data["differences"]} == {"message"}
    page = (tmp_path / "r.html").read_text()
    assert "<title>bsp replay: FAIL</title>" in page and "<code>message</code>" in page


def test_profile_expect_rule_turns_the_known_difference_into_a_pass(small, tmp_path):
    capture, _ = small
    cand = config_copy(tmp_path / "cand", LOWER)
    prof = tmp_path / "replay.yaml"
    prof.write_text("expect:\n  - channel: mainframe\n    what: reply\n    field: message\n    reason: lower case\n")
    res = cli(str(capture), "--config", str(cand), "--profile", str(prof))
    assert res.exit_code == 0, res.output
    assert "0 unexpected" in res.output and "expected by reply channel mainframe field message" in res.output
    prof.write_text("ignore:\n  - field: mess*\n")
    res = cli(str(capture), "--config", str(cand), "--profile", str(prof))
    assert res.exit_code == 0 and "0 expected" in res.output and "ignored" in res.output


def test_same_config_exits_0(small):
    capture, config = small
    res = cli(str(capture), "--config", str(config), "--pace", "x1000")
    assert res.exit_code == 0, res.output
    assert "result: PASS" in res.output
    # bill payment's biller calls carry no identity: the endpoints line says they were answered by position,
    # as the pairing line does (it used to leave that out, as if they had been matched by identity)
    endpoints = " ".join(res.output.split("virtual endpoints:", 1)[1].split("pairing:", 1)[0].split())
    assert "by correlation key (by its position in the exchange)" in endpoints, res.output
    assert "calls by position in their exchange on" in " ".join(res.output.split())


def test_bad_inputs_exit_2_with_the_reason(small, tmp_path):
    capture, config = small
    res = cli(str(tmp_path / "nope.duckdb"), "--config", str(config))
    assert res.exit_code == 2 and "no such capture file" in res.output
    res = cli(str(capture), "--config", str(config), "--pace", "slow")
    assert res.exit_code == 2 and "--pace 'slow'" in res.output
    prof = tmp_path / "p.yaml"
    prof.write_text("ignore:\n  - fild: x\n")
    res = cli(str(capture), "--config", str(config), "--profile", str(prof))
    assert res.exit_code == 2 and "p.yaml:2:5: ignore[0]: unknown key `fild`" in res.output


def test_to_tests_writes_route_tests_that_pass(small, tmp_path):
    capture, config = small
    out = tmp_path / "generated"
    res = cli(str(capture), "--config", str(config), "--to-tests", str(out))
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "a request no declared format decodes" in res.output  # malformed ones
    files = list(out.glob("*_test.route"))
    assert len(files) == 1
    result = run_paths(files, default_registry())
    assert len(result.outcomes) > 40
    assert not result.failed, result.failed[0].failures


@pytest.mark.parametrize("target", ["classified", "unclassified"])
def test_masked_capture_hides_classified_fields_and_stays_replayable(tmp_path, target):
    """The account is classified in the request; the biller's format classifies it too (as shipped) or, in
    a configuration that does not (bsp check warns, W006), the capture still masks the value it carries."""
    unclassify = (lambda t: t.replace('format BillerPost = json classify ["account:personal"]',
                                      'format BillerPost = json')) if target == "unclassified" else None
    config = config_copy(tmp_path / "config", unclassify)
    capture = record_session(tmp_path, config, 40, mask=True)
    cap = Capture(capture)
    assert cap.masked
    from dsl.load import compile_paths
    from engine.runtime.binder import Binder
    reg = default_registry()
    program = compile_paths([config / "bill_payment.route"], reg).program
    codec = Binder(program, reg).codec("BillPayReq")
    good = [ex for ex in cap.exchanges if ex.request.deal_status == "committed" and ex.calls]
    assert good
    for ex in good:
        values = codec.decode(ex.request.raw)          # still a valid BillPayReq
        assert values["account"] == "A***" and ex.request.masked == "account"
    con = duckdb.connect(str(capture), read_only=True)
    try:
        leaked = con.execute("SELECT count(*) FROM frames WHERE raw IS NOT NULL "
                             "AND contains(decode(raw), 'ACC')").fetchone()[0]
        carried = con.execute("SELECT count(*) FROM frames WHERE channel = 'biller' AND direction = 'out' "
                              "AND masked = ?", ["account" if target == "classified" else
                                                 "values of classified fields"]).fetchone()[0]
    finally:
        con.close()
    # the account travels on to the biller: masked there by its format, or as a value known to be classified
    assert leaked == 0 and carried == sum(len(ex.calls) for ex in cap.exchanges)
    res = cli(str(capture), "--config", str(config))
    assert res.exit_code == 0, res.output         # the same configuration replays with no difference


def test_pace_and_profile_parsing(tmp_path):
    assert parse_pace("fast") is None and parse_pace("original") == 1.0 and parse_pace("x10") == 10.0
    with pytest.raises(PaceError):
        parse_pace("x0")
    p = tmp_path / "p.yaml"
    p.write_text("expect:\n  - {field: a, what: replies}\n")
    with pytest.raises(ProfileError, match=r"p.yaml:2:5: expect\[0\]: what: 'replies' is not one of"):
        load_profile(p)


async def test_answers_by_key_then_by_order(small):
    capture, _ = small
    cap = Capture(capture)
    answers = RecordedAnswers(cap, None)
    with_calls = [ex for ex in cap.exchanges if ex.calls]
    first, second = with_calls[0], with_calls[1]
    # by key: the exchange's own recorded answer
    ctx = ExchangeCtx(second.exchange, "mainframe", "1", b"")
    ctx.calls.append(CallRecord("biller", 0, b"{}"))
    assert await answers("biller", ctx.calls[0], ctx) == second.calls[0].reply.raw
    # an exchange the recording does not know: the next unused answer, in recording order
    other = ExchangeCtx(10**9, "mainframe", "1", b"")
    other.calls.append(CallRecord("biller", 0, b"{}"))
    assert await answers("biller", other.calls[0], other) == first.calls[0].reply.raw
    assert answers.by_order == 1
