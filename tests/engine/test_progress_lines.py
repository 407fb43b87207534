"""Plain progress lines (a CI log): the interval counts from the first item's progress, not from the
command's start, so a short replay after a slow compile prints nothing (until 2026-11-27 a 1.6 s replay
of 200 exchanges, 5 s after the command began, printed `replay: 1/200 exchange(s) (0%), 5.4s` as its only
progress line: a replay that looked stuck at 0% in the log of one that passed)."""
from __future__ import annotations

import io

import pytest

from engine import progress as mod
from engine.progress import work_progress


def test_setup_time_does_not_count_towards_the_first_line(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(mod.time, "perf_counter", lambda: now[0])
    out = io.StringIO()
    with work_progress("replay", "exchange(s)", 5.0, out=out) as progress:
        assert progress is not None
        now[0] = 105.4                  # compiling the candidate and reading the capture took 5.4 s
        progress(1, 200)
        now[0] = 107.0
        progress(199, 200)
        progress(200, 200)
    assert out.getvalue() == ""

    out = io.StringIO()
    now[0] = 200.0
    with work_progress("replay", "exchange(s)", 5.0, out=out) as progress:
        now[0] = 205.4
        progress(1, 30000)
        now[0] = 210.5                  # 5.1 s of replaying: a line, with the time since the command began
        progress(1200, 30000)
        now[0] = 211.0
        progress(1300, 30000)
    assert out.getvalue() == "replay: 1,200/30,000 exchange(s) (4%), 10.5s\n"
