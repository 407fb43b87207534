"""Rewrite a ledger file with only its live data, so that deleted bytes are gone from the file.

DuckDB never overwrites a block in place: an ``UPDATE`` (a purge setting ``raw`` to NULL) writes the
new column data to other blocks and only marks the old ones free, so the old bytes stay readable in
the file until DuckDB happens to reuse those blocks.  ``compact(path)`` copies the database into a new
file next to it (``COPY FROM DATABASE``: tables, indexes, constraints, sequences) and puts that file
in its place::

    compact(Path("var/bsp.duckdb"))      # after the writer closed it (no .wal left)

The old file stays attached read-only (DuckDB's file lock) until the new one has replaced it, so no
engine can open the old file and write to it meanwhile.  The file system or the disk may still keep
old copies of the blocks (journaling, SSD wear levelling); that is what the field keyring is for.
"""
from __future__ import annotations

import os
import stat
from glob import escape as glob_escape
from pathlib import Path

import duckdb

from engine.durable import fsync_dir
from engine.ledger_store import LedgerError, connect

__all__ = ["compact"]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def compact(path: Path) -> None:
    """Replace ``path`` by a copy holding only its live data.  Raises ``LedgerError`` naming the file."""
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        raise LedgerError(f"{path}: not compacted: {wal.name} is still there (the ledger was not closed "
                          f"cleanly; bsp opens and closes it cleanly, e.g. `bsp audit verify --ledger {path}`)")
    tmp = path.with_name(f"{path.name}.compact-{os.getpid()}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = connect(Path(":memory:"), read_only=False)
    try:
        con.execute("SET enable_progress_bar = false").fetchall()
        try:
            con.execute("ATTACH ? AS old (READ_ONLY)", [str(path)]).fetchall()
        except duckdb.Error as exc:
            raise LedgerError(f"{path}: not compacted: {exc}") from None
        _remove_stale_copies(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        try:
            # the copy and its WAL are made no more readable than the ledger (the process's umask, 022,
            # would make them 0644 while the whole ledger is copied into them): a CLI process, one thread
            umask = os.umask(0o077)
            os.umask(umask | (0o777 & ~mode))
            try:
                con.execute("ATTACH ? AS fresh", [str(tmp)]).fetchall()
                con.execute("COPY FROM DATABASE old TO fresh").fetchall()
                con.execute("DETACH fresh").fetchall()
            finally:
                os.umask(umask)
            os.chmod(tmp, mode)
            _fsync(tmp)
            os.replace(tmp, path)          # while "old" is still attached: its lock keeps writers out
            fsync_dir(path.parent)
        except (duckdb.Error, OSError) as exc:
            raise LedgerError(f"{path}: not compacted: {exc} (the file itself is unchanged; a copy of it "
                              f"needs as much free space next to it)") from None
    finally:
        con.close()
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def _remove_stale_copies(path: Path) -> None:
    """Copies (and their WALs) a purge left when it was killed during the copy: they hold the whole ledger
    as it was, purged messages included.  Only those whose process is gone (another purge may be copying)."""
    for leftover in path.parent.glob(f"{glob_escape(path.name)}.compact-*.tmp*"):
        pid = leftover.name[len(path.name) + len(".compact-"):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue                      # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue                      # someone else's live process
        try:
            leftover.unlink()
        except OSError:
            pass
