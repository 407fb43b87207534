"""The files `bsp replay` writes (--json, --html, --to-tests) hold deal references and, with
`--to-tests --no-mask`, values in clear: they are owner-only (0600) whatever the umask, as the ledger,
captures and reports are (docs/security.md)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from replaykit import config_copy, record_session

BSP = Path(sys.executable).parent / "bsp"


def test_replay_reports_and_generated_tests_are_owner_only_under_a_permissive_umask(tmp_path):
    config = config_copy(tmp_path / "config")
    capture = record_session(tmp_path, config, 10)
    (tmp_path / "old.json").write_text("{}")
    os.chmod(tmp_path / "old.json", 0o644)              # a report of that name already there: narrowed
    env = dict(os.environ)

    def run(*args: str) -> None:
        proc = subprocess.run([str(BSP), "replay", str(capture), "--config", str(config), *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                              preexec_fn=lambda: os.umask(0o022))
        assert proc.returncode == 0, proc.stderr

    run("--progress-every", "0", "--json", "old.json", "--html", "r.html")
    run("--to-tests", "gen", "--no-mask")
    written = [tmp_path / "old.json", tmp_path / "r.html", *sorted((tmp_path / "gen").glob("*_test.route"))]
    assert len(written) >= 3
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == \
        {p.name: "0o600" for p in written}
