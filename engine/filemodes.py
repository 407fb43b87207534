"""Owner-only files for deal data, whatever the process's umask.

The ledger, everything bsp keeps beside it, the log file, captures and reports hold bank-confidential
deal data: they are made readable by the engine's user only (files 0600, folders 0700), also when the
process runs with the usual umask 022.  DuckDB makes its own files (the ``.duckdb`` on first open, and its
``.wal`` again after every checkpoint, from whichever thread writes), with the process's umask, so while a
DuckDB file of ours is open the process's umask is narrowed to owner-only (``private()``, counted: the
umask comes back when the last holder leaves).  Files meant for others (a ``file write`` channel's
output, 0640) set their mode explicitly from the umask the process had outside (``shared_mode``).
"""
from __future__ import annotations

import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FILE = 0o600
FOLDER = 0o700

_lock = threading.Lock()
_depth = 0
_outer: int | None = None       # the umask before the first holder narrowed it


def hold() -> None:
    """Narrow the process's umask to owner-only until the matching ``release()``."""
    global _depth, _outer
    with _lock:
        if _depth == 0:
            _outer = os.umask(0o077)
            os.umask(_outer | 0o077)
        _depth += 1


def release() -> None:
    global _depth, _outer
    with _lock:
        if _depth == 0:
            return
        _depth -= 1
        if _depth == 0 and _outer is not None:
            os.umask(_outer)
            _outer = None


@contextmanager
def private() -> Iterator[None]:
    hold()
    try:
        yield
    finally:
        release()


def outer_umask() -> int:
    """The process's umask as the user gave it (not the owner-only one ``private()`` sets)."""
    with _lock:
        if _outer is not None:
            return _outer
        now = os.umask(0o077)
        os.umask(now)
        return now


def exposed(mode: int) -> bool:
    """A secret's file of this mode (``st_mode``) can be read or written by its group or others: the one
    rule behind every "readable by group/others ... chmod 600" warning (key, keyring and token files)."""
    return bool(stat.S_IMODE(mode) & (stat.S_IRWXG | stat.S_IRWXO))


def shared_mode(mode: int) -> int:
    """``mode`` as the process's own umask would have made it: for files meant for other users."""
    return mode & ~outer_umask() & 0o7777


def make_shared_dirs(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, the folders it makes given the mode the process's own
    umask gives (0755 under 022), not the owner-only one: for folders others use (file channels)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    mode = shared_mode(0o777)
    for d in missing:
        try:
            os.chmod(d, mode)
        except OSError:
            pass


def tighten(path: Path, mode: int = FILE) -> None:
    """Make ``path`` no more readable than ``mode`` (nothing when it is gone or already narrower)."""
    try:
        now = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if now & ~mode:
        os.chmod(path, now & mode)


def private_dir(path: Path) -> None:
    """A folder of bsp's own next to the ledger (the journal): made 0700, and narrowed to 0700 if wider."""
    path.mkdir(mode=FOLDER, parents=False, exist_ok=True)
    tighten(path, FOLDER)


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600 if it is not there (an existing file keeps its mode: the admin's)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE)
    except FileExistsError:
        return
    os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, owner-only (0600) whatever the umask, also over a file of that
    name that was there before (a replay report, generated route tests: deal references, values)."""
    tighten(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, FILE)


__all__ = ["FILE", "FOLDER", "create_private", "hold", "make_shared_dirs", "outer_umask", "private",
           "private_dir", "release", "shared_mode", "tighten", "write_private"]
