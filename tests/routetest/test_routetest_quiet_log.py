"""``bsp test`` keeps the engine's own log to itself: a test's outcome says what went wrong."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

ROUTE = """format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length4
    on error reply J { kind = error.kind }
}
route r {
    receive from front as J
    let k = "abc"
    reply J { ok = k.x }
}
test "a route bug answers internal" {
    given front sends J { pan = "4111111111111111" }
    expect reply { kind = "%s" }
}
"""


def bsp_test(folder: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    return subprocess.run([sys.executable, "-m", "engine.cli", "test", str(folder)], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_an_internal_error_a_test_expects_prints_no_traceback(tmp_path: Path) -> None:
    # before: the engine's log of the internal error (with its traceback) went to stderr through Python's
    # last-resort handler, unformatted and unmasked, on a run where every test passed
    (tmp_path / "r.route").write_text(ROUTE % "internal")
    p = bsp_test(tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed, 0 failed" in p.stdout
    assert "Traceback" not in p.stderr and "internal error at" not in p.stderr, p.stderr


def test_a_failing_test_still_says_why(tmp_path: Path) -> None:
    (tmp_path / "r.route").write_text(ROUTE % "rejected")
    p = bsp_test(tmp_path)
    assert p.returncode == 1
    assert "cannot read field 'x' of a string (k)" in p.stdout, p.stdout
    assert "Traceback" not in p.stderr, p.stderr
