"""One log line per fault, not one per deal or bad message: what an admin on call reads when a disk fills
up or a counterpart (or an attacker) floods a channel with bad input.

Storage faults (a full disk):

    alarm = FaultLog(log, "journal")
    alarm.failed("write", "var/bsp.duckdb.journal/000000000002.tmp: byte 0: ... No space left on device; ...")
    alarm.recovered("write")           # logs "journal: write works again after 37 failure(s)" once

The first failure of a kind is logged at once with its full text (the file, the byte offset, the errno
and what to do); the same kind failing again is counted and logged again at most every ``every``
seconds ("still failing, N more since"), and at the stop (``flush``: "still failing at the stop, N more
since"); the first success after failures says so once.  Storage
errors raised by the journal carry ``logged = True`` once reported here, so the runtime does not log
them again per deal (``engine.runtime.dispatch``).

Bad input (malformed frames, failed TLS handshakes, refused clients, ...):

    faults = FaultLog(log, "channel front", every=30.0, clock=trio.current_time)
    nursery.start_soon(faults.run)                     # writes a summary when due, even once the flood stops
    faults.occurred("malformed frame", "connection 7 from 10.0.0.9:4711: byte 0: ... (hint: ...); closing",
                    noun="malformed frames", source="10.0.0.9:4711", reason="byte 0: ...")
    faults.flush()                                     # at the stop: the counts not yet written

The first occurrence of a kind is logged at once with its full text; the same kind again within ``every``
seconds of the last line about it is only counted (O(1): a dict look-up and three stores), and one line
sums them up once the window is over: ``channel front: 4,999 more malformed frames since 21:40:02
(counted, not logged one by one), last from 10.0.0.9:4711: byte 0: ...``.  A kind quiet for a whole
window is logged in full again at its next occurrence.  Nothing else changes: each bad message is still
counted, answered and recorded (deal row, dead letter) where the engine records it.
"""
from __future__ import annotations

import errno as _errno
import logging
import time
from datetime import datetime
from typing import Any, Callable, Hashable

import trio

__all__ = ["FaultLog", "os_reason", "storage_fix", "FREE_SPACE", "RESUMES"]

# what to do, said once in every storage error
FREE_SPACE = "free space on that disk (or raise the process's file size limit, ulimit -f)"
RESUMES = "bsp keeps serving and writes again by itself once it can (no restart needed)"
READ_ONLY = ("the file system is read-only (remounted so after a disk error? see `dmesg` and `findmnt`): "
             "repair the disk and make it writable again, or stop bsp and start it with the ledger on a "
             "writable disk")
IO_ERROR = ("the disk reports an I/O error (see `dmesg`): check or replace it; until then restore the "
            "ledger's folder from a copy on a sound disk")
NO_ACCESS = ("the engine's user may not write there: check the owner and mode of the file and its folder "
             "(and `lsattr` for the immutable flag)")
_FIXES = {_errno.EROFS: READ_ONLY, _errno.EIO: IO_ERROR, _errno.EACCES: NO_ACCESS, _errno.EPERM: NO_ACCESS}
# DuckDB's storage errors are text, not OSError: the same advice, found by the system's message
_FIX_TEXTS = (("read-only file system", READ_ONLY), ("input/output error", IO_ERROR),
              ("permission denied", NO_ACCESS), ("operation not permitted", NO_ACCESS))


def storage_fix(exc: BaseException | None) -> str:
    """What to do about a storage error: free space (ENOSPC, EFBIG, EDQUOT and anything else), or, for a
    read-only file system (EROFS), an I/O error (EIO) or a permission (EACCES, EPERM), what fixes that.
    Reads the errno of ``exc`` or of its causes, else DuckDB's message text."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _FIXES:
            return _FIXES[exc.errno]
        text = str(exc).lower()
        for needle, fix in _FIX_TEXTS:
            if needle in text:
                return fix
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return FREE_SPACE


def os_reason(exc: BaseException) -> str:
    """``[Errno 28] No space left on device (ENOSPC)``: the system's text with the errno's name."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = _errno.errorcode.get(exc.errno, "")
        return f"[Errno {exc.errno}] {exc.strerror or exc}" + (f" ({name})" if name else "")
    return f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)


REPEAT_EVERY = 30.0      # seconds between two lines about the same fault
MAX_KINDS = 1024         # kinds (e.g. client addresses) remembered; past it the counts are written and forgotten


class _Seen:
    """One kind of bad input: when it was last logged and what came since."""

    __slots__ = ("logged_at", "more", "since", "source", "reason", "noun", "level", "log", "what", "last")

    def __init__(self, logged_at: float, noun: str, level: int, logger: logging.Logger, what: str,
                 last: str) -> None:
        self.logged_at = logged_at
        self.more = 0              # occurrences counted, not logged, since ``logged_at``
        self.since = 0.0           # wall time of the first of them
        self.source = ""
        self.reason = ""
        self.noun = noun
        self.level = level
        self.log = logger
        self.what = what           # the line's subject ("channel front", "route pay")
        self.last = last           # how the summary names the last one's source ("from": "last from ADDR")


