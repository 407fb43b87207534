"""`bsp check platform.yaml [--env ENV]` prints the configuration version `bsp run` of the same deployment
serves (its start line, `bsp status` `config_version`): the route files, the files they name and the
deployment's channel overrides for that environment, computed the same way; and says what it covers.
`bsp check` of the route files alone keeps printing theirs.  Until 2026-11-26 it printed the route files'
version for a deployment file too: an admin comparing it with `bsp run`'s found two versions.

Real `bsp check` and `bsp run` subprocesses in the deployment's folder, the admin API on 127.0.0.1 port 0."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from test_ops_deploy_settings import TOKEN, Engine, clean_env

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

PLATFORM = """
routes: [routes/]
ledger:
  path: var/ledger.duckdb
admin:
  listen: "127.0.0.1:0"
  token: {env: TEST_ADMIN_TOKEN}
channels:
  front: {idle_timeout: 30s}
environments:
  uat:
    channels:
      front: {idle_timeout: 40s}
"""


def check(site: Path, *args: str) -> tuple[str, str]:
    """The version `bsp check ARGS` prints in its summary line, and that line."""
    r = subprocess.run([sys.executable, "-m", "engine.cli", "check", *args], cwd=str(site), env=clean_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    line = r.stdout.strip().splitlines()[-1]
    return line.split("version ", 1)[1].split()[0], line


def test_check_of_a_deployment_prints_the_version_run_serves(tmp_path: Path) -> None:
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "echo.route").write_text(ROUTE)
    (tmp_path / "platform.yaml").write_text(PLATFORM.lstrip())
    uat, said = check(tmp_path, "platform.yaml", "--env", "uat")
    base, said_base = check(tmp_path, "platform.yaml")
    routes, said_routes = check(tmp_path, "routes/")
    assert len({uat, base, routes}) == 3                 # each override set is part of its version
    assert "as `bsp run platform.yaml --env uat` serves it" in said and "overrides for environment uat" in said
    assert "for the base settings (no --env, $BSP_ENV unset)" in said_base, said_base
    assert "(the route files and the files they name;" in said_routes, said_routes
    engine = Engine(tmp_path, "platform.yaml", "--env", "uat")
    try:
        started = engine.start()
        admin = started.split("admin API: ")[1].split()[0]
        status = httpx.get(f"{admin}/status", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    finally:
        engine.stop()
    assert f"version {uat}," in started, started          # the start line
    assert status["config_version"] == uat and status["environment"] == "uat", status
