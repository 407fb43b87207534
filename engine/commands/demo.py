"""``bsp demo``: every business service in one engine, with its simulators.

Bill payment is driven by the mainframe simulator (good, enquiries, rejected,
unrouted, malformed, refused by the biller); every other service by its
request generator (good, rejected, failing counterpart).  Ends with the
overall table (sent, replies, committed, rejected, failed, dup, lost, msgs/s:
lost is counted against the replies and the ledger), the per-service table, the
repeats (about 2% of the good requests to keyed routes are sent again after their
reply; each must get its original's reply bytes and reach no counterpart again)
and the paths of the reports and the ledger.  Exit 0, or 1 when a request was
lost, a repeat got another reply or a reference reached a counterpart twice.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from engine.commands.clockopt import at_option, parse_at
from engine.defaults import DEFAULT_LEDGER

if TYPE_CHECKING:
    from rich.console import Console

CI_WIDTH = 100          # console width when stdout is not a terminal (CI logs, pipes)


def demo_console() -> Console:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=CI_WIDTH)


def demo(
    count: int = typer.Option(5000, "--count", min=1, help="Bill payment requests the mainframe simulator sends."),
    per_service: int = typer.Option(400, "--per-service", min=1,
                                    help="Requests sent to each other service's inbound channel."),
    connections: int = typer.Option(2, "--connections", min=1, help="Client connections per inbound channel "
                                    "(the mainframe uses at least 4)."),
    ledger: Path = typer.Option(DEFAULT_LEDGER, "--ledger", help="DuckDB ledger file."),
    ledger_sync: str = typer.Option("journal", "--ledger-sync", help="As for bsp run: journal (a reply leaves "
                                    "once its deal is fdatasync'ed in the write-ahead journal; default), duckdb "
                                    "(once its row is committed in DuckDB) or none (at once, not durable)."),
    reports: Optional[Path] = typer.Option(None, "--reports", help="Folder for the reports "
                                           "(default: 'reports' beside the ledger)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the request generators."),
    at: Optional[str] = at_option(),
) -> None:
    """Run every business service in one engine against its simulators; print what happened.

    Ends with the overall and per-service tables, the repeats (good requests sent again: answered with the
    original reply, never made twice) and the paths of the ledger and the reports.
    Its clock is the wall clock (or --at), unless a business-day calendar its routes use runs out within three
    weeks: then it says so and starts its clock on the last day before from which they all list three weeks.
    Exit 0; 1 when a request was lost (no reply or no deal row), a repeat got another reply than its
    original, a reference reached a counterpart twice, or the demo could not start. A repeat whose original
    freed its deal key (it ran again as a new deal, a counterpart perhaps reached again) or that came past the
    key store's retention (94) is right, by the ledger's record of it: counted apart, not a failure.
    """
    from engine.journal import SYNC_MODES
    from engine.sim.services.demo import DemoError, run_all_services_demo

    if ledger_sync not in SYNC_MODES:
        typer.echo(f"error: --ledger-sync {ledger_sync!r}: expected one of {', '.join(SYNC_MODES)}", err=True)
        raise typer.Exit(2)
    start_at = parse_at(at)
    console = demo_console()
    try:
        res = run_all_services_demo(per_service=per_service, bill_count=count, connections=connections,
                                    ledger_path=ledger, report_dir=reports, console=console, seed=seed,
                                    ledger_sync=ledger_sync, at=start_at)
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    if res["lost"]:
        typer.echo(f"error: {res['lost']} request(s) lost (no reply or no deal row); "
                   f"e.g. {'; '.join(res['lost_examples'])}", err=True)
        raise typer.Exit(1)
    if res["repeats_differ"] or res["twice"]:
        typer.echo(f"error: {res['repeats_differ']} repeat(s) answered with another reply than the original's; "
                   f"{res['twice']} reference(s) reached a counterpart twice"
                   + (f"; e.g. {'; '.join(res['twice_examples'])}" if res["twice_examples"] else ""), err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
