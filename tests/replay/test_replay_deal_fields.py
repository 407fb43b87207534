"""A replay compares the ledger's deal, not only its status: a candidate that books the amount rounded, a
party from another column, or serves a request under a renamed route answers and calls exactly as before,
and the replay used to say "identical" for every exchange and PASS.  The capture stores the deal's fields
on the request row (`frames.deal`), masked as the request is under --mask, and the differences show
classified values masked.  Real captures over loopback sockets (replaykit.py)."""
from __future__ import annotations

import json

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
    assert d.produced == round(d.recorded, 0) and d.produced != d.recorded, d
    assert "  deal  mainframe    amount" in report.text()


def test_a_renamed_route_is_a_difference_of_the_deal(recorded, tmp_path) -> None:
    cand = config_copy(tmp_path / "renamed", RENAMED)
    report = replay_file(recorded, [cand], default_registry())
    got = {(d.field, d.recorded, d.produced) for d in report.diff.unexpected}
    assert got == {("route", "bill_enquiry", "balance_enquiry"), ("type", "bill_enquiry", "balance_enquiry")}, got


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
