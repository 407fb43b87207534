"""Deal data on disk is owner-only whatever the umask: `bsp run` under umask 022 made its ledger (the
DuckDB file and the ``.wal`` DuckDB makes again after each checkpoint), the journal folder and its
segments, the capture (``--record``, and its ``.wal``) and the ``--log-file`` 0644 (folders 0755), only
``<ledger>.txn`` was 0600.  Now every file bsp makes beside the ledger, the capture and the log are 0600
and the journal folder 0700: watched while traffic flows, across a reload (SIGHUP) and after a clean stop
(SIGTERM); a `bsp report` / `bsp reconcile` file is 0600 too (also one written over an older 0644 file).

`bsp run` as a real process (umask 022), real sockets on 127.0.0.1 (port 0), a real DuckDB ledger."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import trio

from formats.framing import LengthPrefixFramer

BSP = str(Path(sys.executable).parent / "bsp")
TOKEN = "adm1n-T0ken-" + "m" * 24

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  code = "%s" }
}
"""

PLATFORM = """
version: 1
routes:
  - routes/*.route
admin:
  listen: "127.0.0.1:0"
  token: {env: BSP_ADMIN_TOKEN}
"""


def _umask_022() -> None:
    os.umask(0o022)


def _modes(folder: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in folder.rglob("*"):
        try:
            out[str(p.relative_to(folder)) + ("/" if p.is_dir() else "")] = stat.S_IMODE(p.lstat().st_mode)
        except FileNotFoundError:
            pass
    return out


def _too_open(modes: dict[str, int]) -> dict[str, str]:
    return {name: oct(mode) for name, mode in modes.items()
            if mode != (0o700 if name.endswith("/") else 0o600)}


async def _wait_for(path: Path, needle: str, proc: subprocess.Popen) -> str:
    with trio.fail_after(30):
        while True:
            text = path.read_text() if path.exists() else ""
            if needle in text:
                return text
            assert proc.poll() is None, f"bsp run exited early:\n{text}"
            await trio.sleep(0.05)


async def _traffic(port: int, prefix: str, n: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    await stream.send_all(b"".join(tx.frame(orjson.dumps({"ref": f"{prefix}{i:05d}"})) for i in range(n)))
    got: list[bytes] = []
    with trio.fail_after(20):
        while len(got) < n:
            data = await stream.receive_some(65536)
            assert data
            got.extend(rx.feed(data))
    await stream.aclose()


async def test_bsp_run_under_umask_022_keeps_every_deal_file_owner_only(tmp_path: Path) -> None:
    (tmp_path / "routes").mkdir()
    route = tmp_path / "routes" / "pay.route"
    route.write_text(ROUTE % "00")
    (tmp_path / "platform.yaml").write_text(PLATFORM)
    var = tmp_path / "var"
    var.mkdir()                                   # the admin's folder: bsp leaves its mode alone
    env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN}
    err = tmp_path / "stderr.txt"
    with err.open("w") as se:
        proc = subprocess.Popen([BSP, "run", "platform.yaml", "--ledger", "var/l.duckdb",
                                 "--record", "var/cap.duckdb", "--log-file", "var/log/bsp.log",
                                 "--log-level", "info"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=se,
                                preexec_fn=_umask_022)
    seen: dict[str, int] = {}
    try:
        text = await _wait_for(err, "bsp: serving", proc)
        port = int(text.split("channel front: listen 127.0.0.1:")[1].split()[0])
        async with trio.open_nursery() as nursery:
            async def watch() -> None:
                while True:
                    for name, mode in _modes(var).items():
                        seen[name] = seen.get(name, 0) | mode
                    await trio.sleep(0.005)
            nursery.start_soon(watch)
            await _traffic(port, "A", 300)
            await trio.sleep(0.5)                 # the journal loads DuckDB behind: its .wal appears
            route.write_text(ROUTE % "01")
            proc.send_signal(signal.SIGHUP)
            await _wait_for(err, "reloaded: version", proc)           # engine.reload: "... (generation 2) (signal)"
            await _traffic(port, "B", 300)
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, err.read_text()
    for name, mode in _modes(var).items():
        seen[name] = seen.get(name, 0) | mode
    seen.pop("log/", None)                        # the log's folder: made as any folder (--log-file's choice)
    print(sorted((k, oct(v)) for k, v in seen.items()))
    for expected in ("l.duckdb", "l.duckdb.wal", "l.duckdb.journal/", "cap.duckdb",
                     "log/bsp.log"):
        assert expected in seen, (expected, sorted(seen))
    assert any(n.startswith("l.duckdb.journal/") and n.endswith(".wal") for n in seen), sorted(seen)
    assert _too_open(seen) == {}
    assert stat.S_IMODE(var.stat().st_mode) == 0o755

    # the reports of those deals: owner-only, also over a report of that name made before (0644)
    old = tmp_path / "old.csv"
    old.write_text("x\n")
    os.chmod(old, 0o644)
    statement = tmp_path / "statement.csv"
    statement.write_text("reference,amount,currency,date\nA00000,1.00,CNY,2020-01-01\n")
    for args, out in ((["report", "daily-summary", "--from", "today", "--format", "csv", "--out", "old.csv"], old),
                      (["report", "rejections", "--from", "today", "--format", "html", "--out", "rej.html"],
                       tmp_path / "rej.html"),
                      (["reconcile", "--against", "statement.csv", "--type", "csv", "--format", "xlsx",
                        "--out", "rec.xlsx"], tmp_path / "rec.xlsx")):
        r = subprocess.run([BSP, *args, "--ledger", "var/l.duckdb"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, preexec_fn=_umask_022)
        assert r.returncode in (0, 1) and out.exists(), (args, r.stdout, r.stderr)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600, (args, oct(out.stat().st_mode))
