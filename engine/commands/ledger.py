"""``bsp ledger snapshot --live --out FILE``: a consistent copy of a running engine's ledger."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from engine.commands.live import CA_OPT, CERT_OPT, KEY_OPT, LIVE_OPT, TOKEN_FILE_OPT, URL_OPT

ledger_app = typer.Typer(help="The deal ledger of a running engine.", no_args_is_help=True, add_completion=False)


@ledger_app.command("snapshot")
def snapshot(
    out: Path = typer.Option(..., "--out", help="The file to write (a DuckDB ledger file), owner-only (0600)."),
    force: bool = typer.Option(False, "--force", help="Replace --out when it exists (only once the whole copy "
                                                     "has arrived)."),
    progress_every: float = typer.Option(5.0, "--progress-every", metavar="SECONDS",
                                         help="Progress on stderr: a bar on a terminal, else a line every "
                                              "SECONDS while the transfer lasts; 0 for none."),
    live: bool = LIVE_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """Copy the ledger a running engine holds locked, through its admin API (`POST /ledger/snapshot`).

    The engine first loads every deal it has acknowledged into DuckDB, then copies its whole database
    as of one instant (every table, exact amounts, the audit chain; encrypted fields stay encrypted)
    while it goes on serving, and streams the copy. The file is a ledger like the engine's own: give it
    to `bsp report`, `bsp reconcile`, `bsp audit verify`, `bsp deals` with --ledger FILE (or use their
    --live, which does this for them).
    Exit 0 written; 1 the engine answered with a problem (another snapshot running, no room on its disk)
    or cannot be reached, or the transfer broke off (nothing is written then); 2 --out exists without
    --force, its folder is missing, no --live, or no admin token.
    """
    from engine.commands.live_snapshot import download

    if not live:
        typer.echo("error: a snapshot is taken by the running engine: add --live (its admin API at --url / "
                   "$BSP_ADMIN_URL, the token from --token-file / $BSP_ADMIN_TOKEN). A stopped engine's ledger "
                   "file can be copied as it is, with its .wal", err=True)
        raise typer.Exit(2)
    snap = download(url, token_file, ca, cert, key, out, force=force, progress_every=progress_every)
    chain = f", audit chain seq {snap.chain_seq}" if snap.chain_seq is not None else ""
    typer.echo(f"wrote {out} ({snap.size / (1024 * 1024):,.1f} MiB{chain}): {snap.describe()}")


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")


__all__ = ["register", "snapshot"]
