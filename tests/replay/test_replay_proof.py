"""The proof: a recorded session of >= 1000 exchanges over two channels replays against the same
configuration with 0 differences, and against a configuration with one changed mapping with
exactly the expected differences."""
from __future__ import annotations

import duckdb

from replaykit import SESSION, config_copy
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.session import replay_file


def test_capture_is_a_queryable_duckdb_file(session_capture):
    capture, _ = session_capture
    con = duckdb.connect(str(capture), read_only=True)
    try:
        counts = dict(((ch, role, d), n) for ch, role, d, n in con.execute(
            "SELECT channel, role, direction, count(*) FROM frames GROUP BY ALL").fetchall())
        linked = con.execute(
            "SELECT count(*) FROM frames q JOIN frames r ON q.exchange = r.exchange "
            "WHERE q.channel = 'mainframe' AND q.direction = 'in' AND r.channel = 'biller' "
            "AND r.direction = 'out' AND q.correlation_key = r.correlation_key").fetchone()[0]
        statuses = dict(con.execute("SELECT deal_status, count(*) FROM frames WHERE role = 'inbound' "
                                    "AND direction = 'in' GROUP BY ALL").fetchall())
    finally:
        con.close()
    assert counts[("mainframe", "inbound", "in")] == SESSION
    assert counts[("mainframe", "inbound", "out")] == SESSION
    calls = counts[("biller", "outbound", "out")]
    assert calls == counts[("biller", "outbound", "in")] and calls > 700
    assert linked == calls                       # every call tied to its request by exchange and key
    assert sum(statuses.values()) == SESSION and None not in statuses


def test_same_configuration_replays_with_zero_differences(session_capture):
    capture, config = session_capture
    report = replay_file(capture, [config], default_registry())
    s = report.summary()
    assert s["exchanges"] == SESSION and s["identical"] == SESSION
    assert report.diff.differences == [] and report.passed
    assert report.unanswered == 0 and report.answered_by_order == 0 and report.answered_by_key > 700


def test_one_changed_mapping_gives_exactly_the_expected_differences(session_capture, tmp_path):
    capture, _ = session_capture
    cand = config_copy(tmp_path / "cand", lambda t: t.replace('message    = "paid " + upper(',
                                                              'message    = "paid " + lower('))
    report = replay_file(capture, [cand], default_registry())
    cap = Capture(capture)
    # expected: every committed payment's reply, field `message`, "paid NAME" -> "paid name"
    expected = {ex.exchange for ex in cap.exchanges if ex.request.deal_status == "committed" and ex.calls}
    got = report.diff.differences
    assert {(d.exchange, d.what, d.channel, d.field) for d in got} == \
        {(e, "reply", "mainframe", "message") for e in expected}
    assert len(got) == len(expected) > 500
    for d in got:
        assert d.recorded.startswith("paid ") and d.produced == d.recorded.lower()
    assert not report.passed
    assert report.summary()["identical"] == SESSION - len(expected)
