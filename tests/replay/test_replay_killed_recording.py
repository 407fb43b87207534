"""A capture whose recording engine was killed (kill -9, a crash, the machine going down) is told as such.

The capture's frames are then partly in DuckDB's write-ahead file (``NAME.wal``) beside it.  Replayed where
it was written, it replays, and the report says that it was not closed (the exchanges in flight then are not
in it); copied without its ``.wal``, it is an empty DuckDB file, and the error says where the frames are
rather than that the file is no capture.  A capture whose recorder dropped frames says how many."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from replaykit import REPO, config_copy, record_session


def bsp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("small")
    config = config_copy(tmp / "config")
    return record_session(tmp, config, 40), config


def _killed_recording(source: Path, dest: Path) -> None:
    """A recorder writes ``source``'s frames into ``dest`` and is killed (SIGKILL) once they are written,
    as `bsp run --record` killed with kill -9: ``close()`` never runs."""
    script = textwrap.dedent("""
        import os, signal, sys, time
        import duckdb
        from engine.replay.capture import CaptureWriter, NAMES
        src, dest = sys.argv[1], sys.argv[2]
        con = duckdb.connect(src, read_only=True)
        rows = [dict(zip(NAMES, r)) for r in con.execute(f"SELECT {', '.join(NAMES)} FROM frames ORDER BY seq").fetchall()]
        con.close()
        w = CaptureWriter(dest, channels=["biller", "mainframe"])
        for r in rows:
            w.add(r)
        while w.rows < len(rows):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    res = subprocess.run([sys.executable, "-c", script, str(source), str(dest)], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == -9, res


def test_a_capture_whose_engine_was_killed_says_so(small, tmp_path: Path) -> None:
    capture, config = small
    killed = tmp_path / "killed.duckdb"
    _killed_recording(capture, killed)
    assert Path(f"{killed}.wal").exists()
    res = bsp("replay", str(killed), "--config", str(config), "--json", str(tmp_path / "r.json"),
              "--progress-every", "0", cwd=tmp_path)
    assert res.returncode == 0, res
    assert ("  capture: the capture was not closed: the recording engine was killed or crashed" in res.stdout), \
        res.stdout
    notes = json.loads((tmp_path / "r.json").read_text())["summary"]["capture_notes"]
    assert len(notes) == 1 and notes[0].startswith("the capture was not closed"), notes

    # the same file copied without its .wal: no table at all, and the error says where the frames are
    alone = tmp_path / "copy" / "killed.duckdb"
    alone.parent.mkdir()
    shutil.copy(killed, alone)
    res = bsp("replay", str(alone), "--config", str(config), cwd=tmp_path)
    assert res.returncode == 2, res
    assert res.stderr.startswith(f"error: {alone}: a DuckDB file with no table at all"), res.stderr
    assert "killed.duckdb.wal" in res.stderr and "not a capture" not in res.stderr, res.stderr


def test_a_closed_capture_has_no_note_and_dropped_frames_are_counted(small, tmp_path: Path) -> None:
    capture, config = small
    res = bsp("replay", str(capture), "--config", str(config), "--progress-every", "0", cwd=tmp_path)
    assert res.returncode == 0 and "capture:" not in res.stdout, res
    behind = tmp_path / "behind.duckdb"
    shutil.copy(capture, behind)
    con = duckdb.connect(str(behind))
    con.execute("UPDATE capture_info SET value = '7' WHERE key = 'dropped'")
    con.close()
    res = bsp("replay", str(behind), "--config", str(config), "--progress-every", "0", cwd=tmp_path)
    assert "  capture: 7 frame(s) were dropped while recording (the recorder fell behind)" in res.stdout, res.stdout
