"""The ``bsp`` command line.

Exit codes: 0 ok, 1 problems found (compile errors, failed checks, failed
tests, differences), 2 usage error (bad arguments, missing files).

Each command group lives in ``engine/commands/<name>.py`` and registers itself
through ``register(app)``; this module only assembles them.
"""
from __future__ import annotations

import importlib

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
def version() -> None:
    """Print the bsp version."""
    typer.echo(f"bsp {__version__}")


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
