"""``bsp replay CAPTURE --config PATH...``: replay recorded traffic against a candidate configuration."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from engine.commands.stdout import say


def replay(
    capture: Path = typer.Argument(..., help="Capture file recorded with `bsp run --record FILE`."),
    config: list[Path] = typer.Option(..., "--config", "-c",
                                      help="Candidate route files or folders (repeat for several), or a "
                                           "deployment file alone (its route files and channel overrides, "
                                           "as bsp run takes it)."),
    env: Optional[str] = typer.Option(None, "--env", help="With a deployment file: its environment "
                                      "(else $BSP_ENV), as for bsp run."),
    pace: str = typer.Option("fast", "--pace", help="fast, original, or a speed-up such as x10."),
    clock: str = typer.Option("recorded", "--clock",
                              help="What now() and today() read: recorded (the time each exchange was received "
                                   "when recorded, so a replay on another day answers the same; with --to-tests "
                                   "each test is written `at` it) or now (the wall clock)."),
    compare_uuids: bool = typer.Option(False, "--compare-uuids",
                                       help="Count values that differ only in UUIDs (uuid() makes a new one each "
                                            "run) as differences; by default they are volatile."),
    profile: Optional[Path] = typer.Option(None, "--profile", help="Replay profile (YAML): ignore/expect rules."),
    answers: Optional[Path] = typer.Option(None, "--answers",
                                           help="Answers for calls the recording lacks (YAML: per channel, "
                                                "optionally `when` request fields equal, an answer as in a route "
                                                "test's `given CHANNEL answers ...`); with --to-tests the tests "
                                                "get them as `given` lines."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON to this file."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write the report as HTML to this file."),
    junit_out: Optional[Path] = typer.Option(None, "--junit",
                                             help="Write the report as JUnit XML to this file (a testcase per "
                                                  "place that differs: a failure when unexpected), for CI."),
    to_tests: Optional[Path] = typer.Option(None, "--to-tests",
                                            help="Write route tests from the recorded exchanges into this folder "
                                                 "(no replay)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="With --to-tests: write at most this many tests."),
    force: bool = typer.Option(False, "--force", help="With --to-tests: replace an existing test file."),
    mask: bool = typer.Option(True, "--mask/--no-mask",
                              help="With --to-tests: mask classified values (card numbers, accounts, secrets) "
                                   "in the tests, as bsp run --mask does (IBANs and card numbers as made-up ones with "
                                   "valid check digits); --no-mask writes them in clear."),
    first: int = typer.Option(1, "--from", metavar="N",
                              help="Replay from the Nth exchange of the capture (1 the first, in replay order: "
                                   "arrival); the report says which slice ran. An interrupted replay's report "
                                   "says the N to continue from."),
    count: Optional[int] = typer.Option(None, "--count", metavar="M",
                                        help="Replay M exchanges (from --from); by default all the rest."),
    max_differences: int = typer.Option(100_000, "--max-differences", metavar="N",
                                        help="Differences kept with their details for the reports; past N they "
                                             "are counted (per place too) but not listed."),
    shown: int = typer.Option(20, "--show", help="Unexpected differences listed in the terminal (0: none)."),
    progress_every: float = typer.Option(5.0, "--progress-every", metavar="SECONDS",
                                         help="Progress on stderr: a bar on a terminal, elsewhere a line every "
                                              "SECONDS; 0 for none."),
) -> None:
    """Replay a capture in an isolated engine; compare replies, outbound requests and deals field by field.

    The engine has its own ledger, and virtual endpoints answer its calls from the recording; a call
    the recording lacks (a counterpart the candidate adds) is answered by --answers FILE, else fails
    as unreachable.
    --config takes route files or folders, or the deployment file (with --env): its route files and
    channel overrides, as bsp run takes them, so an unchanged configuration has the recorded version.
    Ctrl-C stops it: the report covers the exchanges replayed so far, marked partial, and says the
    --from N to continue with. The capture is read in chunks and compared as it replays: memory is
    the work in flight, not the capture's size. --from N --count M replays a slice of it.

    Exit 0 no unexpected difference (or tests written with --to-tests); 1 unexpected differences;
    2 the replay could not run (missing, locked or empty capture, bad profile or pace, a candidate
    that does not compile or has no route for a recorded channel, a missing output folder, --limit,
    --force or --no-mask without --to-tests, --json, --html or --junit with it), or no
    exchange of the capture is replayable (all recorded without their bytes; the report says why),
    or --to-tests could write no test (every exchange skipped; it says why);
    130 interrupted (Ctrl-C), after writing the partial report. Exchanges that are not replayable
    are listed in the report and never count as differences.
    """
    from engine.registry import default_registry
    from engine.replay.capture import CaptureError
    from engine.replay.profile import ProfileError
    from engine.replay.script import AnswersError
    from engine.progress import work_progress
    from engine.replay.replayer import PaceError, check_clock, parse_pace
    from engine.replay.session import SetupError, replay_file

    from engine.ops.logs import command_logging
    command_logging()                         # the candidate's warnings and errors, masked as bsp run's
    registry = default_registry()
    try:
        parse_pace(pace)
        check_clock(clock)
        if shown < 0:
            raise SetupError(f"--show {shown}: expected 0 or more (the unexpected differences listed)")
        if to_tests is not None:
            sliced = [o for o, given in (("--from", first != 1), ("--count", count is not None),
                                         ("--max-differences", max_differences != 100_000)) if given]
            if sliced:
                raise SetupError(f"{', '.join(sliced)}: options of a replay, not of --to-tests (--limit bounds "
                                 f"the tests written)")
        if limit is not None and limit < 0:
            raise SetupError(f"--limit {limit}: expected 0 or more")
        if to_tests is None:       # options of --to-tests alone: never ignored in silence
            alone = [o for o, given in (("--limit", limit is not None), ("--force", force), ("--no-mask", not mask))
                     if given]
            if alone:
                raise SetupError(f"{', '.join(alone)}: only with --to-tests DIR (writing route tests from the "
                                 f"capture); a replay compares every exchange of the capture")
        else:
            made = [o for o, path in (("--json", json_out), ("--html", html_out), ("--junit", junit_out),
                                      ("--compare-uuids", compare_uuids or None)) if path is not None]
            if made:
                raise SetupError(f"{', '.join(made)}: --to-tests writes route tests, not a replay report; run "
                                 f"`bsp replay` once without --to-tests for the report")
        for opt, path in (("--json", json_out), ("--html", html_out), ("--junit", junit_out)):
            if path is not None:
                _check_out(opt, path)
        if to_tests is not None:
            _to_tests(capture, config, registry, to_tests, profile, limit, force, mask, env, clock, answers)
            return
        with work_progress("replay", "exchange(s)", progress_every) as progress:
            report = replay_file(capture, config, registry, pace=pace, profile=profile, progress=progress,
                                 interruptible=True, env=env, clock=clock, compare_uuids=compare_uuids,
                                 answers=answers, start=first, count=count, keep=max_differences)
    except (CaptureError, ProfileError, PaceError, SetupError, AnswersError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except ValueError as exc:   # the candidate cannot take the recorded traffic
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:   # before the replay started, or while the differences were computed
        typer.echo("interrupted before the replay report was ready; nothing written", err=True)
        raise typer.Exit(INTERRUPTED)
    # the files first: a reader that stops early (`| head`) must not cost them
    from engine.replay.junit import write_junit

    written = []
    try:
        for out, write in ((json_out, report.write_json), (html_out, report.write_html),
                           (junit_out, lambda path: write_junit(report, path))):
            if out is not None:
                write(out)
                written.append(f"report: {out}" + (" (partial)" if report.interrupted else ""))
    except OSError as exc:
        typer.echo(f"error: cannot write the report {exc.filename or ''}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2)
    say(report.text(shown), *written)
    if report.interrupted:
        raise typer.Exit(INTERRUPTED)
    if report.nothing_replayable:          # nothing compared: no verdict, not a silent pass
        raise typer.Exit(2)
    raise typer.Exit(0 if report.passed else 1)


INTERRUPTED = 130          # 128 + SIGINT, as shells report a command stopped by Ctrl-C


def _check_out(option: str, path: Path) -> None:
    """An output file's folder must exist (as for bsp report --out): say so before replaying."""
    from engine.replay.session import SetupError

    if path.is_dir():
        raise SetupError(f"{option} {path}: is a directory; give a file name, e.g. {path / 'replay'}"
                         f"{ {'--json': '.json', '--html': '.html'}.get(option, '.xml')}")
    parent = path.parent
    if not parent.is_dir():
        raise SetupError(f"{option} {path}: the folder {parent} does not exist; create it or choose another path")


