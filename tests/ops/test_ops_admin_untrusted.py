"""An admin client that does not trust the admin API's certificate is told to give --ca (or the right
CA), not asked whether the engine is running: it is, and it answered.  A real engine with its admin API
over HTTPS on 127.0.0.1 (port 0) and the real `bsp status` command."""
from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

import trio

from engine.certs import new_ca
from engine.ops.runopts import admin_options
from engine.ops.serve import OpsOptions, run_live
from engine.registry import default_registry
from opskit import ECHO, REPO, compile_file

TOKEN = "untrusted-admin-token-" + "k" * 20


async def test_status_against_an_untrusted_admin_certificate_says_to_give_the_ca(nursery, tmp_path: Path) -> None:
    ca = new_ca("admin CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    other_pem, _ = new_ca("another CA").write(tmp_path / "other")
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(tmp_path / "server")
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    opts = admin_options("127.0.0.1:0", token_file, cert, key, None, None)
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    ops = OpsOptions(admin=opts, hooks=[lambda e: (box.append(e), ready.set())])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=1.0, ops=ops))
    await ready.wait()
    url = f"https://127.0.0.1:{box[0].admin_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    env["BSP_ADMIN_TOKEN_FILE"] = str(token_file)

    async def status(*args: str) -> tuple[int, str]:
        p = await trio.run_process([sys.executable, "-m", "engine.cli", "status", "--url", url, *args],
                                   cwd=str(REPO), env=env, capture_stdout=True, capture_stderr=True, check=False)
        return p.returncode, p.stderr.decode()

    try:
        code, err = await status()
        assert code == 1, err
        assert f"the admin API at {url} answered, but its certificate is not trusted here: " in err, err
        assert "give --ca FILE, the CA that issued the engine's admin certificate (admin.tls.cert" in err, err
        assert "Is the engine running" not in err, err
        code, err = await status("--ca", str(other_pem))
        assert code == 1, err
        assert (f"--ca {other_pem} does not hold the CA that issued the engine's admin certificate "
                f"(admin.tls.cert); give that CA") in err, err
        code, err = await status("--ca", str(ca_pem))
        assert code == 0, err
    finally:
        box[0].drain()
