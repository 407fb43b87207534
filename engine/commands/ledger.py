"""``bsp ledger snapshot --live --out FILE``: a consistent copy of a running engine's ledger;
``bsp ledger archive --before DATE --out FILE``: move the oldest deals to an archive file (offline);
``bsp ledger merge OLD_COPY``: after a restore, the deals only the old copy holds copied back (offline)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from engine.commands.admin_url import DEPLOYMENT_ADMIN_OPT
from engine.commands.ledger_keys import DEPLOYMENT_OPT, ENV_OPT, LEDGER_OPT, ledger_keys
from engine.commands.live import CA_OPT, CERT_OPT, KEY_OPT, LIVE_OPT, TOKEN_FILE_OPT, URL_OPT

ledger_app = typer.Typer(help="The deal ledger: a running engine's snapshot, the archive of old deals, a merge after a restore.",
                         no_args_is_help=True, add_completion=False)


@ledger_app.command("snapshot")
def snapshot(
    out: Path = typer.Option(..., "--out", help="The file to write (a DuckDB ledger file), owner-only (0600)."),
    force: bool = typer.Option(False, "--force", help="Replace --out when it exists (only once the whole copy "
                                                     "has arrived)."),
    progress_every: float = typer.Option(5.0, "--progress-every", metavar="SECONDS",
                                         help="Progress on stderr: a bar on a terminal, else a line every "
                                              "SECONDS while the transfer lasts; 0 for none."),
    live: bool = LIVE_OPT,
    deployment: Optional[Path] = DEPLOYMENT_ADMIN_OPT,
    env: Optional[str] = ENV_OPT,
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


@ledger_app.command("archive")
def archive(
    before: str = typer.Option(..., "--before", metavar="DATE", help="Move the deals received before this "
                               "(ISO date or time, UTC without a zone; or an age: 90d) and every record written "
                               "before the first deal received on or after it."),
    out: Path = typer.Option(..., "--out", metavar="FILE.duckdb", help="The archive file to write (a ledger, "
                             "read-only); never overwritten, except to finish a run that stopped."),
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_OPT,
    env: Optional[str] = ENV_OPT,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation (needed when stdin is not a "
                                                 "terminal)."),
    progress_every: float = typer.Option(5.0, "--progress-every", metavar="SECONDS",
                                         help="Progress on stderr: a bar on a terminal, else a line every "
                                              "SECONDS; 0 for none."),
) -> None:
    """Move the oldest deals out of the live ledger into an archive file, with no engine running.

    What moves is a prefix of the audit chain: every record written before the first deal received on or
    after --before (its deals, steps, events, dead letters, configuration versions; one still named by a
    deal that stays is copied, not moved), so that no deal is split between the files. The archive is a
    ledger (`bsp deals`, `bsp report`, `bsp reconcile`, `bsp audit verify` read it with --ledger FILE) that
    no engine may write to. The live ledger keeps an anchor (the last archived record's seq and mac, the
    archive's name and sha256): `bsp audit verify` checks it from there; with --archive FILE it checks
    that the chain continues from that file. It also keeps the deal keys of the archived deals, so a repeat of
    one is still refused as a duplicate.
    Refused (nothing changed) while a deal to move is flagged for an operator and not resolved, the
    journal holds deals the engine acknowledged but did not load (it was killed: start it once, stop it),
    or the transaction log still works on one (in flight, a reversal queued). The archive is written to
    FILE.partial, fsynced, verified with the audit key, renamed; then the records leave the ledger in one
    transaction and the file is rewritten without their bytes. After a crash run the same command again:
    it finishes. Needs the audit key (--deployment platform.yaml's ledger.audit_key, else BSP_AUDIT_KEY_FILE
    / BSP_AUDIT_KEY) and free space for a copy of the ledger.
    Four eyes (operators.four_eyes lists ledger.archive, in --deployment's file or the policy the last engine
    recorded in the ledger): the first run records a request (who: the OS user running bsp; what: --before as
    an exact time, --out as an absolute path, the plan) and moves nothing; another operator approves it through
    the running engine (`bsp approvals approve ID --live`); then, the engine stopped, the same command with
    the --before and --out the request names (it prints them) claims the approval and archives, once
    (docs/security.md#four-eyes).
    Exit 0 archived (or nothing to archive, or, under four eyes, requested or waiting); 1 refused (flagged deals, the journal, the transaction log), or the archive
    did not verify; 2 a usage error, no ledger, a locked ledger (an engine runs), no or a wrong audit key, --out
    taken, or no confirmation.
    """
    import sys

    from engine.commands.deals import parse_when, require_ledger
    from engine.duckdb_open import open_problem
    from engine.ledger_archive import prepare
    from engine.ledger_store import LedgerError
    from engine.progress import work_progress

    when = parse_when(before, option="--before")
    found = ledger_keys(ledger, deployment, env, "bsp ledger archive", audit=True)
    path = found.path
    require_ledger(path)
    if not out.parent.is_dir():
        typer.echo(f"error: --out {out}: no folder {out.parent}; make it first", err=True)
        raise typer.Exit(2)
    if out.resolve() == path.resolve():
        raise typer.BadParameter(f"{out} is the ledger itself: give a new file for the archive", param_hint="--out")
    from engine.four_eyes import offline_policy
    # read before the job holds the file: the deployment's policy and the one the last engine recorded
    policy = offline_policy(path, found.deployment)
    try:
        job = prepare(path, out, when, found.keys.audit_key)
    except LedgerError as exc:
        cause = exc.__cause__
        if cause is not None and open_problem(cause) == "locked":
            typer.echo(f"error: {path}: the ledger file is locked by another process (a running bsp engine holds "
                       f"it). Archiving is offline only: stop the engine (Ctrl-C or SIGTERM: it drains and loads "
                       f"every deal), run this command, start the engine again. Nothing was changed", err=True)
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        if job.already is not None:
            typer.echo(f"{path}: records {job.plan.first}..{job.plan.cut} were archived to {out} already (its anchor "
                       f"is there); finishing: rewriting the ledger file without their bytes")
        else:
            typer.echo(job.plan.describe(path, out))
            if job.refusals:
                for why in job.refusals:
                    typer.echo(f"error: refused: {why}", err=True)
                typer.echo("nothing was changed", err=True)
                raise typer.Exit(1)
            if job.plan.cut < job.plan.first:
                return
            approval = _four_eyes(job, policy, when, out)     # ledger.archive under four eyes
            if approval is None:
                return
            if not yes:
                if sys.stdin is None or not sys.stdin.isatty():      # None: started with stdin closed
                    typer.echo("error: archiving removes these records from the live ledger: add --yes (stdin is "
                               "not a terminal, so there is nobody to ask); nothing was changed", err=True)
                    raise typer.Exit(2)
                if not typer.confirm("archive them?", default=False):
                    typer.echo("nothing was changed", err=True)
                    raise typer.Exit(2)
            if approval.kind == "run":        # claimed before the first record is copied: used once
                from engine.archive_approval import claim
                claim(job.store, approval.request, job.plan.first, job.plan.cut, out)
        try:
            digest = job.run(lambda what, unit: work_progress(what, unit, progress_every))
        except LedgerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    finally:
        job.close()
    size = out.stat().st_size / (1024 * 1024)
    typer.echo(f"archived records {job.plan.first}..{job.plan.cut} to {out} ({size:,.1f} MiB, sha256 {digest}); "
               f"{path} is now {path.stat().st_size / (1024 * 1024):,.1f} MiB. Check both: `bsp audit verify "
               f"--ledger {path} --archive {out}`")


def _four_eyes(job: Any, policy: Any, when: Any, out: Path) -> Any:
    """Four eyes on ``ledger.archive`` (engine/archive_approval.py): the approval this run may use (its verdict;
    ``kind`` none: not under four eyes), or None when it recorded a request, or one waits (said; nothing moved)."""
    from engine.archive_approval import Verdict, command, gate
    from engine.four_eyes import Refused, pending_text
    from engine.ledger_store import LedgerError

    if policy is None or not policy.covers("ledger.archive"):
        return Verdict("none", {})
    p = job.plan
    plan = {"records": f"{p.first}..{p.cut}", "deals": p.counts.get("deals", 0),
            "dead_letters": p.counts.get("dead_letters", 0)}
    try:
        verdict = gate(job.store, policy, when, out, plan, p.resume, None)
    except (Refused, LedgerError, ValueError) as exc:
        typer.echo(f"error: four eyes: {exc}; nothing was changed", err=True)
        raise typer.Exit(2) from None
    req = verdict.request
    rerun = command(req.get("params") or {})
    if verdict.kind in ("run", "resume"):
        d = req.get("decision") or {}
        typer.echo(f"four eyes: archive requested by {req.get('by')}, approved by {d.get('by')} (request "
                   f"{req.get('id')})" + ("; finishing the archive it started" if verdict.kind == "resume" else ""))
        return verdict
    if verdict.kind == "waiting":
        typer.echo(f"NOT archived: four eyes: request {req.get('id')} (by {req.get('by')}) for this archive waits "
                   f"for a second operator until {req.get('expires_at')} (`bsp approvals approve {req.get('id')} "
                   f"--live --reason TEXT`, the engine running); then, the engine stopped: `{rerun}`")
        return None
    typer.echo(f"{pending_text({**req, 'target': 'the ledger'}, False)}; once approved, with the engine stopped: "
               f"`{rerun}`. Nothing was changed")
    return None


@ledger_app.command("merge")
def merge(
    old_copy: Path = typer.Argument(..., metavar="OLD_COPY", help="The old (damaged or replaced) copy of the "
                                    "ledger, taken aside before the restore (e.g. /var/lib/bsp.before-restore/"
                                    "bsp.duckdb); read only."),
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_OPT,
    env: Optional[str] = ENV_OPT,
    force: bool = typer.Option(False, "--force", help="Merge even when the old copy's own audit chain does not "
                               "verify (said loudly, and in the merge record)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be copied; write nothing."),
) -> None:
    """After a restore: copy back the deals the old copy holds and the restored ledger lacks, with no engine running.

    Copied: each deal of OLD_COPY whose id the ledger lacks, with its steps, events and dead letter; each dead
    letter the ledger lacks, with its events; the configuration versions they name. They are sealed again at
    the end of the ledger's audit chain with the audit key (their old seq and mac are not kept: none is
    forged), followed by one chained `ledger merge` record naming OLD_COPY (its sha256 and chain end), the
    seq range and the counts, which `bsp audit verify` lists. Nothing the ledger holds is changed; a second
    run finds nothing to copy and writes nothing. One transaction: after a crash, run it again.
    Run it after copying the snapshot in place and before starting the engine: the head kept beside the
    ledger (ledger.audit-head) then names OLD_COPY's chain end, and the merge record names that cut instead
    of an `audit break` (bsp audit verify stays clean). Run after an engine started on the restored ledger
    (which recorded the cut as an `audit break`), the merge record names that break as resolved (`resolves`)
    when its cut reached OLD_COPY's chain end and OLD_COPY's chain verified: verify lists it with the merge,
    not as a break. The field keys' check values OLD_COPY holds for key ids the ledger lacks are copied too.
    OLD_COPY's own chain must verify with the audit key, else nothing is merged unless --force. Deals both files hold whose later events differ, and dead letters
    whose status differs, are left as the ledger holds them and listed (look at them before any retry).
    Needs the audit key (--deployment platform.yaml's ledger.audit_key, else BSP_AUDIT_KEY_FILE / BSP_AUDIT_KEY).
    Exit 0 merged (or nothing to merge); 1 refused: OLD_COPY's chain does not verify (without --force), or it
    is an archive or not a ledger; 2 a usage error, no ledger, a locked ledger (an engine runs), no or a wrong
    audit key.
    """
    from engine.commands.deals import require_ledger
    from engine.ledger_merge import MergeRefused, prepare
    from engine.ledger_store import LedgerError, LedgerStore, connect

    found = ledger_keys(ledger, deployment, env, "bsp ledger merge", audit=True)
    path, key = found.path, found.keys.audit_key
    require_ledger(path)
    if not old_copy.is_file():
        typer.echo(f"error: OLD_COPY {old_copy}: no such file; give the copy of the ledger taken aside before the "
                   f"restore (docs/runbook.md#restoring-the-ledger-from-a-snapshot)", err=True)
        raise typer.Exit(2)
    if old_copy.resolve() == path.resolve():
        raise typer.BadParameter(f"{old_copy} is the ledger itself: give the old copy taken aside",
                                 param_hint="OLD_COPY")
    try:
        job, problems = prepare(old_copy, key, force=force, dry_run=dry_run)
    except MergeRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if problems:
        typer.echo("WARNING " + "!" * 60, err=True)
        typer.echo(f"WARNING: --force: merging from {old_copy} although its own audit chain does NOT verify:",
                   err=True)
        for p in problems[:5]:
            typer.echo(f"WARNING:   {p}", err=True)
        typer.echo("WARNING: what is copied from it is sealed here as if the engine had written it; the merge "
                   "record says it was not verified", err=True)
        typer.echo("WARNING " + "!" * 60, err=True)
    try:
        if dry_run:
            con = connect(path, read_only=True)
            try:
                from engine.ledger_store import chain_state
                job.run(con, key, *chain_state(con), None)
                job.close(con)
            finally:
                con.close()
        else:
            LedgerStore.open(path, key, merge=job).close()
    except LedgerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    res = job.result
    counts = ", ".join(f"{n} {t}" for t, n in res.counts.items() if n) or "nothing"
    if dry_run:
        extra = "".join([f"; would resolve the audit break at seq {b['seq']}" for b in res.resolves] +
                        [f"; would copy the field key check value of key id {k}" for k in res.key_checks])
        typer.echo(f"{path}: would copy from {old_copy}: {counts}{extra} (--dry-run: nothing written)")
    elif res.record_seq is None:
        typer.echo(f"{path}: nothing to merge: every deal and dead letter of {old_copy} is already here")
    else:
        span = f"sealed at seq {res.first_seq}..{res.last_seq}, " if res.first_seq is not None else ""
        typer.echo(f"{path}: merged from {old_copy}: {counts}; {span}recorded as `ledger merge` at seq "
                   f"{res.record_seq}")
        if res.cut:
            typer.echo(f"{path}: the merge record names the cut of the restore (not an audit break): {res.cut}")
        for b in res.resolves:
            typer.echo(f"{path}: the merge record resolves the audit break at seq {b['seq']} (recorded {b['at']} by "
                       f"the writer that opened the restored ledger before the merge): its cut, {b['cut']}, is the "
                       f"old copy's, copied back; bsp audit verify lists it with the merge, not as a break")
        if res.key_checks:
            typer.echo(f"{path}: field key check value(s) copied for key id(s) {', '.join(res.key_checks)} (the "
                       f"merged values sealed under them can be revealed, and checked, with the keyring)")
        typer.echo(f"check it: bsp audit verify --ledger {path}")
    for line in res.diverged:
        typer.echo(f"warning: not merged: {line}", err=True)
    for line in res.twice:
        typer.echo(f"warning: a deal key answered twice: {line}: settle it with the counterpart", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")


__all__ = ["archive", "merge", "register", "snapshot"]
