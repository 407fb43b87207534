"""``bsp files FOLDER``: the batch files a ``file watch`` channel has run, from its index.

The channel remembers every file it runs by its bytes (``done/.bsp-files``,
``engine.channels.file_index``); this shows each file's last state, oldest first:
when, done / error / taken or ran (being run, or cut short by a stop: ran N says
how many of its records have their deals recorded) or repeat (the same bytes
dropped again, refused with nothing run), its name, where it was archived and
the start of its SHA-256 (none for a file over ``max_file_bytes``: it was not
read).  It reads a plain file, so it works while the engine runs.
"""
from __future__ import annotations

import fnmatch
import sys
from pathlib import Path
from typing import Optional

import orjson
import typer

STATUSES = ("done", "error", "taken", "ran", "repeat")


def files(
    folder: Path = typer.Argument(..., help="The watched folder (its done/ holds the index), or the done "
                                            "folder itself (a channel's done_dir)."),
    name: Optional[str] = typer.Option(None, "--name", help="Only files whose name matches this glob "
                                                             "(e.g. \"PAY-*.csv\")."),
    status: Optional[str] = typer.Option(None, "--status", help="Only files in this state: done, error, "
                                                                 "taken / ran (being run, or cut short by a "
                                                                 "stop), or repeat (the same bytes again, "
                                                                 "refused)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object a line instead of a table."),
) -> None:
    """The batch files a file watch channel has run: when, how it ended, where it was archived.

    A file is run once: the same bytes dropped again go to error/ with nothing run (docs/channels.md).
    Exit 0 shown (also when nothing matches); 2 no index in FOLDER or FOLDER/done, or a bad --status.
    """
    from engine.channels.file_index import INDEX_NAME, NOT_READ, FileIndex

    if status is not None and status not in STATUSES:
        typer.echo(f"error: --status {status!r}: expected one of {', '.join(STATUSES)}", err=True)
        raise typer.Exit(2)
    where = next((d for d in (folder, folder / "done") if (d / INDEX_NAME).is_file()), None)
    if where is None:
        typer.echo(f"error: {folder}: no {INDEX_NAME} here nor in {folder / 'done'}; give the folder a file "
                   f"watch channel watches (dir), or its done_dir. A channel writes the index when it runs "
                   f"its first file.", err=True)
        raise typer.Exit(2)
    runs = FileIndex(where).events()
    rows = [(sha, r) for sha, r in runs if (name is None or fnmatch.fnmatch(r.name, name))
            and (status is None or r.status == status)]
    if as_json:
        for sha, r in rows:
            row = {"at": r.at, "status": r.status, "name": r.name,
                   "archived": None if r.archived == "-" or r.status == "ran" else r.archived,
                   "sha256": None if sha == NOT_READ else sha}
            if r.status == "ran":
                row["records_run"], row["records_bad"] = r.ran, r.ran_problems
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"files run from {where}", title_justify="left")
    for col in ("at", "status", "name", "archived as", "sha256"):
        table.add_column(col, no_wrap=col != "name")
    for sha, r in rows:
        archived = ("" if r.archived == "-" else f"{r.ran} record(s) so far ({r.ran_problems} bad)"
                    if r.status == "ran" else f"{'error' if r.status == 'repeat' else r.status}/{r.archived}")
        table.add_row(r.at, r.status, r.name, archived, "(not read)" if sha == NOT_READ else sha[:12])
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    if not rows:
        console.print("no file matches these filters")


def register(app: typer.Typer) -> None:
    app.command("files")(files)
