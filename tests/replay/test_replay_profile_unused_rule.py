"""A replay profile rule that matches no difference is listed by the report, with its place in the file:
a misspelt field (`mesage`) used to be silently useless, and the tester believed the difference accepted.
A real capture over loopback sockets (replaykit.py)."""
from __future__ import annotations

import json

from engine.registry import default_registry
from engine.replay.session import replay_file
from replaykit import config_copy, record_session

LOWER = (lambda t: t.replace('"paid " + upper(billers[msg.biller_id].name)', '"paid " + lower(billers[msg.biller_id].name)'))

PROFILE = """\
expect:
  - channel: mainframe
    what: reply
    field: message
    reason: biller names in lower case
  - channel: mainframe
    what: reply
    field: mesage
    reason: a typo
ignore:
  - channel: biler
    field: due
"""


def test_rules_that_match_nothing_are_listed_with_their_place(tmp_path):
    capture = record_session(tmp_path, config_copy(tmp_path / "config"), 20)
    cand = config_copy(tmp_path / "cand", LOWER)
    (tmp_path / "replay.yaml").write_text(PROFILE)

    report = replay_file(capture, [cand], default_registry(), profile=tmp_path / "replay.yaml")
    assert report.passed and report.diff.expected, report.text()
    text = report.text()
    assert "2 profile rule(s) matched no difference in this replay" in text, text
    assert "    expect[1] reply channel mainframe field mesage (a typo) [replay.yaml:6]" in text
    assert "    ignore[0] channel biler field due [replay.yaml:11]" in text
    assert "expect[0]" not in text
    report.write_json(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["unused_profile_rules"] == [
        "ignore[0] channel biler field due [replay.yaml:11]",
        "expect[1] reply channel mainframe field mesage (a typo) [replay.yaml:6]"]


def test_a_profile_whose_rules_all_match_lists_none(tmp_path):
    capture = record_session(tmp_path, config_copy(tmp_path / "config"), 10)
    cand = config_copy(tmp_path / "cand", LOWER)
    (tmp_path / "replay.yaml").write_text(PROFILE.split("  - channel: mainframe\n    what: reply\n    field: mesage")[0])
    report = replay_file(capture, [cand], default_registry(), profile=tmp_path / "replay.yaml")
    assert report.passed and "matched no difference" not in report.text()
    assert report.summary()["unused_profile_rules"] == []
