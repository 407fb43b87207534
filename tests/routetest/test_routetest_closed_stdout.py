"""`bsp test ... | head`: a reader that stops early is not an error (no traceback, no "Broken pipe");
the tests still run and the exit code is still their verdict (0 all passed, 1 one failed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BSP = Path(sys.executable).parent / "bsp"

ROUTE = '''format Req = json
channel front = memory
route echo {
    receive from front as Req
    reply Req { code = "00" }
}
'''


def _closed_stdout(*args: str, cwd: Path) -> tuple[int, str]:
    with subprocess.Popen([str(BSP), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd) as proc:
        proc.stdout.close()                  # the reader has gone before the first line
        err = proc.stderr.read().decode()
        return proc.wait(timeout=120), err


def _tests(tmp_path: Path, last_code: str) -> Path:
    tests = "".join(f'test "t{i}" {{\n    given front sends {{ a = {i} }}\n    expect reply {{ code = "00" }}\n}}\n'
                    for i in range(5))
    tests += f'test "last" {{\n    given front sends {{ a = 9 }}\n    expect reply {{ code = "{last_code}" }}\n}}\n'
    (tmp_path / "echo.route").write_text(ROUTE + tests)
    return tmp_path / "echo.route"


def test_a_closed_stdout_keeps_the_verdict_of_passing_tests(tmp_path: Path) -> None:
    route = _tests(tmp_path, "00")
    junit = tmp_path / "junit.xml"
    code, err = _closed_stdout("test", str(route), "--junit", str(junit), cwd=tmp_path)
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception" not in err, err
    assert code == 0, err
    assert 'tests="6"' in junit.read_text() and 'failures="0"' in junit.read_text()


def test_a_closed_stdout_keeps_the_verdict_of_a_failing_test(tmp_path: Path) -> None:
    route = _tests(tmp_path, "99")                 # the last test fails, long after the reader has gone
    junit = tmp_path / "junit.xml"
    code, err = _closed_stdout("test", str(route), "--junit", str(junit), cwd=tmp_path)
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception" not in err, err
    assert code == 1, err
    assert 'failures="1"' in junit.read_text()
