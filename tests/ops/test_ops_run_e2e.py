"""`bsp run` as a real process with platform.yaml admin settings and JSON logs at info level.

Seeds secrets (the admin token, a deployment secret from an environment
variable, card numbers and PINs in requests), drives the engine (requests,
`bsp status --table`, `bsp top --once`, `bsp reload --dry-run`, SIGHUP, a
failed reload, SIGTERM) and then greps ALL output (stdout, stderr, the log
file, every command's output) for the secret values.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import trio
import typer
from typer.testing import CliRunner

from engine.commands import admin as admin_cmd

from formats.framing import LengthPrefixFramer

BSP = str(Path(sys.executable).parent / "bsp")
TOKEN = "adm1n-T0ken-" + "q" * 24
SECRET = "s3cr3t-B1ller-Key-77"
PANS = ["4111111111111111", "5500005555555559"]
PIN = "93751846"

ROUTE = """
format Req = fixed {
    ref    string(8)
    card   string(16) pan
    pin    string(8)  secret
    note   string(48)
}
format Rsp = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Rsp { ref = msg.ref  code = "%s" }
}
"""

PLATFORM = """
version: 1
routes:
  - routes/*.route
ledger: var/ledger.duckdb
admin:
  listen: "127.0.0.1:0"
  token: {env: BSP_ADMIN_TOKEN}
secrets:
  biller_api_key: {env: OPS_TEST_BILLER_KEY}
"""


def _record(ref: str, card: str, note: str) -> bytes:
    return f"{ref:<8}{card:<16}{PIN:<8}{note:<48}".encode()


async def _wait_for(path: Path, needle: str, proc: subprocess.Popen) -> str:
    with trio.fail_after(20):
        while True:
            text = path.read_text() if path.exists() else ""
            if needle in text:
                return text
            assert proc.poll() is None, f"bsp run exited early:\n{text}"
            await trio.sleep(0.05)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> Any:
    """`bsp status/top/reload` in this process (a subprocess each would spend seconds importing)."""
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    admin_cmd.register(app)
    r = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
    return SimpleNamespace(returncode=r.exit_code, stdout=r.stdout, stderr=r.stderr)


async def test_bsp_run_logs_json_and_never_leaks_secrets(tmp_path: Path) -> None:
    (tmp_path / "routes").mkdir()
    route = tmp_path / "routes" / "pay.route"
    route.write_text(ROUTE % "00")
    (tmp_path / "platform.yaml").write_text(PLATFORM)
    env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "OPS_TEST_BILLER_KEY": SECRET}
    log_file = tmp_path / "var" / "bsp.log"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as so, err.open("w") as se:
        proc = subprocess.Popen([BSP, "run", "platform.yaml", "--log-format", "json", "--log-level", "info",
                                 "--log-file", str(log_file)], cwd=tmp_path, env=env, stdout=so, stderr=se)
    outputs: list[str] = []
    try:
        text = await _wait_for(err, "bsp: serving", proc)
        port = int(text.split("channel front: listen 127.0.0.1:")[1].split()[0])
        admin = text.split("admin API: ")[1].split()[0]
        url = admin                                  # the banner gives the URL with its scheme
        cli_env = {**env, "BSP_ADMIN_URL": url}

        stream = await trio.open_tcp_stream("127.0.0.1", port)
        tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
        frames = [_record(f"R{i:07d}", PANS[i % 2], (SECRET if i % 2 else TOKEN)) for i in range(20)]
        frames.append(f"BAD {PANS[0]} {TOKEN}".encode())            # malformed: not a Req record
        await stream.send_all(b"".join(tx.frame(f) for f in frames))
        replies: list[bytes] = []
        with trio.fail_after(10):
            while len(replies) < 20:           # the malformed frame gets no reply (no `on error reply`)
                data = await stream.receive_some(65536)
                assert data
                replies.extend(rx.feed(data))
        assert [orjson.loads(r)["code"] for r in replies[:20]] == ["00"] * 20

        r = await trio.to_thread.run_sync(_cli, ["status", "--table"], cli_env, tmp_path)
        outputs += [r.stdout, r.stderr]
        assert r.returncode == 0, r.stderr
        assert "pay" in r.stdout and "front" in r.stdout and "ready" in r.stdout
        r = await trio.to_thread.run_sync(_cli, ["top", "--once", "--interval", "0.2"], cli_env, tmp_path)
        outputs += [r.stdout, r.stderr]
        assert r.returncode == 0, r.stderr
        assert "req/s" in r.stdout and "pay" in r.stdout

        route.write_text(ROUTE % "01")
        r = await trio.to_thread.run_sync(_cli, ["reload", "--dry-run"], cli_env, tmp_path)
        outputs += [r.stdout, r.stderr]
        assert r.returncode == 0, r.stderr
        assert "would switch" in r.stdout and "routes changed: pay" in r.stdout

        proc.send_signal(signal.SIGHUP)                             # SIGHUP reloads
        await _wait_for(err, "reloaded: version", proc)           # engine.reload: "... (generation 2) (signal)"
        await stream.send_all(tx.frame(_record("AFTERHUP", PANS[1], "x")))
        with trio.fail_after(10):
            got: list[bytes] = []
            while not got:
                got = rx.feed(await stream.receive_some(65536))
        assert orjson.loads(got[0])["code"] == "01"                  # same connection, new configuration
        r = await trio.to_thread.run_sync(_cli, ["status", "--table"], cli_env, tmp_path)
        outputs += [r.stdout, r.stderr]
        assert re.search(r"last reload: signal ok at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", r.stdout), r.stdout

        route.write_text("route {")                                # a failed reload is reported, not fatal
        r = await trio.to_thread.run_sync(_cli, ["reload"], cli_env, tmp_path)
        outputs += [r.stdout, r.stderr]
        assert r.returncode == 1 and f"{route}:1:" in r.stderr
        r = await trio.to_thread.run_sync(_cli, ["status"], cli_env, tmp_path)
        outputs += [r.stdout, r.stderr]
        doc = json.loads(r.stdout)
        assert doc["generation"] == 2 and [x["ok"] for x in doc["reloads"]] == [True, True, False]
        await stream.aclose()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0, err.read_text()

    everything = "\n".join([out.read_text(), err.read_text(), log_file.read_text(), *outputs])
    for secret in [TOKEN, SECRET, PIN, *PANS]:
        assert secret not in everything, f"{secret!r} leaked"
    # the deal lines are there: one JSON line per deal at info, masked by classification
    deal_lines = [json.loads(line) for line in log_file.read_text().splitlines()
                  if '"logger":"bsp.deal"' in line]
    assert len(deal_lines) == 22
    paid = [d for d in deal_lines if d["route"] == "pay"]
    assert len(paid) == 21 and {d["status"] for d in paid} == {"committed"}
    assert all(d["config_version"] for d in paid)
    assert "411111******1111" in paid[0]["request"] and '"pin":"***"' in paid[0]["request"]
    assert "***" in paid[1]["request"]                          # the secret in an unclassified field: scrubbed
