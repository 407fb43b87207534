"""Volatile fields: a replay whose only differences are generated values (uuid(), now()) prints the
replay profile that ignores them; with that profile the same replay passes.  A changed mapping is
never suggested as volatile."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from replaykit import config_copy, record_session, replay_cli as cli
from engine.replay.volatile import shape

VOLATILE = (lambda t: t.replace('        due       = format_date(msg.value_date, "%Y-%m-%d")\n',
                                '        due       = format_date(msg.value_date, "%Y-%m-%d")\n'
                                '        request_id = uuid()\n'
                                '        sent_at   = now()\n'))


# the wall clock and uuids compared (before the replay clock): generated values differ on every replay
WALL = ("--clock", "now", "--compare-uuids")


@pytest.fixture(scope="module")
def volatile_session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("volatile")
    config = config_copy(tmp / "config", VOLATILE)
    return record_session(tmp, config, 40), config


def test_volatile_differences_print_a_profile_that_makes_the_replay_pass(volatile_session, tmp_path):
    capture, config = volatile_session
    res = cli(str(capture), "--config", str(config), "--json", str(tmp_path / "r.json"),
              "--html", str(tmp_path / "r.html"), *WALL)
    assert res.exit_code == 1, res.output
    out = res.output
    data = json.loads((tmp_path / "r.json").read_text())
    calls = sum(1 for d in data["differences"] if d["field"] == "request_id")
    assert calls > 20      # every exchange that reached the biller (the session has rejections too)
    assert {(v["field"], v["kind"], v["count"]) for v in data["volatile"]} == \
        {("request_id", "uuid", calls), ("sent_at", "timestamp", calls)}
    assert data["summary"]["unexpected_differences"] == 2 * calls
    assert f"{2 * calls} of the unexpected differences look volatile (timestamp, uuid); if they are, ignore them" \
        in out
    assert f'field: "request_id"        # uuid: {calls} difference(s)' in out
    assert f'field: "sent_at"        # timestamp: {calls} difference(s)' in out
    assert '        recorded: "????????-????-????-????-????????????"\n' in out      # the uuid's layout
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Volatile fields?</h2>" in page and "request_id" in page
    prof = tmp_path / "replay.yaml"
    prof.write_text(data["suggested_profile"])
    again = cli(str(capture), "--config", str(config), "--profile", str(prof), *WALL)
    assert again.exit_code == 0, again.output
    assert f"{2 * calls} ignored" in again.output and "result: PASS" in again.output
    assert "look volatile" not in again.output


def test_by_default_an_unchanged_configuration_with_uuid_and_now_replays_identical(volatile_session, tmp_path):
    """The replay clock gives now() the instants the exchange read when recorded, and values that differ only
    in UUIDs are volatile: the same configuration passes with no profile, and says what it did not count."""
    capture, config = volatile_session
    res = cli(str(capture), "--config", str(config), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["clock"] == "recorded" and summary["identical"] == 40 and summary["ignored_differences"] == 0
    calls = summary["uuid_differences_not_counted"]
    assert calls > 20
    assert f"{calls} value(s) that differ only in UUIDs (uuid() makes a new one each run) not counted" in res.output
    assert "clock recorded" in res.output and "result: PASS" in res.output


def test_a_changed_mapping_is_not_suggested_as_volatile(volatile_session, tmp_path):
    capture, config = volatile_session
    cand = tmp_path / "cand"
    shutil.copytree(config, cand)
    p = cand / "bill_payment.route"
    p.write_text(p.read_text().replace('message    = "paid " + upper(', 'message    = "paid " + lower('))
    data_path = tmp_path / "r.json"
    res = cli(str(capture), "--config", str(cand), "--json", str(data_path), *WALL)
    assert res.exit_code == 1
    data = json.loads(data_path.read_text())
    assert {v["field"] for v in data["volatile"]} == {"request_id", "sent_at"}
    assert any(d["field"] == "message" for d in data["differences"])


def test_value_shapes():
    assert shape(datetime(2026, 11, 25, tzinfo=timezone.utc), "x") == "timestamp"
    assert shape("2026-11-25T10:15:00.123+00:00", "x") == "timestamp"
    assert shape("20261125101500", "x") == "timestamp"
    assert shape("10:15:00", "sent_time") == "timestamp" and shape("10:15:00", "label") is None
    assert shape("0f8e1c2a-4b7d-4e25-9a61-3c1d2e4f5a6b", "anything") == "uuid"
    assert shape("TX00012345", "request_id") == "generated id"
    assert shape("TX00012345", "message") is None
    assert shape("paid NORTHERN ELECTRIC", "message") is None
    assert shape(Decimal("120.50"), "amount") is None
    assert shape("000000000001", "trace_no") is None or shape("000000000001", "trace_no") == "generated id"


def test_the_suggested_profile_still_catches_a_volatile_field_whose_layout_changes(volatile_session, tmp_path):
    """The suggested rules carry the values' layout (`recorded` / `produced` globs): a candidate that sends
    the uuid without its dashes, or drops the time stamp, is a difference again, not ignored."""
    capture, config = volatile_session
    res = cli(str(capture), "--config", str(config), "--json", str(tmp_path / "r.json"), *WALL)
    prof = tmp_path / "replay.yaml"
    prof.write_text(json.loads((tmp_path / "r.json").read_text())["suggested_profile"])
    cand = tmp_path / "cand"
    shutil.copytree(config, cand)
    p = cand / "bill_payment.route"
    p.write_text(p.read_text().replace("request_id = uuid()", 'request_id = replace(uuid(), "-", "")')
                 .replace("        sent_at   = now()\n", ""))
    res = cli(str(capture), "--config", str(cand), "--profile", str(prof), "--json", str(tmp_path / "c.json"), *WALL)
    assert res.exit_code == 1, res.output
    fields = {d["field"] for d in json.loads((tmp_path / "c.json").read_text())["differences"]
              if d["expected_by"] is None}
    assert fields == {"request_id", "sent_at"}, fields


@pytest.fixture(scope="module")
def plain_session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain")
    config = config_copy(tmp / "config")
    return record_session(tmp, config, 40), config


def test_a_volatile_field_the_candidate_adds_is_suggested_while_the_recording_lacks_it(plain_session, tmp_path):
    """A change request that adds `request_id = uuid()` and `sent_at = now()` to the biller call: the
    recording has no such fields, so each difference is "<none>" -> a uuid or a time stamp.  The report
    suggests rules for them (`recorded: "<none>"`, the produced values' layout), and with those the replay
    passes; an added field with a constant value is not suggested."""
    capture, config = plain_session
    cand = tmp_path / "cand"
    shutil.copytree(config, cand)
    p = cand / "bill_payment.route"
    p.write_text(VOLATILE(p.read_text()).replace("        sent_at   = now()\n",
                                                 '        sent_at   = now()\n        channel_name = "MF"\n'))
    res = cli(str(capture), "--config", str(cand), "--json", str(tmp_path / "r.json"), *WALL)
    assert res.exit_code == 1, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    calls = sum(1 for d in data["differences"] if d["field"] == "request_id")
    assert calls > 20
    assert {(v["field"], v["kind"]) for v in data["volatile"]} == {("request_id", "uuid"), ("sent_at", "timestamp")}
    assert f'field: "request_id"        # uuid in a field the candidate adds: {calls} difference(s), e.g. <none> ->' \
        in res.output
    assert '        recorded: "<none>"\n        produced: "????????-????-????-????-????????????"\n' in res.output
    prof = tmp_path / "replay.yaml"
    prof.write_text(data["suggested_profile"])
    again = cli(str(capture), "--config", str(cand), "--profile", str(prof), "--json", str(tmp_path / "a.json"),
                *WALL)
    assert again.exit_code == 1, again.output
    left = {d["field"] for d in json.loads((tmp_path / "a.json").read_text())["differences"] if d["unexpected"]}
    assert left == {"channel_name"}, left


def test_route_tests_written_from_it_leave_generated_uuids_out_and_pass(volatile_session, tmp_path):
    """`request_id = uuid()` is not expected (a comment says why); `sent_at = now()` is, to the microsecond:
    the test runs `at` the instant the route read when recorded."""
    from engine.registry import default_registry
    from engine.routetest.runner import run_paths

    capture, config = volatile_session
    out = tmp_path / "t"
    res = cli(str(capture), "--config", str(config), "--to-tests", str(out))
    assert res.exit_code == 0, res.output
    path = out / "session_test.route"
    result = run_paths([path], default_registry())
    assert result.outcomes and not result.failed, [o.failures for o in result.failed][:2]
    text = path.read_text()
    left_out = "# request_id: a UUID the exchange did not receive (uuid() makes a new one each run): not expected"
    assert text.count(left_out) > 20
    assert text.count("        sent_at = ") == text.count(left_out)
