"""Pairing what the candidate does with what was recorded, when nothing happened in order.

A real recording (muxkit.py): two terminals' connections interleaved, each pipelining its requests, and a
card host on a MUX channel (STAN + terminal) that answers each batch backwards.  Replayed against the same
configuration there is no difference at all; a changed answer is reported on the deal it belongs to,
with both values; a candidate that adds a call to the same counterpart before the recorded one is
answered and compared by the call's identity (MTI class + STAN + terminal), not by its position, so the
new call is the only difference."""
from __future__ import annotations

import json

import pytest

from typer.testing import CliRunner

import muxkit as mk
from engine.cli import app
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.session import replay_file


def replay(*args: str):
    return CliRunner().invoke(app, ["replay", *args])


def _recorded(tmp_path, mask=False):
    route = mk.write_config(tmp_path / "cfg")
    capture, replies = mk.record(tmp_path, route, mask=mask)
    return route, capture, replies


def test_interleaved_connections_and_answers_out_of_order_replay_identical(tmp_path):
    route, capture, replies = _recorded(tmp_path)
    _, _, net = mk.codec(route)
    cap = Capture(capture)
    # two connections, their requests sent alternately (muxkit: one of each in turn, none waiting for a reply)
    assert len(cap.exchanges) == 12 and len({ex.request.conn for ex in cap.exchanges}) == 2
    for ex in cap.exchanges:        # the recording paired each host answer with its own request
        req = net.decode(ex.request.raw)
        (call,) = ex.calls
        assert (net.decode(call.reply.raw)["11"], net.decode(call.reply.raw)["41"]) == (req["11"], req["41"])
        assert ex.key == req["41"] + req["11"]

    report = replay_file(capture, [route], default_registry())
    assert report.diff.differences == [] and report.diff.identical == 12, report.text()
    assert report.passed and report.answered_by_order == 0
    res = replay(str(capture), "--config", str(route), "--pace", "original")
    assert res.exit_code == 0, res.output
    assert "identical 12, with differences 0" in res.output


def test_a_changed_answer_is_reported_on_its_deal_with_both_values(tmp_path):
    route, capture, replies = _recorded(tmp_path)
    cand = mk.write_config(tmp_path / "cand", lambda t: t.replace('"38" = auth["38"]', '"38" = "X" + trim(auth["38"])'))
    out = tmp_path / "r.json"
    res = replay(str(capture), "--config", str(cand), "--json", str(out))
    assert res.exit_code == 1, res.output
    doc = json.loads(out.read_text())
    diffs = doc["differences"]
    assert len(diffs) == 12
    for d in diffs:             # each on its own deal: the approval code names the terminal and the STAN
        term, stan = d["key"][:8], d["key"][8:]
        rec = replies[(term, stan)]["38"]
        assert (d["what"], d["channel"], d["field"], d["recorded"], d["produced"]) == (
            "reply", "pos", "38", rec, "X" + rec.strip())
        assert d["field_name"] == "Authorization identification response"
    # the place, and what an ISO 8583 data element is beside its number
    assert "field 38 (Authorization identification response): recorded" in res.output, res.output
    assert mk.PAN not in res.output and mk.PAN not in out.read_text()       # recorded in clear, never shown


CHECK = '''    call check = host as Net reply Net {
        t = "0100"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "41" = msg["41"]
        "49" = msg["49"]
    } expect check["39"] == "00"
    call auth = host'''

ANSWERS = """answers:
  - channel: host
    answer: 'Net { t = "0110"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
                   "41" = msg["41"]  "38" = "CHK001"  "39" = "00"  "49" = msg["49"] }'
"""

PROFILE = """expect:
  - {channel: host, what: call, field: "(call)", recorded: "<none>", produced: sent, reason: the check the change adds}
"""


@pytest.mark.parametrize("mask", [False, True])
def test_a_call_added_before_the_recorded_one_is_paired_by_identity(tmp_path, mask):
    """The candidate asks the host for an 0100 check before the 0200 it recorded: the 0200 still gets its
    own recorded answer and is compared with the recorded 0200; the 0100 is answered from the script and is
    the only difference (expected by the profile).  Also from a capture recorded with --mask (the card
    number masked; STAN and terminal are not classified, so the identity is still read)."""
    route, capture, _ = _recorded(tmp_path, mask)
    cand = mk.write_config(tmp_path / "cand", lambda t: t.replace("    call auth = host", CHECK, 1))
    answers = tmp_path / "answers.yaml"
    answers.write_text(ANSWERS)
    profile = tmp_path / "replay.yaml"
    profile.write_text(PROFILE)
    report = replay_file(capture, [cand], default_registry(), answers=answers, profile=profile)
    assert report.diff.unexpected == [], report.text()
    assert len(report.diff.expected) == 12 and report.passed
    assert {(d.field, d.recorded, d.produced) for d in report.diff.expected} == {("(call)", "<none>", "sent")}
    assert report.answered_by_script == {"host": 12} and report.answered_by_order == 0
    assert report.unanswered == 0


def test_a_call_the_exchange_never_made_takes_no_other_exchanges_answer(tmp_path):
    """The candidate refuses a declined authorisation (``expect``), so the one declined deal (STAN 000007)
    sends the host a reversal the recording never had.  It fails as unreachable, on that deal alone: it no
    longer takes the recorded answer of the next exchange (by order), which then took the next one's, down
    to the last exchange, left with none: false differences on deals the change does not touch.  One
    exchange at a time, so that the next exchanges' answers are still there to take."""
    route, capture, _ = _recorded(tmp_path)
    cand = mk.write_config(tmp_path / "cand", lambda t: t.replace(
        '"49" = msg["49"]\n    }\n', '"49" = msg["49"]\n    }\n    validate { auth["39"] == "00" else reject "05" "declined" }\n', 1))
    report = replay_file(capture, [cand], default_registry(), concurrency=1)
    changed = {d.key for d in report.diff.differences}
    assert changed == {"TERM0001000007"}, report.text()
    assert report.answered_by_order == 0 and report.unanswered_by_channel == {"host": 5}     # the reversal, 5 tries
    text = report.text()
    assert "channel host: 5 call(s) answered by nothing, failed as unreachable: their recorded exchange made no " \
           "call of their identity (MTI class + STAN + terminal" in text, text
    assert "pairing: each reply and deal with its recorded exchange" in text
    assert report.summary()["pairing"] == {"host": "MTI class + STAN + terminal (match = iso8583)"}
