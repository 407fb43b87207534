"""One log line per storage fault, not one per deal: what an admin on call reads when a disk fills up.

    alarm = FaultLog(log, "journal")
    alarm.failed("write", "var/bsp.duckdb.journal/000000000002.tmp: byte 0: ... No space left on device; ...")
    alarm.recovered("write")           # logs "journal: write works again after 37 failure(s)" once

The first failure of a kind is logged at once with its full text (the file, the byte offset, the errno
and what to do); the same kind failing again is counted and logged again at most every ``every``
seconds ("still failing, N more since"); the first success after failures says so once.  Storage
errors raised by the journal carry ``logged = True`` once reported here, so the runtime does not log
them again per deal (``engine.runtime.dispatch``).
"""
from __future__ import annotations

import errno as _errno
import logging
import time
from typing import Any, Callable

__all__ = ["FaultLog", "os_reason", "FREE_SPACE", "RESUMES"]

# what to do, said once in every storage error
FREE_SPACE = "free space on that disk (or raise the process's file size limit, ulimit -f)"
RESUMES = "bsp keeps serving and writes again by itself once there is room"


def os_reason(exc: BaseException) -> str:
    """``[Errno 28] No space left on device (ENOSPC)``: the system's text with the errno's name."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = _errno.errorcode.get(exc.errno, "")
        return f"[Errno {exc.errno}] {exc.strerror or exc}" + (f" ({name})" if name else "")
    return f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)


class FaultLog:
    def __init__(self, logger: logging.Logger, what: str, *, every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = logger
        self.what = what
        self.every = every
        self.clock = clock
        self._open: dict[str, list[Any]] = {}      # kind -> [failures, last logged at, failures since]

    def failed(self, kind: str, text: str) -> bool:
        """Count a failure; log it when it is the first of its kind or ``every`` seconds passed.
        Returns whether it was logged now."""
        now = self.clock()
        st = self._open.get(kind)
        if st is None:
            self._open[kind] = [1, now, 0]
            self.log.error("%s: %s", self.what, text)
            return True
        st[0] += 1
        st[2] += 1
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
