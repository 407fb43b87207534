"""A replay profile rule can name the change it accepts, not only the field: `recorded` and `produced`
globs over the values.  Before, `expect: {field: message}` accepted every change of the reply's
message, so a regression in the same field (the enquiry's fee wording) passed as "expected" and CI went
green.  Each expect rule also has its own group in the report, with how many differences it accepted.
A real capture over loopback sockets (replaykit.py)."""
from __future__ import annotations

import pytest

from engine.registry import default_registry
from engine.replay.profile import ProfileError, load_profile
from engine.replay.session import replay_file
from replaykit import config_copy, record_session

LOWER = '"paid " + lower(billers[msg.biller_id].name)'
FEE = '"fee: " + fee'


def _edit(text: str) -> str:
    return (text.replace('"paid " + upper(billers[msg.biller_id].name)', LOWER)     # intended
            .replace('"fee " + fee', FEE))                                              # a regression


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("values")
    capture = record_session(tmp, config_copy(tmp / "config"), 120)
    return tmp, capture, config_copy(tmp / "cand", _edit)


def test_a_rule_with_values_accepts_its_change_and_not_a_regression_in_the_same_field(replayed) -> None:
    tmp, capture, cand = replayed
    (tmp / "field.yaml").write_text("expect:\n  - {channel: mainframe, what: reply, field: message}\n")
    loose = replay_file(capture, [cand], default_registry(), profile=tmp / "field.yaml")
    assert loose.passed and not loose.diff.unexpected   # a whole-field rule hides the regression

    (tmp / "values.yaml").write_text(
        "expect:\n"
        "  - channel: mainframe\n    what: reply\n    field: message\n"
        "    recorded: \"paid *\"\n    produced: \"paid *\"\n    reason: biller names in lower case\n")
    report = replay_file(capture, [cand], default_registry(), profile=tmp / "values.yaml")
    assert not report.passed, report.text()
    unexpected = report.diff.unexpected
    assert unexpected and all(d.field == "message" and str(d.recorded).startswith("fee ")
                              and str(d.produced).startswith("fee: ") for d in unexpected), unexpected
    expected = report.diff.expected
    assert expected and all(str(d.recorded).startswith("paid ") for d in expected)
    text = report.text()
    assert ("expected by reply channel mainframe field message recorded 'paid *' produced 'paid *' "
            "(biller names in lower case) [values.yaml:2]") in text, text


def test_each_expect_rule_has_its_own_group(replayed) -> None:
    tmp, capture, cand = replayed
    (tmp / "two.yaml").write_text(
        "expect:\n"
        "  - {channel: mainframe, what: reply, field: message, recorded: \"paid *\", reason: names}\n"
        "  - {channel: mainframe, what: reply, field: message, recorded: \"fee *\", produced: \"fee: *\", "
        "reason: fee wording}\n")
    report = replay_file(capture, [cand], default_registry(), profile=tmp / "two.yaml")
    assert report.passed, report.text()
    groups = [g for g in report.diff.groups() if g["field"] == "message"]
    assert sorted(str(g["expected_by"]).split("(")[1].split(")")[0] for g in groups) == ["fee wording", "names"]
    assert sum(g["count"] for g in groups) == len(report.diff.expected)


def test_the_value_keys_are_text_and_listed_in_the_unknown_key_error(tmp_path) -> None:
    (tmp_path / "p.yaml").write_text("expect:\n  - {field: resp_code, recorded: 00, produced: 12}\n")
    rule = load_profile(tmp_path / "p.yaml").expect[0]
    assert (rule.recorded, rule.produced) == ("00", "12")          # as written, not the number 0
    assert rule.matches("mainframe", "reply", "resp_code", "00", "12")
    assert not rule.matches("mainframe", "reply", "resp_code", "00", "96")
    (tmp_path / "bad.yaml").write_text("expect:\n  - {field: resp_code, produces: 12}\n")
    with pytest.raises(ProfileError, match="unknown key `produces`; a rule has channel, what, field, recorded, "
                                           "produced, reason"):
        load_profile(tmp_path / "bad.yaml")
