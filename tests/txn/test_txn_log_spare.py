"""The transaction log's compaction writes into a file made ahead (``.txn.spare``), not 8 MiB of
zeros on the engine's path; what it keeps and what follows it read back whole."""
from __future__ import annotations

from pathlib import Path

from engine.txn.log import MAGIC, TxnLog, log_path, read

SEG = 64 * 1024


def _accepted(i: int) -> dict:
    return {"t": "a", "id": f"D{i:06d}", "r": "pay", "c": "front", "at": "2026-11-25T00:00:00+00:00",
            "raw": "ab" * 200, "s": "post"}


def test_full_log_compacts_into_the_spare_made_ahead(tmp_path: Path) -> None:
    path = log_path(tmp_path / "bsp.duckdb")
    log = TxnLog(path, segment_bytes=SEG)
    spare = path.with_name(path.name + ".spare")
    assert log.compactions == 1 and not spare.exists()          # the open compacts, nothing asked yet
    i = 0
    while log._offset * 2 < SEG:                                 # up to half full: the spare is asked for
        log.append([_accepted(i), {"t": "recorded", "ids": [f"D{i:06d}"], "keys": []}])
        i += 1
    assert log._spare_thread is not None
    log._spare_thread.join()
    assert spare.stat().st_size == SEG
    assert spare.read_bytes() == MAGIC + bytes(SEG - len(MAGIC))
    while log.compactions == 1:                                  # until a record no longer fits
        log.append([_accepted(i)])                               # these stay: not recorded yet
        i += 1
    assert not spare.exists(), "the compaction took the spare"
    assert path.stat().st_size == SEG
    log.append([_accepted(i)])                                   # written after the kept entries
    log.close()
    entries, end = read(path)
    kept = [e["id"] for e in entries]
    first_unrecorded = next(k for k in range(i) if log.accepted.get(f"D{k:06d}"))
    assert kept == [f"D{k:06d}" for k in range(first_unrecorded, i + 1)]
    again = TxnLog(path, segment_bytes=SEG)                      # a restart sees them in flight
    assert set(again.pending) == set(kept)
    again.close()


def test_a_spare_left_by_an_earlier_run_is_not_reused(tmp_path: Path) -> None:
    path = log_path(tmp_path / "bsp.duckdb")
    TxnLog(path, segment_bytes=SEG).close()
    spare = path.with_name(path.name + ".spare")
    spare.write_bytes(MAGIC + b"\x00\x00\x00\x10junk from a compaction cut short")
    path.with_name(path.name + ".spare.tmp").write_bytes(b"half made")
    log = TxnLog(path, segment_bytes=SEG)
    assert not spare.exists() and not path.with_name(path.name + ".spare.tmp").exists()
    log.append([_accepted(1)])
    log.close()
    assert [e["id"] for e in read(path)[0]] == ["D000001"]
