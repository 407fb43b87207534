"""Channel overrides of the deployment file: checked at start and at reload, applied by a reload.

Real route files and platform.yaml, a real DuckDB ledger, real sockets on 127.0.0.1 (a free port
picked at run time; the refused addresses are never bound)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import trio

from engine.commands.run import _expand
from engine.deploy import load_deployment
from engine.ledger import open_ledger
from engine.metrics import Metrics
from engine.ops import runopts
from engine.ops.live import LiveEngine
from engine.ops.observe import Observer
from engine.registry import default_registry
from opskit import ANSWERED_ECHO, ECHO, REPO, compile_file, free_port

PLATFORM = "version: 1\nroutes:\n  - r.route\nledger: l.duckdb\n"


def site(tmp_path: Path, channels: str = "") -> Path:
    (tmp_path / "r.route").write_text(ANSWERED_ECHO % "x")
    (tmp_path / "platform.yaml").write_text(PLATFORM + channels)
    return tmp_path / "platform.yaml"


def bsp_run(yaml: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    return subprocess.run([sys.executable, "-m", "engine.cli", "run", str(yaml), *args], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


async def test_a_reload_applies_changed_overrides_and_refuses_bad_ones(tmp_path: Path) -> None:
    yaml = site(tmp_path)
    registry = default_registry()
    program = compile_file(tmp_path / "r.route", registry)
    load = runopts.loader([yaml], yaml, None, _expand)
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        eng = LiveEngine(registry, ledger, load=load, observer=Observer(Metrics()), grace=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, program, load_deployment(yaml).channel_overrides)
            try:
                version = eng.version
                port = free_port()
                yaml.write_text(PLATFORM + f'channels:\n  front: {{address: "127.0.0.1:{port}"}}\n')
                result = await eng.reload()
                assert result.ok, result.diagnostics
                assert result.plan["channels"]["changed"] == ["front"], result.plan
                assert "options changed (address)" in result.plan["why"]["channels"]["front"]
                # the route files did not change, the deployment did: the version covers its overrides
                assert eng.version != version
                stream = await trio.open_tcp_stream("127.0.0.1", port)     # the new address listens
                await stream.aclose()

                # an unusable value, a misspelled channel, a misspelled option: refused at their line
                for text, want in [
                    ('  front: {address: "127.0.0.1:17510", max_frame: lots}\n',
                     "platform.yaml:6:50: channels.front.max_frame: channel front (tcp listen): expected a "
                     "whole number, got 'lots'"),
                    ('  frnt: {address: "127.0.0.1:17511"}\n',
                     "platform.yaml:6:3: channels.frnt: unknown channel 'frnt'; did you mean 'front'?"),
                    ('  front: {adress: "127.0.0.1:17511"}\n',
                     "platform.yaml:6:11: channels.front.adress: unknown option 'adress' for channel front "
                     "(tcp listen); did you mean 'address'?"),
                ]:
                    yaml.write_text(PLATFORM + "channels:\n" + text)
                    result = await eng.reload()
                    assert not result.ok, text
                    assert any(want in d for d in result.diagnostics), (want, result.diagnostics)
                stream = await trio.open_tcp_stream("127.0.0.1", port)     # still serving as before
                await stream.aclose()

                yaml.write_text(PLATFORM)                   # the override removed: back to the route's address
                result = await eng.reload()
                assert result.ok and result.plan["channels"]["changed"] == ["front"], result
            finally:
                eng.drain()


def test_bsp_run_refuses_a_bad_override_in_one_line_at_its_place(tmp_path: Path) -> None:
    for channels, want in [
        ("  front: {max_frame: lots}\n",
         "platform.yaml:6:22: channels.front.max_frame: channel front (tcp listen): expected a whole number, "
         "got 'lots'"),
        ('  front: {address: "127.0.0.1:99999"}\n',
         "platform.yaml:6:20: channels.front.address: channel front (tcp listen): port 99999 is outside 0..65535"),
        ('  frnt: {address: "127.0.0.1:17512"}\n', "platform.yaml:6:3: channels.frnt: unknown channel 'frnt'"),
        ('  front: {adress: x}\n', "channels.front.adress: unknown option 'adress' for channel front"),
    ]:
        p = bsp_run(site(tmp_path, "channels:\n" + channels))
        assert p.returncode == 1, p.stderr
        errors = [ln for ln in p.stderr.splitlines() if not ln.startswith("warning: no audit key")]
        assert "Traceback" not in p.stderr and len(errors) == 1, p.stderr
        assert errors[0].startswith("error: ") and want in errors[0], p.stderr


def test_an_environment_override_is_named_at_its_own_line(tmp_path: Path) -> None:
    yaml = site(tmp_path, "environments:\n  uat:\n    channels:\n      front: {max_frame: lots}\n")
    p = bsp_run(yaml, "--env", "uat")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "platform.yaml:8:26: environments.uat.channels.front.max_frame: channel front (tcp listen): " \
           "expected a whole number, got 'lots'" in p.stderr, p.stderr


def test_a_channel_that_cannot_be_built_is_one_line_naming_the_route_file(tmp_path: Path) -> None:
    (tmp_path / "r.route").write_text(ECHO % "x" + """
channel api = http call {
    url = "http://127.0.0.1:17513/x"
    auth_bearer_env = "BSP_TEST_UNSET_TOKEN"
}
""")
    env = {k: v for k, v in os.environ.items() if k != "BSP_TEST_UNSET_TOKEN"}
    p = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(tmp_path / "r.route"),
                        "--ledger", str(tmp_path / "l.duckdb")], cwd=str(REPO), env=env,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "ExceptionGroup" not in p.stderr, p.stderr
    assert "error: " in p.stderr and "r.route:" in p.stderr and "BSP_TEST_UNSET_TOKEN is not set" in p.stderr
