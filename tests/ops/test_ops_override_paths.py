"""File paths in the deployment file's channel overrides are taken from the deployment file's folder.

An admin turns TLS on for a channel in platform.yaml (`channels: {front: {cert: pki/server.pem, ...}}`);
the engine must find those files whatever folder `bsp run` starts in (systemd starts it in /), as it
finds the deployment file's other relative paths, and `bsp check platform.yaml` names an override whose
file is not there at its line.  Real files, a real ledger, real sockets on 127.0.0.1 (port 0)."""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import trio

from engine.certs import new_ca
from engine.deploy import load_deployment
from engine.ledger import open_ledger
from engine.metrics import Metrics
from engine.ops.live import LiveEngine
from engine.ops.observe import Observer
from engine.registry import default_registry
from opskit import ECHO, REPO, compile_file

PLATFORM = """version: 1
routes:
  - routes/r.route
ledger: var/l.duckdb
channels:
  front:
    cert: pki/server.pem
    key: pki/server.key
"""


def site(tmp_path: Path) -> Path:
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "r.route").write_text(ECHO % "x")
    ca = new_ca("override paths CA")
    ca.write(tmp_path / "pki" / "ca")
    ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(tmp_path / "pki" / "server")
    (tmp_path / "platform.yaml").write_text(PLATFORM)
    return tmp_path / "platform.yaml"


async def test_tls_files_of_an_override_are_found_from_the_deployment_files_folder(tmp_path: Path) -> None:
    yaml = site(tmp_path)
    assert Path.cwd() != tmp_path                   # the engine starts in another folder
    dep = load_deployment(yaml)
    registry = default_registry()
    program = compile_file(tmp_path / "routes" / "r.route", registry)
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        eng = LiveEngine(registry, ledger, load=lambda: (dep.route_files, dep.channel_overrides),
                         observer=Observer(Metrics()), grace=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, program, dep.channel_overrides)
            try:
                port = eng.current.channels["front"].port
                ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.pem"))
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                tls = trio.SSLStream(stream, ctx, server_hostname="localhost")
                body = b'{"ref": "A1"}'
                await tls.send_all(len(body).to_bytes(2, "big") + body)
                with trio.fail_after(5):
                    reply = await tls.receive_some(100)
                assert b'"A1"' in reply
                await tls.aclose()
                result = await eng.reload()                     # a reload finds them too, nothing changed
                assert result.ok and result.plan["channels"]["kept"] == ["front"], result
            finally:
                eng.drain()


def test_bsp_check_names_an_override_whose_file_is_missing_at_its_line(tmp_path: Path) -> None:
    yaml = site(tmp_path)
    yaml.write_text(PLATFORM.replace("cert: pki/server.pem", "cert: pki/srv.pem"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    res = subprocess.run([sys.executable, "-m", "engine.cli", "check", str(yaml)], cwd=str(REPO), env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 1, res.stderr
    assert (f"platform.yaml:7:11: channels.front.cert: channel front (tcp listen): file not found: "
            f"'pki/srv.pem' (looked for {tmp_path / 'pki' / 'srv.pem'}); a relative path in the deployment "
            f"file is taken from its folder") in res.stderr, res.stderr
