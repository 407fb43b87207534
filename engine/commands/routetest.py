"""``bsp test PATH...``: run the route tests (``test "name" { ... }``) in route files."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


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

    Exit 0 every test passed; 1 a test failed, no test was found, or the route files do not compile;
    2 a path does not exist.
    """
    from engine.registry import default_registry
    from engine.routetest.junit import write_junit, write_junit_error
    from engine.routetest.runner import SetupError, run_paths

    from engine.commands.check import _display, _shown

    try:
        result = run_paths(paths, default_registry())
    except SetupError as exc:
        if exc.diagnostics is None:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2 if exc.missing else 1)
        # the configuration does not compile: its diagnostics as bsp check shows them
        from dsl.diagnostics import render, summary
        sources = {_shown(k): v for k, v in exc.sources.items()}
        for d in exc.diagnostics:
            typer.echo(render(_display(d, exc.sources), sources), err=True)
            typer.echo("", err=True)
        typer.echo(f"{summary(exc.diagnostics)}: the route tests did not run", err=True)
        if junit is not None:
            write_junit_error(junit, " ".join(map(str, paths)),
                              [render(_display(d, exc.sources), sources) for d in exc.diagnostics])
            typer.echo(f"junit: {junit}", err=True)
        raise typer.Exit(1)
    if result.warnings:                       # as bsp check shows them (a test that cannot prove what it means to)
        from dsl.diagnostics import render
        for d, sources in result.warnings:
            typer.echo(render(_display(d), {_shown(k): v for k, v in sources.items()}), err=True)
            typer.echo("", err=True)
    cwd = str(Path.cwd()) + "/"

    def shown(text: str) -> str:              # paths below the working folder, as bsp check shows them
        return text.replace(cwd, "")

    for o in result.outcomes:
        typer.echo(f"{'PASS' if o.passed else 'FAIL'}  {o.name}  ({shown(o.where)})")
        for f in o.failures:
            typer.echo(f"      {shown(f)}")
    if not result.outcomes:
        typer.echo("no route tests found (declare them with `test \"name\" { ... }` in a route file)", err=True)
        raise typer.Exit(1)
    if coverage:
        typer.echo(shown(result.coverage.text()))
    typer.echo(result.summary())
    if junit is not None:
        write_junit(result, junit, coverage=coverage)
        typer.echo(f"junit: {junit}")
    raise typer.Exit(1 if result.failed else 0)


def register(app: typer.Typer) -> None:
    app.command("test")(test)