def _to_tests(capture: Path, config: list[Path], registry, out_dir: Path, profile, limit, force: bool,
              mask: bool = True, env: str | None = None, clock: str = "recorded",
              answers: Path | None = None) -> None:
    from engine.replay.capture import Capture
    from engine.replay.guide import FormatGuide
    from engine.replay.profile import load_profile
    from engine.replay.session import SetupError, check_channels, compile_config, route_files
    from engine.replay.totests import test_file_path, write_tests
    from engine.runtime.binder import Binder

    cap = Capture(capture)
    cap.require_exchanges()
    if out_dir.exists() and not out_dir.is_dir():
        raise SetupError(f"--to-tests {out_dir}: a file, not a folder; give the folder to write the tests into")
    target = test_file_path(cap, out_dir)
    if target.exists() and not force:
        raise SetupError(f"--to-tests {out_dir}: {target} already exists; add --force to replace it, or give "
                         f"another folder")
    prof = load_profile(profile)
    program = compile_config(config, registry, env)
    check_channels(cap, program)        # a capture of another service: said as the replay says it
    guide = FormatGuide(program, Binder(program, registry).codec)
    files = [f for f in route_files(config, env) if not f.name.endswith("_test.route")]
    scripted = scripted_answers(cap, config, registry, env, clock, answers) if answers is not None else None
    res = write_tests(cap, program, guide, out_dir, files, prof, limit=limit, mask=mask,
                      clock=clock == "recorded", scripted=scripted)
    clear = "" if mask or cap.masked else " (classified values in clear: --no-mask)"
    skipped = [f"  skipped {n} exchange(s): {why}" for why, n in sorted(res.skipped.items())]
    if not res.written and limit != 0:
        say(f"no test written: every exchange of the capture was skipped, so {res.path} was not written:",
            *skipped)
        raise typer.Exit(2)
    say(f"wrote {res.written} test(s) to {res.path}{clear}; run them with `bsp test {res.path}`", *skipped)


def scripted_answers(cap, config: list[Path], registry, env: str | None, clock: str,
                     answers: Path) -> dict[int, list[str]]:
    """--to-tests --answers: the candidate is replayed once to learn which calls of each recorded exchange the
    answers script answered; each test then gives those answers (`given CHANNEL answers ...`), in call order."""
    import trio

    from engine.replay.replayer import replay
    from engine.replay.session import load_candidate, load_script

    candidate = load_candidate(config, registry, env)
    script = load_script(answers, config, registry, cap, candidate.program, env)
    run = trio.run(lambda: replay(cap, candidate.program, registry, overrides=candidate.overrides, clock=clock,
                                  script=script))
    return {r.recorded.exchange: [f"given {rule.channel} answers {rule.answer}"
                                  for rule in r.produced.extra.get("scripted", [])] for r in run.replayed}


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
