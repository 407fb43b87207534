"""`bsp run` admin settings: mutual TLS on the admin port, and option errors that say what to fix."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from engine.certs import new_ca
from engine.ops.runopts import OpsConfigError, admin_options
from engine.ops.serve import OpsOptions, run_live
from engine.registry import default_registry
from engine.tls import client_context
from opskit import ECHO, compile_file

TOKEN = "tls-admin-token-" + "k" * 20


async def test_admin_api_over_mutual_tls(nursery, tmp_path: Path, monkeypatch) -> None:
    ca = new_ca("ops test CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(tmp_path / "server")
    ccert, ckey = ca.issue("OPS-CONSOLE", client=True).write(tmp_path / "client")
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    opts = admin_options("127.0.0.1:0", token_file, cert, key, ca_pem, None)
    assert opts is not None and opts.ssl_context is not None

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
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(verify=client_context(ca=ca_pem, cert=ccert, key=ckey)) as c:
        r = await c.get(url + "/status", headers=auth)
        assert r.status_code == 200 and r.json()["routes"]["echo"]["received"] == 0
    async with httpx.AsyncClient(verify=client_context(ca=ca_pem)) as c:   # no client certificate
        with pytest.raises(httpx.TransportError):
            await c.get(url + "/status", headers=auth)
    box[0].drain()


def test_admin_option_errors_name_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BSP_ADMIN_TOKEN", raising=False)
    assert admin_options(None, None, None, None, None, None) is None          # no admin API asked for
    with pytest.raises(OpsConfigError, match="BSP_ADMIN_TOKEN"):
        admin_options("127.0.0.1:9180", None, None, None, None, None)
    monkeypatch.setenv("BSP_ADMIN_TOKEN", TOKEN)
    with pytest.raises(OpsConfigError, match="HOST:PORT"):
        admin_options("localhost", None, None, None, None, None)
    with pytest.raises(OpsConfigError, match="--admin-cert"):
        admin_options("127.0.0.1:0", None, None, tmp_path / "k.pem", None, None)
    with pytest.raises(OpsConfigError, match="without --admin"):
        admin_options(None, tmp_path / "t", None, None, None, None)
