"""Which batch files a ``file watch`` channel has run, by content: a file is run once.

One append-only text file per channel's ``done`` folder (``.bsp-files``), a line
per event, tab-separated::

    sha256  taken     NAME  -      TIME     before the file's records run
    sha256  ran       NAME  N:P:C:R:D  TIME  its first N data records are recorded (after each batch),
                                         P of them rejected or failed; C committed, R rejected, D
                                         duplicate (``N:P`` alone: a line of a bsp before 2026-11-27)
    sha256  done      NAME  ARCH   TIME     moved to done/ARCH
    sha256  error     NAME  ARCH   TIME     moved to error/ARCH
    sha256  repeat    NAME  ARCH   TIME     the same bytes again, refused unrun: moved to error/ARCH
    sha256  end       NAME  ID SUMMARY  TIME  the file's end message (``end_message = true``) is about to
                                         run as deal ID; SUMMARY its ``file.*`` as JSON
                                         (``engine.channels.file_end``)
    sha256  ended     NAME  ID     TIME     that message's deal is recorded

A file over the channel's ``max_file_bytes`` is not read, so it has no SHA-256: its
``error`` line has ``NOT_READ`` (64 ``-``) in its place; such lines are kept as events, like
repeats, and never make a later file a repeat.

Each line is written and fsynced before what it announces happens next.  A
file whose bytes were already run to the end (``done`` or ``error``) is not run
again: re-sending yesterday's payment file must not pay twice.  A file ``taken``
or ``ran`` and never finished was cut short by a stop or a crash; it resumes after
the last batch whose deals were recorded.  A ``ran`` line is written only once its
batch's deals are stored (``--ledger-sync none`` acknowledges them before they are
in DuckDB: the channel waits for them to be loaded first), so no record is lost;
a crash between a batch's commit and its ``ran`` line (~2 ms of a 50-70 ms batch of
1,000) runs that one batch again; routes with a deal key answer its records from
the ledger.  A line cut short by a crash is ignored.
"""
from __future__ import annotations

import hashlib
import json
import errno
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from engine.filemodes import shared_mode

__all__ = ["INDEX_NAME", "NOT_READ", "EndNote", "FileIndex", "FileRun", "content_id", "free_name"]

INDEX_NAME = ".bsp-files"
NOT_READ = "-" * 64          # in place of the SHA-256 of a file that was not read (over max_file_bytes)


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FileRun:
    name: str
    status: str          # taken | ran | done | error | repeat
    archived: str        # ran: "N:P", data records recorded and how many of them were rejected or failed
    at: str
    seq: int = field(default=0, compare=False)       # the line's place in the index: orders events within a second

    def _ran(self) -> tuple[int, int]:
        if self.status != "ran":
            return 0, 0
        n, p = (self.archived.split(":") + ["", ""])[:2]
        return (int(n) if n.isdigit() else 0), (int(p) if p.isdigit() else 0)

    @property
    def ran(self) -> int:
        """Data records of the file whose deals are recorded (a run cut short resumes after them)."""
        return self._ran()[0]

    @property
    def ran_problems(self) -> int:
        """How many of those were rejected or failed (the file goes to error/ at its end)."""
        return self._ran()[1]


@dataclass
class EndNote:
    """A file's end message noted in the index: the deal id it runs under, its summary, and whether its
    deal is recorded (``ended``)."""
    sha: str
    name: str
    deal_id: str
    summary: dict
    ended: bool = False


