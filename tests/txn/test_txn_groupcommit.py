"""The transaction log's group commit: writes made while one is being synced share the next fdatasync."""
from __future__ import annotations

from pathlib import Path

import trio

from engine.ledger import open_ledger
from engine.txn import manager_for
from engine.txn.log import log_path, read


async def test_concurrent_writes_share_one_fdatasync_and_all_reach_the_log(tmp_path: Path) -> None:
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        mgr = manager_for(ledger)
        before = mgr.log.writes
        async with trio.open_nursery() as n:
            for i in range(10):
                n.start_soon(mgr.write, [{"t": "begin", "id": f"D{i}", "channel": "c", "route": "r"}])
        writes = mgr.log.writes - before
        pending = sorted(mgr.log.pending)
        mgr.log.close()
    assert writes <= 2               # all ten in one round, or the first alone and nine behind it
    assert pending == [f"D{i}" for i in range(10)]
    entries, _ = read(log_path(tmp_path / "l.duckdb"))
    assert sorted(e["id"] for e in entries) == [f"D{i}" for i in range(10)]


async def test_a_failed_write_names_the_log_and_byte_and_the_log_goes_on(tmp_path: Path) -> None:
    import os

    import pytest

    from engine.txn.log import TxnLogError
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        mgr = manager_for(ledger)
        await mgr.write([{"t": "begin", "id": "D1", "channel": "c", "route": "r"}])
        good_fd = mgr.log._fd
        mgr.log._fd = os.open(mgr.log.path, os.O_RDONLY)      # the OS refuses the next write (EBADF)
        try:
            with pytest.raises(TxnLogError, match=r"l\.duckdb\.txn: cannot append \d+ bytes at byte \d+: "
                                                  r".*Bad file descriptor"):
                await mgr.write([{"t": "begin", "id": "D2", "channel": "c", "route": "r"}])
        finally:
            os.close(mgr.log._fd)
            mgr.log._fd = good_fd
        await mgr.write([{"t": "begin", "id": "D3", "channel": "c", "route": "r"}])
        pending = sorted(mgr.log.pending)
        mgr.log.close()
    assert pending == ["D1", "D3"]                       # the refused entry was not taken in
    entries, _ = read(log_path(tmp_path / "l.duckdb"))
    assert [e["id"] for e in entries] == ["D1", "D3"]    # and nothing of it is in the file
