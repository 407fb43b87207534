"""A replay compares the ledger's deal, not only its status: a candidate that books the amount rounded, a
party from another column, or serves a request under a renamed route answers and calls exactly as before,
and the replay used to say "identical" for every exchange and PASS.  The capture stores the deal's fields
on the request row (`frames.deal`), masked as the request is under --mask, and the differences show
classified values masked.  Real captures over loopback sockets (replaykit.py)."""
from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pytest

from engine.registry import default_registry
from engine.replay.session import replay_file
from replaykit import config_copy, record_session

ROUNDED = (lambda t: t.replace("        amount   = msg.amount\n", "        amount   = round(msg.amount, 0)\n"))
RENAMED = (lambda t: t.replace("route bill_enquiry {", "route balance_enquiry {"))
BY_ACCOUNT = (lambda t: t.replace("        party    = msg.biller_id\n", "        party    = trim(msg.account)\n"))
BY_ACCOUNT_X = (lambda t: BY_ACCOUNT(t).replace("        party    = trim(msg.account)\n",
                                                "        party    = \"X\" + trim(msg.account)\n"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deal")
    return record_session(tmp, config_copy(tmp / "config"), 120)


def test_a_deal_booked_otherwise_is_a_difference(recorded, tmp_path) -> None:
    cand = config_copy(tmp_path / "rounded", ROUNDED)
    report = replay_file(recorded, [cand], default_registry())
    assert not report.passed, report.text()
    fields = {(d.what, d.field) for d in report.diff.unexpected}
    assert fields == {("deal", "amount")}, fields
    d = report.diff.unexpected[0]
    # the language's round() is half up (4812.50 -> 4813), Python's round() half even (4812)
    assert d.produced == d.recorded.quantize(Decimal(1), rounding=ROUND_HALF_UP) and d.produced != d.recorded, d
    assert "  deal  mainframe    amount" in report.text()


def test_a_renamed_route_is_a_difference_of_the_deal(recorded, tmp_path) -> None:
    cand = config_copy(tmp_path / "renamed", RENAMED)
    report = replay_file(recorded, [cand], default_registry())
    got = {(d.field, d.recorded, d.produced) for d in report.diff.unexpected if d.what == "deal"}
    assert got == {("route", "bill_enquiry", "balance_enquiry"), ("type", "bill_enquiry", "balance_enquiry")}, got
    # an unrouted request's dead letter names the routes tried: the renamed one too (compared since 2026-11-28)
    others = [d for d in report.diff.unexpected if d.what != "deal"]
    assert all(d.what == "dead letter" and d.field == "reason" and "routes tried: bill_payment, bill_enquiry;" in
               d.recorded and "routes tried: bill_payment, balance_enquiry;" in d.produced for d in others), others


def test_the_unchanged_configuration_is_identical(recorded) -> None:
    config = recorded.parent / "config"
    report = replay_file(recorded, [config], default_registry())
    assert report.passed and report.diff.identical == report.diff.exchanges, report.text()


@pytest.mark.parametrize("mask", [False, True])
def test_a_classified_deal_value_is_masked_in_the_capture_and_in_the_diff(tmp_path, mask: bool) -> None:
    config = config_copy(tmp_path / "config", BY_ACCOUNT)
    capture = record_session(tmp_path, config, 30, mask=mask)
    con = duckdb.connect(str(capture), read_only=True)
    deals = [json.loads(r[0]) for r in con.execute("SELECT deal FROM frames WHERE deal IS NOT NULL").fetchall()]
    con.close()
    assert deals and {d["type"] for d in deals} >= {"BILL_PAYMENT"}
    parties = {d["party"] for d in deals if d["type"] == "BILL_PAYMENT" and d["party"]}
    if mask:
        assert parties and all(p.endswith("***") and len(p) == 4 for p in parties), parties
    else:
        assert parties and all("***" not in p for p in parties), parties      # a clear capture keeps them

    same = replay_file(capture, [config], default_registry())
    assert same.passed, same.text()

    report = replay_file(capture, [config_copy(tmp_path / "cand", BY_ACCOUNT_X)], default_registry())
    party = [d for d in report.diff.unexpected if d.field == "party"]
    assert party, report.text()
    for d in party:
        assert d.recorded.endswith("***") and len(d.recorded) == 4, d
        assert d.produced.startswith("X") and "***" in d.produced, d
    report.write_json(tmp_path / "r.json")
    shown = report.text() + (tmp_path / "r.json").read_text()
    for p in parties:
        if "***" not in p:
            assert p not in shown


def _to_tests(capture, config, out, *extra):
    from typer.testing import CliRunner
    import typer
    from engine.commands import replay as replay_cmd
    app = typer.Typer()
    replay_cmd.register(app)

    @app.command("noop")
    def _noop() -> None:
        pass

    res = CliRunner().invoke(app, ["replay", str(capture), "--config", str(config), "--to-tests", str(out), *extra])
    assert res.exit_code == 0, res.output
    (path,) = out.glob("*_test.route")
    return path


def test_tests_from_a_recording_expect_its_deal(recorded, tmp_path) -> None:
    """Route tests written from a capture expect the recorded deal too: a candidate that books the amount
    rounded fails them, where before they passed (they expected the reply and the calls only)."""
    from engine.routetest.runner import run_paths
    config = recorded.parent / "config"
    path = _to_tests(recorded, config, tmp_path / "t")
    text = path.read_text()
    assert 'expect deal BILL_PAYMENT { status = "committed"  ref = "' in text, text[:3000]
    assert 'route = "bill_payment" }' in text and 'expect deal bill_enquiry { status = "committed"' in text
    assert not run_paths([path], default_registry()).failed
    cand = config_copy(tmp_path / "rounded", ROUNDED)
    moved = tmp_path / "cand_t" / path.name
    moved.parent.mkdir()
    moved.write_text(text.replace(f'use "../../{recorded.parent.name}/config/bill_payment.route"',
                                  f'use "{cand / "bill_payment.route"}"'))
    assert str(cand) in moved.read_text()
    failed = run_paths([moved], default_registry()).failed
    assert failed and all("amount" in str(f.failures) for f in failed), failed[0].failures


def test_tests_from_a_recording_leave_out_a_classified_party(tmp_path) -> None:
    from engine.routetest.runner import run_paths
    config = config_copy(tmp_path / "config", BY_ACCOUNT)
    capture = record_session(tmp_path, config, 30)          # in clear: the party is the account
    path = _to_tests(capture, config, tmp_path / "t")
    text = path.read_text()
    assert "expect deal BILL_PAYMENT" in text and "party =" not in text and "ACC" not in text
    assert not run_paths([path], default_registry()).failed
