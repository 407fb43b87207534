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
is right again.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Callable

OUTAGE = frozenset({"unreachable", "lost", "timeout"})     # engine.resilience.FAILURE_KINDS: no answer taken


def iso(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class FailureLog:
    __slots__ = ("log", "name", "every", "clock", "quiet", "failed", "kinds", "since", "last_said", "said_count",
                 "refused_said", "refused_quiet", "loud")

    def __init__(self, log: logging.Logger, name: str, every: float = 60.0,
                 clock: Callable[[], float] = time.time, quiet: frozenset[str] = frozenset()) -> None:
        self.log, self.name, self.every, self.clock = log, name, every, clock
        self.quiet = quiet                   # kinds another part says (engine/ops/health.CallHealth: timeouts)
        self.loud = False                    # a warning said this streak began
        self.failed = 0                      # calls failed in this streak
        self.kinds: dict[str, int] = {}      # by kind
        self.since: float | None = None      # wall time of the streak's first failure
        self.last_said = 0.0                 # when a warning last spoke of it
        self.said_count = 0                  # self.failed then
        self.refused_said = -float("inf")    # when a refused call was last logged at warning
        self.refused_quiet = 0               # refused calls logged at debug since

    def failure(self, kind: str, text: str) -> None:
        now = self.clock()
        if kind not in OUTAGE:
            self.answered()
            if now - self.refused_said >= self.every:
                more = (f" ({self.refused_quiet} more answered and refused in the last "
                        f"{now - self.refused_said:.0f}s, logged at debug)" if self.refused_quiet else "")
                self.log.warning("%s%s", text, more)
                self.refused_said, self.refused_quiet = now, 0
            else:
                self.refused_quiet += 1
                self.log.debug("%s", text)
            return
        first_of_kind = kind not in self.kinds
        if self.since is None:
            self.since = now
        self.failed += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if first_of_kind and kind in self.quiet:
            self.log.debug("%s", text)
        elif first_of_kind:
            self.log.warning("%s", text)
            self.last_said, self.said_count, self.loud = now, self.failed, True
        elif self.loud and now - self.last_said >= self.every:
            self.log.warning("channel %s: still failing: %d call(s) in the last %.0fs, %d since %s (%s); the "
                             "last: %s", self.name, self.failed - self.said_count, now - self.last_said,
                             self.failed, iso(self.since), self._kinds(), text)
            self.last_said, self.said_count = now, self.failed
        else:
            self.log.debug("%s", text)

    def answered(self) -> None:
        if self.since is None:
            return
        self.log.log(logging.WARNING if self.loud else logging.DEBUG, "channel %s: answers again: a call was answered after %d failed call(s) since %s (%s); "
                         "their deals are in the ledger with their reasons (bsp dead list, bsp deals --status "
                         "failed)", self.name, self.failed, iso(self.since), self._kinds())
        self.failed, self.kinds, self.since, self.said_count, self.loud = 0, {}, None, 0, False

    def _kinds(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in self.kinds.items())


__all__ = ["FailureLog"]
