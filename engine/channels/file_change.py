"""A file that a sender may still be writing: its signature (inode, size, modification time), a read
that notices a change while it reads, the ``complete = "stable"`` wait (unchanged for ``settle``), and
what a reason file says of a file that changed between its read and its archiving.

``file.watch`` takes a file once it is complete; a sender that writes in place instead of renaming
into place breaks that contract.  These helpers are how the channel notices it: nothing of a file
that changed while it was read is run, and a file that changed while its records ran goes to
``error/`` as it is now, its reason saying which records ran (their deals are in the ledger).
"""
from __future__ import annotations

import errno
import math
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import trio


@dataclass(frozen=True)
class Signature:
    """What says a file changed: another file renamed over it (inode), its size, its modification time."""
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "Signature":
        return cls(st.st_ino, st.st_size, st.st_mtime_ns)

    def text(self) -> str:
        when = datetime.fromtimestamp(self.mtime_ns / 1e9, timezone.utc).isoformat(timespec="microseconds")
        return f"{self.size} bytes modified at {when.replace('+00:00', 'Z')}"


class ChangedWhileRead(Exception):
    """The file's signature before its read is not the one after it (or its size is not the bytes read)."""

    def __init__(self, before: Signature, after: Signature, read: int) -> None:
        super().__init__(f"{before.text()} as the read began, {after.text()} as it ended ({read} bytes read)")
        self.before, self.after, self.read = before, after, read


class TooBig(Exception):
    """The file is bigger than the channel reads (``max_file_bytes``): nothing of it was read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes, over max_file_bytes = {limit}")
        self.size, self.limit = size, limit


class NotAFile(Exception):
    """What the folder holds under that name is a symbolic link, or not a regular file: nothing was read."""


def read_unchanged(path: Path, limit: int | None = None) -> tuple[bytes, Signature]:
    """The file's bytes and its signature; ``ChangedWhileRead`` when it changed as it was read;
    ``TooBig`` (nothing read) when it is over ``limit`` bytes; ``NotAFile`` (nothing read) for a symbolic link
    (never followed: whoever writes the folder would have the engine read any file it can) or what is not a
    regular file (blocking: run it in a thread)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAFile("it is a symbolic link, which is never followed: whoever can write the folder could "
                           "have the engine read any file it can") from None
        raise
    with open(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotAFile("it is not a regular file (a pipe, a device or a socket)")
        before = Signature.of(st)
        if limit is not None and before.size > limit:
            raise TooBig(before.size, limit)
        # its size and one byte more (grown since: a change, read again); read(limit + 1) allocated the whole
        # bound (1 GiB by default) for every file, however small
        data = fh.read(before.size + 1)
        after = Signature.of(os.fstat(fh.fileno()))
    if before != after or after.size != len(data):
        raise ChangedWhileRead(before, after, len(data))
    return data, after


def signature(path: Path) -> Signature:
    return Signature.of(os.stat(path))


def change_text(seen: Signature, now: Signature) -> str:
    """``seen`` (as read) against ``now`` (as archived), in words."""
    other = "; another file was renamed over it" if now.ino != seen.ino else ""
    return f"{seen.text()} when read, {now.text()} now{other}"


class Settling:
    """``complete = "stable"``: a file is ready once its signature has not changed for ``settle``
    seconds of looks (the watcher's events, its ``rescan``, and :meth:`next_look`).  Measured on
    the engine's clock from the first look that saw that signature, never from the file's own time
    (a network file system's clock may be another host's)."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._seen: dict[Path, tuple[Signature, float]] = {}

    def ready(self, candidates: list[Path]) -> list[Path]:
        now = trio.current_time()
        out: list[Path] = []
        seen: dict[Path, tuple[Signature, float]] = {}
        for p in candidates:
            try:
                sig = signature(p)
            except FileNotFoundError:
                continue
            last = self._seen.get(p)
            if last is None or last[0] != sig:
                last = (sig, now)               # new, or changed since the last look: settle afresh
            seen[p] = last
            if now - last[1] >= self.settle:
                out.append(p)
        self._seen = seen                       # files gone (taken, removed) are forgotten
        return out

    def next_look(self) -> float:
        """When the first file still settling is due (trio time); inf when none is."""
        return min((since + self.settle for _, since in self._seen.values()), default=math.inf)


def records_text(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first} to {last}"


def changed_reason(name: str, channel: str, change: str, read: int, records: Sequence[tuple[int, bytes]],
                   first: int, problems: list[str]) -> str:
    """The reason file of a file that changed between its read and its archiving."""
    if records:
        last = first + len(records) - 1
        ran = (f"{records_text(first, last)} of the {read} bytes read {'was' if first == last else 'were'} run "
               f"through the routes: their deals are in the ledger, committed unless listed below as rejected "
               f"or failed; record {last} (byte offset {records[-1][0]}), the last one read, may have been cut "
               f"short by the sender still writing it: check its deal\n")
    else:
        ran = f"no record of the {read} bytes read was run\n"
    return (f"file {name} changed while it was read: {change}\n"
            + ran
            + f"this is the whole file as it is now: what the sender wrote after the read (from byte {read} on, "
              f"if it appended) was not run\n"
              f"fix the sender: write the file under a temporary name (.{name} or {name}.tmp) and rename it "
              f"into place once complete; or set complete = \"stable\" on channel {channel}, which takes a file "
              f"once its size and time have not changed for settle; before dropping this file again, take out "
              f"the records already run (a route with a deal key answers a repeated record from the ledger, "
              f"another runs it again)\n"
            + "".join(p + "\n" for p in problems))
