"""`bsp replay` reads the capture in chunks and compares each exchange as it finishes: memory is the work in
flight, not the capture.  The reports are those of the replay that read it whole; `--from N --count M`
replays a slice and says so; `--max-differences` bounds the differences kept, never the counts; an
interrupted replay's report is the first exchanges exactly and says the `--from` to go on with.  A recorded
bill payment session (real loopback sockets, replaykit.py)."""
from __future__ import annotations

import gc
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import duckdb

import pytest
import trio

from replaykit import REPO, config_copy, record_session, replay_cli as cli
from engine.registry import default_registry
from engine.replay.capture import Capture, RecordedExchange
from engine.replay.diff import Differ
from engine.replay.guide import FormatGuide
from engine.replay.junit import junit_xml
from engine.replay.profile import load_profile
from engine.replay.replayer import replay
from engine.replay.session import compile_config, replay_file
from engine.runtime.binder import Binder

# every reply differs (message), and the fee of some: an expected difference by the profile below
CHANGE = (lambda t: t.replace('message    = "paid " + upper(', 'message    = "paid " + lower(')
          .replace("else 0.50", "else 0.75"))
PROFILE = ('expect:\n  - {channel: mainframe, what: reply, field: message, recorded: "fee 0.50", '
           'produced: "fee 0.75", reason: CR-1 fee}\n')


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    config = config_copy(tmp / "config")
    cand = config_copy(tmp / "cand", CHANGE)
    (tmp / "cr.yaml").write_text(PROFILE)
    return record_session(tmp, config, 150), config, cand, tmp / "cr.yaml"


def _shape(ex: RecordedExchange) -> tuple:
    return (ex.exchange, ex.request.seq, ex.request.raw, ex.reply.seq if ex.reply else None,
            [(c.channel, c.seq, c.request.seq, c.request.raw, c.reply.seq if c.reply else None) for c in ex.calls])


def test_the_capture_read_in_chunks_is_the_capture_read_whole(session):
    capture, *_ = session
    whole, lazy = Capture(capture), Capture(capture, lazy=True)
    assert lazy.exchanges == [] and lazy.frames == []
    chunks = list(lazy.chunks(7))
    assert [len(c) for c in chunks[:-1]] == [7] * (len(chunks) - 1)
    assert [_shape(ex) for c in chunks for ex in c] == [_shape(ex) for ex in whole.exchanges]
    assert [_shape(ex) for c in lazy.chunks(4, 10, 9) for ex in c] == [_shape(ex) for ex in whole.exchanges[10:19]]
    assert lazy.count() == len(whole.exchanges) == 150
    assert lazy.versions() == whole.versions() and lazy.channels() == whole.channels()
    assert lazy.request_channels() == whole.request_channels() == {"mainframe"}
    assert lazy.call_channels() == whole.call_channels() == {"biller"}
    assert lazy.unreplayable_count() == whole.unreplayable_count() == 0


def _strip(report) -> tuple:
    data = report.to_json()
    data["summary"].pop("seconds")
    page = re.sub(r"<th>time</th><td>[^<]*</td>", "", report.html())
    xml = re.sub(rb' time="[^"]*"', b"", junit_xml(report))
    return json.dumps(data, sort_keys=True, default=str), page, xml


def test_reports_are_those_of_the_whole_capture_compared_at_the_end(session):
    capture, _, cand, prof = session
    registry = default_registry()
    streamed = replay_file(capture, [cand], registry, profile=prof)
    small = replay_file(capture, [cand], registry, profile=prof, chunk=3, concurrency=2)
    assert streamed.diff.unexpected_count > 0 and streamed.diff.expected_count > 0
    assert _strip(small) == _strip(streamed)            # JSON, HTML and JUnit: whatever the chunk and window

    # the replay as it was: the capture read whole, every exchange kept, compared once all had finished
    program = compile_config([cand], registry)
    cap = Capture(capture)
    run = trio.run(lambda: replay(cap, program, registry))
    assert len(run.replayed) == 150
    diff = Differ(FormatGuide(program, Binder(program, registry).codec), load_profile(prof),
                  masked=cap.masked).run(run.replayed)
    assert [vars(d) for d in streamed.diff.differences] == [vars(d) for d in diff.differences]
    assert streamed.diff.groups() == diff.groups()
    assert (streamed.diff.exchanges, streamed.diff.identical) == (diff.exchanges, diff.identical)


def test_memory_is_the_work_in_flight_not_the_capture(session):
    capture, _, cand, _ = session
    registry = default_registry()
    program = compile_config([cand], registry)
    cap = Capture(capture, lazy=True)
    alive: list[int] = []

    def compared(r) -> None:
        if r.position % 10 == 0:
            gc.collect()
            alive.append(sum(isinstance(o, RecordedExchange) for o in gc.get_objects()))

    run = trio.run(lambda: replay(cap, program, registry, on_result=compared, chunk=10, concurrency=4))
    assert run.finished == 150 and run.replayed == [] and len(alive) == 15
    # a chunk read ahead and the window in flight (10 + 10): never the 150 of the capture
    assert max(alive) <= 30, alive


