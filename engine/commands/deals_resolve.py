"""``bsp deals resolve``: record that an operator settled a deal flagged for an operator (engine.deal_resolve)."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Optional

import typer

from engine.commands.live import CA_OPT, CERT_OPT, KEY_OPT, LIVE_OPT, TOKEN_FILE_OPT, URL_OPT, lock_hint
from engine.commands.ledger_keys import DEPLOYMENT_OPT, ENV_OPT, LEDGER_OPT, ledger_keys
from engine.deal_resolve import HOLD_OUTCOMES, OUTCOMES

_OUTCOMES_HELP = "; ".join(f"{k}: {v}" for k, v in {**OUTCOMES, **HOLD_OUTCOMES}.items())


def _os_user() -> str:
    from engine.operator import os_user

    return os_user()          # no name for this uid (a container): "uid N" rather than a guess


def _live(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path], key: Optional[Path],
          deal_id: str, body: dict[str, str]) -> dict[str, Any]:
    """``POST /deals/{id}/resolve``: the engine's answer; exits 1 on a refusal or a missing deal, 2 on a bad id."""
    from urllib.parse import quote

    from engine.commands.admin import _call, _client, _problem

    with _client(url.rstrip("/"), token_file, ca, cert, key) as client:
        r = _call(client, "POST", f"/deals/{quote(deal_id, safe='')}/resolve", json=body)
        if r.status_code == 200:
            return dict(r.json())
        if r.status_code == 202:            # four eyes: recorded as a request, waiting for a second operator
            from engine.four_eyes import pending_text
            typer.echo(pending_text(r.json(), True))
            raise typer.Exit(0)
        try:
            detail = str(r.json().get("detail") or r.text)
        except ValueError:
            detail = r.text
        if r.status_code == 404 and "no deal" in detail:
            from engine.archive_lookup import resolve_hint

            try:
                info = r.json().get("archived")
            except (ValueError, AttributeError):
                info = None
            why = (f": {resolve_hint(info, deal_id)}" if isinstance(info, dict) else
                   ". List the flagged ones with `bsp deals --flagged --live`.")
            typer.echo(f"error: the engine at {url} has no deal {deal_id!r}{why}", err=True)
            raise typer.Exit(1)
        if r.status_code == 404:
            typer.echo(f"error: {url} has no POST /deals/{{id}}/resolve (an engine older than this bsp?); stop it "
                       f"and resolve with the ledger file, or upgrade it", err=True)
            raise typer.Exit(1)
        if r.status_code == 409:
            typer.echo(f"error: {detail}", err=True)
            raise typer.Exit(1)
        if r.status_code == 400:
            typer.echo(f"error: {detail}", err=True)
            raise typer.Exit(2)
        raise _problem(r)


