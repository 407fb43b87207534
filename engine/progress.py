"""Progress of long command-line work on standard error: a rich bar on a terminal, a plain line every N
seconds elsewhere (``bsp replay``, ``bsp audit verify``).

    with work_progress("replay", "exchange(s)", every=5.0) as progress:
        replay_file(..., progress=progress)        # progress(done, total) as the work goes on

On a terminal the bar is transient (gone when the result prints).  In a CI log
or a pipe, ``replay: 1,200/5,000 exchange(s) (24%), 6.0s`` is printed at most
once every ``every`` seconds, counted from the first progress (the time before it, a compile, is not
the work's), and never for the last item, so short work prints nothing; the time shown is since the start.  ``every <= 0`` shows nothing at all.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TextIO


class PlainLines:
    def __init__(self, every: float, out: TextIO, what: str, unit: str) -> None:
        self.every = every
        self.out = out
        self.what, self.unit = what, unit
        self.t0 = time.perf_counter()
        self._last: float | None = None      # the first progress: what came before (a compile) is not the work

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self._last is None:
            self._last = now
            return
        if now - self._last >= self.every and done < total:
            self._last = now
            pct = 100.0 * done / total if total else 100.0
            self.out.write(f"{self.what}: {done:,}/{total:,} {self.unit} ({pct:.0f}%), {now - self.t0:.1f}s\n")
            self.out.flush()


class Bar:
    def __init__(self, what: str, unit: str) -> None:
        from rich.console import Console

        self.what = what
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(TextColumn(what), BarColumn(bar_width=40), MofNCompleteColumn(),
                             TextColumn(unit), TimeElapsedColumn(), console=Console(stderr=True),
                             transient=True)
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.bars.start()
            self.task = self.bars.add_task(self.what, total=total)
        self.bars.update(self.task, completed=done)

    def close(self) -> None:
        if self.task is not None:
            self.bars.stop()


@contextmanager
def work_progress(what: str, unit: str, every: float = 5.0,
                  out: TextIO | None = None) -> Iterator[Callable[[int, int], None] | None]:
    out = out or sys.stderr
    if every <= 0:
        yield None
        return
    if out.isatty():
        bar = Bar(what, unit)
        try:
            yield bar
        finally:
            bar.close()
        return
    yield PlainLines(every, out, what, unit)


__all__ = ["work_progress"]
