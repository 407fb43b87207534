"""The admin clients (`bsp status`, `bsp reload`, `bsp admin token`) say what is wrong and what to do:
an engine that wants a client certificate, an engine that speaks HTTPS, a URL without its scheme, no
token, a token file in a folder that does not exist.  A real engine with a mutual-TLS admin API."""
from __future__ import annotations

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

TOKEN = "client-admin-token-" + "c" * 20


def bsp(*args: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    e.update(env)
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=str(REPO), env=e, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


async def test_a_client_without_certificate_or_https_is_told_so(nursery, tmp_path: Path, monkeypatch) -> None:
    ca = new_ca("ops test CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(tmp_path / "server")
    monkeypatch.setenv("BSP_ADMIN_TOKEN", TOKEN)
    opts = admin_options("127.0.0.1:0", None, cert, key, ca_pem, None)
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    ops = OpsOptions(admin=opts, hooks=[lambda e: (box.append(e), ready.set())])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=1.0, ops=ops))
    with trio.fail_after(10):
        await ready.wait()
    port = box[0].admin_port
    try:
        p = await trio.to_thread.run_sync(partial(bsp, "status", "--url", f"https://127.0.0.1:{port}", "--ca",
                                                  str(ca_pem), BSP_ADMIN_TOKEN=TOKEN))
        assert p.returncode == 1, p.stderr
        assert p.stderr.strip() == (f"error: the admin API at https://127.0.0.1:{port} closed the TLS connection "
                                    f"without an answer: the engine requires a client certificate (mutual TLS, "
                                    f"--admin-client-ca); give --cert FILE --key FILE"), p.stderr
        p = await trio.to_thread.run_sync(partial(bsp, "reload", "--url", f"http://127.0.0.1:{port}",
                                                  BSP_ADMIN_TOKEN=TOKEN))
        assert p.returncode == 1, p.stderr
        # the engine answers plain HTTP on its TLS port with a 400 (engine/http/server.py): the client says
        # what to run instead of quoting it
        assert p.stderr.strip() == (f"error: the admin API at http://127.0.0.1:{port} speaks HTTPS (the engine was "
                                    f"started with --admin-cert); use --url https://127.0.0.1:{port} with --ca (the "
                                    f"CA of its certificate)"), p.stderr
    finally:
        box[0].drain()


async def test_an_https_url_for_a_plain_http_admin_api_is_told_so(nursery, tmp_path: Path, monkeypatch) -> None:
    # the engine serves its admin API in plain HTTP (no --admin-cert): an https:// URL gets a TLS record error
    # ("[SSL: WRONG_VERSION_NUMBER]"), which must read as "use http://", not as "is the engine running?"
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
    try:
        p = await trio.to_thread.run_sync(partial(bsp, "status", "--url", f"https://127.0.0.1:{port}",
                                                  BSP_ADMIN_TOKEN=TOKEN))
        assert p.returncode == 1, p.stderr
        assert p.stderr.strip() == (f"error: the admin API at https://127.0.0.1:{port} answered in plain HTTP, "
                                    f"not TLS: the engine serves its admin API without a certificate (no "
                                    f"--admin-cert, no admin.tls); use --url http://127.0.0.1:{port} (`bsp run` "
                                    f"prints it: `admin API: http://...`)"), p.stderr
        p = await trio.to_thread.run_sync(partial(bsp, "status", "--url", f"http://127.0.0.1:{port}",
                                                  BSP_ADMIN_TOKEN=TOKEN))
        assert p.returncode == 0, p.stderr
    finally:
        box[0].drain()


def test_a_url_without_scheme_is_a_usage_error() -> None:
    p = bsp("status", "--url", "127.0.0.1:17550", BSP_ADMIN_TOKEN=TOKEN)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == ("error: --url 127.0.0.1:17550: give the scheme, e.g. --url http://127.0.0.1:17550 "
                                "(or --url https://127.0.0.1:17550 for an engine serving its admin API with "
                                "--admin-cert)")


def test_a_url_port_out_of_range_is_a_usage_error_not_a_refused_connection() -> None:
    p = bsp("status", "--url", "http://127.0.0.1:99999", BSP_ADMIN_TOKEN=TOKEN)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == ("error: --url http://127.0.0.1:99999: port 99999 out of range 1-65535 (the port of "
                                "the engine's admin API, e.g. --url http://127.0.0.1:7080; --url or $BSP_ADMIN_URL)")
    p = bsp("dead", "list", "--live", BSP_ADMIN_TOKEN=TOKEN, BSP_ADMIN_URL="http://127.0.0.1:7O80")
    assert p.returncode == 2 and "port '7O80' is not a number" in p.stderr, p.stderr


def test_no_token_names_the_clients_own_option() -> None:
    p = bsp("status", "--url", "http://127.0.0.1:17550")
    assert p.returncode == 2, p.stderr
    assert "give a token file (--token-file or $BSP_ADMIN_TOKEN_FILE)" in p.stderr
    assert "--admin-token-file" not in p.stderr


def test_admin_token_into_a_missing_folder_says_so(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "bsp" / "admin.token"
    p = bsp("admin", "token", str(target))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip() == (f"error: {target}: the folder {target.parent} does not exist; make it first "
                                f"(mkdir -p {target.parent} && chmod 700 {target.parent}) or give another path")
    target.parent.mkdir(parents=True)
    p = bsp("admin", "token", str(target))
    assert p.returncode == 0 and target.stat().st_mode & 0o777 == 0o600, p.stderr
    # the file goes to the clients as a file: --token-file or $BSP_ADMIN_TOKEN_FILE ($BSP_ADMIN_TOKEN holds a value)
    assert "clients (--token-file or $BSP_ADMIN_TOKEN_FILE)" in p.stdout, p.stdout
