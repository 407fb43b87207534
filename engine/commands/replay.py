"""``bsp replay CAPTURE --config PATH...``: replay recorded traffic against a candidate configuration."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def replay(
    capture: Path = typer.Argument(..., help="Capture file recorded with `bsp run --record FILE`."),
    config: list[Path] = typer.Option(..., "--config", "-c",
                                      help="Candidate route files or folders (repeat for several)."),
    pace: str = typer.Option("fast", "--pace", help="fast, original, or a speed-up such as x10."),
    profile: Optional[Path] = typer.Option(None, "--profile", help="Replay profile (YAML): ignore/expect rules."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON to this file."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write the report as HTML to this file."),
    to_tests: Optional[Path] = typer.Option(None, "--to-tests",
                                            help="Write route tests from the recorded exchanges into this folder "
                                                 "(no replay)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="With --to-tests: write at most this many tests."),
    shown: int = typer.Option(20, "--show", help="Unexpected differences listed in the terminal."),
) -> None:
    """Replay a capture in an isolated engine; compare replies and outbound requests field by field.

    The engine has its own ledger, and virtual endpoints answer its calls from the recording.

    Exit 0 no unexpected difference (or tests written with --to-tests); 1 unexpected differences;
    2 the replay could not run (missing capture, bad profile or pace, a candidate that does not compile).
    """
    from engine.registry import default_registry
    from engine.replay.capture import CaptureError
    from engine.replay.profile import ProfileError
    from engine.replay.replayer import PaceError, parse_pace
    from engine.replay.session import SetupError, replay_file

    registry = default_registry()
    try:
        parse_pace(pace)
        if to_tests is not None:
            _to_tests(capture, config, registry, to_tests, profile, limit)
            return
        report = replay_file(capture, config, registry, pace=pace, profile=profile)
    except (CaptureError, ProfileError, PaceError, SetupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except ValueError as exc:   # the candidate cannot take the recorded traffic
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(report.text(shown))
    if json_out is not None:
        report.write_json(json_out)
        typer.echo(f"report: {json_out}")
    if html_out is not None:
        report.write_html(html_out)
        typer.echo(f"report: {html_out}")
    raise typer.Exit(0 if report.passed else 1)


def _to_tests(capture: Path, config: list[Path], registry, out_dir: Path, profile, limit) -> None:
    from engine.replay.capture import Capture
    from engine.replay.guide import FormatGuide
    from engine.replay.profile import load_profile
    from engine.replay.session import compile_config, route_files
    from engine.replay.totests import write_tests
    from engine.runtime.binder import Binder

    cap = Capture(capture)
    program = compile_config(config, registry)
    guide = FormatGuide(program, Binder(program, registry).codec)
    files = [f for f in route_files(config) if not f.name.endswith("_test.route")]
    res = write_tests(cap, program, guide, out_dir, files, load_profile(profile), limit=limit)
    typer.echo(f"wrote {res.written} test(s) to {res.path}; run them with `bsp test {res.path}`")
    for why, n in sorted(res.skipped.items()):
        typer.echo(f"  skipped {n} exchange(s): {why}")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
