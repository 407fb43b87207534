"""The options of `bsp replay --to-tests` are refused without it, and the report files with it: an option
that would be ignored in silence (`--limit 5` replaying every exchange) is a usage error (exit 2)."""
from __future__ import annotations

from pathlib import Path

import pytest

from replaykit import replay_cli as cli

REPO = Path(__file__).resolve().parents[2]
BILL = str(REPO / "routes" / "bill_payment")


@pytest.mark.parametrize("extra, named", [(["--limit", "5"], "--limit"), (["--force"], "--force"),
                                          (["--no-mask"], "--no-mask"),
                                          (["--limit", "5", "--force"], "--limit, --force")])
def test_to_tests_options_without_to_tests_are_a_usage_error(tmp_path, extra, named):
    res = cli(str(tmp_path / "capture.duckdb"), "--config", BILL, *extra)
    assert res.exit_code == 2, res.output
    assert f"error: {named}: only with --to-tests DIR" in res.output, res.output


def test_report_files_with_to_tests_are_a_usage_error(tmp_path):
    res = cli(str(tmp_path / "capture.duckdb"), "--config", BILL, "--to-tests", str(tmp_path / "t"),
              "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 2, res.output
    assert "error: --json, --html: --to-tests writes route tests, not a replay report" in res.output
    assert not (tmp_path / "t").exists()
