"""Where the admin clients look for the engine (engine/commands/admin_url.py): --url / $BSP_ADMIN_URL, else the
deployment file's admin.listen (--deployment FILE, else ./platform.yaml), else the address the shipped
routes/platform.yaml serves.  A real engine on a loopback port the clients are not told on the command line."""
from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio

from engine.commands.admin_url import DEFAULT_URL, from_deployment, resolve
from engine.ops.runopts import admin_options
from engine.ops.serve import OpsOptions, run_live
from engine.registry import default_registry
from opskit import ECHO, REPO, compile_file

TOKEN = "url-admin-token-" + "u" * 24


def bsp(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env)
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=str(cwd), env=e, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_the_default_is_the_address_the_shipped_platform_yaml_serves(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)                    # no platform.yaml here
    monkeypatch.delenv("BSP_ENV", raising=False)
    shipped, where = from_deployment(REPO / "routes" / "platform.yaml", None)
    assert shipped == DEFAULT_URL == "http://127.0.0.1:7080", where
    assert resolve(None, None, None) == shipped
    # a wildcard listen address is dialled on loopback; admin.tls makes it https
    (tmp_path / "a.route").write_text(ECHO % "A")
    (tmp_path / "platform.yaml").write_text('version: 1\nroutes: [a.route]\nadmin: {listen: "0.0.0.0:7181"}\n')
    assert resolve(None, None, None) == "http://127.0.0.1:7181"
    assert resolve("http://10.0.0.9:1", None, None) == "http://10.0.0.9:1"


async def test_clients_find_the_engine_from_the_deployment_file(nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_ADMIN_TOKEN", TOKEN)
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    ops = OpsOptions(admin=admin_options("127.0.0.1:0", None, None, None, None, None),
                     hooks=[lambda e: (box.append(e), ready.set())])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=1.0, ops=ops))
    with trio.fail_after(10):
        await ready.wait()
    port = box[0].admin_port
    site = tmp_path / "site"
    site.mkdir()
    (site / "platform.yaml").write_text(f'version: 1\nroutes: [../echo.route]\n'
                                        f'admin: {{listen: "127.0.0.1:{port}"}}\n')
    run = partial(trio.to_thread.run_sync)
    try:
        # ./platform.yaml in the working folder, nothing on the command line
        p = await run(partial(bsp, "status", cwd=site, BSP_ADMIN_TOKEN=TOKEN))
        assert p.returncode == 0, p.stderr
        assert '"ready": true' in p.stdout
        p = await run(partial(bsp, "deals", "--live", "--json", cwd=site, BSP_ADMIN_TOKEN=TOKEN))
        assert p.returncode == 0, p.stderr
        # --deployment FILE from another folder
        p = await run(partial(bsp, "status", "--deployment", str(site / "platform.yaml"), BSP_ADMIN_TOKEN=TOKEN))
        assert p.returncode == 0, p.stderr
        # $BSP_ADMIN_URL (and --url) win over the file: here a port nobody listens on
        p = await run(partial(bsp, "status", cwd=site, BSP_ADMIN_TOKEN=TOKEN, BSP_ADMIN_URL="http://127.0.0.1:9"))
        assert p.returncode == 1 and "cannot reach the admin API at http://127.0.0.1:9:" in p.stderr, p.stderr
        # the message names where an address it could not reach came from
        (site / "platform.yaml").write_text('version: 1\nroutes: [../echo.route]\nadmin: {listen: "127.0.0.1:9"}\n')
        p = await run(partial(bsp, "status", cwd=site, BSP_ADMIN_TOKEN=TOKEN))
        assert p.returncode == 1, p.stderr
        assert "cannot reach the admin API at http://127.0.0.1:9 (from platform.yaml admin.listen 127.0.0.1:9)" \
            in p.stderr, p.stderr
    finally:
        box[0].drain()
