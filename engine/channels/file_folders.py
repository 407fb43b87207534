"""``file watch``'s own folders, ``done/`` and ``error/``: never a symbolic link.

Whoever writes the inbox (a partner's transfer account) could make ``done`` or ``error`` a link before the
engine first creates them: the files run, their reasons and the file index would then leave the inbox's tree
for wherever the link points, and ``keep_done`` / ``keep_error`` would sweep that folder.  So:

- at start a channel whose ``done_dir`` or ``error_dir`` is a symbolic link (or not a folder) does not start:
  :func:`check_folder` raises :class:`LinkedFolder` naming the channel, the option and the path;
- each folder is opened with ``O_DIRECTORY | O_NOFOLLOW`` (:func:`open_folder`) and what goes into it is
  renamed, created or deleted relative to that descriptor (``renameat``, ``openat``, ``unlinkat``): a link
  planted after the start check is never followed (the move fails and the file stays in the inbox, said in
  the log, tried again at the next look).

An administrator who wants the files on another disk names that folder in ``done_dir`` / ``error_dir``
(a real folder there), never through a link in the inbox.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Iterator

from engine.channels.file_index import free_name_by
from engine.filemodes import make_shared_dirs, shared_mode


class LinkedFolder(OSError):
    """``done_dir`` / ``error_dir`` is a symbolic link, or something that is not a folder."""

    def __init__(self, channel: str, option: str, path: Path, what: str) -> None:
        text = (f"channel {channel}: {option} {path} is {what}, which is never followed: whoever can write the "
                f"inbox could have the files run, their reasons and the file index moved out of it; remove it "
                f"(the engine makes the folder), or set {option} to a real folder")
        super().__init__(errno.ELOOP, text)
        self.path = path
        self.text = text

    def __str__(self) -> str:
        return self.text


def _what(path: Path) -> str | None:
    """None for a real folder (or nothing there yet), else what the path is, in words."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"a symbolic link (to {os.readlink(path)})"
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder"
    return None


def check_folder(channel: str, option: str, path: Path) -> None:
    """Refuse ``path`` if it is a symbolic link or not a folder; else make it (and its missing parents) if
    missing, and check what was made (a link planted in the instant is refused all the same)."""
    what = _what(path)
    if what is None:
        make_shared_dirs(path)
        what = _what(path)
    if what is not None:
        raise LinkedFolder(channel, option, path, what)


@contextlib.contextmanager
def open_folder(channel: str, option: str, path: Path) -> Iterator[int]:
    """A descriptor of the folder ``path``, made if missing, never through a symbolic link."""
    check_folder(channel, option, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):       # replaced by a link since the check
            raise LinkedFolder(channel, option, path, "a symbolic link or not a folder") from None
        raise
    try:
        yield fd
    finally:
        os.close(fd)


def free_name_at(fd: int, name: str) -> str:
    """``name`` if nothing in the folder ``fd`` has it (a link included), else ``STEM.2.SUFFIX``, ...:
    an archived file is never replaced by a later one of the same name."""
    def taken(n: str) -> bool:
        try:
            os.stat(n, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    return free_name_by(taken, name)


def write_at(fd: int, name: str, text: str) -> None:
    """``text`` written to ``name`` in the folder ``fd``, as the process's umask makes a file, by way of a
    temporary name renamed into place (never through a link planted under either name)."""
    tmp = f".{name}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=fd)
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, shared_mode(0o666), dir_fd=fd)
    with open(out, "w") as fh:
        os.fchmod(fh.fileno(), shared_mode(0o666))    # the process's umask, not the engine's owner-only one
        fh.write(text)
    os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
