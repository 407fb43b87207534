"""One replay, end to end: capture + candidate configuration -> ``ReplayReport``.

    report = replay_file("cap.duckdb", ["routes/bill_payment"], registry, pace="fast",
                         profile="replay.yaml")
    report.passed     # no unexpected difference (and something was replayed)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import trio

from engine.replay.capture import Capture
from engine.replay.diff import Differ
from engine.replay.guide import FormatGuide
from engine.replay.profile import load_profile
from engine.replay.replayer import replay
from engine.replay.report import NotReplayable, ReplayReport


class SetupError(ValueError):
    """The candidate configuration does not compile or cannot run; the message shows why."""


def route_files(paths: Iterable[str | Path]) -> list[Path]:
    """Route files of ``--config``: files, folders (every ``*.route`` below), or a deployment file
    (``platform.yaml``: its ``routes:``, as ``bsp run`` takes them; ``$BSP_ENV`` selects the environment)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise SetupError(f"{p}: no such file or directory")
        if p.is_file() and p.suffix in (".yaml", ".yml"):
            from engine.deploy import DeploymentError, load_deployment
            try:
                out.extend(load_deployment(p).route_files)
            except DeploymentError as exc:
                raise SetupError(f"--config {p}: a deployment file with problems (replay takes its route "
                                 f"files):\n{exc}") from None
            continue
        out.extend(sorted(p.rglob("*.route")) if p.is_dir() else [p])
    if not out:
        raise SetupError("no route files found in " + ", ".join(map(str, paths)))
    return out


def compile_config(paths: Iterable[str | Path], registry: Any) -> Any:
    from dsl.diagnostics import render
    from dsl.load import compile_paths

    res = compile_paths(route_files(paths), registry)
    if res.program is None:
        shown = "\n".join(render(d, res.sources) for d in res.errors)
        raise SetupError(f"the candidate configuration does not compile:\n{shown}")
    from engine.ops.files import with_referenced_files
    return with_referenced_files(res.program)        # the version bsp run and bsp check give it


def check_channels(cap: Capture, program: Any) -> None:
    """Every channel the capture recorded requests on has a route receiving from it in the candidate."""
    receiving = {r.channel for r in program.routes}
    missing = sorted({ex.request.channel for ex in cap.exchanges} - receiving)
    if missing:
        raise SetupError(f"the candidate configuration has no route receiving from channel(s) "
                         f"{', '.join(missing)}, which the capture recorded requests on (it receives from: "
                         f"{', '.join(sorted(receiving)) or 'no channel'}); give the route files of the service "
                         f"that was recorded with --config")


def replay_file(capture: str | Path, config: Iterable[str | Path], registry: Any, *, pace: str = "fast",
                profile: str | Path | None = None, concurrency: int = 64,
                progress: Callable[[int, int], None] | None = None,
                interruptible: bool = False) -> ReplayReport:
    """``progress(done, total)`` is called as exchanges finish.  ``interruptible`` (main thread only):
    SIGINT stops feeding, and the report covers the exchanges that finished (``report.interrupted``)."""
    from engine.runtime.binder import Binder

    cap = Capture(capture)
    cap.require_exchanges()
    prof = load_profile(profile)
    config = list(config)
    program = compile_config(config, registry)
    check_channels(cap, program)
    t0 = time.perf_counter()
    run = trio.run(lambda: replay(cap, program, registry, pace=pace, concurrency=concurrency,
                                  progress=progress, interruptible=interruptible))
    guide = FormatGuide(program, Binder(program, registry).codec)
    diff = Differ(guide, prof, masked=cap.masked).run(run.replayed)
    answers = run.answers
    return ReplayReport(
        capture=str(capture), config_version=program.version,
        recorded_version=", ".join(cap.versions()) or cap.info.get("config_version", ""), config_files=[str(c) for c in config],
        pace=pace, diff=diff, answered_by_key=len(answers.used) - answers.by_order,
        answered_by_order=answers.by_order, unanswered=answers.unanswered,
        seconds=time.perf_counter() - t0, profile=str(profile) if profile else None,
        total_exchanges=len(cap.exchanges), interrupted=run.interrupted,
        not_replayable=[NotReplayable(n.recorded.exchange, n.recorded.key, n.recorded.request.channel, n.reason)
                        for n in run.not_replayable])
