"""``bsp audit verify``: check the ledger's HMAC chain (docs/security.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from engine.commands.ledger_keys import DEPLOYMENT_OPT, ENV_OPT, LEDGER_OPT, ledger_keys, missing_in_env
from engine.commands.live import CA_OPT, CERT_OPT, KEY_OPT, TOKEN_FILE_OPT, URL_OPT
from engine.commands.report import LIVE_SNAPSHOT_OPT
from engine.defaults import AUDIT_ENV_KEY as ENV_KEY, AUDIT_ENV_KEY_FILE as ENV_KEY_FILE
from engine.progress import work_progress


def verify_chain(*args: Any, **kw: Any) -> Any:
    """``engine.audit.verify``, imported when a check runs (pyarrow is not loaded for ``bsp --help``)."""
    from engine.audit import verify

    return verify(*args, **kw)

audit_app = typer.Typer(help="Tamper evidence of the ledger.", no_args_is_help=True, add_completion=False)


@audit_app.command("verify")
def verify(
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_OPT,
    env: Optional[str] = ENV_OPT,
    max_breaks: int = typer.Option(20, "--max-breaks", min=1, help="Stop after this many problems."),
    progress_every: float = typer.Option(5.0, "--progress-every", metavar="SECONDS",
                                         help="Progress on stderr, a line every SECONDS once the check has run "
                                              "that long; 0 for none."),
    archive: Optional[list[Path]] = typer.Option(None, "--archive", metavar="FILE", help="An archive of this "
                                                 "ledger (bsp ledger archive; repeat for several): verified too, "
                                                 "and the chain must continue from it into the ledger (its sha256 "
                                                 "and last mac are the ledger's anchor)."),
    live: bool = LIVE_SNAPSHOT_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key_file: Optional[Path] = KEY_OPT,
) -> None:
    """Check every record's chain position and mac; name the first modified, deleted or moved record.

    Needs the audit key the engine wrote with: with --deployment platform.yaml, the file's ledger and
    ledger.audit_key (as bsp run takes them), else BSP_AUDIT_KEY or BSP_AUDIT_KEY_FILE.  After a rotation
    of the audit key give the keyring holding every key the ledger was sealed with (the old keys too):
    the rotation records say which key seals which records.
    The records stream (memory does not grow with the ledger); a long check prints its progress.
    A running engine holds its ledger file locked: `--live` checks a snapshot the engine takes of it
    (`POST /ledger/snapshot`), in a private temporary file removed afterwards; the key stays here.
    A ledger whose oldest records were archived (`bsp ledger archive`) is checked from its anchor and
    names the archive files; --archive FILE checks each of them and that the chain continues from it.
    Exit 0: the chain is intact.  1: a break (tampering: a record modified, deleted or moved); with
    --live also when the engine answered with a problem or cannot be reached (said on stderr).
    2: no key, no file, a file that is not a bsp ledger, or records sealed with a key the ring lacks
    (cannot verify: the message names its id and fingerprint), or a field key of the field keyring (given
    with the deployment file or BSP_FIELD_KEYS(_FILE)) that does not open its key id's check value in the
    ledger or an archive.  3: no break, but records written without an
    audit key (no mac) are not protected.  130: interrupted (Ctrl-C): nothing is proven.
    """
    from engine.commands.deals import no_ledger

    found = ledger_keys(ledger, deployment, env, "bsp audit verify", audit=True)
    ledger, key, keyring = found.path, found.keys.audit_key, _field_keyring(found.deployment)
    problems = [] if live or ledger.is_file() else [no_ledger(ledger)]
    problems += [f"--archive {a}: no such file" for a in archive or () if not a.is_file()]
    if key is None:
        if deployment is None:
            where = (f"give the deployment file whose ledger.audit_key the engine writes with (--deployment "
                     f"platform.yaml), or set {ENV_KEY_FILE} (a file with the base64 key) or {ENV_KEY} to that key")
        else:       # the file was given: say it names no key, rather than asking for it again
            where = (f"{deployment} sets no ledger.audit_key{missing_in_env(env)} and neither {ENV_KEY_FILE} nor "
                     f"{ENV_KEY} is set; if the engine writes with a key, add it under the file's `ledger:` "
                     f"(`audit_key: {{file: keys/audit.key}}`, docs/deployment.md)")
        problems.append(f"no audit key: {where}. Without a key the chain cannot be checked "
                        f"(and an engine without one writes no macs: chaining is off).")
    if problems:            # both at once: the admin fixes both before trying again
        lead = "" if len(problems) == 1 else "2 problems, fix both:\n  "
        typer.echo(f"error: {lead}" + "\n  ".join(problems), err=True)
        raise typer.Exit(2)
    if not live:
        _verify(ledger, str(ledger), key, max_breaks, progress_every, archive or [], keyring)
        return
    from engine.commands.live_snapshot import live_ledger

    with live_ledger(url, token_file, ca, cert, key_file, "bsp audit verify") as (path, snap):
        _verify(path, snap.describe(), key, max_breaks, progress_every, archive or [], keyring)


def _field_keyring(dep: Any) -> Any:
    """The field keyring of the deployment file (``ledger.field_keys``), else BSP_FIELD_KEYS(_FILE), or None: only
    to check it against the check values (``_field_keys``); one that cannot be read is a warning, not a failure
    of the chain check (an auditor may hold the audit key only)."""
    from engine.ops.runsettings import OpsConfigError, run_keys

    try:
        return run_keys(dep, audit=False, fields=True, command="bsp audit verify").keyring
    except OpsConfigError as exc:
        typer.echo(f"warning: the field keys are not checked: {exc}", err=True)
        return None


def _field_keys(files: list[tuple[Path, str]], keyring: Any) -> bool:
    """With a field keyring (the deployment file's ledger.field_keys, else BSP_FIELD_KEYS(_FILE)): each file's
    check values against it (engine/field_key_checks.py), as a writer's open and a reveal check the live ledger;
    archives too.  One line per file; True when a key does not open its id's check value."""
    from engine.field_key_checks import checked_ids, verify_file
    from engine.ledger_store import LedgerError

    wrong = False
    for path, label in files:
        try:
            error, warnings = verify_file(path, keyring)
            ids = checked_ids(path)
        except LedgerError:
            continue                   # the chain check says why the file cannot be read
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        if error is not None:
            wrong = True
            typer.echo(f"error: {error}", err=True)
        elif ids:
            typer.echo(f"{label}: field keys: the keyring opens the check value of each key id it holds "
                       f"({', '.join(i for i in ids if i in keyring.keys) or 'none'})")
    return wrong


def _verify(ledger: Path, label: str, key: bytes, max_breaks: int, progress_every: float,
            archives: tuple[Path, ...] | list[Path] = (), keyring: Any = None) -> None:
    """Each archive first (its own chain, then its continuity into ``ledger``), then ``ledger``; exit 1 at the
    end when any of them broke; with a field keyring, each file's field key check values too (exit 2 when a key
    does not open its id's, unless a chain broke)."""
    wrong_keys = keyring is not None and _field_keys([(a, str(a)) for a in archives] + [(ledger, label)], keyring)
    try:
        _verify_chains(ledger, label, key, max_breaks, progress_every, archives)
    except typer.Exit as exc:
        if exc.exit_code == 0 and wrong_keys:
            raise typer.Exit(2) from None
        raise
    if wrong_keys:
        raise typer.Exit(2)


def _verify_chains(ledger: Path, label: str, key: bytes, max_breaks: int, progress_every: float,
                   archives: tuple[Path, ...] | list[Path] = ()) -> None:
    broken = False
    for arc in archives:
        try:
            _verify_one(arc, str(arc), key, max_breaks, progress_every)
        except typer.Exit as exc:
            if exc.exit_code != 1:
                raise
            broken = True
        problems = _continuity(ledger, arc, label)
        for p in problems:
            typer.echo(f"{label}: archive NOT CONTINUOUS: {p}", err=True)
        if not problems:
            typer.echo(f"{arc}: continues into {label}: its sha256 and last record are the ledger's anchor")
        broken = broken or bool(problems)
    try:
        _verify_one(ledger, label, key, max_breaks, progress_every)
    except typer.Exit as exc:
        if exc.exit_code != 1 or not archives:
            raise
        broken = True
    if broken:
        raise typer.Exit(1)


def _continuity(ledger: Path, arc: Path, label: str) -> list[str]:
    from engine.audit import continuity
    from engine.ledger_archive import sha256_file
    from engine.ledger_store import LedgerError, connect

    try:
        live = connect(ledger, read_only=True)
        try:
            con = connect(arc, read_only=True)
            try:
                return continuity(live, con, arc, sha256_file(arc), label)
            finally:
                con.close()
        finally:
            live.close()
    except LedgerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _anchor_lines(label: str, report: Any) -> None:
    """Where the records before the first one checked are: one line per archive; and each ledger merge."""
    for m in report.merges:
        typer.echo(f"{label}: {m}")
    if report.archive is not None:
        first, last, source = report.archive
        typer.echo(f"{label}: an archive of {source}: records {first}..{last}")
    for a in report.anchors:
        typer.echo(f"{label}: {a}; verify that file with `bsp audit verify --ledger {a.archive}` and its "
                   f"continuity with `bsp audit verify --ledger {label} --archive {a.archive}`")


def _verify_one(ledger: Path, label: str, key: bytes, max_breaks: int, progress_every: float) -> None:
    """Check ``ledger``'s chain; the output names it ``label`` (its path, or which engine's snapshot)."""
    from engine.ledger_store import LedgerError, connect, require_bsp_ledger

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
        typer.echo(f"\n{label}: audit verify interrupted (Ctrl-C): the chain was not fully checked, "
                   f"nothing is proven", err=True)
        raise typer.Exit(130) from None
    finally:
        con.close()
    counts = ", ".join(f"{n} {t}" for t, n in report.by_table.items())
    summary = (f"{report.records} records ({counts}) in {report.seconds:.3f} s "
               f"({report.rate:,.0f} records/s), last seq {report.last_seq}")
    if report.anchors and report.archive is None:
        summary += f" (records 1..{report.anchors[-1].chain_seq} archived)"
    if len(report.keys_used) > 1:       # the audit key was rotated: which key sealed which records
        summary += "; sealed with " + ", ".join(f"{k} from seq {s}" for s, k in report.keys_used)
    if report.ok:
        typer.echo(f"{label}: audit chain intact: {summary}")
        _anchor_lines(label, report)
        return
    if report.missing and not report.breaks:
        for m in report.missing:
            typer.echo(f"{label}: cannot verify: {m}", err=True)
        from engine.audit import key_source

        typer.echo(f"{label}: no break found in what could be checked, but it is not proven intact: give the "
                   f"audit keyring from {key_source(key)} every key the ledger was sealed with (JSON "
                   f"{{\"current\": ..., \"keys\": {{...}}}}, docs/security.md#rotating-the-audit-key); "
                   f"checked {summary}", err=True)
        raise typer.Exit(2)
    if not report.breaks:
        _unprotected(label, report, summary)
        raise typer.Exit(UNPROTECTED_EXIT)
    if report.wrong_key:
        typer.echo(f"error: {label}: {report.breaks[0].what}", err=True)
        typer.echo(f"checked {summary}", err=True)
        raise typer.Exit(1)
    if report.stopped_early:
        summary += (f"; stopped after {len(report.breaks)} problems (--max-breaks): the records after seq "
                    f"{report.last_seq} and the chain head were not checked")
    first = report.breaks[0]
    typer.echo(f"{label}: audit chain BROKEN at {first}", err=True)
    for b in report.breaks[1:]:
        typer.echo(f"  also: {b}", err=True)
    typer.echo(f"checked {summary}", err=True)
    head_fix = any(b.table == "audit_head" and b.record == "kept outside the ledger" for b in report.breaks)
    if head_fix:
        from engine.audit_cut import head_path
        typer.echo(_HEAD_FIX.format(label=label, head=head_path(ledger)), err=True)
    for a in report.anchors:
        typer.echo(f"  {a}", err=True)
    if report.unprotected:
        typer.echo(f"also not protected (written without an audit key): {_spans(report)}", err=True)
    for m in report.missing:
        typer.echo(f"also cannot verify: {m}", err=True)
    if not head_fix:
        typer.echo(break_fix(label, report.breaks), err=True)
    raise typer.Exit(1)


# the tables whose record names its deal first (``<deal id> step 2``): a deal a backup can show as it was
_DEAL_TABLES = ("deals", "deal_steps", "deal_events", "dead_letters")


def break_fix(label: str, breaks: Any) -> str:
    """What an auditor does after a break: keep the evidence, see what the record held, restore; the deal to
    look at and how far the chain verified, when the breaks say."""
    seqs = [b.seq for b in breaks if b.seq is not None]
    deal = next((b.record.split()[0] for b in breaks if b.table in _DEAL_TABLES and b.record), None)
    before = (f"; no break before seq {min(seqs)}: the records before it verify" if seqs else "")
    show = (f"bsp deals show {deal} --ledger BACKUP against --ledger {label}" if deal else
            f"bsp deals show ID --ledger BACKUP against --ledger {label}")
    return (f"what to do: {label} was changed outside bsp (a record modified, deleted, moved or added){before}. "
            f"Treat it as an incident: keep the evidence first (copy the file with its .wal and .audit-head, "
            f"make the copy read-only) and write nothing to it (an engine start, bsp deals resolve, bsp dead "
            f"retry or purge append to it). See what the record held in a backup or ledger snapshot from before "
            f"that verifies (bsp audit verify --ledger BACKUP; {show}), then restore from it "
            f"(docs/runbook.md#restoring-the-ledger-from-a-snapshot); docs/tour-auditor.md#after-a-break")


UNPROTECTED_EXIT = 3
# after a break against the head kept beside the ledger (engine/audit_cut.py): which file to put back, or why not
_HEAD_FIX = ("what to do: {head} and {label} disagree, and no writer has recorded it yet. An older copy of the "
             "ledger put in place by mistake: put the newest ledger back, and verify again. A backup restored on "
             "purpose: before the engine starts, `bsp ledger merge OLD_COPY --ledger {label}` (OLD_COPY: the "
             "ledger taken aside before the restore) copies back what the backup lacks and names the gap in its "
             "record (docs/runbook.md#restoring-the-ledger-from-a-snapshot); without it the next start records "
             "the gap as an `audit break` (it is one: the copy lacks what was written after it), and verify "
             "reports that record from then on; a copy of the whole folder, head "
             "included, taken at a clean stop and put back together, matches (docs/operations.md#the-runbook). "
             "Neither: records were deleted while bsp was stopped; keep both files as they are for the "
             "investigation (docs/security.md#a-cut-while-the-engine-was-stopped)")
MAX_SPANS = 5
KEY_HINT = (f"to protect the records written from now on, give the engine an audit key: ledger.audit_key in "
            f"platform.yaml, or {ENV_KEY_FILE} (a file holding a base64 key of at least 32 random bytes, e.g. "
            f"`openssl rand -base64 32 > audit.key`) or {ENV_KEY}; verify with the same key (--deployment "
            f"platform.yaml; docs/security.md, section The key); records already written stay unprotected")


def _spans(report: Any) -> str:
    spans = report.unprotected
    text = "; ".join(str(u) for u in spans[:MAX_SPANS])
    return text + (f"; and {len(spans) - MAX_SPANS} more spans" if len(spans) > MAX_SPANS else "")


def _unprotected(ledger: Any, report: Any, summary: str) -> None:
    """No tampering found, but some (or all) records carry no mac: written while the engine had no key."""
    n = report.unprotected_records
    if not report.protected_records:
        typer.echo(f"{ledger}: audit chain NOT PROTECTED: none of its {n} records has a mac, they were written "
                   f"without an audit key ({_spans(report)}), so a change to them cannot be detected; "
                   f"{KEY_HINT}")
    else:
        tail = report.unprotected[-1]
        hint = KEY_HINT if tail.last_seq == report.last_seq else (
            f"the audit key was configured after they were written (the chain is keyed from seq "
            f"{tail.last_seq + 1} on); records cannot be sealed after the fact")
        typer.echo(f"{ledger}: audit chain intact for the {report.protected_records} records written with the "
                   f"audit key; {n} records are NOT PROTECTED (written without an audit key): {_spans(report)}; "
                   f"{hint}")
    typer.echo(f"checked {summary}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


__all__ = ["break_fix", "register", "verify"]
