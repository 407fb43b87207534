"""A real ``bsp run`` whose ledger disk (a tiny tmpfs: ENOSPC, as on a real disk) fills up and is freed
again while it serves: the stop line does not count deals it could not record as if they were in the
ledger.  Needs to mount a tmpfs (root, as the CI runs); skipped with the reason otherwise."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from fsizekit import ROUTE, ask
from kit import Client, deals

BSP = str(Path(sys.executable).with_name("bsp"))



@pytest.fixture
def disk(tmp_path: Path):
    where = tmp_path / "disk"
    where.mkdir()
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(where)],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (not root?): {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def _fill(path: Path) -> None:
    """Write ``path`` until the disk is full (ENOSPC)."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass




async def test_the_stop_line_says_how_many_deals_a_full_disk_kept_out_of_the_ledger(disk: Path) -> None:
    route = disk.parent / "pay.route"
    route.write_text(ROUTE)
    ledger = disk / "l.duckdb"
    err = (disk.parent / "bsp.err").open("w+")
    proc = subprocess.Popen([BSP, "run", str(route), "--ledger", str(ledger), "--ledger-sync", "duckdb"],
                            stdout=subprocess.DEVNULL, stderr=err,
                            env={**os.environ, "BSP_AUDIT_KEY": "", "BSP_FIELD_KEYS": ""})
    acked: list[str] = []
    try:
        with trio.fail_after(60):
            while True:                                   # "channel front: listen 127.0.0.1:PORT ..."
                text = (disk.parent / "bsp.err").read_text()
                found = [ln for ln in text.splitlines() if ln.startswith("channel front: listen 127.0.0.1:")]
                if found:
                    break
                assert proc.poll() is None, text
                await trio.sleep(0.05)
            port = int(found[0].split("127.0.0.1:")[1].split()[0])
            c = await Client.open(port)
            assert await ask(c, "A000", 5)
            acked.append("A000")
            _fill(disk / "filler")                        # the disk is full
            unanswered = 0
            for i in range(200):                          # DuckDB's WAL cannot grow: not recorded, not answered
                if await ask(c, f"B{i:03d}", 0.5):
                    acked.append(f"B{i:03d}")
                else:
                    unanswered += 1
                    break
            assert unanswered, "the full disk refused nothing"
            await c.aclose()
            (disk / "filler").unlink()                    # space is back
            for i in range(20):
                c = await Client.open(port)
                ok = await ask(c, f"C{i:03d}", 2)
                await c.aclose()
                if ok:
                    acked.append(f"C{i:03d}")
                    break
            else:
                raise AssertionError("the engine did not write again once there was room")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    text = (disk.parent / "bsp.err").read_text()
    assert "Traceback" not in text, text
    (stop,) = [ln for ln in text.splitlines() if ln.startswith("bsp: stopped; ")]
    stored = {d["reference"] for d in deals(ledger)}
    assert [r for r in acked if r not in stored] == []              # nothing acknowledged is missing
    missing = int(stop.split(" exchange(s)")[0].split()[-1]) - len(stored)
    assert missing >= 1, (stop, len(stored))
    assert f"; {missing} of them not recorded, so not answered (a ledger file could not be written" in stop, stop
