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
    """Run route tests, each in an isolated engine with scripted endpoints; exit 1 on a failure."""
    from engine.registry import default_registry
    from engine.routetest.junit import write_junit
    from engine.routetest.runner import SetupError, run_paths

    try:
        result = run_paths(paths, default_registry())
    except SetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    for o in result.outcomes:
        typer.echo(f"{'PASS' if o.passed else 'FAIL'}  {o.name}  ({o.where})")
        for f in o.failures:
            typer.echo(f"      {f}")
    if not result.outcomes:
        typer.echo("no route tests found (declare them with `test \"name\" { ... }` in a route file)", err=True)
        raise typer.Exit(1)
    if coverage:
        typer.echo(result.coverage.text())
    typer.echo(result.summary())
    if junit is not None:
        write_junit(result, junit, coverage=coverage)
        typer.echo(f"junit: {junit}")
    raise typer.Exit(1 if result.failed else 0)


def register(app: typer.Typer) -> None:
    app.command("test")(test)
