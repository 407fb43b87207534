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

__all__ = ["ZeroFillError", "fsync_dir", "make_zeroed", "unwrite", "write_at"]


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


_ZEROS = bytes(1 << 20)


class ZeroFillError(OSError):
    """``make_zeroed`` failed: ``done`` bytes were written when ``cause`` (the system's error) came."""

    def __init__(self, done: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.done = done
        self.cause = cause


def make_zeroed(path: os.PathLike[str] | str, head: bytes, size: int) -> None:
    """``path``: ``head`` then zeros up to ``size`` bytes, fsync'ed (a log file made ahead: a later write
    and ``fdatasync`` into it has no file size or block allocation to record).  On failure the half-made
    file is removed and ``ZeroFillError`` says how far it got (a full disk: ENOSPC; a size limit: EFBIG)."""
    done = 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while done < len(head):
                done += os.write(fd, head[done:])
            while done < size:
                done += os.write(fd, _ZEROS[:min(size - done, len(_ZEROS))])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise ZeroFillError(done, exc) from exc
