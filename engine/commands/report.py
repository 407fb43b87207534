"""``bsp report NAME --ledger FILE --from DATE --to DATE [--format ...] [--out PATH] [--party P]``,
or ``--live`` instead of ``--ledger``: on a snapshot of a running engine's ledger.

Exit codes, as ``bsp reconcile``'s: 0 written and no break found, 1 written and the report found breaks
(``statement-continuity``: a statement that does not add up or follow on; the reports of totals find none)
or (--live) the engine answered with a problem or cannot be reached, 2 usage error (unknown report, bad
date, missing ledger, locked ledger, no such party).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from engine.commands.ledger_keys import DEPLOYMENT_LEDGER_OPT, ENV_OPT, LEDGER_OPT, ledger_keys
from engine.commands.live import CA_OPT, CERT_OPT, KEY_OPT, TOKEN_FILE_OPT, URL_OPT
from engine.commands.stdout import quiet_pipe
from engine.defaults import REPORT_FORMATS as FORMATS, REPORTS

OUTPUTS = ("table", *FORMATS)
TZ_OPT = typer.Option(None, "--tz", help="The zone of the business day, an IANA name (Asia/Shanghai, "
                      "Europe/Berlin); default: --deployment's business_day.tz, else UTC. Selects --from/--to "
                      "(--date) and groups days in it; times are shown on its clock, with their offset.")
CUTOFF_OPT = typer.Option(None, "--cutoff", help="The local time (HH:MM) the business day ends: day D runs "
                          "from D-1 at the cut-off to D at the cut-off (e.g. 17:00); default: --deployment's "
                          "business_day.cutoff, else midnight (00:00).")


def day_options(tz: Optional[str], cutoff: Optional[str], deployment: Any) -> tuple[Optional[str], Optional[str]]:
    """``--tz`` / ``--cutoff`` as given, each one not given from the deployment file's ``business_day``
    (``engine/deploy_businessday.py``): the flag wins, key by key."""
    day = getattr(deployment, "business_day", None)
    return (tz, cutoff) if day is None else day.pick(tz, cutoff)
LIVE_SNAPSHOT_OPT = typer.Option(False, "--live", help="Run on a snapshot of a running engine's ledger, taken "
                                 "through its admin API (the engine holds the file locked); the snapshot is a "
                                 "private temporary file, removed afterwards.",
                                 rich_help_panel="Live (a running engine's admin API)")


def report(
    name: str = typer.Argument(..., help=f"The report: {', '.join(REPORTS)}."),
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_LEDGER_OPT,
    env: Optional[str] = ENV_OPT,
    first: str = typer.Option(..., "--from", help="First business day, YYYY-MM-DD, today or yesterday; "
                              "included (UTC days unless --tz / --cutoff, or the deployment file's business_day)."),
    last: Optional[str] = typer.Option(None, "--to", help="Last business day, YYYY-MM-DD, today or yesterday; "
                                       "included; default --from."),
    tz: Optional[str] = TZ_OPT,
    cutoff: Optional[str] = CUTOFF_OPT,
    fmt: str = typer.Option("table", "--format", help=f"Output: {', '.join(OUTPUTS)} (table = on the terminal)."),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write; CSV (the main table) and JSON (the "
                                       "whole report) without --out go to stdout; other formats default to "
                                       "NAME_FROM_TO.EXT here. Written owner-only (0600); "
                                       "replaces a file of that name, never the ledger."),
    party: Optional[str] = typer.Option(None, "--party", help="The counterparty (counterparty-statement)."),
    live: bool = LIVE_SNAPSHOT_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """Business reports from the deal ledger: totals, success rates, latency, rejections, statements.

    Amounts are exact decimals in each currency (never converted or rounded).
    Days are UTC days (today and yesterday too) unless `--tz ZONE` (the bank's zone) and `--cutoff
    HH:MM` (its end of business day), or the deployment file's `business_day` (`--deployment
    platform.yaml`; a flag wins over it), say otherwise; the header says which day was reported. A running engine holds its ledger file locked:
    `--live` reports on a snapshot the engine takes of it (`POST /ledger/snapshot`, as `bsp ledger
    snapshot --live`), in a private temporary file removed afterwards.
    Exit 0 written, no break found; 1 written, and the report found breaks (statement-continuity: a
    statement that does not add up or follow on), as bsp reconcile exits on breaks, or (--live) the engine
    answered with a problem or cannot be reached; 2 usage error (unknown report or format, bad dates, no
    ledger).
    """
    from engine.reports import ReportError, period   # DuckDB, Arrow: loaded to report
    from engine.reports.businessday import business_day

    found = ledger_keys(ledger, deployment, env, "bsp report")
    ledger = found.path
    tz, cutoff = day_options(tz, cutoff, found.deployment)
    if fmt not in OUTPUTS:
        typer.echo(f"error: --format {fmt!r}: expected one of {', '.join(OUTPUTS)}", err=True)
        raise typer.Exit(2)
    if name != "counterparty-statement" and party:
        typer.echo(f"error: --party is for counterparty-statement, not {name}", err=True)
        raise typer.Exit(2)
    try:
        when = period(first, last, clock=business_day(tz, cutoff))
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not live:
        breaks = _report(name, ledger, None, when, fmt, out, party)
    else:
        from engine.commands.live_snapshot import live_ledger

        with live_ledger(url, token_file, ca, cert, key, "bsp report") as (path, snap):
            breaks = _report(name, path, snap.describe(), when, fmt, out, party)
    if breaks:
        # the verdict, as bsp reconcile gives it: a scheduled job alerts on a non-zero status
        typer.echo(f"{name}: {breaks:,} break(s) found (exit 1)", err=True)
        raise typer.Exit(1)


def _report(name: str, ledger: Path, label: Optional[str], when: Any, fmt: str, out: Optional[Path],
            party: Optional[str]) -> int:
    """Build and write the report from ``ledger``; ``label`` names it instead of its path (a snapshot).
    A report of a period that holds no deal at all ends with a note naming the days the ledger holds.
    Returns how many breaks the report found (0 for a report that finds none)."""
    from engine.reports import ReportError, build_report
    from engine.reports.source import empty_period_note

    try:
        try:
            rep = build_report(name, ledger, when, party=party)
        except ReportError as exc:
            if label is None:
                raise
            raise ReportError(str(exc).replace(str(ledger), label)) from None
        if label is not None:
            rep.params["ledger"] = label
        _output(rep, name, ledger, when, fmt, out)
        if not any(t.rows for t in rep.tables):
            note = empty_period_note(ledger, when, label or str(ledger))
            if note:
                typer.echo(note, err=True)
        return rep.breaks or 0
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _output(rep: Any, name: str, ledger: Path, when: Any, fmt: str, out: Optional[Path]) -> None:
    from engine.reports import write
    from engine.reports.tabular import csv_text
    from engine.reports.terminal import print_report

    if fmt == "table":
        print_report(rep)
        return
    if fmt == "csv" and out is None:
        sys.stdout.write(csv_text(rep.main))
        others = [t.name for t in rep.tables[1:]]
        if others:
            typer.echo(f"note: standard output holds the {rep.main.name} table only; the other table(s), "
                       f"{', '.join(others)}, are written with --out FILE.csv (beside it, as "
                       f"FILE.{others[0]}.csv ...)", err=True)
        return
    if fmt == "json" and out is None:
        from engine.reports.jsondoc import write_json_doc
        write_json_doc(rep, sys.stdout)
        return
    target = out or Path(f"{name}_{when.first}_{when.last}.{fmt}")
    for path in write(rep, fmt, target, inputs=[ledger]):
        typer.echo(f"wrote {path}", err=True)


def register(app: typer.Typer) -> None:
    app.command("report")(quiet_pipe(report))


__all__ = ["CUTOFF_OPT", "LIVE_SNAPSHOT_OPT", "TZ_OPT", "day_options", "register", "report"]
