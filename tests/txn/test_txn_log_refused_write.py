"""A transaction log write that fails leaves the log's state as it was (engine/txn/log.py ``append``).

The next file of a full log cannot be made (its path is taken by a directory: EISDIR, as a full disk
refuses it with ENOSPC): the entries of that append were never durable, so the key store must not
answer from them and a later compaction must not write them (a begin for a request never sent, an
``end`` or ``recorded`` mark that was refused).  Real files in tmp_path."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.txn.log import TxnLog, TxnLogError, read


def _end(i: int) -> dict:
    return {"t": "end", "id": f"D{i}", "key": f"pay|K{i}", "status": "committed", "fin": 1e9}


def test_entries_a_failed_compaction_refused_are_not_written_by_a_later_one(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, segment_bytes=4096, retention=None)
    i = 0
    while log.fits(len(log.frame([_end(i)]))):              # fill the file up to its last record
        log.append([_end(i)])
        i += 1
    if log._spare_thread is not None:
        log._spare_thread.join()
    log._spare.unlink(missing_ok=True)                     # no spare made ahead: the next file is made now
    blocked = path.with_name(path.name + ".tmp")
    blocked.mkdir()                                        # and cannot be made
    refused = [{"t": "begin", "id": "X1", "route": "pay", "channel": "front", "key": "pay|X1", "at": "t"},
               {"t": "end", "id": "X2", "key": "pay|X2", "status": "committed", "fin": 1e9},
               {"t": "recorded", "ids": ["D0"], "keys": ["pay|K0"]}]
    with pytest.raises(TxnLogError) as caught:
        log.append(refused)
    assert f"{blocked}: byte 0: cannot make the transaction log's next file" in str(caught.value)
    assert "X1" not in log.pending and "pay|X2" not in log.ends       # nothing of it is taken as done
    assert not log.ends["pay|K0"].get("recorded")
    blocked.rmdir()                                        # space is back
    log._compact_failed = None                             # (past engine.txn.log.COMPACT_RETRY)
    log.append([_end(999)])                                # fits again, or compacts
    log.append([_end(i + 1000) for i in range(40)])        # a compaction now: what it writes is read back
    log.close()
    entries, _ = read(path)
    ids = {e["id"] for e in entries if "id" in e}
    assert "X1" not in ids and "X2" not in ids, ids
    assert not any(e.get("t") == "end" and e["id"] == "D0" and e.get("recorded") for e in entries)
    assert {"D0", "D999", "D1039"} <= ids
    assert log.compactions >= 2