class FileIndex:
    def __init__(self, folder: Path) -> None:
        self.path = folder / INDEX_NAME
        self.runs: dict[str, FileRun] = {}
        self.ends: dict[str, EndNote] = {}        # deal id -> the end message noted
        # (sha, name) -> the deal id of its end message noted since the file was taken and not yet closed by the
        # line of its move (done, error, repeat): a file still in the folder after a stop
        self._last_end: dict[tuple[str, str], str] = {}
        self.repeats: list[tuple[str, FileRun]] = []    # refused repeats and unread files: not runs
        self._seq = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) == 5 and len(parts[0]) == 64:
                    sha, status, name, archived, at = parts
                    self._keep(sha, FileRun(name, status, archived, at))

    def _keep(self, sha: str, run: FileRun) -> None:
        if run.status == "end":
            deal_id, _, text = run.archived.partition(" ")
            try:
                summary = json.loads(text)
            except ValueError:
                return
            self.ends[deal_id] = EndNote(sha, run.name, deal_id, summary)
            self._last_end[(sha, run.name)] = deal_id
            return
        if run.status == "ended":
            note = self.ends.get(run.archived)
            if note is not None:
                note.ended = True
            return
        if run.status in ("taken", "done", "error", "repeat"):     # a new run, or the file moved: closed
            self._last_end.pop((sha, run.name), None)
        self._seq = run.seq = self._seq + 1
        if run.status == "repeat" or sha == NOT_READ:
            self.repeats.append((sha, run))
        else:
            self.runs[sha] = run

    def events(self) -> list[tuple[str, FileRun]]:
        """Each file's last state and every refused repeat, in the order they were written (oldest first)."""
        return sorted([*self.runs.items(), *self.repeats], key=lambda kv: kv[1].seq)

    def finished(self, sha: str) -> FileRun | None:
        """The earlier run of these bytes, when it went to its end (done/ or error/)."""
        run = self.runs.get(sha)
        return run if run is not None and run.status in ("done", "error") else None

    def named(self, name: str, sha: str) -> FileRun | None:
        """The last run to its end of other bytes under the same ``name`` (a corrected file sent again
        under its name, or the same name used for another day's file), or None."""
        for other, run in sorted(self.runs.items(), key=lambda kv: -kv[1].seq):
            if run.name == name and other != sha and run.status in ("done", "error") and other != NOT_READ:
                return run
        return None

    def last_end(self, sha: str, name: str) -> EndNote | None:
        """The end message noted for the file ``name`` of these bytes whose move is not noted yet (its ``done``,
        ``error`` or ``repeat`` line): one a stop left in the folder, before or after its ``ended`` line; or
        None.  (A file over ``max_file_bytes`` has no content id: its name tells it from another.)"""
        return self.ends.get(self._last_end.get((sha, name), ""))

    def interrupted(self, sha: str) -> FileRun | None:
        run = self.runs.get(sha)
        return run if run is not None and run.status in ("taken", "ran") else None

    def note(self, sha: str, status: str, name: str, archived: str = "-") -> None:
        """Record an event durably (blocking: a short append and an fsync)."""
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        line = "\t".join((sha, status, name.replace("\t", " "), archived.replace("\t", " "), at)) + "\n"
        fd = _open_index(self.path)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._keep(sha, FileRun(name, status, archived, at))


def _open_index(path: Path) -> int:
    """The index file opened to append, made if missing; never through a symbolic link planted as the
    folder (done/) or as the file (engine/channels/file_folders.py)."""
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError(errno.ELOOP, f"{path.parent} is a symbolic link or not a folder, never followed: the file "
                                       f"index {path.name} is not written through it") from None
        raise
    try:
        try:
            fd = os.open(path.name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL | os.O_NOFOLLOW, 0o640,
                         dir_fd=folder)
            os.fchmod(fd, shared_mode(0o640))        # as before the ledger's owner-only umask
        except FileExistsError:
            fd = os.open(path.name, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW, dir_fd=folder)
    finally:
        os.close(folder)
    return fd


def free_name(folder: Path, name: str) -> str:
    """``name`` if nothing in ``folder`` has it, else ``STEM.2.SUFFIX``, ``STEM.3.SUFFIX``, ...: an
    archived file is never replaced by a later one of the same name."""
    return free_name_by(lambda n: (folder / n).exists(), name)


def free_name_by(taken: Callable[[str], bool], name: str) -> str:
    """``name`` unless ``taken(name)``, else the first of ``STEM.2.SUFFIX``, ``STEM.3.SUFFIX``, ... not taken."""
    if not taken(name):
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    n = 2
    while True:
        candidate = f"{stem}.{n}.{suffix}" if suffix else f"{stem}.{n}"
        if not taken(candidate):
            return candidate
        n += 1