def resolve(
    deal_id: str = typer.Argument(..., help="The flagged deal's id (32 hex digits, or its first 8 or more)."),
    outcome: str = typer.Option(..., "--outcome", help=f"How it was settled. {_OUTCOMES_HELP}."),
    note: str = typer.Option(..., "--note", help="How, with whom, the counterpart's or your ticket's reference "
                                                 "(at most 2,000 characters)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who settled it (default: the OS user running bsp). With --live the "
                                                        "engine records the admin token's name as who, this beside it "
                                                        "(stated_by)."),
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_OPT,
    env: Optional[str] = ENV_OPT,
    live: bool = LIVE_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """Record that a deal flagged for an operator was settled with its counterpart, or a compliance officer's
    decision on a deal held by a screening (--outcome release or reject).

    Appends the event `resolved` to the deal in the audit chain (outcome, note, who, when; nothing is
    changed): the deal leaves `bsp deals --flagged` (`--flagged --all` still shows it, with its
    resolution) and `bsp deals show` tells it. Without --live the ledger file is written (no engine may
    hold it) with the audit key the engine writes with: --deployment platform.yaml (its ledger.audit_key),
    else BSP_AUDIT_KEY_FILE / BSP_AUDIT_KEY; a keyed ledger is not written without its key. With --live
    the running engine records it (`POST /deals/{id}/resolve`): who is the admin token's name, --by kept
    beside it (stated_by), with the client's address (and certificate, over mutual TLS). A deal not flagged, already resolved, or already settled
    (its flagged ISO 8583 reversal acknowledged since by the host, with an approval) is refused.
    An outcome not-applied or undone gives back what the deal counted in `limit` totals (event `released`
    per total; with --live at once, else from the engine's next start); applied and written-off keep it,
    and count again a deal that counts nothing now (it failed undone, then its reversal was flagged).
    The deal's ISO 8583 reversals still stored and forwarded are cancelled (event `reversal cancelled`):
    with --live at once, else when the engine next starts, before it sends any; the command says so.
    A deal held by a screening (`bsp deals --held`): release (a false positive) appends `hold released` and
    runs its request on through the route once (the released hit passes; the calls go out), as a new deal the
    command names; offline it runs in this process with --deployment's routes, against the counterparts. Its
    reply cannot go back on the sender's connection (the sender was answered "held"): the command says where
    it went (published to a nats consume channel's reply_subject with --live; else to no one) and prints it,
    kept on the new deal (event `hold release ran` on the held one).
    reject (a true match) appends `hold rejected`: the deal stays refused, its request is never run. A deal
    already released or rejected is refused (docs/screening.md#holding-a-hit).
    Four eyes (the deployment file's operators.four_eyes lists deal.release, or deal.resolve for the other
    outcomes but reject; on the ledger file also the policy the last engine recorded in it): nothing is done; the
    request is recorded (`NOT done yet: four eyes: ...`; who: the admin token's name with --live, else the OS
    user running bsp, --by beside it) and another operator approves it with `bsp approvals approve ID --live
    --reason TEXT`, which carries it out once, both names recorded (docs/security.md#four-eyes).
    Exit 0 recorded (or requested); 1 refused, no such deal (one moved out by `bsp ledger archive` is named with its
    archive file: an archive is read-only, and holds no open flag, so it has nothing to resolve), or
    (--live) the engine cannot be reached or answers with a problem; 2 a bad option, no ledger file, a locked ledger, or a missing or wrong audit key.
    """
    from engine.deal_resolve import Refused, check_input
    from engine.ledger_query import AmbiguousId
    from engine.ledger_store import LedgerError

    who = by if by is not None else _os_user()
    try:
        outcome, note, who = check_input(outcome, note, who)
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        raise typer.BadParameter(str(exc).split(": ", 1)[1], param_hint=f"--{field}") from None
    action = "deal.release" if outcome == "release" else None if outcome in HOLD_OUTCOMES else "deal.resolve"
    if action is not None and not live:
        _four_eyes_offline(action, deal_id, outcome, note, by, ledger, deployment, env)
    if outcome in HOLD_OUTCOMES:
        _decide_hold(deal_id, outcome, note, who, ledger, deployment, env, live, url, token_file, ca, cert, key)
        return
    if live:
        if deployment is not None or ledger is not None:
            raise typer.BadParameter("--live records in the running engine, with its own ledger and keys: drop "
                                     "--deployment / --ledger", param_hint="--live")
        done = _live(url, token_file, ca, cert, key, deal_id, {"outcome": outcome, "note": note, "by": who})
        where = f"the engine at {url}"
    else:
        from engine.commands.deals import require_ledger
        from engine.deal_resolve import resolve_in_file

        found = ledger_keys(ledger, deployment, env, "bsp deals resolve", audit=True)
        path = found.path
        require_ledger(path)
        try:
            user = _os_user()        # beside a --by naming someone else: who ran the command
            done = resolve_in_file(path, deal_id, outcome, note, who, found.keys.audit_key,
                                   host=socket.gethostname(), os_user=user if who != user else None, hint_list=f"bsp deals --flagged --ledger {path}")
        except Refused as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(1) from None
        except (AmbiguousId, LedgerError, ValueError) as exc:     # LedgerError: also KeyMismatch
            typer.echo(f"error: {exc}", err=True)
            lock_hint(exc)
            raise typer.Exit(2) from None
        if done is None:
            from engine.archive_lookup import archived_where, resolve_hint

            info = archived_where(path, deal_id)
            why = (f": {resolve_hint(info, deal_id, path.parent)}" if info is not None else
                   f". List the flagged ones with `bsp deals --flagged --ledger {path}`.")
            typer.echo(f"error: {path}: no deal {deal_id!r}{why}", err=True)
            raise typer.Exit(1)
        where = str(path)
    from engine.deal_resolve import released_lines, reversal_lines

    beside = "".join(f", {k.replace('_', ' ')} {done[k]}" for k in ("stated_by", "os_user") if done.get(k))
    typer.echo(f"deal {done['deal_id']} resolved ({done['outcome']}) by {done['by']}"
               f"{f' ({beside[2:]})' if beside else ''} at {done['at']}, recorded in {where}")
    for n in released_lines(done.get("released") or (), live, done.get("counted") or ()):
        typer.echo(n)
    notes, warnings = reversal_lines(done.get("reversals") or ())
    for n in notes:
        typer.echo(n)
    for w in warnings or done.get("warnings") or ():
        typer.echo(f"warning: {w}", err=True)


def _four_eyes_offline(action: str, deal_id: str, outcome: str, note: str, by: Optional[str], ledger: Optional[Path],
                       deployment: Optional[Path], env: Optional[str]) -> None:
    """Four eyes on the ledger file (engine/four_eyes.py): when the deployment file or the ledger's recorded
    policy lists ``action``, the request is recorded (who: the OS user) and the command ends (exit 0); an
    approval is taken through the running engine only."""
    from engine.commands.deals import require_ledger
    from engine.four_eyes import Refused as FourEyesRefused, offline_policy, pending_text, request_in_file
    from engine.ledger_query import AmbiguousId, get_deal
    from engine.ledger_store import LedgerError

    found = ledger_keys(ledger, deployment, env, "bsp deals resolve", audit=True)
    policy = offline_policy(found.path, found.deployment)
    if policy is None or not policy.covers(action):
        return
    require_ledger(found.path)
    try:
        deal = get_deal(found.path, deal_id)
    except (AmbiguousId, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if deal is None:
        typer.echo(f"error: {found.path}: no deal {deal_id!r}", err=True)
        raise typer.Exit(1)
    try:
        req = request_in_file(found.path, found.keys.audit_key, action, deal["deal_id"],
                              {"outcome": outcome, "note": note}, policy.expire, by)
    except FourEyesRefused as exc:
        typer.echo(f"error: {found.path}: four eyes: {exc}", err=True)
        raise typer.Exit(1) from None
    except (LedgerError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        lock_hint(exc)
        raise typer.Exit(2) from None
    typer.echo(pending_text(req, False))
    raise typer.Exit(0)


def _decide_hold(deal_id: str, outcome: str, note: str, who: str, ledger: Optional[Path],
                 deployment: Optional[Path], env: Optional[str], live: bool, url: str, token_file: Optional[Path],
                 ca: Optional[Path], cert: Optional[Path], key: Optional[Path]) -> None:
    """release / reject of a deal held by a screening (engine.deal_hold)."""
    from engine.commands.deals_held import decide_offline, report
    from engine.deal_resolve import Refused
    from engine.ledger_query import AmbiguousId
    from engine.ledger_store import LedgerError

    if live:
        if deployment is not None or ledger is not None:
            raise typer.BadParameter("--live records in the running engine, with its own ledger and keys: drop "
                                     "--deployment / --ledger", param_hint="--live")
        report(_live(url, token_file, ca, cert, key, deal_id, {"outcome": outcome, "note": note, "by": who}),
               f"the engine at {url}")
        return
    from engine.commands.deals import require_ledger

    found = ledger_keys(ledger, deployment, env, "bsp deals resolve", audit=True, fields=True)
    require_ledger(found.path)
    user = _os_user()
    try:
        done = decide_offline(found, deal_id, outcome, note, who, host=socket.gethostname(),
                              os_user=user if who != user else None)
    except Refused as exc:
        typer.echo(f"error: {found.path}: {exc}", err=True)
        raise typer.Exit(1) from None
    except (AmbiguousId, LedgerError, ValueError) as exc:
        if isinstance(exc, typer.BadParameter):
            raise
        typer.echo(f"error: {exc}", err=True)
        lock_hint(exc)
        raise typer.Exit(2) from None
    if done is None:
        typer.echo(f"error: {found.path}: no deal {deal_id!r}. List the held ones with `bsp deals --held "
                   f"--ledger {found.path}`.", err=True)
        raise typer.Exit(1)
    report(done, str(found.path))


__all__ = ["resolve"]
