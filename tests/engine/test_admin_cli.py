"""`bsp status`, `bsp reload`, `bsp admin token`, `bsp certs dev` against a real admin server on loopback."""
from __future__ import annotations

import json
from functools import partial

import pytest
import trio
import typer
from typer.testing import CliRunner

from conftest_tls import pki  # noqa: F401  (fixture)
from engine.admin import AdminApp, ReloadResult, TokenAuth, serve_admin
from engine.commands import admin as admin_cmd
from engine.commands import certs as certs_cmd
from engine.tls import server_context
from test_admin import TOKEN, LedgerBackend, ledger_path  # noqa: F401  (fixture)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    admin_cmd.register(app)
    certs_cmd.register(app)
    return app


def run(app, args, env=None):
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


@pytest.fixture
async def served(nursery, ledger_path, tmp_path):  # noqa: F811
    backend = LedgerBackend(ledger_path)
    port = await nursery.start(partial(serve_admin, AdminApp(backend, TokenAuth(TOKEN)), "127.0.0.1", 0))
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    return backend, f"http://127.0.0.1:{port}", token_file


async def test_status_and_reload_commands(cli, served):
    backend, url, token_file = served
    common = ["--url", url, "--token-file", str(token_file)]
    r = await trio.to_thread.run_sync(run, cli, ["status", *common])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["config_version"] == "v1" and doc["ready"] is True

    r = await trio.to_thread.run_sync(run, cli, ["reload", "--dry-run", *common])
    assert r.exit_code == 0 and "would switch from v1 to v2" in r.stdout and "routes added: refund" in r.stdout
    assert backend.reloads == [True]

    backend.next_reload = ReloadResult(False, False, None, "v1", {}, ("a.route:3:1: error[E001]: bad",))
    r = await trio.to_thread.run_sync(run, cli, ["reload", *common])
    assert r.exit_code == 1 and "a.route:3:1: error[E001]: bad" in r.stderr and "422" in r.stderr


async def test_wrong_token_and_unreachable(cli, served, tmp_path):
    _, url, _ = served
    bad = tmp_path / "bad.token"
    bad.write_text("z" * 32)
    r = await trio.to_thread.run_sync(run, cli, ["status", "--url", url, "--token-file", str(bad)])
    assert r.exit_code == 1 and "401" in r.stderr and "not the admin token" in r.stderr
    r = await trio.to_thread.run_sync(run, cli, ["status", "--url", url], {"BSP_ADMIN_TOKEN": None,
                                                                          "BSP_ADMIN_TOKEN_FILE": None})
    assert r.exit_code == 2 and "no admin token" in r.stderr
    with trio.socket.socket() as s:          # a port nobody listens on
        await s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    r = await trio.to_thread.run_sync(run, cli, ["status", "--url", f"http://127.0.0.1:{free}"],
                                      {"BSP_ADMIN_TOKEN": TOKEN})
    assert r.exit_code == 1 and "cannot reach the admin API" in r.stderr


async def test_status_over_mutual_tls(cli, pki, nursery, ledger_path, tmp_path):  # noqa: F811
    ctx = server_context(pki.server_cert, pki.server_key, ca=pki.ca, client_cert="required")
    port = await nursery.start(partial(serve_admin, AdminApp(LedgerBackend(ledger_path), TokenAuth(TOKEN)),
                                       "127.0.0.1", 0, ctx))
    args = ["status", "--url", f"https://localhost:{port}", "--ca", str(pki.ca),
            "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    r = await trio.to_thread.run_sync(run, cli, args, {"BSP_ADMIN_TOKEN": TOKEN})
    assert r.exit_code == 0, r.output
    r = await trio.to_thread.run_sync(run, cli, [*args[:3], "--ca", str(tmp_path / "nope.pem")],
                                      {"BSP_ADMIN_TOKEN": TOKEN})
    assert r.exit_code == 2 and "nope.pem" in r.stderr and "does not exist" in r.stderr


def test_admin_token_command(cli, tmp_path):
    path = tmp_path / "t"
    r = run(cli, ["admin", "token", str(path)])
    assert r.exit_code == 0 and len(path.read_text().strip()) >= 32
    assert run(cli, ["admin", "token", str(path)]).exit_code == 2


def test_certs_dev_command(cli, tmp_path):
    r = run(cli, ["certs", "dev", str(tmp_path / "pki"), "--name", "bsp.test", "--name", "10.0.0.1",
                  "--client-cn", "MAINFRAME01"])
    assert r.exit_code == 0, r.output
    for f in ["ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"]:
        assert (tmp_path / "pki" / f).is_file()
    from cryptography import x509
    cert = x509.load_pem_x509_certificate((tmp_path / "pki" / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bsp.test"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    r = run(cli, ["certs", "dev", str(tmp_path / "pki")])
    assert r.exit_code == 2 and "--force" in r.stderr
    server_context(tmp_path / "pki" / "server.pem", tmp_path / "pki" / "server.key",
                   ca=tmp_path / "pki" / "ca.pem", client_cert="required")   # the set loads
