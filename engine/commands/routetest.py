"""``bsp test PATH...``: run the route tests (``test "name" { ... }``) in route files."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from engine.commands.stdout import say


def test(
    paths: list[Path] = typer.Argument(..., help="Route files or folders (a folder is one configuration)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML report to this file."),
    coverage: bool = typer.Option(True, "--coverage/--no-coverage",
                                  help="Show the steps and branches no test reached."),
) -> None:
    """Run route tests, each in an isolated engine with scripted endpoints.

    A test is a `test "NAME" { given ... sends ...  given ... answers ...  expect ... }` block in a
    route file, usually NAME_test.route beside the routes it tests (`use "NAME.route"`); see
    docs/testing.md, section 4. The *.route files of each folder (each sub-folder on its own) are
    compiled together as one configuration, with its own ledger; a folder without a test is skipped
    (bsp check compiles it); a file given by name is a configuration of its own.

    Each result is printed as its test finishes. A configuration whose route files do not compile is
    reported (file:line:col, counted as an error) and the other configurations' tests still run.

    A reader that stops early (`bsp test routes/ | head`) is not an error: the tests still run and
    the exit code is still theirs.

    Exit 0 every test passed; 1 a test failed, no test was found, or route files do not compile;
    2 a path does not exist.
    """
    from engine.ops.logs import command_logging
    from engine.registry import default_registry
    from engine.routetest.junit import write_junit
    from engine.routetest.runner import SetupError, run_paths

    cwd = str(Path.cwd()) + "/"

    def shown(text: str) -> str:              # paths below the working folder, as bsp check shows them
        return text.replace(cwd, "")

    printer = _Printer(shown)
    # the engine's own log is not shown: a test's outcome says what went wrong (an internal error expected by
    # a test would otherwise print its traceback on a passing run); critical lines still, masked as bsp run's
    command_logging("critical")
    try:
        result = run_paths(paths, default_registry(), listener=printer)
    except SetupError as exc:                  # a path that does not exist: before any test ran
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if exc.missing else 1)
    if not result.outcomes and not result.broken:
        typer.echo("no route tests found (declare them with `test \"name\" { ... }` in a route file)", err=True)
        raise typer.Exit(1)
    if result.outcomes:
        if coverage:
            say(shown(result.coverage.text()))
        say(result.summary())
    if junit is not None:
        write_junit(result, junit, coverage=coverage, render=printer.rendered)
        if result.outcomes:
            say(f"junit: {junit}")
        else:
            typer.echo(f"junit: {junit}", err=True)
    raise typer.Exit(1 if result.failed or result.broken else 0)


class _Printer:
    """Prints each result as ``run_paths`` reports it (a line per test, flushed: a CI log streams too)."""

    def __init__(self, shown) -> None:
        self.shown = shown
        self.seen: set[str] = set()            # diagnostics printed already (a shared file's, once)

    def warnings(self, suite, warnings, sources) -> None:
        from dsl.diagnostics import render
        from engine.commands.check import _display, _shown
        for d in warnings:                     # as bsp check shows them (a test that cannot prove what it means to)
            typer.echo(render(_display(d), {_shown(k): v for k, v in sources.items()}), err=True)
            typer.echo("", err=True)

    def outcome(self, o) -> None:
        # `bsp test ... | head`: a reader that has gone drops the lines, the tests still run for the verdict
        say(f"{'PASS' if o.passed else 'FAIL'}  {o.name}  ({self.shown(o.where)})",
            *(f"      {self.shown(f)}" for f in o.failures))

    def rendered(self, broken) -> list[str]:
        from dsl.diagnostics import render
        from engine.commands.check import _display, _shown
        sources = {_shown(k): v for k, v in broken.sources.items()}
        return [render(_display(d, broken.sources), sources) for d in broken.diagnostics]

    def broken(self, broken) -> None:
        # the configuration does not compile: its diagnostics as bsp check shows them; the others still run
        from dsl.diagnostics import summary
        for text in self.rendered(broken):
            if text in self.seen:              # a file several configurations use (routes/common): shown once
                typer.echo(f"{text.splitlines()[0]} (shown above)", err=True)
            else:
                self.seen.add(text)
                typer.echo(text, err=True)
                typer.echo("", err=True)
        typer.echo(f"{self.shown(broken.suite)}: {summary(broken.diagnostics)}: the route tests did not run",
                   err=True)


def register(app: typer.Typer) -> None:
    app.command("test")(test)
