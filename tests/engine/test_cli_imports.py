"""`bsp` starts light: importing the command line, and printing the help of every command, loads none
of DuckDB, Arrow, trio, the admin HTTP server, the route-language compiler, the report and reconcile
code or the cryptography library; each command imports what it needs when it runs (docs/benchmarks.md,
"Start-up of the command line").  Checked in a new interpreter, by module names, never by timing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[2]

HEAVY_PACKAGES = {"duckdb", "pyarrow", "cryptography", "h11", "httpx", "lxml", "xmlschema", "trio", "lark",
                  "prometheus_client", "yaml", "jsonschema", "rich"}
HEAVY_MODULES = {"dsl.load", "dsl.checker", "dsl.parser", "engine.ledger", "engine.ledger_store",
                 "engine.ledger_query", "engine.audit", "engine.reconcile", "engine.reports", "engine.admin",
                 "engine.admin.app", "engine.certs", "engine.codec_cli", "engine.registry", "engine.deploy",
                 "engine.http"}

PROBE = """
import json, sys
import engine.cli
if sys.argv[1] == "help":                     # the help of bsp and of every command and subcommand
    import typer.main
    from typer.testing import CliRunner
    paths = []
    def walk(cmd, path):
        paths.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, path + [name])
    walk(typer.main.get_command(engine.cli.app), [])
    for path in paths:
        res = CliRunner().invoke(engine.cli.app, path + ["--help"], terminal_width=100)
        assert res.exit_code == 0 and "Usage:" in res.output, (path, res.output)
    print(len(paths), "help pages", file=sys.stderr)
print(json.dumps(sorted(sys.modules)))
"""

def loaded(mode: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY_PACKAGES or m in HEAVY_MODULES
                  or any(m.startswith(h + ".") for h in HEAVY_MODULES))


def test_import_engine_cli_loads_nothing_heavy() -> None:
    assert heavy(loaded("import")) == []


def test_help_of_every_command_loads_nothing_heavy_but_rich() -> None:
    """Printing the help renders with rich (typer does it); nothing else heavy is needed for it."""
    assert [m for m in heavy(loaded("help")) if m.split(".")[0] != "rich"] == []


def test_help_lists_every_command_in_order() -> None:
    from engine.cli import COMMAND_MODULES, app

    names = [c.name for c in typer.main.get_command(app).commands.values()]
    assert names[:4] == ["version", "check", "run", "demo"]
    assert set(names) >= {"decode", "encode", "deals", "docs", "status", "reload", "top", "admin", "certs", "audit",
                          "dead", "files", "report", "reconcile", "replay", "test", "ledger", "sim", "approvals"}
    assert len(COMMAND_MODULES) == 19


def test_the_light_names_are_the_home_modules_names() -> None:
    """engine/defaults.py holds what the options and help show; the modules that use them re-export the
    same objects, so that nothing else changes."""
    import engine.admin.app
    import engine.admin.auth
    import engine.audit
    import engine.codec_cli
    import engine.commands.run
    import engine.deal
    import engine.deploy
    import engine.ledger
    import engine.reconcile
    import engine.reports
    import engine.reports.export
    from engine import defaults

    assert engine.ledger.DEFAULT_LEDGER is engine.deploy.DEFAULT_LEDGER is engine.commands.run.DEFAULT_LEDGER \
        is defaults.DEFAULT_LEDGER == Path("var/bsp.duckdb")
    assert engine.deal.STATUSES is defaults.DEAL_STATUSES
    assert engine.deal.DEAD_STATUSES is defaults.DEAD_STATUSES
    assert (engine.admin.app.DEFAULT_HOST, engine.admin.app.DEFAULT_PORT) == ("127.0.0.1", 7080)
    assert engine.admin.auth.TOKEN_ENV == defaults.ADMIN_TOKEN_ENV == "BSP_ADMIN_TOKEN"
    assert (engine.audit.ENV_KEY, engine.audit.ENV_KEY_FILE) == ("BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE")
    assert engine.reports.FORMATS == tuple(engine.reports.export.WRITERS) == defaults.REPORT_FORMATS
    assert engine.reports.REPORTS is defaults.REPORTS
    assert engine.reconcile.TYPES is defaults.STATEMENT_TYPES
    assert engine.codec_cli.KINDS is defaults.CODEC_KINDS
