"""`bsp status` after a certificate renewal written on disk and not yet reloaded (engine/certexpiry.py on_disk):
it shows the certificate served (read at the start) and the one on disk, with "renewed on disk, reload to serve
it"; after `bsp reload` only the one served.  A real engine whose admin API serves TLS with generated certs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio

from engine.certs import new_ca
from engine.ops.runopts import admin_options
from engine.ops.serve import OpsOptions, run_live
from engine.registry import default_registry
from opskit import ECHO, REPO, compile_file

TOKEN = "cert-admin-token-" + "k" * 24


def bsp(*args: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    e.update(env)
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=str(REPO), env=e, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def admin_cert(doc: dict) -> dict:
    [c] = [c for c in doc["certificates"] if c["channel"] == "admin API" and c["role"] == "server"]
    return c


async def test_status_shows_a_renewal_on_disk_until_it_is_reloaded(nursery, tmp_path: Path, monkeypatch) -> None:
    ca = new_ca("renewal test CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True, days=20).write(
        tmp_path / "server")
    monkeypatch.setenv("BSP_ADMIN_TOKEN", TOKEN)
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    ops = OpsOptions(admin=admin_options("127.0.0.1:0", None, cert, key, None, None),
                     hooks=[lambda e: (box.append(e), ready.set())])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=1.0, ops=ops))
    with trio.fail_after(10):
        await ready.wait()
    url = f"https://127.0.0.1:{box[0].admin_port}"
    client = dict(BSP_ADMIN_TOKEN=TOKEN, BSP_ADMIN_URL=url, BSP_ADMIN_CA=str(ca_pem))
    try:
        p = await trio.to_thread.run_sync(partial(bsp, "status", **client))
        assert p.returncode == 0, p.stderr
        served = admin_cert(json.loads(p.stdout))
        assert "on_disk" not in served and "note" not in served, served       # the file is what is served

        # the renewal: a new certificate (and key) written over the files, valid 400 days; no reload yet
        ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True, days=400).write(tmp_path / "server")
        p = await trio.to_thread.run_sync(partial(bsp, "status", **client))
        assert p.returncode == 0, p.stderr
        c = admin_cert(json.loads(p.stdout))
        assert c["not_after"] == served["not_after"] and 19 <= c["days_left"] <= 20, c    # still the one served
        assert 399 <= c["on_disk"]["days_left"] <= 400 and c["on_disk"]["subject"] == "CN=localhost", c
        assert c["note"].startswith("renewed on disk, reload to serve it: the file now holds CN=localhost, "
                                    "expiring "), c
        p = await trio.to_thread.run_sync(partial(bsp, "status", "--table", **client))
        assert p.returncode == 0, p.stderr
        assert "renewed on disk, reload to serve it" in " ".join(p.stdout.split()), p.stdout     # rich wraps it

        p = await trio.to_thread.run_sync(partial(bsp, "reload", **client))
        assert p.returncode == 0, p.stderr
        p = await trio.to_thread.run_sync(partial(bsp, "status", **client))
        c = admin_cert(json.loads(p.stdout))
        assert "on_disk" not in c and 399 <= c["days_left"] <= 400, c            # served now
    finally:
        box[0].drain()


def test_a_file_gone_since_the_bind_is_said_so_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    from engine.certexpiry import file_certs, on_disk, served_dict

    ca = new_ca("gone test CA")
    cert, _ = ca.issue("bank.example", dns=["bank.example"], server=True, days=30).write(tmp_path / "server")
    ca_pem, _ = ca.write(tmp_path / "ca")
    served = file_certs("mainframe", "server", cert) + file_certs("mainframe", "ca", ca_pem)
    assert on_disk(served) == {}
    cert.unlink()
    disk = on_disk(served)
    assert list(disk) == [served[0]] and disk[served[0]] is None
    d = served_dict(served[0], 0.0, disk)
    assert d["on_disk"] is None and d["note"].startswith("the file cannot be read now"), d
