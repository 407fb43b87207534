"""A finished deal's request (its raw bytes: PAN, track 2, PIN block) does not stay in the transaction
log's file until the file is full, which at low traffic takes days: the first write ``COMPACT_AFTER``
after the last compaction compacts (PCI DSS 3.3.1; engine/txn/log.py).  Real files in tmp_path; the
file's bytes are grepped."""
from __future__ import annotations

from pathlib import Path

from engine.txn.log import COMPACT_AFTER, TxnLog

TRACK2 = b"4999991357924687=29122011777733300000"


def test_a_finished_deals_request_leaves_the_file_at_the_first_write_after_compact_after(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb.txn"
    now = [5000.0]
    log = TxnLog(path, retention=None)
    log.monotonic = lambda: now[0]
    log.append([])                                         # nothing: no write, no compaction
    log._compacted_at = now[0]                             # as if the open had compacted at this clock
    log.append([{"t": "a", "id": "D1", "r": "purchase", "c": "front", "at": "t", "raw": TRACK2.hex()}])
    log.append([{"t": "end", "id": "D1", "status": "rejected", "code": "14"},
                {"t": "recorded", "ids": ["D1"]}])
    assert TRACK2.hex().encode() in path.read_bytes()       # the request, until a compaction
    now[0] += COMPACT_AFTER / 2
    log.append([{"t": "recorded", "ids": []}])             # within COMPACT_AFTER: appended, not compacted
    assert TRACK2.hex().encode() in path.read_bytes()
    compactions = log.compactions
    now[0] += COMPACT_AFTER / 2
    assert not log.fits(64)                                # the engine takes it to a worker thread
    log.append([{"t": "recorded", "ids": []}])
    assert log.compactions == compactions + 1
    assert TRACK2.hex().encode() not in path.read_bytes()
    now[0] += COMPACT_AFTER * 10                           # nothing written since: nothing to compact
    assert log.fits(64)
    log.close()
