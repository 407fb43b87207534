"""The ``bsp`` command line.

Exit codes: 0 ok, 1 problems found (compile errors, failed checks, failed
tests, differences), 2 usage error (bad arguments, missing files).

Each command group lives in ``engine/commands/<name>.py`` and registers itself
through ``register(app)``; this module only assembles them.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer

from engine import __version__

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "engine.commands.check",
    "engine.commands.run",
    "engine.commands.demo",
    "engine.commands.sim",
    "engine.commands.deals",
    "engine.commands.codec",
    "engine.commands.copybook",
    "engine.commands.docs",
    "engine.commands.admin",
    "engine.commands.certs",
    "engine.commands.audit",
    "engine.commands.dead",
    "engine.commands.approvals",
    "engine.commands.ledger",
    "engine.commands.files",
    "engine.commands.report",
    "engine.commands.reconcile",
    "engine.commands.replay",
    "engine.commands.routetest",
)

app = typer.Typer(
    name="bsp",
    help=(
        "Backoffice Support Platform: compile route files and run them as a trio "
        "switchboard between the bank mainframe, counterparts and customers, "
        "recording every deal in DuckDB.\n\n"
        "Exit codes: 0 ok, 1 problems found (e.g. compile errors), 2 usage error."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version(
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="Also say which ledger schema this file has and "
                                          "what this bsp does with it (migrates it, uses it, refuses it)."),
) -> None:
    """Print the bsp version and the ledger schema it writes; with --ledger, the file's schema too.

    Exit 0; 2 when the file is missing or not a ledger, or a newer bsp wrote it (this one refuses it).
    """
    from engine.ledger_leftovers import leftovers
    from engine.ledger_store import SCHEMA_VERSION, LedgerError, schema_of

    typer.echo(f"bsp {__version__} (ledger schema {SCHEMA_VERSION})")
    if ledger is None:
        return
    if not ledger.is_file():
        typer.echo(f"error: {ledger}: no such ledger file; give the engine's ledger with --ledger", err=True)
        raise typer.Exit(2)
    try:
        found, position = schema_of(ledger)
    except LedgerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    if found > SCHEMA_VERSION:
        typer.echo(f"{ledger}: ledger schema {found}: newer than this bsp ({SCHEMA_VERSION}); it refuses the file "
                   f"(use the bsp that wrote it, or a newer one)")
        raise typer.Exit(2)
    left = leftovers(ledger, position)
    if left:
        typer.echo(f"{ledger}: left by an engine that did not drain (killed or crashed); the next start of an "
                   f"engine, this bsp or the one that wrote them, loads and resolves them (copy these files with "
                   f"the ledger):")
        for line in left:
            typer.echo(f"  {line}")
    if found < SCHEMA_VERSION:
        typer.echo(f"{ledger}: ledger schema {found}: this bsp migrates it to {SCHEMA_VERSION} when it first opens "
                   f"it for writing (bsp run, or a command that writes to it), after which a bsp of schema {found} "
                   f"refuses it; copy the stopped ledger first (docs/operations.md, "
                   f"\"Upgrading bsp\")")
        return
    typer.echo(f"{ledger}: ledger schema {found}: current")


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command group not written yet
            if exc.name == name:
                continue
            raise
        mod.register(app)


_load_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
