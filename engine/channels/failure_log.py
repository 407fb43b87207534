"""The log of an outbound channel's failed calls, without a line per call.

A counterpart that is down fails every call: a warning per call is a flood (a
thousand lines a second under load) that hides everything else in the log.  So
a streak of failures (calls without an answer taken, since the last one that
had one) is logged as:

* a warning for the first failure of the streak, and for the first of each
  other kind (``unreachable`` then ``timeout``: the reason changed);
* while it lasts, one warning every ``every`` seconds counting the calls that
  failed since (``still failing: 1,204 call(s) in 60s ...``); the others at
  debug, for whoever switched that on;
* one warning when a call is answered again, with how many failed and since when.

Kinds in ``quiet`` are counted but their first line is at debug, and a streak
of them alone ends at debug: another part says them (``engine/ops/health.py``'s
``CallHealth`` logs a streak of timeouts once for every kind of channel).

A call the counterpart answers but refuses (an HTTP status not taken, a bad
signature: ``refused``, ``unauthenticated``) is no outage, and ends one: the
counterpart is there.  Those are logged as a warning at most every ``every``
seconds, the next one counting those in between (at debug).

Each deal's own reason stays in the ledger (``bsp deals``, ``bsp dead list``);
the log says what an operator must know: it went wrong, it is still wrong, it
is right again.  The streak itself is an ``engine.outage_log.OutageLog`` (the wording every outbound channel
shares: ``[outage start|reminder|end: PEER ...]``).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from engine.outage_log import OutageLog, _now, iso

OUTAGE = frozenset({"unreachable", "lost", "timeout"})     # engine.resilience.FAILURE_KINDS: no answer taken


class FailureLog:
    __slots__ = ("log", "name", "every", "clock", "quiet", "outage", "refused_said", "refused_quiet")

    def __init__(self, log: logging.Logger, name: str, every: float = 60.0,
                 clock: Callable[[], float] = _now, quiet: frozenset[str] = frozenset(), peer: str = "") -> None:
        self.log, self.name, self.every, self.clock = log, name, every, clock
        self.quiet = quiet                   # kinds another part says (engine/ops/health.CallHealth: timeouts)
        self.outage = OutageLog(log, name, peer or f"channel {name}'s counterpart", every=every, clock=clock,
                                wall=time.time if clock is _now else clock)
        self.refused_said = -float("inf")    # when a refused call was last logged at warning
        self.refused_quiet = 0               # refused calls logged at debug since

    @property
    def failed(self) -> int:
        return self.outage.count

    def failure(self, kind: str, text: str) -> None:
        if kind in OUTAGE:
            self.outage.failed(text, key=kind, kind=kind, loud=kind not in self.quiet)
            return
        self.answered()
        now = self.clock()
        if now - self.refused_said >= self.every:
            more = (f" ({self.refused_quiet} more answered and refused in the last "
                    f"{now - self.refused_said:.0f}s, logged at debug)" if self.refused_quiet else "")
            self.log.warning("%s%s", text, more)
            self.refused_said, self.refused_quiet = now, 0
        else:
            self.refused_quiet += 1
            self.log.debug("%s", text)

    def answered(self) -> None:
        out = self.outage
        if not out.down:
            return
        kinds = ", ".join(f"{k} {n}" for k, n in out.kinds.items())
        out.end(f"channel {self.name}: answers again: a call was answered after {out.count} failed call(s) since "
                f"{iso(out.since)} ({kinds}); their deals are in the ledger with their reasons (bsp dead list, "
                f"bsp deals --status failed)")


__all__ = ["FailureLog", "OUTAGE", "iso"]
