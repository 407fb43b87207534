"""Retention of a ``file watch`` channel's ``done/`` and ``error/`` folders (options ``keep_done``,
``keep_error``): the batch files there hold what their partner sent (debtor names and IBANs, counterparties and
their accounts), and without a retention they stay for ever.

A file's age is the time since its modification time, which the channel sets to the moment it moves the file
there when the folder has a retention (``stamp``: a file keeps its sender's time otherwise, and one archived
before the retention was set keeps it: it goes once that time is older than the retention).  ``sweep`` deletes
the files older than the retention (a file's ``NAME.reason.txt`` beside it with it); names starting with ``.``
(the channel's index, ``.bsp-files``) and folders are left.  The channel sweeps at start and every
``SWEEP_EVERY`` seconds, one log line per sweep and folder (``sweep_line``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.channels.options import duration_above_zero

__all__ = ["SWEEP_EVERY", "Swept", "keep_option", "stamp", "sweep", "sweep_line", "age_text"]

SWEEP_EVERY = 3600.0       # seconds between two sweeps of a channel's folders (and one at its start)
REASON = ".reason.txt"


def keep_option(channel: str, options: dict[str, Any], name: str) -> float | None:
    """``keep_done`` / ``keep_error`` in seconds, or None (keep for ever, the default)."""
    if options.get(name) is None:
        return None
    return duration_above_zero(channel, options, name, 30 * 86400.0)


def age_text(seconds: float) -> str:
    """``30d``, ``12h``, ``90m``, ``45s``: a retention as the route file would write it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def stamp(path: Path) -> None:
    """The file's modification time set to now: its age in the folder counts from its move there."""
    os.utime(path, follow_symlinks=False)      # a symbolic link moved to error/: the link, never its target


@dataclass
class Swept:
    deleted: int = 0
    size: int = 0          # bytes deleted
    kept: int = 0
    failed: list[str] = field(default_factory=list)     # "NAME: why", for files that could not be deleted


def sweep(folder: Path, keep: float, now: float | None = None) -> Swept:
    """Delete the files of ``folder`` whose modification time is more than ``keep`` seconds before ``now``
    (default: the wall clock), each one's ``NAME.reason.txt`` with it.  Blocking (a thread's work)."""
    now = time.time() if now is None else now
    out = Swept()
    try:        # never through a symbolic link planted as the folder (engine/channels/file_folders.py)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return out
    try:
        _sweep_at(fd, keep, now, out)
    finally:
        os.close(fd)
    return out


def _sweep_at(fd: int, keep: float, now: float, out: Swept) -> None:
    entries = list(os.scandir(fd))
    names = {e.name for e in entries}
    for e in sorted(entries, key=lambda e: e.name):
        if e.name.startswith(".") or not e.is_file(follow_symlinks=False):
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:          # gone since the listing
            continue
        old = now - st.st_mtime > keep
        if e.name.endswith(REASON) and e.name[:-len(REASON)] in names:
            continue                       # goes with its file, below
        if not old:
            out.kept += 1
            continue
        for victim in (e.name, e.name + REASON):
            if victim != e.name and victim not in names:
                continue
            try:
                size = os.stat(victim, dir_fd=fd, follow_symlinks=False).st_size
                os.unlink(victim, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                out.failed.append(f"{victim}: {exc.strerror or exc}")
                continue
            out.size += size
            out.deleted += victim == e.name


def sweep_line(channel: str, folder: Path, option: str, keep: float, swept: Swept) -> str:
    """The log line of one sweep of one folder."""
    text = (f"channel {channel}: {option} = {age_text(keep)}: swept {folder}: {swept.deleted} file(s) older than "
            f"{age_text(keep)} deleted ({swept.size:,} bytes), {swept.kept} kept")
    if swept.failed:
        text += (f"; {len(swept.failed)} could not be deleted ({'; '.join(swept.failed[:3])}"
                 f"{' ...' if len(swept.failed) > 3 else ''}): give the engine's user the right to delete in "
                 f"the folder")
    return text
