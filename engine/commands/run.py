"""``bsp run``: serve route files until SIGINT/SIGTERM (``bsp demo`` is engine/commands/demo.py)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from engine.commands.clockopt import at_line, at_option, parse_at
from engine.defaults import DEFAULT_LEDGER


def compile_or_exit(paths: list[Path], registry: Any, calendar_warn_days: int | None = None) -> Any:
    from dsl.diagnostics import render, summary
    from dsl.load import compile_paths

    missing = [p for p in paths if not p.exists()]
    if missing:
        typer.echo(f"error: no such file or directory: {', '.join(map(str, missing))}", err=True)
        raise typer.Exit(2)
    res = (compile_paths(paths, registry) if calendar_warn_days is None
           else compile_paths(paths, registry, calendar_warn_days=calendar_warn_days))    # W020's window
    sources: dict[str, str] = {}
    for d in res.diagnostics:
        f = getattr(d.pos, "file", None)
        if f and f not in sources and Path(f).exists():
            sources[f] = Path(f).read_text(errors="replace")
        typer.echo(render(d, sources), err=True)
    if res.program is None:
        # as `bsp check` counts them: the warnings shown above did not stop it, the errors did
        typer.echo(f"error: {summary(res.diagnostics)}; nothing started (fix the errors; warnings alone do "
                   f"not stop it)", err=True)
        raise typer.Exit(1)
    return res.program


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.rglob("*.route")) if p.is_dir() else [p])
    return out


def run(
    paths: list[Path] = typer.Argument(..., help="Route files or folders, or one platform.yaml deployment file."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="DuckDB ledger file (default: the "
                                          "deployment file's ledger:, else var/bsp.duckdb)."),
    ledger_sync: Optional[str] = typer.Option(None, "--ledger-sync", help="When a reply may leave: journal "
                                              "(its deal is fdatasync'ed in the write-ahead journal; default), "
                                              "duckdb (its row is committed in DuckDB) or none (at once, not "
                                              "durable); platform.yaml ledger.sync does the same."),
    key_retention: Optional[str] = typer.Option(None, "--key-retention", help="How long a deal key is "
                                                "answered from the transaction log after its deal finished "
                                                "(35d, 12h, 90m; at least 1h; or forever); default 35d; "
                                                "platform.yaml ledger.key_retention does the same."),
    reversal_alert_after: Optional[int] = typer.Option(None, "--reversal-alert-after", min=1, help="Attempts "
                                                       "after which an ISO 8583 reversal still not acknowledged "
                                                       "is flagged for an operator (log error, deal event, bsp "
                                                       "status), or once that many attempts' schedule has "
                                                       "passed for one held back by reversal_in_flight; it "
                                                       "is repeated until acknowledged all the same. Default "
                                                       "5; platform.yaml "
                                                       "ledger.reversal_alert_after does the same."),
    env: Optional[str] = typer.Option(None, "--env", help="Environment of the deployment file "
                                     "(else $BSP_ENV)."),
    grace: float = typer.Option(10.0, "--grace", help="Seconds to finish in-flight exchanges on "
                                "SIGTERM (0 or more)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log channel events."),
    record: Optional[Path] = typer.Option(None, "--record", help="Capture every frame to this new file "
                                          "(channels with record = false excepted); see docs/testing.md; "
                                          "platform.yaml record.path does the same."),
    mask: Optional[bool] = typer.Option(None, "--mask/--no-mask", help="With recording: mask classified fields "
                                        "(pan, secret, personal) in the capture: the default; --no-mask records "
                                        "them in clear and needs --clear-reason; platform.yaml record.mask does "
                                        "the same."),
    clear_reason: Optional[str] = typer.Option(None, "--clear-reason", help="With --no-mask: why the capture "
                                               "holds card numbers, track data and secrets in clear (a ticket, "
                                               "the test environment); written into the capture's header "
                                               "(platform.yaml record.clear_reason does the same)."),
    watch: bool = typer.Option(False, "--watch", help="Reload when the deployment file, a route file, included file, copybook, "
                               "spec, table, certificate or secret file (key, token, password) "
                               "changes (see docs/operations.md)."),
    log_format: str = typer.Option("text", "--log-format", help="Log lines as text or json (JSON lines)."),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="debug, info (one line per deal), "
                                            "warning (default; info with -v) or error."),
    log_file: Optional[Path] = typer.Option(None, "--log-file", help="Also write the log to this file (made owner-only, 0600, when new)."),
    admin: Optional[str] = typer.Option(None, "--admin", help="Serve the admin API on HOST:PORT "
                                        "(e.g. 127.0.0.1:7080); platform.yaml admin.listen does the same."),
    admin_token_file: Optional[Path] = typer.Option(None, "--admin-token-file",
                                                    help="Admin API token file (else platform.yaml "
                                                    "admin.token, else $BSP_ADMIN_TOKEN)."),
    admin_named_token: Optional[list[str]] = typer.Option(None, "--admin-named-token",
                                                          help="NAME:ROLE[,ROLE...]:FILE, a named admin token "
                                                          "with its roles (monitor, read, raw, operate, "
                                                          "snapshot); repeatable; replaces platform.yaml "
                                                          "admin.tokens."),
    admin_cert: Optional[Path] = typer.Option(None, "--admin-cert", help="Admin API server certificate (HTTPS); "
                                              "with --admin-key, replaces platform.yaml admin.tls cert and key."),
    admin_key: Optional[Path] = typer.Option(None, "--admin-key", help="Key of --admin-cert."),
    admin_client_ca: Optional[Path] = typer.Option(None, "--admin-client-ca",
                                                   help="Require client certificates from this CA (mTLS); "
                                                   "platform.yaml admin.tls.client_ca does the same."),
    admin_access: Optional[Path] = typer.Option(None, "--admin-access", help="Admin access list file "
                                                "(cn:/san:/ip: rules, one a line); platform.yaml admin.access "
                                                "does the same."),
    at: Optional[str] = at_option(),
) -> None:
    """Compile route files and serve them until SIGINT/SIGTERM (then drain and exit 0); SIGHUP reloads.

    Keys come from the deployment file (ledger.audit_key, ledger.field_keys), else the environment:
    BSP_AUDIT_KEY or BSP_AUDIT_KEY_FILE (the ledger's audit key, base64 of 32+ random bytes; without one,
    ledger records are not tamper-protected and a warning says so) and BSP_FIELD_KEYS or
    BSP_FIELD_KEYS_FILE (the keyring for encrypted fields); see docs/security.md.  An option given on the
    command line wins over the deployment file, which wins over the environment (docs/deployment.md).

    Exit 0 after a clean drain; 1 the route files or the deployment file have errors, a
    channel (or the admin API) cannot be bound or started, e.g. its port is taken, or the ledger's
    files cannot be written, or at the stop the ledger could not be checkpointed (a full disk: the
    acknowledged deals stay in the journal and the .wal, loaded at the next start); 2 usage error (a
    missing path, bad option values, an unusable key, an audit key that is not the one the ledger's chain
    was sealed with (or none for a keyed chain: nothing is written), no admin token, a --record file that
    is already there, --no-mask (record.mask: false) without --clear-reason).

    A capture masks the fields formats classify (pan, secret, personal) unless --no-mask is given with
    --clear-reason TEXT: the reason, the OS user and the host go into the capture's header, and the
    recording is warned about loudly at the start and the stop (docs/security.md, captures).
    """
    import trio

    from engine.ops import runopts
    from engine.ledger_store import KeyMismatch, LedgerError
    from engine.txn.log import TxnLogError
    from engine.ops.live import StartError
    from engine.replay.capture import CaptureError
    from engine.ops.serve import OpsOptions, run_live
    from engine.registry import default_registry
    from engine.runtime.binder import BindError

    start_at = parse_at(at)
    try:
        scrub = runopts.configure_logging(log_format, log_level, log_file, verbose)
        runopts.check_grace(grace)
    except runopts.OpsConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    overrides: dict[str, dict[str, Any]] = {}
    ledger_path = ledger
    dep: Any = None
    txn_backlog: tuple[int | None, int | None] = (None, None)    # platform.yaml ledger.txn_backlog_*
    business_day: tuple[str | None, str | None] | None = None     # platform.yaml business_day: limit totals' day
    calendar_warn_days: int | None = None       # platform.yaml calendars.warn_days (engine/calexpiry.py)
    if len(paths) == 1 and paths[0].suffix in (".yaml", ".yml"):
        from engine.deploy import DeploymentError, load_deployment
        if not paths[0].exists():     # a usage error, as a missing route file or folder is
            typer.echo(f"error: no such file or directory: {paths[0]}", err=True)
            raise typer.Exit(2)
        try:
            dep = load_deployment(paths[0], env=env)
        except DeploymentError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1)
        route_files = list(dep.route_files)
        overrides = dep.channel_overrides
        ledger_path = ledger_path or dep.ledger_path
        ledger_sync = ledger_sync or dep.ledger_sync
        key_retention = key_retention or dep.key_retention
        reversal_alert_after = reversal_alert_after or dep.reversal_alert_after
        txn_backlog = (dep.txn_backlog_entries, dep.txn_backlog_bytes)
        day = dep.business_day
        business_day = (day.tz, day.cutoff) if day is not None else None
        calendar_warn_days = dep.calendar_warn_days
        runopts.deployment_secrets(dep, scrub)
    else:
        route_files = _expand(paths)
    from engine.ops import runsettings
    from engine.ops.runsettings import record_settings, run_keys
    if dep is not None:                 # several files missing: every one now, not one per restart
        from engine.deploy_files import run_blockers
        blockers = run_blockers(dep, listen=admin, token_file=admin_token_file, named=admin_named_token,
                                cert=admin_cert, client_ca=admin_client_ca, access_file=admin_access)
        if len(blockers) > 1:           # one alone: the reading below says it, with its own detail
            for line in blockers:
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(2)
    try:
        keys = run_keys(dep)
        admin_opts = runopts.admin_options(admin, admin_token_file, admin_cert, admin_key, admin_client_ca,
                                           admin_access, dep, admin_named_token)
    except runopts.OpsConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    for value in keys.values:
        scrub.add(value)
    if admin_opts is not None:
        scrub.add(admin_opts.token)
        for named in admin_opts.tokens:
            scrub.add(named.secret)
        if admin_opts.token_source is not None:      # the tokens a reload reads (engine/ops/admintokens.py)
            admin_opts.token_source.on_secret = scrub.add
    from engine.journal import SYNC_MODES
    ledger_sync = ledger_sync or "journal"
    if ledger_sync not in SYNC_MODES:
        typer.echo(f"error: --ledger-sync {ledger_sync!r}: expected one of {', '.join(SYNC_MODES)}", err=True)
        raise typer.Exit(2)
    from engine.txn.log import KEY_RETENTION, parse_retention
    try:
        retention = KEY_RETENTION if key_retention is None else parse_retention(key_retention)
    except ValueError as exc:
        typer.echo(f"error: --key-retention {exc}", err=True)
        raise typer.Exit(2)
    cli_mask = mask
    record, mask, record_from = record_settings(record, mask, dep)
    if record is not None and record.exists():
        fix = ("choose a new name" if record_from == "--record" else
               "move it away, or put {started} in the name (e.g. path: \"capture-{started}.duckdb\") so each start "
               "writes a new one")
        label = f"--record {record}" if record_from == "--record" else f"{record_from}: {record}"
        typer.echo(f"error: {label}: {'a folder' if record.is_dir() else 'a file'} is already "
                   f"there; {fix} (captures are never appended to)", err=True)
        raise typer.Exit(2)
    load = runopts.loader(paths, paths[0] if dep is not None else None, env, _expand)
    registry = default_registry()
    from engine.ops.files import with_referenced_files
    # versioned over the route files and the files they name: the version bsp check prints, the capture
    # records and the ledger keeps
    # ... and over the deployment's channel overrides (engine/ops/effective.py)
    from engine.ops.effective import with_deployment
    from dsl.clock import engine_clock
    with engine_clock(start_at):        # W020 reckons from --at's day, as the engine's calendar warnings do
        compiled = compile_or_exit(route_files, registry, calendar_warn_days)
    program = with_deployment(with_referenced_files(compiled), overrides, registry)
    from engine.replay.tap import channels_to_record
    reason: Optional[str] = None
    if channels_to_record(program, all_channels=record is not None) or clear_reason is not None:
        try:        # in clear only by a recorded choice (docs/security.md "Captures")
            reason = runsettings.clear_reason(mask, clear_reason, cli_mask, dep)
        except runopts.OpsConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
    ledger_path = ledger_path or DEFAULT_LEDGER
    try:
        runopts.check_ledger_files(ledger_path, ledger_sync)
    except runopts.OpsConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    for warning in keys.warnings:
        typer.echo(f"warning: {warning}", err=True)
    from engine.ops.keyless import no_keyring_warning
    keyless = no_keyring_warning(program, registry, keys.keyring)
    if keyless is not None:
        typer.echo(f"warning: {keyless}", err=True)

    shown_ledger = os.path.abspath(ledger_path)     # absolute: operators paste it into commands run elsewhere

    def ready(sb: Any) -> None:
        from engine.ledger_store import SCHEMA_VERSION
        from engine.ops.banner import admin_url, channel_line
        if dep is not None:
            typer.echo(f"deployment {dep.path}, environment {dep.env or '(base settings: no --env)'}", err=True)
        for name, ch in sb.channels.items():
            typer.echo(channel_line(name, ch), err=True)
        if getattr(sb, "admin_port", None):
            typer.echo(f"admin API: {admin_url(admin_opts, sb.admin_port)}", err=True)
        if start_at is not None:
            typer.echo(at_line(start_at), err=True)
        typer.echo(f"bsp: serving {len(program.routes)} route(s), version {sb.version}, "
                   f"ledger {shown_ledger} (schema {SCHEMA_VERSION}, sync {ledger_sync}); Ctrl-C or SIGTERM drains and stops, SIGHUP reloads", err=True)

    from engine.replay.tap import recording
    try:
        with recording(program, registry, record, mask=mask, echo=lambda t: typer.echo(t, err=True),
                       clear_reason=reason) as (reg, _), engine_clock(start_at):
            sb = trio.run(lambda: run_live(program, reg, ledger_path=ledger_path, load=load, overrides=overrides,
                                           grace=grace, ready=ready, ledger_sync=ledger_sync,
                                           key_retention=retention, keys=keys,
                                           reversal_alert_after=reversal_alert_after,
                                           txn_backlog=txn_backlog, business_day=business_day,
                                           calendar_warn_days=calendar_warn_days,
                                           ops=OpsOptions(watch=watch, admin=admin_opts,
                                                          four_eyes=dep.four_eyes if dep is not None else None,
                                                          four_eyes_source=str(dep.path) if dep is not None
                                                          else None)))
    except (BindError, StartError) as exc:
        for line in getattr(exc, "problems", None) or [exc]:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1)
    except CaptureError as exc:         # the capture file cannot be made (or its last frames written)
        typer.echo(f"error: {record_from}: {exc}", err=True)
        raise typer.Exit(2)
    except KeyMismatch as exc:          # the audit key is not the one the ledger's chain was sealed with
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except (LedgerError, TxnLogError) as exc:    # a ledger file that cannot be opened, made or read
        typer.echo(f"error: {exc}", err=True)
        for note in getattr(exc, "__notes__", ()):   # what followed from it (not checkpointed on close)
            typer.echo(f"error: {note}", err=True)
        if "locked by another process" in str(exc):
            typer.echo("hint: two engines cannot share a ledger file; give this one its own with --ledger "
                       "(or `ledger:` in the deployment file)", err=True)
        raise typer.Exit(1)
    s = sb.stats
    unrecorded = getattr(s, "unrecorded", 0)
    typer.echo(f"bsp: stopped; {s.total} exchange(s): {s.committed} committed, {s.rejected} rejected, "
               f"{s.failed} failed" + (f", {s.duplicate} duplicate (answered with the original reply)"
                                       if s.duplicate else "")
               # a full or read-only disk: counted by their outcome above, but not in the ledger, not answered
               + (f"; {unrecorded} of them not recorded, so not answered (a ledger file could not be written: "
                  f"see the log)" if unrecorded else ""),
               err=True)
    from engine.ops.live import drain_lines
    cancelled = getattr(sb, "cancelled", [])
    if cancelled:
        typer.echo(f"bsp: {sum(len(r) for _, r, _ in cancelled)} exchange(s) were still in flight when the "
                   f"grace period ({grace:g}s, --grace) ran out and were cancelled:", err=True)
        for line in drain_lines(cancelled):
            typer.echo(f"  {line}", err=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
