"""engine.durable: the journal's and the transaction log's durable write."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import durable


def test_write_at_writes_everything_at_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(1 << 20))                            # made ahead, zero-filled
    fd = os.open(path, os.O_WRONLY)
    try:
        big = bytes(range(256)) * 1024                          # 256 KiB
        durable.write_at(fd, b"abc", 10)
        durable.write_at(fd, big, 4096)
        durable.write_at(fd, memoryview(b"xyz"), 13, sync=False)
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert len(data) == 1 << 20                                 # nothing appended, nothing cut
    assert data[:10] == bytes(10) and data[10:16] == b"abcxyz" and data[16:4096] == bytes(4080)
    assert data[4096:4096 + len(big)] == big and data[4096 + len(big):] == bytes((1 << 20) - 4096 - len(big))


def test_write_at_reports_a_bad_descriptor(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    with pytest.raises(OSError):
        durable.write_at(fd, b"abc", 0)


def test_fsync_dir_is_best_effort(tmp_path: Path) -> None:
    durable.fsync_dir(tmp_path)
    durable.fsync_dir(tmp_path / "missing")                     # no such directory: skipped, no error
