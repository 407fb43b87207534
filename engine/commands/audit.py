"""``bsp audit verify``: check the ledger's HMAC chain (docs/security.md)."""
from __future__ import annotations

from pathlib import Path

import typer

from engine.audit import ENV_KEY, ENV_KEY_FILE, AuditError, load_audit_key, verify as verify_chain
from engine.ledger import DEFAULT_LEDGER
from engine.ledger_store import LedgerError, connect, require_bsp_ledger
from engine.progress import work_progress

audit_app = typer.Typer(help="Tamper evidence of the ledger.", no_args_is_help=True, add_completion=False)


@audit_app.command("verify")
def verify(
    ledger: Path = typer.Option(DEFAULT_LEDGER, "--ledger", help="The ledger file (DuckDB)."),
    max_breaks: int = typer.Option(20, "--max-breaks", min=1, help="Stop after this many problems."),
    progress_every: float = typer.Option(5.0, "--progress-every", metavar="SECONDS",
                                         help="Progress on stderr, a line every SECONDS once the check has run "
                                              "that long; 0 for none."),
) -> None:
    """Check every record's chain position and mac; name the first modified, deleted or moved record.

    Needs the audit key the engine wrote with (BSP_AUDIT_KEY or BSP_AUDIT_KEY_FILE).
    The records stream (memory does not grow with the ledger); a long check prints its progress.
    Exit 0: the chain is intact.  1: a break (or records not protected).  2: no key, no file, or a
    file that is not a bsp ledger.  130: interrupted (Ctrl-C): nothing is proven.
    """
    from engine.commands.deals import require_ledger

    require_ledger(ledger)
    try:
        key = load_audit_key()
    except AuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if key is None:
        typer.echo(f"error: no audit key: set {ENV_KEY_FILE} (a file with the base64 key) or {ENV_KEY} "
                   f"to the key the engine writes with. Without a key the chain cannot be checked "
                   f"(and an engine without one writes no macs: chaining is off).", err=True)
        raise typer.Exit(2)
    try:
        con = connect(ledger, read_only=True)
    except LedgerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        try:
            require_bsp_ledger(con, ledger)
        except LedgerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        with work_progress("audit verify", "records", progress_every) as progress:
            report = verify_chain(con, ledger, key, max_breaks=max_breaks, progress=progress)
    except KeyboardInterrupt:
        typer.echo(f"\n{ledger}: audit verify interrupted (Ctrl-C): the chain was not fully checked, "
                   f"nothing is proven", err=True)
        raise typer.Exit(130) from None
    finally:
        con.close()
    counts = ", ".join(f"{n} {t}" for t, n in report.by_table.items())
    summary = (f"{report.records} records ({counts}) in {report.seconds:.3f} s "
               f"({report.rate:,.0f} records/s), last seq {report.last_seq}")
    if report.ok:
        typer.echo(f"{ledger}: audit chain intact: {summary}")
        return
    first = report.breaks[0]
    typer.echo(f"{ledger}: audit chain BROKEN at {first}", err=True)
    for b in report.breaks[1:]:
        typer.echo(f"  also: {b}", err=True)
    typer.echo(f"checked {summary}", err=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


__all__ = ["register", "verify"]
