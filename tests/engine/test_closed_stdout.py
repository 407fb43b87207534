"""Long-output commands and a reader that stops early (`bsp deals | head`): the rest is dropped quietly
(no traceback, no "Broken pipe", nothing at exit) and the exit code is the command's own, not click's 1.
Real subprocesses on real ledgers (engine/commands/stdout.py)."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from engine.deal import DeadLetter, DealRecord
from engine.ledger import open_ledger

BSP = Path(sys.executable).parent / "bsp"
REPO = Path(__file__).resolve().parents[2]
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def closed_stdout(*args: str, cwd: Path, stdin: bytes | None = None) -> tuple[int, str]:
    """Run bsp with a stdout pipe whose reader has already gone (the first write gets EPIPE)."""
    with subprocess.Popen([str(BSP), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                          stdin=subprocess.DEVNULL) as proc:
        proc.stdout.close()
        err = proc.stderr.read().decode()
        return proc.wait(timeout=120), err


async def _fill(path: Path) -> None:
    async with open_ledger(path) as ledger:
        for i in range(300):
            t = NOW - timedelta(minutes=i)
            await ledger.commit(DealRecord(
                deal_type="BILL_PAYMENT", route="bill_payment", config_version="v1", channel="mainframe",
                status="committed" if i % 3 else "rejected", received_at=t, finished_at=t + timedelta(milliseconds=5),
                reference=f"T{i:04d}", amount=Decimal("10.50"), currency="CNY", response_code="00",
                request={"ref": f"T{i:04d}"}))
            await ledger.dead_letter(DeadLetter(route="bill_payment", channel="mainframe", reason=f"timeout {i}",
                                                raw=b"PAY%d" % i, config_version="v1", error_kind="timeout",
                                                at=t, id=f"d-{i}"))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "bsp.duckdb"
    trio.run(_fill, path)
    return path


def quiet(err: str) -> bool:
    return "Broken pipe" not in err and "Traceback" not in err and "Exception" not in err and "error" not in err


@pytest.mark.parametrize("args", [
    ("deals", "--limit", "0"),
    ("deals", "--limit", "0", "--json"),
    ("dead", "list", "--limit", "0"),
    ("dead", "list", "--limit", "0", "--json"),
    ("report", "daily-summary", "--from", "yesterday", "--to", "today"),
    ("report", "daily-summary", "--from", "yesterday", "--to", "today", "--format", "csv"),
], ids=lambda a: " ".join(a))
def test_a_listing_to_a_reader_that_has_gone_ends_quietly_with_0(ledger: Path, tmp_path: Path, args) -> None:
    code, err = closed_stdout(*args, "--ledger", str(ledger), cwd=tmp_path)
    assert quiet(err), err
    assert code == 0, err


def test_decode_to_a_reader_that_has_gone_ends_quietly(tmp_path: Path) -> None:
    cpy = REPO / "routes" / "fund_management" / "copybooks" / "FUNDTXN-REQ.cpy"
    lines = b"".join(b'{"TXN_CODE": "FS01", "TRACE_NO": "T%d", "AMOUNT": 100, "UNITS": 0}\n' % i for i in range(500))
    data = tmp_path / "fs.dat"
    enc = subprocess.run([str(BSP), "encode", "--copybook", str(cpy), "--encoding", "cp037", "--record", "rdw",
                          "-o", str(data), "-q"], input=lines, capture_output=True, timeout=120)
    assert enc.returncode == 0, enc.stderr
    code, err = closed_stdout("decode", "--copybook", str(cpy), "--encoding", "cp037", "--record", "rdw", str(data),
                              cwd=tmp_path)
    assert quiet(err) and code == 0, (code, err)
