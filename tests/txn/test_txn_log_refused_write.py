"""A transaction log write that fails leaves the log's state as it was (engine/txn/log.py ``append``).

The next file of a full log cannot be made (its path is taken by a directory: EISDIR, as a full disk
refuses it with ENOSPC): the entries of that append were never durable, so the key store must not
answer from them and a later compaction must not write them (a begin for a request never sent, an
``end`` or ``recorded`` mark that was refused).  Real files in tmp_path."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.txn.log import COMPACT_RETRY, TxnLog, TxnLogError, read


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


def _depth(exc: BaseException) -> int:
    n, tb = 0, exc.__traceback__
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


def test_a_failed_compaction_is_tried_again_only_after_a_second_and_its_refusals_keep_nothing(
        tmp_path: Path) -> None:
    """A full disk: within ``COMPACT_RETRY`` of a failed compaction the next appends that need one are
    refused with its error, without trying (no file of segment_bytes made per group commit); after it,
    the compaction is tried again.  Each refusal leaves nothing behind: the error raised again used to
    keep every refused append's frames in its traceback (each with a copy of the whole key store: ~1 GB
    a second with 200 000 keys)."""
    path = tmp_path / "l.duckdb.txn"
    log = TxnLog(path, segment_bytes=4096, retention=None)
    now = [1000.0]
    log.monotonic = lambda: now[0]                         # the log's clock for the wait
    i = 0
    while log.fits(len(log.frame([_end(i)]))):
        log.append([_end(i)])
        i += 1
    if log._spare_thread is not None:
        log._spare_thread.join()
    log._spare.unlink(missing_ok=True)
    blocked = path.with_name(path.name + ".tmp")
    blocked.mkdir()                                        # the next file cannot be made
    with pytest.raises(TxnLogError) as first:
        log.append([_end(5000)])
    compactions = log.compactions
    blocked.rmdir()                                        # room again, but within the second
    depths = []
    for k in range(50):
        now[0] += COMPACT_RETRY / 100
        with pytest.raises(TxnLogError) as again:
            log.append([_end(6000 + k)])
        assert again.value is first.value                  # its error: not tried again
        depths.append(_depth(again.value))
    assert not blocked.exists() and log.compactions == compactions
    assert max(depths) == depths[0] <= 4, depths           # nothing piles up in its traceback
    assert "pay|K6000" not in log.ends
    now[0] = 1000.0 + COMPACT_RETRY                        # a second since the failure: tried again
    log.append([_end(7000)])
    assert log.compactions == compactions + 1
    log.close()
    entries, _ = read(path)
    ids = {e["id"] for e in entries if "id" in e}
    assert "D7000" in ids and "D5000" not in ids and "D6000" not in ids
