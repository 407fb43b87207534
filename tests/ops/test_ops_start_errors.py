"""A port already taken: `bsp run` says which channel (or the admin API), where, and what to do,
exits 1 without a traceback; a reload that adds such a channel fails and keeps serving."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import trio

from opskit import ECHO, REPO, live

def route(port: int, tag: str = "x") -> str:
    """opskit's echo route, its channel `front` on ``port``."""
    return (ECHO % tag).replace("127.0.0.1:0", f"127.0.0.1:{port}")


def taken() -> socket.socket:
    """A listening socket on a free loopback port (the port someone else holds)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def bsp_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BSP_ADMIN_TOKEN="t" * 32)
    return subprocess.run([sys.executable, "-m", "engine.cli", "run", *args, "--ledger", str(tmp_path / "l.duckdb")],
                          cwd=str(REPO), env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_a_taken_channel_port_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    with taken() as s:
        port = s.getsockname()[1]
        (tmp_path / "r.route").write_text(route(port))
        p = bsp_run(tmp_path, str(tmp_path / "r.route"))
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert (f"error: channel front: cannot listen on 127.0.0.1:{port} (address set at {tmp_path / 'r.route'}:4:5): "
            f"Address already in use; something "
            f"already listens there (another bsp?): stop it, or give it another address (in the route file, "
            f"or per environment under `channels:` in the deployment file)") in p.stderr


def test_a_taken_admin_port_names_the_admin_api(tmp_path: Path) -> None:
    (tmp_path / "r.route").write_text(route(0))
    with taken() as s:
        port = s.getsockname()[1]
        p = bsp_run(tmp_path, str(tmp_path / "r.route"), "--admin", f"127.0.0.1:{port}")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert f"error: admin API: cannot listen on 127.0.0.1:{port}: Address already in use" in p.stderr
    assert "(--admin, or `admin: listen:` in the deployment file)" in p.stderr


async def test_a_reload_adding_a_channel_on_a_taken_port_fails_and_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "r.route"
    path.write_text(ECHO % "1")
    async with live([path], tmp_path / "l.duckdb") as eng:
        version = eng.version
        with taken() as s:
            port = s.getsockname()[1]
            side = route(port).replace("front", "side").replace("format Req = json", "").replace("echo", "side")
            path.write_text(ECHO % "2" + side)
            result = await eng.reload()
        assert not result.ok
        text = path.read_text()
        line = text[:text.index(f'address = "127.0.0.1:{port}"')].count("\n") + 1
        col = text.splitlines()[line - 1].index("address") + 1
        assert any(f"channel side: cannot listen on 127.0.0.1:{port} (address set at {path}:{line}:{col}): "
                   f"Address already in use" in d for d in result.diagnostics), result.diagnostics
        assert eng.version == version and "side" not in eng.channels     # the running configuration stays


PLATFORM = """version: 1
routes: [r.route]
ledger: l.duckdb
environments:
  uat: {}
"""


async def test_a_reload_onto_a_taken_port_names_the_deployment_files_override_that_set_it(tmp_path: Path) -> None:
    """The admin moves a channel to a port something else holds, in platform.yaml: the refusal (and the dry
    run's) names platform.yaml:line:col of that address, not only the channel."""
    from engine.deploy import load_deployment
    from engine.ledger import open_ledger
    from engine.metrics import Metrics
    from engine.ops.live import LiveEngine
    from engine.ops.observe import Observer
    from engine.registry import default_registry
    from opskit import compile_file

    (tmp_path / "r.route").write_text(ECHO % "1")
    yaml = tmp_path / "platform.yaml"
    yaml.write_text(PLATFORM)

    def load():
        dep = load_deployment(yaml, env="uat")
        return dep.route_files, dep.channel_overrides

    registry = default_registry()
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        eng = LiveEngine(registry, ledger, load=load, observer=Observer(Metrics()), grace=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, compile_file(tmp_path / "r.route", registry), load()[1])
            try:
                version = eng.version
                with taken() as s:
                    port = s.getsockname()[1]
                    yaml.write_text(PLATFORM.replace("  uat: {}", f"  uat:\n    channels:\n      front:\n"
                                                                  f"        address: \"127.0.0.1:{port}\""))
                    want = (f"channel front: cannot listen on 127.0.0.1:{port} (address set at {yaml}:8:18, "
                            f"environments.uat.channels.front.address): Address already in use")
                    for dry_run in (True, False):
                        result = await eng.reload(dry_run=dry_run)
                        assert not result.ok and any(want in d for d in result.diagnostics), result.diagnostics
                assert eng.version == version                   # the running configuration stays
            finally:
                eng.drain()


def test_a_ledger_another_engine_holds_is_one_error_and_a_hint(tmp_path: Path) -> None:
    import duckdb
    (tmp_path / "r.route").write_text(route(0))
    holder = duckdb.connect(str(tmp_path / "l.duckdb"))         # the writer lock another engine would hold
    try:
        p = bsp_run(tmp_path, str(tmp_path / "r.route"))
    finally:
        holder.close()
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert f"error: {tmp_path / 'l.duckdb'}: the ledger file is locked by another process" in p.stderr
    assert "hint: two engines cannot share a ledger file; give this one its own with --ledger" in p.stderr


def test_bsp_demo_on_a_ledger_an_engine_holds_says_so(tmp_path: Path) -> None:
    import duckdb
    holder = duckdb.connect(str(tmp_path / "l.duckdb"))
    try:
        p = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--ledger", str(tmp_path / "l.duckdb")],
                           cwd=str(REPO), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        holder.close()
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert "the ledger file is locked by another process" in p.stderr
    assert "hint: a `bsp run` holds this ledger; stop it, or give the demo its own with --ledger" in p.stderr
