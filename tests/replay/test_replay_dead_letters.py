"""The dead letters an exchange wrote are in the capture (frames.dead_letters) and compared on replay.

Until 2026-11-28 a replay compared replies, calls and the deal, not the dead-letter store: an exchange that
went to the dead letters in the recording and not in the replay (or with another reason) was no difference
of its own, and a candidate that kept the reply but wrote its dead letter for another reason passed."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from engine.registry import default_registry
from engine.replay.session import replay_file

from test_replay_http_status import config, record

RULE = 'msg.amount > 0 else reject "13" "invalid amount"'


def candidate(tmp: Path, name: str, rule: str) -> Path:
    d = config(tmp / name)
    p = d / "pay.route"
    text = p.read_text()
    assert RULE in text
    p.write_text(text.replace(RULE, rule))
    return d


def dead(rep) -> list[tuple]:
    return [(d.exchange, d.field, d.recorded, d.produced) for d in rep.diff.unexpected if d.what == "dead letter"]


def test_the_capture_keeps_dead_letters_and_a_replay_compares_them(tmp_path: Path) -> None:
    recorded = config(tmp_path / "recorded")
    capture = record(tmp_path, recorded)
    with duckdb.connect(str(capture), read_only=True) as con:
        rows = con.execute("SELECT correlation_key, dead_letters FROM frames WHERE role = 'inbound' AND "
                           "direction = 'in' ORDER BY t_ms").fetchall()
    assert rows[0] == ("P1", "[]"), rows
    letters = json.loads(rows[1][1])
    assert [(d["kind"], d["code"], d["route"]) for d in letters] == [("rejected", "13", "pay")], letters
    # its place in the route files as the file's name alone (the folder moves with the candidate)
    assert letters[0]["reason"] == "rejected: invalid amount (at pay.route)", letters

    same = replay_file(capture, [recorded], default_registry())
    assert same.diff.identical == 2 and same.passed, [vars(d) for d in same.diff.differences]

    # the candidate takes an amount of 0: no dead letter where the recording wrote one
    lenient = replay_file(capture, [candidate(tmp_path, "lenient", 'msg.amount >= 0 else reject "13" "x"')],
                          default_registry())
    got = dead(lenient)
    assert [(k, f, p) for k, f, _r, p in got] == [(2, "(stored)", "<none>")], got
    assert got[0][2] == "stored: rejected: invalid amount (at pay.route)", got
    assert not lenient.passed
    text = lenient.text()
    assert "  dead letter api          (stored)" in text and "  deal        api          status" in text, text

    # the candidate still refuses it, with another code and reason: the same reply status, another dead letter
    other = replay_file(capture, [candidate(tmp_path, "other", 'msg.amount > 0 else reject "14" "amount is zero"')],
                        default_registry())
    fields = {f: (r, p) for _k, f, r, p in dead(other)}
    assert set(fields) == {"code", "reason"}, dead(other)
    assert fields["code"] == ("13", "14")
    assert fields["reason"] == ("rejected: invalid amount (at pay.route)", "rejected: amount is zero (at pay.route)"), \
        fields


def test_a_capture_of_before_the_column_does_not_compare_dead_letters(tmp_path: Path) -> None:
    recorded = config(tmp_path / "recorded")
    capture = record(tmp_path, recorded)
    with duckdb.connect(str(capture)) as con:
        con.execute("ALTER TABLE frames DROP COLUMN dead_letters")
    rep = replay_file(capture, [candidate(tmp_path, "other", 'msg.amount > 0 else reject "14" "amount is zero"')],
                      default_registry())
    assert dead(rep) == [], dead(rep)
    assert rep.diff.unexpected, "the reply's code still differs"


def test_a_profile_rule_takes_a_dead_letter_difference(tmp_path: Path) -> None:
    recorded = config(tmp_path / "recorded")
    capture = record(tmp_path, recorded)
    prof = tmp_path / "replay.yaml"
    prof.write_text("expect:\n  - {what: dead letter, field: reason, reason: the new wording}\n"
                    "  - {what: dead letter, field: code, reason: code 14 now}\n"
                    "  - {what: reply, field: \"*\", reason: reply changes too}\n"
                    "  - {what: deal, field: \"*\", reason: deal changes too}\n")
    rep = replay_file(capture, [candidate(tmp_path, "other", 'msg.amount > 0 else reject "14" "amount is zero"')],
                      default_registry(), profile=prof)
    assert not rep.diff.unexpected and rep.diff.expected, [vars(d) for d in rep.diff.differences]


def test_to_tests_expects_the_recorded_dead_letters(tmp_path: Path) -> None:
    from dsl.load import compile_paths
    from engine.replay.capture import Capture
    from engine.replay.guide import FormatGuide
    from engine.replay.profile import Profile
    from engine.replay.totests import write_tests
    from engine.routetest.runner import run_paths
    from engine.runtime.binder import Binder

    recorded = config(tmp_path / "recorded")
    capture = record(tmp_path, recorded)
    registry = default_registry()
    program = compile_paths([recorded / "pay.route"], registry).program
    res = write_tests(Capture(capture), program, FormatGuide(program, Binder(program, registry).codec),
                      recorded, [recorded / "pay.route"], Profile(), mask=False)
    text = res.path.read_text()
    assert text.count("expect dead letter {") == 1, text
    assert ('expect dead letter { route = "pay"  error_kind = "rejected"  error_code = "13"  '
            'reason = "rejected: invalid amount" }') in text, text
    ran = run_paths([res.path], registry)
    assert not ran.broken and len(ran.outcomes) == 2 and all(o.passed for o in ran.outcomes), \
        [f for o in ran.outcomes for f in o.failures]


def test_a_reason_is_compared_without_what_each_run_makes_its_own() -> None:
    from engine.replay.deadrow import reason_text
    a = ("key_conflict: deal key 'K1' was used by deal 0193f2a4b5c6d7e8f9a0b1c2d3e4f5a6 for another deal "
         "(at /srv/recorded/pay.route:14:9)")
    b = ("key_conflict: deal key 'K1' was used by deal 0193f2a4b5c6ffffffffffffffffffff for another deal "
         "(at /home/t/candidate/pay.route:15:9)")
    assert reason_text(a) == reason_text(b) == \
        "key_conflict: deal key 'K1' was used by deal <deal id> for another deal (at pay.route)"
    assert reason_text("timeout: call auth: channel h: no reply within 5s (as recorded)") == \
        "timeout: call auth: channel h: no reply within 5s"


def test_a_letter_recorded_without_its_code_is_not_compared_by_code(tmp_path: Path) -> None:
    """Until 2026-11-28 a dead letter had a code only when its exchange was answered (a file's record, a NATS
    message without a reply subject had none); now every letter has its deal's.  A capture of then, replayed
    by the same routes, is no difference for that."""
    recorded = config(tmp_path / "recorded")
    capture = record(tmp_path, recorded)
    with duckdb.connect(str(capture)) as con:
        con.execute("UPDATE frames SET dead_letters = replace(dead_letters, '\"code\": \"13\"', '\"code\": null') "
                    "WHERE dead_letters LIKE '%\"code\": \"13\"%'")
        assert con.execute("SELECT count(*) FROM frames WHERE dead_letters LIKE '%\"code\": null%'").fetchone()[0] == 1
    same = replay_file(capture, [recorded], default_registry())
    assert dead(same) == [] and same.passed, [vars(d) for d in same.diff.differences]
    # the reason is still compared
    other = replay_file(capture, [candidate(tmp_path, "other", 'msg.amount > 0 else reject "14" "amount is zero"')],
                        default_registry())
    assert {f for _k, f, _r, _p in dead(other)} == {"reason"}, dead(other)
