"""The usage errors an operator meets with `bsp deals` / `bsp dead` / `bsp audit verify`: each names the
option (or file) and says what to give instead, exit 2 (a deployment file with errors: exit 1)."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app


def bsp(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), terminal_width=400)
    said = " ".join(res.output.replace("│", " ").replace("╭", " ").replace("╰", " ").split())   # rich's box
    return res.exit_code, said


@pytest.mark.parametrize("args, want", [
    (["deals", "--status", "bogus"],
     "Invalid value for --status: 'bogus' is not a status; use one of committed, rejected, failed, duplicate"),
    (["dead", "list", "--status", "bogus"],
     "Invalid value for --status: 'bogus' is not a status; use one of new, retrying, retried, purged"),
    (["dead", "list", "--since", "yesterday"],
     "Invalid value for --since: 'yesterday' is not a time: write an ISO date or time"),
    (["dead", "purge", "--older-than", "last week"],
     "Invalid value for --older-than: 'last week' is not a time"),
    (["dead", "show", "0" * 32, "--env", "uat"],
     "Invalid value for --env: --env selects an environment of the deployment file: add --deployment "
     "platform.yaml"),
    (["audit", "verify", "--env", "uat"],
     "Invalid value for --env: --env selects an environment of the deployment file: add --deployment"),
    (["dead", "retry", "0" * 32, "--live", "--routes", "routes"],
     "Invalid value for --routes: --routes retries in this process, --live (or --admin) in a running engine: "
     "give one"),
    (["dead", "retry", "0" * 32, "--live", "--deployment", "platform.yaml"],
     "Invalid value for --deployment: --live (or --admin) retries in the running engine, with its own ledger "
     "and keys: drop --deployment"),
    (["dead", "retry", "0" * 32, "--admin", "http://127.0.0.1:1", "--live", "--url", "http://127.0.0.1:2"],
     "Invalid value for --admin: --admin http://127.0.0.1:1 and --url http://127.0.0.1:2 name two engines; "
     "give one"),
])
def test_a_bad_option_names_itself_and_the_fix(tmp_path: Path, args: list[str], want: str) -> None:
    code, said = bsp(*args, *(["--ledger", str(tmp_path / "l.duckdb")] if args[0] in ("deals", "dead") and
                              "--live" not in args and "--admin" not in args else []))
    assert code == 2 and want in said, said


@pytest.mark.parametrize("args", [["deals", "show", "0123abcd"], ["dead", "show", "0" * 32],
                                  ["dead", "retry", "0" * 32], ["dead", "purge", "--yes"], ["audit", "verify"]])
def test_a_deployment_file_that_is_not_there_is_named(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "platform.yaml"
    code, said = bsp(*args, "--deployment", str(missing))
    assert code == 2 and said == (f"error: --deployment {missing}: no such file; give the platform.yaml bsp run "
                                  f"serves"), said


def test_an_environment_the_deployment_file_lacks_is_named_with_its_place(tmp_path: Path) -> None:
    dep = tmp_path / "platform.yaml"
    (tmp_path / "a.route").write_text("")
    dep.write_text("version: 1\nroutes: [a.route]\nledger: l.duckdb\nenvironments:\n  uat: {}\n")
    code, said = bsp("dead", "retry", "0" * 32, "--deployment", str(dep), "--env", "prod")
    assert code == 1 and f"{dep}:" in said and "environment 'prod' (from --env) is not defined here" in said, said


@pytest.mark.parametrize("args", [["deals"], ["dead", "list"], ["dead", "show", "0" * 32],
                                  ["dead", "purge", "--yes"]])
def test_a_missing_ledger_is_named_with_how_to_give_it(tmp_path: Path, args: list[str]) -> None:
    ledger = tmp_path / "nope.duckdb"
    code, said = bsp(*args, "--ledger", str(ledger))
    assert code == 2 and said.startswith(f"error: {ledger}: no ledger file here. Give the ledger with --ledger "
                                         f"FILE"), said
    assert not ledger.exists()                                       # not created by the attempt
