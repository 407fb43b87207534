"""``bsp dead purge`` rewrites the ledger (engine/ledger_compact.py): the copy it makes next to the file, and
that copy's WAL, are never readable by more users than the ledger itself while the copy is being written
(they were made with the process's umask, 0644, and the copy narrowed only once complete: a user could
open it meanwhile and read the whole ledger).  A real DuckDB file, compacted in a thread while the
directory is watched."""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import duckdb

from engine.ledger_compact import compact


def _modes_while_compacting(path: Path) -> set[tuple[str, int]]:
    seen: set[tuple[str, int]] = set()
    t = threading.Thread(target=compact, args=(path,))
    t.start()
    while t.is_alive():
        for f in path.parent.glob(path.name + ".compact-*"):
            try:
                seen.add((f.name.rsplit(".", 1)[-1], stat.S_IMODE(f.stat().st_mode)))
            except FileNotFoundError:
                pass
    t.join()
    return seen


def test_the_copy_is_never_more_readable_than_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT i, repeat('x', 100) AS s FROM range(300000) r(i)")
    con.close()
    os.chmod(path, 0o600)
    old = os.umask(0o022)
    try:
        seen: set[tuple[str, int]] = set()
        for _ in range(20):                       # until the copy was seen at least once (it takes ~0.1 s)
            seen |= _modes_while_compacting(path)
            if seen:
                break
        assert os.umask(0o022) == 0o022           # compact gave the process's umask back
    finally:
        os.umask(old)
    assert seen, "the copy was never seen"
    assert all(mode & 0o077 == 0 for _, mode in seen), sorted(seen)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(tmp_path.glob("l.duckdb.compact-*"))
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM t").fetchone() == (300000,)
    con.close()


def test_a_copy_left_by_a_killed_purge_is_removed_by_the_next(tmp_path: Path) -> None:
    """A purge killed during the copy leaves `<ledger>.compact-PID.tmp`: the whole ledger as it was, purged
    messages included.  The next compaction removes it when that process is gone, and leaves a live one's."""
    import subprocess
    import sys

    path = tmp_path / "l.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT 1 AS i")
    con.close()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = [tmp_path / f"l.duckdb.compact-{gone}.tmp", tmp_path / f"l.duckdb.compact-{gone}.tmp.wal"]
    live = tmp_path / f"l.duckdb.compact-{os.getppid()}.tmp"         # a running process: never touched
    for f in (*stale, live):
        f.write_bytes(b"PURGED-MESSAGE")
    compact(path)
    assert not any(f.exists() for f in stale) and live.exists()
