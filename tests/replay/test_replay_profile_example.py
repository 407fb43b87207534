"""The example replay profile the docs name (routes/bill_payment/replay.yaml) loads, and does what it says:
a masked recording of the shipped bill payment service replays with 0 unexpected differences with it and
fails without it (`bsp replay` in a real subprocess)."""
from __future__ import annotations

import os
import subprocess
import sys

from engine.replay.profile import load_profile
from replaykit import BILL, REPO, config_copy, record_session

PROFILE = BILL / "replay.yaml"


def test_the_example_profile_loads() -> None:
    prof = load_profile(PROFILE)
    assert [(r.channel, r.what, r.field) for r in prof.ignore] == [("biller", "call", "account")]
    assert prof.expect == ()


def test_the_example_profile_makes_a_masked_recording_replay_clean(tmp_path) -> None:
    config = config_copy(tmp_path / "config")
    capture = record_session(tmp_path, config, 40, mask=True)

    def replay(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(capture), "--config",
                               str(BILL / "bill_payment.route"), *extra], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})

    res = replay()
    assert res.returncode == 1 and "call  biller       account" in res.stdout, res
    res = replay("--profile", str(PROFILE.relative_to(REPO)))
    assert res.returncode == 0, res
    assert "0 unexpected" in res.stdout and "result: PASS" in res.stdout