class FaultLog:
    def __init__(self, logger: logging.Logger, what: str, *, every: float = REPEAT_EVERY,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 max_kinds: int = MAX_KINDS) -> None:
        self.log = logger
        self.what = what
        self.every = every
        self.clock = clock
        self.wall = wall
        self.max_kinds = max_kinds
        self._open: dict[str, list[Any]] = {}      # kind -> [failures, last logged at, failures since, last text]
        self._seen: dict[Hashable, _Seen] = {}     # bad input: kind -> its state
        self._wake: trio.Event | None = None       # set by the first repeat counted: ``run`` has work

    # -- bad input --------------------------------------------------------------------------------------
    def occurred(self, kind: Hashable, text: str | Callable[[], str], *, noun: str, source: str = "",
                 reason: str = "", level: int = logging.WARNING, logger: logging.Logger | None = None,
                 what: str | None = None, last: str = "from") -> bool:
        """One bad message of ``kind``: logs ``text`` (its full text: where, what was expected, the fix) when
        it is the first of its kind or its kind was quiet for ``every`` seconds; else counts it (``noun``:
        what the summary calls them, plural; ``source`` and ``reason``: the last one's, in the summary).
        ``text`` may be a function, called only when the line is written (a traceback is formatted once,
        not for each one counted).  ``what``: the line's subject when not the log's own (``route pay``);
        ``last``: the word between "last" and ``source`` in the summary ("" for ``last deal ID: ...``).
        Returns whether a line was written now."""
        now = self.clock()
        seen = self._seen.get(kind)
        if seen is None or (not seen.more and now - seen.logged_at >= self.every):
            if seen is None and len(self._seen) >= self.max_kinds:
                self.flush()
                self._seen.clear()
            lg = logger or self.log
            subject = self.what if what is None else what
            self._seen[kind] = _Seen(now, noun, level, lg, subject, last)
            lg.log(level, "%s: %s", subject, text if isinstance(text, str) else text())
            return True
        if not seen.more:
            seen.since = self.wall()
            if self._wake is not None:
                self._wake.set()
        seen.more += 1
        seen.source, seen.reason = source, reason
        if now - seen.logged_at >= self.every:
            self._summary(seen, now)
            return True
        return False

    def _summary(self, seen: _Seen, now: float) -> None:
        since = datetime.fromtimestamp(seen.since).strftime("%H:%M:%S")
        if not seen.source:
            last = "last: "
        else:
            last = f"last {seen.last} {seen.source}: " if seen.last else f"last {seen.source}: "
        seen.log.log(seen.level, "%s: %s more %s since %s (counted, not logged one by one), %s%s", seen.what,
                     f"{seen.more:,}", seen.noun, since, last, seen.reason)
        seen.logged_at, seen.more = now, 0

    def due(self) -> float | None:
        """Write the summaries whose window is over; returns when the next one is due (None: none pending)."""
        now = self.clock()
        nxt: float | None = None
        for seen in self._seen.values():
            if seen.more:
                at = seen.logged_at + self.every
                if at <= now:
                    self._summary(seen, now)
                else:
                    nxt = at if nxt is None else min(nxt, at)
        return nxt

    def flush(self) -> None:
        """Write every count not yet written (at the stop): bad input and storage faults."""
        now = self.clock()
        for seen in self._seen.values():
            if seen.more:
                self._summary(seen, now)
        for st in self._open.values():
            if st[2]:
                self.log.error("%s: still failing at the stop (%d more since the last report): %s", self.what,
                               st[2], st[3])
                st[1], st[2] = now, 0

    async def run(self) -> None:
        """Write each summary once its window is over, also when no more bad input comes to trigger it.
        Sleeps until the first repeat is counted; ``clock`` must then be trio's (``trio.current_time``).
        One run at a time: a second would take the wake-up from the first (and its end would turn it off)."""
        if self._wake is not None:
            raise RuntimeError(f"{self.what}: FaultLog.run is already running (started once, by its owner)")
        self._wake = trio.Event()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while (at := self.due()) is not None:
                    await trio.sleep(max(0.0, at - self.clock()))
        finally:
            self._wake = None

    # -- storage faults ---------------------------------------------------------------------------------

    def failed(self, kind: str, text: str) -> bool:
        """Count a failure; log it when it is the first of its kind or ``every`` seconds passed.
        Returns whether it was logged now."""
        now = self.clock()
        st = self._open.get(kind)
        if st is None:
            self._open[kind] = [1, now, 0, text]
            self.log.error("%s: %s", self.what, text)
            return True
        st[0] += 1
        st[2] += 1
        st[3] = text
        if now - st[1] >= self.every:
            self.log.error("%s: still failing (%d more since the last report): %s", self.what, st[2], text)
            st[1], st[2] = now, 0
            return True
        return False

    def recovered(self, kind: str) -> None:
        st = self._open.pop(kind, None)
        if st is not None:
            self.log.warning("%s: %s works again after %d failure(s)", self.what, kind, st[0])

    def failing(self, kind: str) -> bool:
        return kind in self._open

    def open_faults(self) -> list[dict[str, Any]]:
        """The storage faults failing now (not recovered yet), for ``bsp status``: ``what`` (the log's
        subject), ``kind``, ``failures`` since it began and ``last``, the last failure's full text."""
        return [{"what": self.what, "kind": kind, "failures": st[0], "last": st[3]}
                for kind, st in self._open.items()]
