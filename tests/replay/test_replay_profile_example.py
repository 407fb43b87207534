"""The example replay profile the docs name (routes/bill_payment/replay.yaml) loads, lets a recording of
the shipped bill payment service replay clean, and its commented `expect:` rule, once uncommented, accepts
the change it describes (`bsp replay` in a real subprocess)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from engine.replay.profile import load_profile
from replaykit import BILL, REPO, config_copy, record_session

PROFILE = BILL / "replay.yaml"
LOWER = (lambda t: t.replace('message    = "paid " + upper(', 'message    = "paid " + lower('))


def test_the_example_profile_loads() -> None:
    prof = load_profile(PROFILE)
    assert prof.ignore == () and prof.expect == () and prof.path == str(PROFILE)


def test_the_example_profile_and_its_commented_rule_work(tmp_path) -> None:
    config = config_copy(tmp_path / "config")
    capture = record_session(tmp_path, config, 40, mask=True)

    def replay(cand, profile) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(capture), "--config", str(cand),
                               "--profile", str(profile)], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})

    res = replay(BILL / "bill_payment.route", PROFILE.relative_to(REPO))       # as the docs show it
    assert res.returncode == 0 and "result: PASS" in res.stdout, res
    cand = config_copy(tmp_path / "cand", LOWER)
    res = replay(cand, PROFILE)
    assert res.returncode == 1 and "reply mainframe    message" in res.stdout, res
    text = PROFILE.read_text()
    rule = re.search(r"^expect: \[\]$", text, re.M)
    commented = re.findall(r"^#(   .*)$", text[text.index("uncomment this rule"):rule.start()], re.M)
    uncommented = tmp_path / "replay.yaml"
    uncommented.write_text("expect:\n" + "\n".join(line[1:] for line in commented) + "\n")
    assert len(load_profile(uncommented).expect) == 1
    res = replay(cand, uncommented)
    assert res.returncode == 0 and "expected by reply channel mainframe field message" in res.stdout, res