def test_from_and_count_replay_a_slice_and_the_report_says_which(session, tmp_path):
    capture, _, cand, prof = session
    whole = Capture(capture)
    out = tmp_path / "r.json"
    res = cli(str(capture), "--config", str(cand), "--profile", str(prof), "--from", "11", "--count", "20",
              "--json", str(out), "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 1, res.output
    assert "slice: exchanges 11 to 30 of the 150 in the capture, in replay order (--from 11 --count 20)" in res.output
    data = json.loads(out.read_text())
    assert data["summary"]["slice"] == {"from": 11, "count": 20, "of": 150}
    assert data["summary"]["exchanges"] == 20 and data["summary"]["exchanges_in_capture"] == 20
    assert {d["exchange"] for d in data["differences"]} <= {ex.exchange for ex in whole.exchanges[10:30]}
    assert data["summary"]["with_differences"] > 10
    assert "exchanges 11 to 30 of the 150" in (tmp_path / "r.html").read_text()
    res = cli(str(capture), "--config", str(cand), "--from", "141")        # the rest: 10
    assert "slice: exchanges 141 to 150 of the 150" in res.output and "against configuration" in res.output
    res = cli(str(capture), "--config", str(cand), "--from", "151")
    assert res.exit_code == 2 and "--from 151: the capture holds 150 exchange(s)" in res.output, res.output
    res = cli(str(capture), "--config", str(cand), "--from", "0")
    assert res.exit_code == 2 and "--from 0: expected 1 or more" in res.output, res.output
    plain = json.loads((_json(cli, capture, cand, tmp_path)).read_text())
    assert "slice" not in plain["summary"]                # a whole replay's report is as it was


def _json(cli, capture, cand, tmp_path):
    out = tmp_path / "plain.json"
    cli(str(capture), "--config", str(cand), "--json", str(out))
    return out


def test_max_differences_bounds_the_list_never_the_counts(session, tmp_path):
    capture, _, cand, prof = session
    out = tmp_path / "r.json"
    res = cli(str(capture), "--config", str(cand), "--profile", str(prof), "--max-differences", "5",
              "--json", str(out), "--junit", str(tmp_path / "r.xml"))
    assert res.exit_code == 1, res.output
    data = json.loads(out.read_text())
    s = data["summary"]
    assert len(data["differences"]) == 5
    total = s["unexpected_differences"] + s["expected_differences"]
    assert s["unexpected_differences"] > 50 and s["differences_not_kept"] == total - 5
    assert sum(g["count"] for g in data["groups"]) == total          # the places count them all
    assert f"{total - 5} more difference(s) counted but not kept (past --max-differences 5)" in res.output
    assert f"result: FAIL ({s['unexpected_differences']} unexpected difference(s)" in res.output


def test_an_interrupted_replay_goes_on_with_from_and_the_two_reports_cover_the_capture_once(session, tmp_path):
    capture, _, cand, prof = session
    slow = tmp_path / "slow.duckdb"
    shutil.copy(capture, slow)
    con = duckdb.connect(str(slow))     # one request every 100 ms: --pace original takes 15 s
    con.execute("UPDATE frames SET t_ms = 100 * (SELECT count(*) FROM frames f WHERE f.role = 'inbound' AND "
                "f.direction = 'in' AND f.seq <= frames.seq) WHERE role = 'inbound' AND direction = 'in'")
    con.close()
    part = tmp_path / "part.json"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "replay", str(slow), "--config", str(cand),
                             "--profile", str(prof), "--pace", "original", "--progress-every", "0.2",
                             "--json", str(part)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        progress = proc.stderr.readline()
        while progress and not progress.startswith("replay: ") or progress.startswith("replay: 0/"):
            progress = proc.stderr.readline()
        assert progress.startswith("replay: "), progress
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    first = json.loads(part.read_text())
    done = first["summary"]["exchanges"]
    assert 0 < done < 150 and first["summary"]["resume_from"] == done + 1
    assert f"run it again to the end for a verdict, or continue it with --from {done + 1}" in out
    rest = tmp_path / "rest.json"
    res = cli(str(slow), "--config", str(cand), "--profile", str(prof), "--from", str(done + 1), "--json", str(rest))
    assert res.exit_code == 1, res.output
    second = json.loads(rest.read_text())
    assert second["summary"]["exchanges"] == 150 - done
    whole = tmp_path / "whole.json"
    cli(str(slow), "--config", str(cand), "--profile", str(prof), "--json", str(whole))
    every = json.loads(whole.read_text())
    assert first["differences"] + second["differences"] == every["differences"]     # each compared once
