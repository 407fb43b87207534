"""`bsp audit verify` / `bsp deals show --reveal` given a deployment file that names no key (the shipped
routes/platform.yaml, as the admin tour runs them): the error names that file and what to add to it,
instead of asking for the `--deployment platform.yaml` the operator already gave.

Real DuckDB ledger in tmp_path, the command line through typer's runner."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.ledger import open_ledger

NO_KEYS = ("BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_ENV")


async def make_ledger(path: Path) -> None:
    async with open_ledger(path, audit_key=None, keyring=None) as ledger:
        await ledger.record_config("v1", {"a.route": ""})


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in NO_KEYS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "a.route").write_text("")
    (tmp_path / "platform.yaml").write_text("version: 1\nroutes: [a.route]\nledger: ledger.duckdb\n"
                                            "environments:\n  uat: {}\n")
    trio.run(make_ledger, tmp_path / "ledger.duckdb")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_audit_verify_names_the_deployment_file_that_has_no_audit_key(site: Path) -> None:
    res = CliRunner().invoke(app, ["audit", "verify", "--deployment", "platform.yaml"])
    assert res.exit_code == 2, res.output
    assert ("error: no audit key: platform.yaml sets no ledger.audit_key and neither BSP_AUDIT_KEY_FILE nor "
            "BSP_AUDIT_KEY is set; if the engine writes with a key, add it under the file's `ledger:` "
            "(`audit_key: {file: keys/audit.key}`" in res.output), res.output
    assert "give the deployment file" not in res.output
    res = CliRunner().invoke(app, ["audit", "verify", "--deployment", "platform.yaml", "--env", "uat"])
    assert res.exit_code == 2 and "platform.yaml sets no ledger.audit_key (environment uat, nor its base" in res.output
    # without the file the error still says where a key can come from
    res = CliRunner().invoke(app, ["audit", "verify", "--ledger", "ledger.duckdb"])
    assert res.exit_code == 2 and "give the deployment file whose ledger.audit_key" in res.output, res.output


def test_audit_verify_before_any_engine_ran_names_both_the_missing_ledger_and_the_missing_key(site: Path) -> None:
    """The shipped platform.yaml before any engine created its ledger (the admin tour's first try): one message
    with both problems, so the admin does not fix one only to be told of the other."""
    (site / "ledger.duckdb").unlink()
    res = CliRunner().invoke(app, ["audit", "verify", "--deployment", "platform.yaml"])
    assert res.exit_code == 2, res.output
    lines = res.output.splitlines()
    assert lines[0] == "error: 2 problems, fix both:", res.output
    assert lines[1].startswith(f"  {site / 'ledger.duckdb'}: no ledger file here. Give the ledger with --ledger "
                               f"FILE (the deployment file's `ledger:`"), res.output
    assert lines[2].startswith("  no audit key: platform.yaml sets no ledger.audit_key and neither "
                               "BSP_AUDIT_KEY_FILE nor BSP_AUDIT_KEY is set"), res.output
    # with a key the missing ledger is the one problem, said as before
    (site / "audit.key").write_text("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
    (site / "audit.key").chmod(0o600)
    res = CliRunner().invoke(app, ["audit", "verify", "--ledger", "ledger.duckdb"],
                             env={"BSP_AUDIT_KEY_FILE": str(site / "audit.key")})
    assert res.exit_code == 2 and res.output.startswith("error: ledger.duckdb: no ledger file here."), res.output
    assert "no audit key" not in res.output


def test_deals_show_reveal_names_the_deployment_file_that_has_no_keyring(site: Path) -> None:
    res = CliRunner().invoke(app, ["deals", "show", "0123abcd", "--reveal", "--deployment", "platform.yaml"])
    assert res.exit_code == 2, res.output
    assert ("error: --reveal needs the field keyring: platform.yaml sets no ledger.field_keys and neither "
            "BSP_FIELD_KEYS_FILE nor BSP_FIELD_KEYS is set; if the engine writes with a keyring, add it under "
            "the file's `ledger:` (`field_keys: {file: keys/field-keys.json}`)" in res.output), res.output
    assert "give the deployment file" not in res.output
