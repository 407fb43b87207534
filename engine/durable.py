"""Durable writes shared by the journal and the transaction log.

``write_at(fd, data, offset)`` writes ``data`` at ``offset`` and returns once it
is on stable storage (``pwrite`` + ``fdatasync``).  ``fdatasync`` syncs file
data only, so the file must be made ahead (zero-filled): then a commit has no
file size or block allocation to record.  One ``pwritev(..., RWF_DSYNC)`` in
place of the two calls was measured too (``bench/bench_sync.py``, 2026-11-26):
no difference here, so the portable pair stays.
"""
from __future__ import annotations

import os

__all__ = ["fsync_dir", "unwrite", "write_at"]


def write_at(fd: int, data: bytes, offset: int, *, sync: bool = True) -> None:
    """Write all of ``data`` at ``offset``; with ``sync``, durably (``fdatasync``)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
    if sync:
        os.fdatasync(fd)


def unwrite(fd: int, offset: int, header: int = 8) -> None:
    """After a write at ``offset`` failed part way (a full disk): zero the record header there, best
    effort, so that a record the failed write may have left whole is not read back at the next start
    (it was never acknowledged).  The blocks exist (the file is made ahead), so this write needs no room."""
    try:
        os.pwrite(fd, bytes(header), offset)
        os.fdatasync(fd)
    except OSError:
        pass


def fsync_dir(directory: os.PathLike[str] | str) -> None:
    """Make a rename or a new file in ``directory`` durable (best effort: a file system or an
    OS that cannot open or sync a directory skips it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
