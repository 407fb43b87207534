"""`bsp replay` and `bsp run --record` in real subprocesses: what a user meets when something is off.

An empty capture, a candidate without the recorded channel, a capture still being recorded, a ledger or a
folder given as the capture, a deployment file as --config, Ctrl-C in the middle (partial report, exit 130,
progress lines), output folders that do not exist, --to-tests over an existing file, --show 0, and
recording to a capture that is already there."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.replay.capture import CaptureWriter
from replaykit import REPO, config_copy, record_session


def bsp(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


def one_line_error(res: subprocess.CompletedProcess, start: str) -> None:
    assert res.returncode == 2, res
    assert "Traceback" not in res.stderr and "ExceptionGroup" not in res.stderr, res.stderr
    assert res.stderr.startswith(start), res.stderr


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("small")
    config = config_copy(tmp / "config")
    return record_session(tmp, config, 60), config


def test_an_empty_capture_is_not_a_pass(small, tmp_path: Path) -> None:
    _, config = small
    program = compile_paths([config / "bill_payment.route"], default_registry()).program
    empty = tmp_path / "empty.duckdb"
    CaptureWriter(empty, program=program, channels=["biller", "mainframe"]).close()   # recorded, no traffic
    res = bsp("replay", str(empty), "--config", str(config), cwd=tmp_path)
    one_line_error(res, f"error: {empty}: the capture holds no exchange: no inbound request was recorded on "
                        f"channel(s) biller, mainframe (0 frame(s) in all)")
    assert "PASS" not in res.stdout
    res = bsp("replay", str(empty), "--config", str(config), "--to-tests", str(tmp_path / "t"), cwd=tmp_path)
    one_line_error(res, f"error: {empty}: the capture holds no exchange")
    assert not (tmp_path / "t").exists()


def test_a_candidate_without_the_recorded_channel_is_one_line(small, tmp_path: Path) -> None:
    capture, config = small
    res = bsp("replay", str(capture), "--config", str(REPO / "routes" / "card_payments"), cwd=tmp_path)
    one_line_error(res, "error: the candidate configuration has no route receiving from channel(s) mainframe, "
                        "which the capture recorded requests on (it receives from: ")
    assert len(res.stderr.strip().splitlines()) == 1
    # a capture of several services replayed against one of them: which recorded folder to add, and that
    # --config is given once per folder
    assert f"the recording declared channel mainframe in {config / 'bill_payment.route'}" in res.stderr, res.stderr
    assert f"add --config {config} (or your copies; --config is given once per folder)" in res.stderr, res.stderr


def test_bad_capture_files_say_what_they_are(small, tmp_path: Path) -> None:
    capture, config = small
    ledger = capture.parent / "ledger.duckdb"
    res = bsp("replay", str(ledger), "--config", str(config), cwd=tmp_path)
    one_line_error(res, f"error: {ledger}: a DuckDB file but not a capture (no capture_info and no frames table) "
                        f"(it has a deals table: it looks like a ledger); a capture is made by `bsp run --record")
    res = bsp("replay", str(capture.parent), "--config", str(config), cwd=tmp_path)
    one_line_error(res, f"error: {capture.parent}: is a directory, not a capture file")
    locked = tmp_path / "recording.duckdb"
    shutil.copy(capture, locked)
    con = duckdb.connect(str(locked))         # this process writes it, as a recording engine does
    try:
        res = bsp("replay", str(locked), "--config", str(config), cwd=tmp_path)
    finally:
        con.close()
    one_line_error(res, f"error: {locked}: locked by a running engine (it is still being recorded); stop that "
                        f"`bsp run --record`")
    assert "IO Error" not in res.stderr


def test_a_deployment_file_as_config_replays_its_route_files(small, tmp_path: Path) -> None:
    capture, config = small
    dep = tmp_path / "platform.yaml"
    dep.write_text(f"version: 1\nroutes:\n  - {config}/*.route\nledger: {tmp_path}/l.duckdb\n")
    res = bsp("replay", str(capture), "--config", str(dep), cwd=tmp_path)
    assert res.returncode == 0, res
    assert "60 exchange(s)" in res.stdout and "result: PASS" in res.stdout
    dep.write_text("version: 1\nroutez: []\n")
    res = bsp("replay", str(capture), "--config", str(dep), cwd=tmp_path)
    one_line_error(res, f"error: --config {dep}: a deployment file with problems (replay takes its route files and channel overrides):")
    assert "expected a declaration" not in res.stderr


def test_output_folders_must_exist_and_show_0_lists_none(small, tmp_path: Path) -> None:
    capture, config = small
    for opt in ("--json", "--html"):
        res = bsp("replay", str(capture), "--config", str(config), opt, str(tmp_path / "nope" / "r.out"),
                  cwd=tmp_path)
        one_line_error(res, f"error: {opt} {tmp_path / 'nope' / 'r.out'}: the folder {tmp_path / 'nope'} does not "
                            f"exist; create it or choose another path")
        assert not (tmp_path / "nope").exists()
    cand = config_copy(tmp_path / "cand", lambda t: t.replace('"paid " + upper(', '"paid " + lower('))
    res = bsp("replay", str(capture), "--config", str(cand), "--show", "0", cwd=tmp_path)
    assert res.returncode == 1, res
    assert "unexpected difference(s):" not in res.stdout and "result: FAIL" in res.stdout


def test_to_tests_does_not_overwrite_without_force(small, tmp_path: Path) -> None:
    capture, config = small
    out = tmp_path / "recorded"
    res = bsp("replay", str(capture), "--config", str(config), "--to-tests", str(out), "--limit", "3",
              cwd=tmp_path)
    assert res.returncode == 0, res
    target = out / "session_test.route"
    target.write_text("# my edits\n")
    res = bsp("replay", str(capture), "--config", str(config), "--to-tests", str(out), cwd=tmp_path)
    one_line_error(res, f"error: --to-tests {out}: {target} already exists; add --force to replace it")
    assert target.read_text() == "# my edits\n"
    res = bsp("replay", str(capture), "--config", str(config), "--to-tests", str(out), "--limit", "3", "--force",
              cwd=tmp_path)
    assert res.returncode == 0 and "wrote 3 test(s)" in res.stdout, res
    assert target.read_text().count('test "recorded exchange') == 3


def test_ctrl_c_writes_the_partial_report_and_exits_130(small, tmp_path: Path) -> None:
    capture, config = small
    slow = tmp_path / "slow.duckdb"
    shutil.copy(capture, slow)
    con = duckdb.connect(str(slow))     # one request every 100 ms: --pace original takes 6 s
    con.execute("UPDATE frames SET t_ms = 100 * (SELECT count(*) FROM frames f WHERE f.role = 'inbound' AND "
                "f.direction = 'in' AND f.seq <= frames.seq) WHERE role = 'inbound' AND direction = 'in'")
    con.close()
    report = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "replay", str(slow), "--config", str(config),
                             "--pace", "original", "--progress-every", "0.2", "--json", str(report)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        progress = proc.stderr.readline()           # the first progress line: the replay is under way
        while progress and not progress.startswith("replay: ") or progress.startswith("replay: 0/"):
            progress = proc.stderr.readline()
        assert progress.startswith("replay: ") and "/60 exchange(s)" in progress, progress
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    first = out.splitlines()[0]
    assert first.startswith("interrupted after ") and first.split()[4] == "60", first
    done = int(first.split()[2])
    assert 0 < done < 60
    assert f"result: INTERRUPTED after {done} of 60 exchange(s)" in out
    assert f"report: {report} (partial)" in out
    summary = json.loads(report.read_text())["summary"]
    assert summary["partial"] is True and summary["result"] == "interrupted"
    assert summary["exchanges"] == done and summary["exchanges_in_capture"] == 60


def test_run_record_to_an_existing_capture_is_one_line(small, tmp_path: Path) -> None:
    capture, config = small
    res = bsp("run", str(config), "--ledger", str(tmp_path / "l.duckdb"), "--record", str(capture), cwd=tmp_path)
    one_line_error(res, f"error: --record {capture}: a file is already there; choose a new name (captures are "
                        f"never appended to)")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "l.duckdb").exists()
