"""`bsp check platform.yaml` is the pre-flight of a deploy: it reports every key, token and certificate
file the deployment file names that is missing or unreadable (an error, exit 1), every key or token file
readable by group/others and every `{env: NAME}` unset in this shell (warnings), each at its line, all in
one run, never with a key's content.  Until 2026-11-27 it checked none of them, and `bsp run` stopped at
the first one it could not read.

Real files in tmp_path; `bsp check` in-process (typer's CliRunner), run from the deployment's folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route echo {
    receive from front as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref }
}
"""

THREE_MISSING = """\
routes: [routes/]
ledger:
  path: var/ledger.duckdb
  audit_key: {file: keys/audit.key}
admin:
  listen: "127.0.0.1:0"
  token: {file: secrets/admin.token}
  tls: {cert: tls/admin.crt, key: {file: tls/admin.key}}
"""

KEY_TEXT = "c2VjcmV0LWtleS1ieXRlcy10aGF0LW11c3Qtbm90LWxlYWs="


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "echo.route").write_text(ROUTE)
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith(("BSP_", "PREFLIGHT_"))]:
        monkeypatch.delenv(name)
    return tmp_path


def check(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["check", "platform.yaml", *args])
    return r.exit_code, r.output


def test_three_missing_files_are_three_errors_with_their_lines(site: Path) -> None:
    (site / "platform.yaml").write_text(THREE_MISSING)
    (site / "tls").mkdir()
    (site / "tls" / "admin.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    code, out = check()
    assert code == 1, out
    errors = [ln for ln in out.splitlines() if ": error: " in ln]
    assert errors == [
        f"platform.yaml:4:14: error: ledger.audit_key: {site / 'keys/audit.key'}: no such file; put the file "
        f"there, or fix the path (relative to the deployment file)",
        f"platform.yaml:7:10: error: admin.token: {site / 'secrets/admin.token'}: no such file; create it with "
        f"`bsp admin token {site / 'secrets/admin.token'}` (mode 0600), or fix the path (relative to the "
        f"deployment file)",
        f"platform.yaml:8:35: error: admin.tls.key: {site / 'tls/admin.key'}: no such file; put the file there, "
        f"or fix the path (relative to the deployment file)",
    ], out
    assert "3 errors in the files the deployment file names" in out
    # the route files are still checked, in the same run
    assert "1 file compiled" in out.strip().splitlines()[-1]


def test_an_environment_override_names_its_own_line(site: Path) -> None:
    (site / "platform.yaml").write_text("routes: [routes/]\nadmin:\n  listen: \"127.0.0.1:0\"\n"
                                        "  token: {file: admin.token}\nenvironments:\n  uat:\n    admin:\n"
                                        "      token: {file: uat.token}\n")
    code, out = check()
    assert code == 1, out
    assert "platform.yaml:4:10: error: admin.token:" in out and "platform.yaml:8:14: error: admin.token:" in out
    code, out = check("--env", "uat")          # the chosen environment alone
    assert code == 1, out
    assert "platform.yaml:4:10:" not in out and "platform.yaml:8:14: error: admin.token:" in out


def test_a_key_file_readable_by_others_is_a_warning_without_its_content(site: Path) -> None:
    (site / "platform.yaml").write_text("routes: [routes/]\nledger:\n  audit_key: {file: audit.key}\n")
    key = site / "audit.key"
    key.write_text(KEY_TEXT + "\n")
    key.chmod(0o644)
    code, out = check()
    assert code == 0, out
    assert (f"platform.yaml:3:14: warning: ledger.audit_key: {key}: readable by group/others (mode 0644): "
            f"whoever reads it has the secret; chmod 600 {key}") in out
    assert KEY_TEXT not in out
    key.chmod(0o600)
    code, out = check()
    assert code == 0 and "warning: ledger.audit_key" not in out, out


def test_an_unset_variable_is_a_warning(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (site / "platform.yaml").write_text("routes: [routes/]\nadmin:\n  listen: \"127.0.0.1:0\"\n"
                                        "  token: {env: PREFLIGHT_TOKEN}\n")
    code, out = check()
    assert code == 0, out
    assert ("platform.yaml:4:10: warning: admin.token: $PREFLIGHT_TOKEN: not set in this shell; export "
            "PREFLIGHT_TOKEN before bsp run (the deploy machine's environment may differ)") in out
    monkeypatch.setenv("PREFLIGHT_TOKEN", KEY_TEXT)
    code, out = check()
    assert code == 0 and "PREFLIGHT_TOKEN" not in out, out


def test_json_lists_them_and_is_not_ok(site: Path) -> None:
    (site / "platform.yaml").write_text(THREE_MISSING)
    code, out = check("--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert [(f["severity"], f["key"], f["place"]) for f in doc["deployment_files"]] == [
        ("error", "ledger.audit_key", "platform.yaml:4:14"), ("error", "admin.token", "platform.yaml:7:10"),
        ("error", "admin.tls.cert", "platform.yaml:8:15"), ("error", "admin.tls.key", "platform.yaml:8:35")]


def test_run_names_every_missing_file_at_once(site: Path) -> None:
    """`bsp run` of the same file stops before anything starts (exit 2), with all of them, not the first."""
    import subprocess
    import sys
    (site / "platform.yaml").write_text(THREE_MISSING)
    (site / "tls").mkdir()
    (site / "tls" / "admin.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BSP_", "PREFLIGHT_"))}
    r = subprocess.run([sys.executable, "-m", "engine.cli", "run", "platform.yaml"], cwd=str(site), env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [ln.split(": ")[2] for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == ["ledger.audit_key", "admin.token", "admin.tls.key"], r.stderr
    assert "platform.yaml:7:10: admin.token:" in r.stderr
    assert not (site / "var").exists()          # nothing started: no ledger made
