"""`bsp replay ... | head`: a reader that stops early costs neither the --json/--html reports nor the
verdict, and is not reported as an error (as for Unix tools)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from replaykit import config_copy, record_session

BSP = Path(sys.executable).parent / "bsp"


def _closed_stdout(*args: str, cwd: Path) -> tuple[int, str]:
    """Run bsp with a stdout pipe whose reader has already gone (the first write gets EPIPE)."""
    with subprocess.Popen([str(BSP), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd) as proc:
        proc.stdout.close()
        err = proc.stderr.read().decode()
        return proc.wait(timeout=120), err


def test_a_closed_stdout_still_writes_the_reports_and_keeps_the_verdict(tmp_path):
    config = config_copy(tmp_path / "config")
    capture = record_session(tmp_path, config, 30)
    code, err = _closed_stdout("replay", str(capture), "--config", str(config), "--progress-every", "0",
                               "--json", "r.json", "--html", "r.html", cwd=tmp_path)
    assert "Broken pipe" not in err and "error" not in err and "Exception" not in err, err
    assert code == 0                                  # the verdict: no difference
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["result"] == "pass"
    assert "<title>bsp replay: PASS</title>" in (tmp_path / "r.html").read_text()

    code, err = _closed_stdout("replay", str(capture), "--config", str(config), "--to-tests", "gen", cwd=tmp_path)
    assert code == 0 and not err, err
    assert list((tmp_path / "gen").glob("*_test.route"))
