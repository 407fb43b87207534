"""A capture recorded with --mask, replayed against the configuration that recorded it, fails where the
route checks the content of a classified value: the candidate sees the mask (`A***`) and rejects what was
committed.  docs/testing.md says so under Masking, but the report itself gave the tester no hint that the
mask, not the change, made these differences.  The report now says it under the counts (a capture note:
terminal, JSON summary.capture_notes, HTML), with an example and what to do.  Real loopback sockets
(replaykit.py)."""
from __future__ import annotations

from engine.registry import default_registry
from engine.replay.session import replay_file
from replaykit import config_copy, record_session

CHECKS = (lambda t: t.replace('        msg.amount > 0                   else reject "13" "invalid amount"\n',
                              '        msg.amount > 0                   else reject "13" "invalid amount"\n'
                              '        len(trim(msg.account)) > 4       else reject "14" "account too short"\n'))


def test_a_masked_capture_rejected_on_a_checked_value_says_the_mask_may_be_why(tmp_path):
    config = config_copy(tmp_path / "config", CHECKS)
    capture = record_session(tmp_path, config, 30, mask=True)
    report = replay_file(capture, [config], default_registry())
    assert not report.passed
    flipped = {d.exchange for d in report.diff.unexpected if d.what == "deal" and d.field == "status"
               and d.produced == "rejected"}
    assert flipped
    notes = [n for n in report.capture_notes if "--mask" in n]
    assert len(notes) == 1, report.capture_notes
    assert notes[0].startswith(f"the capture was recorded with --mask, and {len(flipped)} exchange(s) it recorded "
                               f"as committed or failed the candidate rejected"), notes[0]
    assert "iban_valid" in notes[0] and "--to-tests" in notes[0]
    assert f"capture: {notes[0]}" in report.text()
    assert report.to_json()["summary"]["capture_notes"] == report.capture_notes


def test_a_clear_capture_gets_no_such_note(tmp_path):
    config = config_copy(tmp_path / "config", CHECKS)
    capture = record_session(tmp_path, config, 20)
    cand = config_copy(tmp_path / "cand", lambda t: CHECKS(t).replace("> 4       else", "> 40      else"))
    report = replay_file(capture, [cand], default_registry())
    assert not report.passed and not [n for n in report.capture_notes if "--mask" in n]


def test_rejections_the_change_made_are_not_put_down_to_the_mask(tmp_path):
    """A masked capture of the plain bill payment, replayed against a candidate that lowers the limit: the
    payments over it are rejected (61) by the change, and the recorded configuration, replayed on the same
    masked requests, still pays them.  Until 2026-11-27 the note said the mask rejected them "whatever the
    change", so a tester could accept the change's rejections as masking noise."""
    config = config_copy(tmp_path / "config")
    capture = record_session(tmp_path, config, 30, mask=True, as_bsp_run=True)
    cand = config_copy(tmp_path / "cand", lambda t: t.replace("msg.amount <= 50000.00", "msg.amount <= 100.00"))
    report = replay_file(capture, [cand], default_registry())
    flipped = {d.exchange for d in report.diff.unexpected if d.what == "deal" and d.field == "status"
               and d.produced == "rejected"}
    assert flipped, "the lower limit rejects payments that were paid"
    assert not [n for n in report.capture_notes if "--mask" in n], report.capture_notes


def test_with_both_the_note_counts_only_what_the_recorded_configuration_rejects_too(tmp_path):
    config = config_copy(tmp_path / "config", CHECKS)
    capture = record_session(tmp_path, config, 30, mask=True, as_bsp_run=True)
    # the candidate also lowers the limit: the same masked exchanges are rejected, by the mask first
    cand = config_copy(tmp_path / "cand", lambda t: CHECKS(t).replace("msg.amount <= 50000.00",
                                                                       "msg.amount <= 100.00"))
    report = replay_file(capture, [cand], default_registry())
    notes = [n for n in report.capture_notes if "--mask" in n]
    assert len(notes) == 1 and "the recorded configuration, replayed on the same masked requests" in notes[0], notes
