"""``bsp reconcile --ledger FILE --against STATEMENT --type csv|mt940|camt053|camt052 [...]``, or ``--live``
instead of ``--ledger``: on a snapshot of a running engine's ledger.

Prints the form (rich tables) and, with ``--format``, writes it out.
Exit codes: 0 fully matched, 1 breaks found (lines, or statements that do not add up or follow on),
2 usage error (bad statement, missing ledger, bad option).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from engine.commands.ledger_keys import DEPLOYMENT_LEDGER_OPT, ENV_OPT, LEDGER_OPT, ledger_keys
from engine.commands.live import CA_OPT, CERT_OPT, KEY_OPT, TOKEN_FILE_OPT, URL_OPT
from engine.commands.report import CUTOFF_OPT, LIVE_SNAPSHOT_OPT, TZ_OPT, day_options
from engine.defaults import REPORT_FORMATS as FORMATS, STATEMENT_TYPES

TOTALS = "totals"           # the mainframe's end-of-day control totals (engine/reconcile/totals.py)
BORDEREAU = "bordereau"     # an insurer's premium bordereau (engine/reconcile/bordereau.py)
TYPES = (*STATEMENT_TYPES, TOTALS, BORDEREAU)
_T = "End-of-day totals (--type totals)"


def reconcile(
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_LEDGER_OPT,
    env: Optional[str] = ENV_OPT,
    against: Path = typer.Option(..., "--against", help="The counterparty's statement file (--type totals: the "
                                 "mainframe's end-of-day totals file; --type bordereau: the insurer's bordereau)."),
    kind: str = typer.Option(..., "--type", help=f"Statement type: {', '.join(TYPES)} (camt052: an ISO 20022 intraday account report, its "
                             "entries matched as a camt.053's; totals: the mainframe's "
                             "end-of-day control totals per day, code and currency; bordereau: an insurer's CSV of "
                             "policy, premium, commission, against the commission the deals recorded)."),
    on: Optional[str] = typer.Option(None, "--date", help="Only this business day (YYYY-MM-DD, today or "
                                     "yesterday; UTC unless --tz / --cutoff or the deployment file's business_day); "
                                     "default: the statement's days."),
    tz: Optional[str] = TZ_OPT,
    cutoff: Optional[str] = CUTOFF_OPT,
    tolerance: Optional[list[str]] = typer.Option(
        None, "--tolerance", help="Largest amount difference still matched: an amount for every currency "
        "(0.01); minor:N, N minor units of each currency (minor:1 is 0.01 EUR, 1 JPY, 0.001 BHD); CCY=AMOUNT "
        "for one currency (JPY=1), over the default. Repeatable. Default 0: exact."),
    days: int = typer.Option(1, "--days", help="Days a booking may lie from the deal's day."),
    party: Optional[str] = typer.Option(None, "--party", help="Only deals of this party (the `party` column)."),
    xsd_dir: Optional[Path] = typer.Option(None, "--xsd-dir", help="camt053, camt052: validate against the XSDs here."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Also write the form: {', '.join(FORMATS)}."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write it (default reconciliation.EXT); "
                                       "without --format, the format its name ends in. Written owner-only (0600); "
                                       "replaces a file of that name, never the ledger or the statement. "
                                       "--format json --out - writes the form to stdout (the summary line then "
                                       "goes to stderr)."),
    route: Optional[Path] = typer.Option(None, "--route", metavar="FILE.route", rich_help_panel=_T,
                                         help="Read the totals file through a format declared in this route "
                                         "file (with --name), e.g. a COBOL copybook of EBCDIC records; without "
                                         "it, the totals file is a CSV with a header row."),
    name: Optional[str] = typer.Option(None, "--name", metavar="FORMAT", rich_help_panel=_T,
                                       help="The format declared in --route, e.g. EodTotals."),
    columns: Optional[str] = typer.Option(None, "--columns", metavar="NAME=FIELD,...", rich_help_panel=_T,
                                          help="The totals file's fields for date, type, currency, count, amount, "
                                          "dc when their names are not the usual ones, e.g. "
                                          "date=BUS_DATE,amount=TXN_AMOUNT."),
    codes: Optional[Path] = typer.Option(None, "--codes", metavar="FILE.csv", rich_help_panel=_T,
                                         help="Mainframe transaction code -> bsp deal type (CSV: code, deal_type, "
                                         "optionally dc); without it the code is the deal type."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the form, only the summary line."),
    live: bool = LIVE_SNAPSHOT_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """Match committed deals to a counterparty's statement by reference, amount and date.

    A deal's day is its business day: UTC, or of `--tz ZONE` (the bank's zone) and `--cutoff HH:MM`
    (its end of business day), else of the deployment file's `business_day` (`--deployment
    platform.yaml`), as the statement books it. The form lists matched lines, deals only in the ledger, lines only in the
    statement and amount (or date) mismatches, with totals per currency.
    `--type totals` checks the mainframe's end-of-day control totals instead (count and amount per business
    day, transaction code and currency; a CSV, or a copybook file read with `--route FILE --name FORMAT`,
    codes mapped to deal types with `--codes`) against the committed deals' count and sum.
    `--type bordereau` pairs an insurer's bordereau (a CSV: policy, premium, commission, date) with the
    committed deals that recorded a commission (`record bordereau` in the route) and compares both amounts.
    A running engine holds its ledger file locked: `--live` reconciles a snapshot the engine takes of
    it (`POST /ledger/snapshot`), in a private temporary file removed afterwards.
    An MT940 or camt.053 file's statements are checked too (each adds up; each account's open where the one
    before closed, numbers follow on, pages complete): the form's statements table. `--type mt940` reads
    MT940, MT942 and MT950 (bank exports or FIN messages); a file that is none of them (an MT103, a pain.001,
    a CSV) is refused naming what it is, its line and byte, and the type that reads it. A camt.052 intraday
    report (`--type camt052`), as an MT942, has no closing balance: it is no link of the chain, only its
    entries are checked against its TxsSummry.
    Exit 0 when fully matched, 1 when there are breaks, of lines or statements (or, --live, the engine answered with a problem
    or cannot be reached), 2 usage error (a statement that cannot be read, no ledger file, a bad option).
    """
    from engine.reconcile import breaks, reconcile_file, statement_breaks     # DuckDB, the statement readers: loaded to reconcile
    from engine.reports import ReportError, write
    from engine.reports.businessday import business_day
    from engine.reports.source import parse_day
    from engine.progress import work_progress
    from engine.reports.terminal import print_report

    found = ledger_keys(ledger, deployment, env, "bsp reconcile")
    ledger = found.path
    tz, cutoff = day_options(tz, cutoff, found.deployment)
    to_stdout = out is not None and str(out) == "-"
    try:
        if to_stdout and fmt != "json":
            raise ReportError("--out -: standard output takes the form as --format json; give --format json, "
                              "or a file name with --out")
        from engine.reconcile.tolerance import Tolerance
        tol = Tolerance.parse(tolerance)
        if fmt is None and out is not None:
            fmt = out.suffix.lstrip(".").lower()
            if fmt not in FORMATS:
                raise ReportError(f"--out {out}: give the format with --format ({', '.join(FORMATS)}); the "
                                  f"file name does not end in one of them")
        if fmt is not None and fmt not in FORMATS:
            raise ReportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
        target = out or Path(f"reconciliation.{fmt}")
        if fmt is not None and not to_stdout and not target.parent.is_dir():     # say so before the work, as write() would after
            raise ReportError(f"--out {target}: the folder {target.parent} does not exist; create it or choose "
                              f"another path")
        if fmt is not None and not to_stdout:     # nor the statement or the ledger (said before the work; write() checks again)
            from engine.reports.export import refuse_inputs
            refuse_inputs([target], [against] + ([] if live else [ledger]))
        clock = business_day(tz, cutoff)
        day = parse_day(on, "--date", clock=clock) if on else None
        if kind not in TYPES:
            raise ReportError(f"--type {kind!r}: expected one of {', '.join(TYPES)}")
        if kind == TOTALS:
            from engine.reconcile.totals import breaks as count_breaks, reconcile_totals
            from engine.reconcile.totals_file import parse_columns
            if xsd_dir is not None:
                raise ReportError("--xsd-dir validates a camt.053 statement or camt.052 report; it does not apply to "
                                  "--type totals")
            wanted = parse_columns(columns)

            def run(path: Path, where: str | None, progress: object) -> tuple:
                return reconcile_totals(path, against, route=route, name=name, columns=wanted, codes=codes, on=day,
                                        clock=clock, party=party, tolerance=tol, deals_where=where)
        elif kind == BORDEREAU:
            from engine.reconcile.bordereau import breaks as count_breaks, reconcile_bordereau    # type: ignore[assignment]
            if xsd_dir is not None:
                raise ReportError("--xsd-dir validates a camt.053 statement or camt.052 report; it does not apply to "
                                  "--type bordereau")
            _totals_only(kind, route=route, name=name, columns=columns, codes=codes)

            def run(path: Path, where: str | None, progress: object) -> tuple:
                return reconcile_bordereau(path, against, on=day, days=days, clock=clock, party=party, tolerance=tol)
        else:
            count_breaks = breaks
            _totals_only(kind, route=route, name=name, columns=columns, codes=codes)

            def run(path: Path, where: str | None, progress: object) -> tuple:
                return reconcile_file(path, against, kind, on=day, tolerance=tol, days=days, party=party,
                                      xsd_dir=xsd_dir, progress=progress, clock=clock)  # type: ignore[arg-type]
        if live:
            # what reconcile_file would say after the snapshot, said before it is taken
            if not against.is_file():
                raise ReportError(f"{against}: no {'statement' if kind in STATEMENT_TYPES else kind} file here "
                                  f"(--against)")
            from engine.commands.live_snapshot import live_ledger

            with live_ledger(url, token_file, ca, cert, key, "bsp reconcile") as (path, snap), \
                    work_progress("reconcile: reading the ledger", "deals") as progress:
                try:
                    report, rows = run(path, "--live", progress)
                except ReportError as exc:
                    raise ReportError(str(exc).replace(str(path), snap.describe())) from None
                report.params["ledger"] = snap.describe()
        else:
            with work_progress("reconcile: reading the ledger", "deals") as progress:
                report, rows = run(ledger, None, progress)
        if to_stdout:
            import sys

            from engine.reports.jsondoc import write_json_doc
            write_json_doc(report, sys.stdout)
        elif not quiet:
            print_report(report)
        if fmt is not None and not to_stdout:
            for path in write(report, fmt, target, inputs=[against] + ([] if live else [ledger])):
                typer.echo(f"wrote {path}", err=True)
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    n = count_breaks(rows)
    what = f"{len(rows)} {'lines' if kind in STATEMENT_TYPES else 'rows'}"
    bad = statement_breaks(report)          # MT940, camt.053 (camt.052): statements that do not add up or follow on
    said = f"{what}, {n} break(s)" if n else f"{what}, fully matched"
    if bad:
        said += (f"; {bad} statement(s) break a control (does not add up, gap, repeat, balance break): see the "
                 f"statements table")
    typer.echo(said, err=to_stdout)
    raise typer.Exit(1 if n or bad else 0)


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile)


__all__ = ["register", "reconcile"]


def _totals_only(kind: str, **flags: object) -> None:
    """``--route`` / ``--name`` / ``--columns`` / ``--codes`` given with a ``--type`` that is not totals."""
    from engine.reports import ReportError
    given = [f"--{k}" for k, v in flags.items() if v is not None]
    if given:
        raise ReportError(f"{given[0]} reads a mainframe totals file: it applies to --type totals only, "
                          f"not --type {kind}")
