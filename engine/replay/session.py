"""One replay, end to end: capture + candidate configuration -> ``ReplayReport``.

    report = replay_file("cap.duckdb", ["routes/bill_payment"], registry, pace="fast",
                         profile="replay.yaml")
    report.passed     # no unexpected difference (and something was replayed)
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import trio

from engine.replay.capture import Capture
from engine.replay.diff import DiffResult, Differ
from engine.replay.guide import FormatGuide
from engine.replay.profile import load_profile
from engine.replay.replayer import replay
from engine.replay.report import NotReplayable, ReplayReport


class SetupError(ValueError):
    """The candidate configuration does not compile or cannot run; the message shows why."""


def _deployment(paths: list[Path]) -> Path | None:
    """The deployment file among ``--config`` (``platform.yaml``), which is given alone, as ``bsp run``
    takes it; None when only route files and folders are given."""
    yaml = [p for p in paths if p.suffix in (".yaml", ".yml")]
    if not yaml:
        return None
    if len(paths) > 1:
        raise SetupError(f"--config {yaml[0]}: a deployment file is given alone, as bsp run takes it (its "
                         f"`routes:` name the route files); drop the other --config, or give route files only")
    return yaml[0]


def route_files(paths: Iterable[str | Path], env: str | None = None) -> list[Path]:
    """Route files of ``--config``: files, folders (every ``*.route`` below), or a deployment file
    (``platform.yaml``: its ``routes:``, as ``bsp run`` takes them; ``env`` or ``$BSP_ENV`` selects the
    environment)."""
    return _candidate_files(list(map(Path, paths)), env)[0]


def _candidate_files(paths: list[Path], env: str | None) -> tuple[list[Path], Any]:
    """(route files, the deployment or None)."""
    for p in paths:
        if not p.exists():
            raise SetupError(f"{p}: no such file or directory")
    dep_file = _deployment(paths)
    if dep_file is None and env is not None:
        raise SetupError(f"--env {env}: an environment is chosen in a deployment file; give --config "
                         f"platform.yaml (or drop --env)")
    if dep_file is not None:
        from engine.deploy import DeploymentError, load_deployment
        try:
            dep = load_deployment(dep_file, env=env)
        except DeploymentError as exc:
            raise SetupError(f"--config {dep_file}: a deployment file with problems (replay takes its route files "
                             f"and channel overrides):\n{exc}") from None
        return list(dep.route_files), dep
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.rglob("*.route")) if p.is_dir() else [p])
    if not out:
        raise SetupError("no route files found in " + ", ".join(map(str, paths)))
    return out, None


@dataclass
class Candidate:
    """The candidate configuration: its program (versioned as ``bsp run`` versions it) and, from a
    deployment file, the channel overrides its engine binds (``--env``'s merged over the base)."""
    program: Any
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployment: Any = None


def load_candidate(paths: Iterable[str | Path], registry: Any, env: str | None = None) -> Candidate:
    """Compile ``--config`` the way ``bsp run`` compiles it: route files and the files they name, and,
    for a deployment file, its channel overrides, so an unchanged configuration has the recorded version
    (engine/ops/effective.py)."""
    from dsl.diagnostics import render
    from dsl.load import compile_paths
    from engine.ops.effective import with_deployment
    from engine.ops.files import with_referenced_files
    from engine.ops.overrides import check_overrides, resolve_paths

    files, dep = _candidate_files(list(map(Path, paths)), env)
    res = compile_paths(files, registry)
    if res.program is None:
        shown = "\n".join(render(d, res.sources) for d in res.errors)
        raise SetupError(f"the candidate configuration does not compile:\n{shown}")
    program = with_referenced_files(res.program)        # the version bsp run and bsp check give it
    overrides: dict[str, dict[str, Any]] = {}
    if dep is not None and dep.channel_overrides:
        problems = check_overrides(dep.channel_overrides, program, registry)
        if problems:
            raise SetupError(f"--config {dep.path}: channel overrides that do not fit the routes:\n"
                             + "\n".join(problems))
        program = with_deployment(program, dep.channel_overrides, registry)
        overrides = resolve_paths(dep.channel_overrides, program, registry)    # bound as bsp run binds them
    return Candidate(program, overrides, dep)


def compile_config(paths: Iterable[str | Path], registry: Any, env: str | None = None) -> Any:
    return load_candidate(paths, registry, env).program


def check_channels(cap: Capture, program: Any) -> None:
    """Every channel the capture recorded requests on has a route receiving from it in the candidate."""
    receiving = {r.channel for r in program.routes}
    missing = sorted(cap.request_channels() - receiving)
    if missing:
        raise SetupError(f"the candidate configuration has no route receiving from channel(s) "
                         f"{', '.join(missing)}, which the capture recorded requests on (it receives from: "
                         f"{', '.join(sorted(receiving)) or 'no channel'}); "
                         + (declared_hint(cap.sources, missing)
                            or "give the route files of the service that was recorded with --config"))


_CHANNEL = re.compile(r"^\s*channel\s+([A-Za-z_][A-Za-z0-9_]*)\s*=", re.M)


def declared_hint(sources: dict[str, str], channels: list[str]) -> str:
    """Where the recorded configuration declared ``channels`` (its route files, ``capture_sources``), and the
    folders to add: a capture of an engine that served several services, replayed against one of them."""
    where: dict[str, str] = {}
    for path, text in sorted((sources or {}).items()):
        if path.endswith(".route"):
            for name in _CHANNEL.findall(text or ""):
                where.setdefault(name, path)
    found = [(ch, where[ch]) for ch in channels if ch in where]
    if not found:
        return ""

    def shown(p: Path) -> str:
        try:
            return os.path.relpath(p) if p.resolve().is_relative_to(Path.cwd().resolve()) else str(p)
        except (OSError, ValueError):
            return str(p)

    told = "; ".join(f"channel {ch} in {shown(Path(p))}" for ch, p in found)
    folders = " ".join(f"--config {f}" for f in dict.fromkeys(shown(Path(p).parent) for _ch, p in found))
    return f"the recording declared {told}: add {folders} (or your copies; --config is given once per folder)"


KEEP = 100_000      # differences kept with their details (--max-differences): the counts and places cover all


def replay_file(capture: str | Path, config: Iterable[str | Path], registry: Any, *, pace: str = "fast",
                profile: str | Path | None = None, concurrency: int = 64,
                progress: Callable[[int, int], None] | None = None,
                interruptible: bool = False, env: str | None = None, clock: str = "recorded",
                compare_uuids: bool = False, answers: str | Path | None = None, start: int = 1,
                count: int | None = None, keep: int | None = KEEP, chunk: int = 500) -> ReplayReport:
    """``progress(done, total)`` is called as exchanges finish.  ``interruptible`` (main thread only):
    SIGINT stops feeding, and the report covers the exchanges that finished (``report.interrupted``).
    ``env``: the environment of a deployment file given as ``config``.  ``clock``: ``recorded`` (now() and
    today() read each exchange's recorded received time) or ``now`` (the wall clock); ``compare_uuids``:
    values that differ only in UUIDs count as differences (else they are volatile); ``answers``: a file of
    answers for calls the recording lacks (engine/replay/script.py).

    The capture is read ``chunk`` exchanges at a time and each exchange is compared as it finishes (in replay
    order), so memory is the work in flight, not the capture: the report keeps the counts, the tallies per
    place and version, and the first ``keep`` differences (None: all).  ``start`` (1 the first) and ``count``:
    the slice of the capture's exchanges, in replay order, to replay (``--from`` / ``--count``)."""
    from engine.runtime.binder import Binder

    if start < 1:
        raise SetupError(f"--from {start}: expected 1 or more (the first exchange of the capture is 1)")
    if count is not None and count < 1:
        raise SetupError(f"--count {count}: expected 1 or more (the exchanges to replay from --from)")
    if keep is not None and keep < 0:
        raise SetupError(f"--max-differences {keep}: expected 0 or more (the differences kept with their details)")
    cap = Capture(capture, lazy=True)
    cap.require_exchanges()
    in_capture = cap.count()
    if start > in_capture:
        raise SetupError(f"--from {start}: the capture holds {in_capture} exchange(s), so there is nothing from "
                         f"the {start}th; give --from 1 to {in_capture}")
    sliced = start != 1 or count is not None
    n = max(0, min(in_capture - (start - 1), count if count is not None else in_capture))
    prof = load_profile(profile)
    config = list(config)
    candidate = load_candidate(config, registry, env)
    program = candidate.program
    check_channels(cap, program)
    script = load_script(answers, config, registry, cap, program, env)
    guide = FormatGuide(program, Binder(program, registry).codec)
    differ = Differ(guide, prof, masked=cap.masked, uuids=not compare_uuids)
    diff = differ.finish(DiffResult(keep=keep))
    versions: dict[str, dict[str, int]] = {}
    flips: dict[int, str | None] = {}              # exchanges the candidate rejected where the recording did not
    produced_channels: set[str] = set()

    flipped: list[int] = []

    def flip(d: Any) -> None:           # what masked_rejections looks at
        if (d.unexpected and d.what == "deal" and d.field == "status" and d.recorded in ("committed", "failed")
                and d.produced == "rejected"):
            flipped.append(d.exchange)

    diff.watch = flip

    def compared(r: Any) -> None:
        had = differ.feed(r, diff)
        row = versions.setdefault(r.recorded.request.config_version or "unknown",
                                  {"exchanges": 0, "with_differences": 0})
        row["exchanges"] += 1
        row["with_differences"] += bool(had)
        produced_channels.update(c.channel for c in r.produced.calls)
        while flipped:
            n = flipped.pop()
            if r.recorded.request.masked:
                flips[n] = getattr(r.produced.deal, "response_code", None)

    t0 = time.perf_counter()
    run = trio.run(lambda: replay(cap, program, registry, pace=pace, concurrency=concurrency,
                                  progress=progress, interruptible=interruptible,
                                  overrides=candidate.overrides, clock=clock, script=script, on_result=compared,
                                  start=start - 1, count=n if sliced else None, chunk=chunk))
    differ.finish(diff)
    answers = run.answers
    return ReplayReport(
        capture=str(capture), config_version=program.version,
        recorded_version=", ".join(cap.versions()) or cap.info.get("config_version", ""), config_files=[str(c) for c in config],
        pace=pace, diff=diff, answered_by_key=answers.taken - answers.by_order,
        answered_by_order=answers.by_order, unanswered=answers.unanswered,
        answered_by_identity=answers.by_identity, answered_by_position=answers.by_position,
        pairing=pairing(answers, produced_channels), unanswered_identity=dict(answers.missing_identity),
        answered_by_script=dict(answers.scripted), unanswered_by_channel=dict(answers.missing),
        recorded_channels=sorted(answers.recorded_channels), answers=str(script.path) if script else None,
        unused_answers=[r.describe() for r in script.unused] if script else [],
        seconds=time.perf_counter() - t0, profile=str(profile) if profile else None,
        total_exchanges=n, interrupted=run.interrupted,
        not_replayable=[NotReplayable(x.exchange, x.key, x.channel, x.reason) for x in run.not_replayable],
        capture_notes=cap.completeness() + http_note(cap, program) + masked_rejections(cap, flips, registry),
        clock=clock,
        versions=versions, slice={"from": start, "count": n, "of": in_capture} if sliced else None,
        resume_from=start + run.in_order if run.interrupted else None)


def http_note(cap: Capture, program: Any) -> list[str]:
    """A note when requests on the candidate's http listen channels were recorded without their request line
    and headers (a capture of before ``frames.http``): their routes read ``http.*`` null in this replay."""
    channels = {name for name, decl in (getattr(program, "channels", None) or {}).items()
                if getattr(decl, "kind", None) == "http.listen"}
    n = cap.without_http(channels)
    if not n:
        return []
    return [f"{n} request(s) on http listen channel(s) were recorded without their request line and headers (a "
            f"capture of an older bsp): their routes read http.method, http.path, http.params, http.query and "
            f"http.headers as null in this replay, as they did then, so a route chosen on them, or a value copied "
            f"from them, may differ; record again with this bsp (`bsp run --record`) to replay them"]


def pairing(answers: Any, produced: set[str]) -> dict[str, str]:
    """How each channel called (in the recording or by the candidate) pairs its calls: the identity it
    reads (engine/replay/pairing.py), or ``position``."""
    channels = set(answers.recorded_channels) | set(produced)
    ident = answers.identity
    return {ch: (ident.label(ch) if ident is not None else None) or "position" for ch in sorted(channels)}


def load_script(answers: str | Path | None, config: list, registry: Any, cap: Capture, program: Any,
                env: str | None = None) -> Any:
    """``--answers FILE`` compiled with the candidate's route files (None without it)."""
    if answers is None:
        return None
    from engine.replay.script import load_answers
    files = [f for f in route_files(config, env) if not f.name.endswith("_test.route")]
    sender = cap.first_request_channel()
    fmt = next((r.format for r in program.routes if r.channel == sender and r.format), None) \
        or next(iter(sorted(getattr(program, "formats", {}) or {})), None)       # a route of raw bytes
    return load_answers(answers, files, registry, sender, fmt)


def masked_rejections(cap: Capture, flips: dict[int, str | None], registry: Any = None) -> list[str]:
    """A note when the capture was recorded with --mask and the candidate rejected exchanges recorded as
    committed or failed whose request had classified fields: a route that checks such a value (an IBAN's
    check digits, a card number's Luhn digit, its length) rejects its mask.  With ``registry``, those
    exchanges are replayed against the recorded configuration (the capture's sources): only those it
    rejects too, with the response code the candidate gave (``flips``: the exchanges whose deal status became
    rejected, an unexpected difference, whose request was masked -> the candidate's code), are put down to the
    mask; the others are the change's (a lower limit), and no note hides them.  When the recorded configuration cannot be rebuilt, the note says the mask *may* be why."""
    if not cap.masked:
        return []
    codes = flips
    masked_requests = cap.request_keys(set(flips))
    flipped = sorted(n for n in flips if n in masked_requests)
    if not flipped:
        return []
    also = recorded_rejects(cap, set(flipped), registry) if registry is not None else None
    before = len(flipped)
    if also is not None:
        # rejected by the recorded configuration too, and with the candidate's code: a rule over a classified
        # value (16 "IBAN invalid"), not the change's own (61 "over the limit", which comes first)
        flipped = [n for n in flipped if n in also and (codes is None or also[n] == codes.get(n))]
        if not flipped:
            return []
    eg = ", ".join(f"{n}" + (f" (ref {masked_requests[n]})" if masked_requests[n] else "") for n in flipped[:3])
    head = (f"the capture was recorded with --mask, and {len(flipped)} exchange(s) it recorded as committed or "
            f"failed the candidate rejected (e.g. exchange {eg})")
    if also is not None:
        return [f"{head}, as the recorded configuration, replayed on the same masked requests, rejects them too: "
                f"a route that checks a classified value (iban_valid, a Luhn check, its length) rejects its mask "
                f"(A***), not the change; replay a capture recorded in clear, or write the exchanges as route "
                f"tests with made-up IBANs and card numbers (--to-tests) (docs/testing.md, Masking)"
                + (f"; the other {before - len(flipped)} exchange(s) the candidate rejected the recorded "
                   f"configuration does not (or with another code): those are the change's"
                   if before > len(flipped) else "")]
    return [f"{head}: a route that checks a classified value (iban_valid, a Luhn check, its length) may reject "
            f"its mask (A***) whatever the change; compare with the recorded configuration, replay a capture "
            f"recorded in clear, or write the exchanges as route tests with made-up IBANs and card numbers "
            f"(--to-tests) (docs/testing.md, Masking)"]


_FOLDER = re.compile(r"folder not found: .*\(looked for (.+)\)$")


def recorded_rejects(cap: Capture, exchanges: set[int], registry: Any) -> dict[int, str | None] | None:
    """Of ``exchanges``, those the recorded configuration (rebuilt from ``capture_sources``) rejects when
    replayed on the capture's requests, with the deal's response code; None when it cannot be rebuilt (a
    capture of several versions, one without sources, sources that no longer compile)."""
    import copy
    import tempfile

    from dsl.load import compile_paths

    if len(cap.versions()) > 1 or not cap.sources:
        return None
    with tempfile.TemporaryDirectory(prefix="bsp-recorded-") as tmp:
        root = Path(tmp)
        files: list[Path] = []
        for path, text in cap.sources.items():
            if "#" in path:         # a deployment file's channel overrides: not a file
                continue
            if text is None or text.startswith("sha256:"):      # a file kept as its digest (too big, binary)
                return None
            dest = root / Path(path).as_posix().lstrip("/")
            if root not in dest.resolve().parents:
                return None
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            if dest.suffix == ".route" and not dest.name.endswith("_test.route"):
                files.append(dest)
        try:
            res = compile_paths(files, registry)
            # a file write channel's folder is not a source: made empty (the replay's channels are virtual)
            made = [Path(m.group(1)) for d in res.errors if d.code == "E047"
                    for m in [_FOLDER.search(d.message)] if m is not None]
            if made and res.program is None and all(root in p.resolve().parents for p in made):
                for p in made:
                    p.mkdir(parents=True, exist_ok=True)
                res = compile_paths(files, registry)
        except Exception:   # noqa: BLE001 - sources of an older bsp: no baseline, the note says "may"
            return None
        if res.program is None:
            return None
        sub = copy.copy(cap)
        sub.exchanges, sub.lazy = cap.load(exchanges), False
        try:
            run = trio.run(lambda: replay(sub, res.program, registry))
        except Exception:   # noqa: BLE001
            return None
    return {r.recorded.exchange: getattr(r.produced.deal, "response_code", None) for r in run.replayed
            if getattr(r.produced.deal, "status", None) == "rejected"}
