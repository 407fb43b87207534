"""A reload refused for something other than the files says so (draining: 503; a port taken: the
channel and its port, also for a dry run); ledger / admin settings changed in platform.yaml are a
warning; a drain past its grace period counts what it cancelled and says what becomes of it.

Real engines (in-process and `bsp run` subprocesses), real sockets on 127.0.0.1 (free ports picked at run time), real
DuckDB files."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import trio

from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import CALL, ECHO, REPO, compile_file, free_port, json_counterpart

TOKEN = "ops-refusal-token-" + "r" * 20


async def test_a_reload_while_draining_is_503_and_the_drain_reports_what_it_cancelled(nursery, tmp_path: Path) -> None:
    back = await json_counterpart(nursery, lambda req: None)        # takes every call, never answers
    route = tmp_path / "pay.route"
    route.write_text(CALL % {"back": back, "timeout": "30s", "reply": ""})
    registry = default_registry()
    program = compile_file(route, registry)
    ready, done = trio.Event(), trio.Event()
    box: list = []

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    async def serve() -> None:
        try:
            await run_live(program, registry, ledger_path=tmp_path / "l.duckdb", load=lambda: ([route], {}),
                           grace=1.0, ops=OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN),
                                                     hooks=[hook]))
        finally:
            done.set()

    nursery.start_soon(serve)
    with trio.fail_after(10):
        await ready.wait()
    engine = box[0]
    stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
    await stream.send_all(LengthPrefixFramer(2).frame(orjson.dumps({"ref": "PAY-0001"})))
    with trio.fail_after(5):
        while not engine.in_flight_report():
            await trio.sleep(0.01)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                                 headers={"authorization": f"Bearer {TOKEN}"}) as client:
        engine.drain()
        r = await client.post("/reload")
    assert r.status_code == 503, r.text
    assert r.json()["detail"] == "the engine is draining; nothing reloaded"
    assert "Fix the files" not in r.text
    with trio.fail_after(10):
        await done.wait()
    [(name, refs, fate)] = engine.cancelled
    assert name == "pay" and refs == ["PAY-0001"]
    assert "the next start resolves them by the route's on-restart policy (flag)" in fate
    await stream.aclose()


def _wait_for(proc: subprocess.Popen, text: str, lines: list[str]) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError("bsp run ended:\n" + "".join(lines))
        lines.append(line)
        if text in line:
            return
    raise AssertionError("".join(lines))


def test_bsp_reload_names_a_taken_port_and_warns_of_settings_it_cannot_change(tmp_path: Path) -> None:
    admin, front, other_admin = free_port(), free_port(), free_port()
    (tmp_path / "r.route").write_text((ECHO % "x").replace("127.0.0.1:0", f"127.0.0.1:{front}"))
    yaml = tmp_path / "platform.yaml"
    base = (f"version: 1\nroutes: [r.route]\nledger: l.duckdb\nadmin:\n  listen: \"127.0.0.1:{admin}\"\n"
            "  token: {env: BSP_ADMIN_TOKEN}\n")
    yaml.write_text(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    env.update(BSP_ADMIN_TOKEN=TOKEN, BSP_ADMIN_URL=f"http://127.0.0.1:{admin}")
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(yaml)], cwd=str(REPO), env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    try:
        _wait_for(proc, "bsp: serving", lines)

        def reload(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "engine.cli", "reload", *args], cwd=str(REPO), env=env,
                                  capture_output=True, text=True, timeout=60)

        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            taken = held.getsockname()[1]
            yaml.write_text(base + f'channels:\n  front: {{address: "127.0.0.1:{taken}"}}\n')
            for args in (("--dry-run",), ()):
                p = reload(*args)
                assert p.returncode == 1, p.stderr
                # the place of the override that set that port, as `bsp reload` prints it
                assert (f"channel front: cannot listen on 127.0.0.1:{taken} (address set at {yaml}:8:20, "
                        f"channels.front.address): Address already in use") in p.stderr, p.stderr
                assert "could not start" in p.stderr and "Fix the files" not in p.stderr, p.stderr
        p = reload()
        assert p.returncode == 0 and "reload ok: switched" in p.stdout, p.stderr
        assert "channels changed: front" in p.stdout and "front: options changed (address)" in p.stdout

        yaml.write_text(base.replace("ledger: l.duckdb", "ledger: other.duckdb").replace(str(admin), str(other_admin)))
        p = reload()
        assert p.returncode == 0, p.stderr
        assert ("warning: ledger / admin.listen changed in platform.yaml: they take effect at the next restart"
                in p.stderr), p.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, rest = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = "".join(lines) + rest
    assert "ledger / admin.listen changed in platform.yaml: they take effect at the next restart" in log
    assert proc.returncode == 0, log
