"""A damaged or cut-short DuckDB file (a capture, a ledger) is told as damaged, never as locked by a running
engine: DuckDB's checksum error says "... in block at location N", and "block" holds "lock"."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dsl.load import compile_paths
from engine.duckdb_open import open_problem
from engine.ledger_store import LedgerError, connect
from engine.registry import default_registry
from engine.replay.capture import Capture, CaptureError, CaptureWriter

REPO = Path(__file__).resolve().parents[2]


def _damage(path: Path, at: int = 12288) -> None:
    data = bytearray(path.read_bytes())
    data[at:at + 64] = b"Z" * 64          # inside the first data block: its checksum no longer holds
    path.write_bytes(bytes(data))


@pytest.fixture()
def capture(tmp_path: Path) -> Path:
    program = compile_paths([REPO / "routes" / "bill_payment" / "bill_payment.route"], default_registry()).program
    path = tmp_path / "capture.duckdb"
    CaptureWriter(path, program=program, channels=["biller", "mainframe"]).close()
    return path


def test_a_damaged_capture_is_damaged_not_locked(capture: Path) -> None:
    _damage(capture)
    with pytest.raises(CaptureError) as err:
        Capture(capture)
    text = str(err.value)
    assert "locked" not in text and "running engine" not in text, text
    assert text.startswith(f"{capture}: a damaged or truncated capture (DuckDB cannot read it: "), text
    assert "copy it again from where `bsp run --record` wrote it" in text


def test_a_truncated_capture_is_damaged_not_not_duckdb(capture: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.duckdb"
    cut.write_bytes(capture.read_bytes()[:100_000])
    with pytest.raises(CaptureError) as err:
        Capture(cut)
    assert str(err.value).startswith(f"{cut}: a damaged or truncated capture"), err.value


def test_a_damaged_ledger_is_damaged_not_locked(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("INSERT INTO t VALUES (1)")
    con.close()
    _damage(path)
    with pytest.raises(LedgerError) as err:
        connect(path, read_only=True)
    text = str(err.value)
    assert "locked" not in text, text
    assert text.startswith(f"{path}: the ledger file is damaged or truncated"), text


def test_a_file_another_process_writes_is_still_locked(capture: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); sys.stdin.read()", str(capture)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(duckdb.Error) as err:
            duckdb.connect(str(capture), read_only=True)
        assert open_problem(err.value) == "locked", err.value
        with pytest.raises(CaptureError, match="locked by a running engine"):
            Capture(capture)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
