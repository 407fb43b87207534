"""A rebuild of the key store's index (``index.sqlite`` of the answers files, engine/txn/answers.py) followed and
stopped from another thread: ``Rebuild`` (its progress, its stop), ``RebuildStopped`` (what a stopped one raises),
and ``rebuild_needed`` (whether an open would rebuild: a cheap look before it).  Used by engine/txn/keyopen.py,
which runs such an open in a worker thread while the engine's loop serves its admin API."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from engine.txn.answers import _day_of


class RebuildStopped(Exception):
    """A rebuild of the index was stopped (``Rebuild.stop``: the engine stops): nothing of it was committed, the
    next open makes the index again from the start."""


class Rebuild:
    """What a rebuild of the index (``Answers`` opened where ``index.sqlite`` is lost) has done so far, and its
    stop: read by the engine's loop (``bsp status``: ``rebuilding key index``) while the rebuild runs in a
    worker thread (engine/txn/keyopen.py).  ``stop`` may be called from any thread: the rebuild stops at its next
    chunk (``REBUILD_CHUNK`` answers), or at once inside a long SQLite statement (``interrupt``), and rolls back."""

    after_chunk: Any = None     # (Rebuild) -> None, called in the rebuild's thread after each chunk (tests)

    def __init__(self) -> None:
        self.running = False        # a rebuild (not an open that found its index in place) has begun
        self.done = False
        self.files = 0
        self.answers = 0            # indexed so far
        self.read = 0               # bytes of the answers files read so far
        self.total = 0              # bytes to read
        self.phase = "reading"      # reading, then "making the indexes" (the B-trees sorted at the end)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    def attach(self, con: sqlite3.Connection | None) -> None:
        with self._lock:
            self._con = con
            if con is not None and self._stop.is_set():
                con.interrupt()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            if self._con is not None:
                self._con.interrupt()       # a CREATE INDEX of 35M rows runs minutes: not waited for

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        if self._stop.is_set():
            raise RebuildStopped("the rebuild of the key store's index was stopped (the engine stops); nothing "
                                 "of it was kept: the next start makes it again")

    def chunk(self, answers: int, read: int) -> None:
        self.answers, self.read = answers, read
        hook = self.after_chunk
        if hook is not None:
            hook(self)
        self.check()

    def text(self) -> str:
        """``rebuilding key index: N of M MB read, K answers indexed``: the status line."""
        if self.phase != "reading":
            return f"rebuilding key index: {self.answers} answers read, {self.phase}"
        return (f"rebuilding key index: {self.read / 1e6:.1f} of {self.total / 1e6:.1f} MB read "
                f"({self.read * 100 // max(1, self.total)}%), {self.answers} answers indexed")

    def as_dict(self) -> dict[str, Any]:
        return {"state": "done" if self.done else "rebuilding" if self.running else "opening",
                "files": self.files, "answers": self.answers, "bytes_read": self.read, "bytes_total": self.total,
                "phase": self.phase}


def rebuild_needed(path: Path) -> bool:
    """Whether opening the answers folder ``path`` would make its index again from the files (answers files
    there, and ``index.sqlite`` missing, empty or unreadable): cheap (one read-only query), so that the engine
    knows before the open whether to run it in a worker thread and serve its admin API meanwhile."""
    try:
        names = [p.name for p in path.iterdir()]
    except OSError:
        return False
    if not any(_day_of(n) is not None for n in names):
        return False
    index = path / "index.sqlite"
    try:
        if index.stat().st_size == 0:
            return True
    except FileNotFoundError:
        return True
    try:
        con = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        try:
            return con.execute("SELECT 1 FROM files LIMIT 1").fetchone() is None
        finally:
            con.close()
    except sqlite3.Error:
        return True
