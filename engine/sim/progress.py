"""Progress of a simulated load: rich bars on a terminal, plain lines in CI logs.

    with load_progress(console) as progress:
        task = progress.add_task("Bill payment", total=3000)
        progress.advance(task, 1)

On a terminal this is ``rich.progress.Progress`` (one bar per task).  When the
console is not a terminal (a CI log, a pipe) bars would print as control
codes, so ``PlainProgress`` prints one line per second at most with the
overall count, and one final line.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class PlainProgress:
    def __init__(self, console: Console, *, every: float = 1.0, label: str = "replies") -> None:
        self.console = console
        self.every = every
        self.label = label
        self.totals: list[int] = []
        self.done: list[int] = []
        self.names: list[str] = []
        self.t0 = time.perf_counter()
        self._last = self.t0

    def add_task(self, description: str, total: int) -> int:
        self.names.append(description)
        self.totals.append(total)
        self.done.append(0)
        return len(self.totals) - 1

    def advance(self, task: int, k: int = 1) -> None:
        self.done[task] += k
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self.line()

    def line(self) -> None:
        done, total = sum(self.done), sum(self.totals)
        pct = 100.0 * done / total if total else 100.0
        finished = sum(1 for d, t in zip(self.done, self.totals) if d >= t)
        self.console.print(f"progress: {done:,}/{total:,} {self.label} ({pct:.0f}%), "
                           f"{finished}/{len(self.totals)} channels done, {time.perf_counter() - self.t0:.1f}s",
                           highlight=False)


@contextmanager
def load_progress(console: Console, *, plain: bool | None = None) -> Iterator[Any]:
    """Rich bars when ``console`` is a terminal (or ``plain`` is False), plain lines otherwise."""
    if plain is None:
        plain = not console.is_terminal
    if plain:
        p = PlainProgress(console)
        yield p
        p.line()
        return
    with Progress(TextColumn("{task.description:<34}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bars:
        yield bars
