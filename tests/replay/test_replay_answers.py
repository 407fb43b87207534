"""`bsp replay --answers FILE`: answers for calls the recording lacks.

A real recording of the shipped bill payment service (loopback sockets, real ledger); the candidate adds a
sanctions screening call to a new channel before the biller is paid.  Without a script the screening
fails as unreachable and the report names the channel and the option; with the script the replay is
identical except the intended difference (the new call), the report says which calls the script
answered, and --to-tests writes the script's answers into the tests, which pass against the candidate."""
from __future__ import annotations

import json
from collections import Counter

from typer.testing import CliRunner

from engine.cli import app
from engine.replay.capture import Capture
from replaykit import config_copy, record_session

SCREEN = '''
format ScreenReq = json
format ScreenRsp = json

channel sanctions = tcp connect {
    address = "127.0.0.1:7009"
    framing = length4
    timeout = 2s
}

route bill_payment {'''

CALL = '''    call screen = sanctions as ScreenReq reply ScreenRsp {
        account = trim(msg.account)
        amount  = msg.amount
    } expect screen.status == "CLEAR"

    call post = biller'''


def add_screening(text: str) -> str:
    return text.replace("\nroute bill_payment {", SCREEN, 1).replace("    call post = biller", CALL, 1)


PROFILE = """expect:
  - {channel: sanctions, what: call, field: "(call)", recorded: "<none>", produced: sent,
     reason: the sanctions screening the change adds}
"""


def replay(*args: str):
    return CliRunner().invoke(app, ["replay", *args])


def test_a_call_the_recording_lacks_is_answered_from_the_script(tmp_path) -> None:
    capture = record_session(tmp_path, config_copy(tmp_path / "config"), 12)
    cand = config_copy(tmp_path / "cand", add_screening)
    profile = tmp_path / "replay.yaml"
    profile.write_text(PROFILE)
    paid = sum(1 for ex in Capture(capture).exchanges for c in ex.calls if c.channel == "biller")   # screened
    assert paid > 0

    # without a script: the screening is unreachable, so every payment fails; the report says why and how
    res = replay(str(capture), "--config", str(cand), "--profile", str(profile), "--json", str(tmp_path / "a.json"))
    assert res.exit_code == 1, res.output
    assert (f"channel sanctions: {paid} call(s) answered by nothing, failed as unreachable: the recording has no call "
            "to it") in res.output
    assert "--answers FILE" in res.output
    summary = json.loads((tmp_path / "a.json").read_text())["summary"]
    assert summary["unanswered_per_channel"] == {"sanctions": paid} and summary["answered_by_script"] == 0

    # with the script: identical except the intended difference (the new call)
    answers = tmp_path / "answers.yaml"
    answers.write_text("answers:\n"
                       "  - channel: sanctions\n"
                       "    answer: 'ScreenRsp { status = \"CLEAR\" ref = msg.trace_no }'\n")
    res = replay(str(capture), "--config", str(cand), "--profile", str(profile), "--answers", str(answers),
                 "--json", str(tmp_path / "b.json"))
    assert res.exit_code == 0, res.output
    assert f"{paid} from the answers script" in res.output and f"(sanctions {paid})" in res.output
    assert "answered by nothing" not in res.output
    summary = json.loads((tmp_path / "b.json").read_text())["summary"]
    assert summary["answered_by_script_per_channel"] == {"sanctions": paid}
    assert summary["unanswered_calls"] == 0 and summary["answered_by_key"] == paid     # the biller: recorded
    assert summary["unexpected_differences"] == 0 and summary["expected_differences"] == paid

    # --to-tests carries the script's answers into the tests, which pass against the candidate
    res = replay(str(capture), "--config", str(cand), "--answers", str(answers), "--to-tests", str(tmp_path / "t"))
    assert res.exit_code == 0, res.output
    written = (tmp_path / "t" / "session_test.route").read_text()
    assert written.count('given sanctions answers ScreenRsp { status = "CLEAR" ref = msg.trace_no }') == paid
    res = CliRunner().invoke(app, ["test", str(tmp_path / "t" / "session_test.route")])
    assert res.exit_code == 0 and "12 passed, 0 failed" in res.output, res.output


def test_when_matches_request_fields_and_error_kinds(tmp_path) -> None:
    capture = record_session(tmp_path, config_copy(tmp_path / "config"), 6)
    paid = sum(1 for ex in Capture(capture).exchanges for c in ex.calls if c.channel == "biller")
    cand = config_copy(tmp_path / "cand", add_screening)
    answers = tmp_path / "answers.yaml"
    # the first rule matches no call (no such amount): the second, unreachable, answers them all
    answers.write_text("answers:\n"
                       "  - {channel: sanctions, when: {amount: '0.01'}, answer: '{ status = \"CLEAR\" }'}\n"
                       "  - {channel: sanctions, answer: unreachable}\n")
    res = replay(str(capture), "--config", str(cand), "--answers", str(answers), "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["answered_by_script_per_channel"] == {"sanctions": paid} and summary["unanswered_calls"] == 0
    assert len(summary["unused_answers"]) == 1 and summary["unused_answers"][0].startswith("answers[0] channel sanctions")
    assert "answers: answers[0] channel sanctions when amount = 0.01" in res.output


def test_a_bad_answer_is_told_at_its_line(tmp_path) -> None:
    capture = record_session(tmp_path, config_copy(tmp_path / "config"), 2)
    cand = config_copy(tmp_path / "cand", add_screening)
    answers = tmp_path / "answers.yaml"
    answers.write_text("answers:\n  - channel: sanctions\n    answer: 'BillerAck { status = \"CLEAR\" }'\n"
                       "  - {channel: fees, answer: timeout}\n")
    res = replay(str(capture), "--config", str(cand), "--answers", str(answers))
    assert res.exit_code == 2, res.output
    assert "answers.yaml:2: answers[0]" in res.output and "ScreenRsp" in res.output
    assert "answers.yaml:4: answers[1]" in res.output and "fees" in res.output


def test_when_picks_the_calls_whose_request_fields_are_equal(tmp_path) -> None:
    capture = record_session(tmp_path, config_copy(tmp_path / "config"), 12)
    posted = Counter(json.loads(c.request.raw)["account"] for ex in Capture(capture).exchanges for c in ex.calls
                     if c.channel == "biller")
    hit, hits = posted.most_common(1)[0]
    cand = config_copy(tmp_path / "cand", add_screening)
    answers = tmp_path / "answers.yaml"
    answers.write_text("answers:\n"
                       f"  - {{channel: sanctions, when: {{account: '{hit}'}}, answer: '{{ status = \"HIT\" }}'}}\n"
                       "  - {channel: sanctions, answer: '{ status = \"CLEAR\" }'}\n")
    res = replay(str(capture), "--config", str(cand), "--answers", str(answers), "--json", str(tmp_path / "r.json"))
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["summary"]["answered_by_script_per_channel"] == {"sanctions": sum(posted.values())}, res.output
    # the payer screened as a hit is not paid (its biller call is missing); every other payment is as recorded
    missing = [d for d in doc["differences"] if d["channel"] == "biller" and d["field"] == "(call)"]
    assert len(missing) == hits and doc["summary"]["unused_answers"] == []
