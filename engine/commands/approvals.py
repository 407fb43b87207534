"""``bsp approvals list|approve|reject|reveal``: four-eyes requests (engine/four_eyes.py)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from engine.commands.ledger_keys import DEPLOYMENT_OPT, ENV_OPT, LEDGER_OPT, ledger_keys
from engine.commands.admin_url import DEPLOYMENT_ADMIN_OPT
from engine.commands.live import CA_OPT, CERT_OPT, KEY_OPT, LIVE_OPT, TOKEN_FILE_OPT, URL_OPT, lock_hint

approvals_app = typer.Typer(help="Four eyes (maker-checker): operator actions asked by one operator, waiting for "
                                 "another's approval (the deployment file's operators.four_eyes).",
                            no_args_is_help=True)

REASON_OPT = typer.Option(..., "--reason", help="Why (what you checked); recorded with the decision (1 to 2,000 "
                                                "printable characters).")


def _render(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from engine.four_eyes import stamp
    from engine.reports.text import printable

    def text(v: Any) -> str:
        return escape(printable("" if v is None else str(v)))

    table = Table(title=escape(title), title_justify="left")
    for name in ("requested (UTC)", "action", "target", "by", "what", "state", "expires / decided", "request"):
        table.add_column(name, overflow="fold")
    for r in rows:
        p = r.get("params") or {}
        what = (f"{p.get('outcome')}: {p.get('note')}" if p.get("outcome") else "again" if p.get("again") else
                f"version {p['version']}" if p.get("version") else
                f"before {p['before']} to {p.get('out')}" if p.get("before") else "")
        d = r.get("decision") or {}
        end = (r.get("expires_at") if r.get("state") in ("pending", "expired") else
               f"{d.get('by') or ''} {stamp(d.get('at'))}: {d.get('reason') or d.get('why') or ''}")
        table.add_row(text(stamp(r.get("at"))), text(r.get("action")), text(r.get("target")), text(r.get("by")),
                      text(what), text(r.get("state")), text(end), text(r.get("id")))
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 220)
    console.print(table)
    if not rows:
        console.print("no four-eyes request")


@approvals_app.command("list")
def list_(
    every: bool = typer.Option(False, "--all", help="Every request: approved, rejected, expired, void, running and "
                                                    "lapsed ones too."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="Most to show (newest first)."),
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
    """The four-eyes requests waiting for a second operator, newest first (--all: decided and expired ones too).

    Each names its action (dead.retry, deal.release, deal.resolve, dead.purge, deal.reveal, dead.reveal,
    config.reload, ledger.archive), the deal or dead letter, who asked (an admin token's name; on the ledger file the OS user), what (outcome and
    note), its state (pending, expired, approved, rejected, void: its target changed meanwhile; running;
    interrupted: approved, then cut by a crash before its outcome was recorded, listed with the pending ones:
    approve it again or reject it; lapsed: an approved reveal not fetched in time) and when it expires or who
    decided it and why.
    --live asks the running engine (`GET /approvals`); else the ledger file is read.
    Exit 0; 1 (--live) the engine cannot be reached or answers with a problem; 2 no ledger file.
    """
    import orjson

    if live:
        from engine.commands.admin import _call, _client, _problem

        with _client(url.rstrip("/"), token_file, ca, cert, key) as client:
            r = _call(client, "GET", "/approvals", params={"all": "1" if every else "0", "limit": str(limit)})
            if r.status_code != 200:
                raise _problem(r)
            rows = list(r.json()["approvals"])
        where = f"the engine at {url}"
    else:
        from engine.commands.deals import require_ledger
        from engine.four_eyes import requests_in_file

        found = ledger_keys(ledger, deployment, env, "bsp approvals list")
        require_ledger(found.path)
        rows = requests_in_file(found.path, every=every, limit=limit)
        where = str(found.path)
    if as_json:
        for r in rows:
            sys.stdout.buffer.write(orjson.dumps(r, default=str, option=orjson.OPT_UTC_Z) + b"\n")
        return
    _render(rows, f"four-eyes requests in {where}" + ("" if every else ", pending"))


def _decide_live(url: str, token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path],
                 key: Optional[Path], request_id: str, verb: str, reason: str) -> dict[str, Any]:
    from urllib.parse import quote

    from engine.commands.admin import _call, _client, _problem

    with _client(url.rstrip("/"), token_file, ca, cert, key) as client:
        r = _call(client, "POST", f"/approvals/{quote(request_id, safe='')}/{verb}", json={"reason": reason})
        if r.status_code == 200:
            return dict(r.json())
        try:
            detail = str(r.json().get("detail") or r.text)
        except ValueError:
            detail = r.text
        if r.status_code == 404 and "four-eyes request" in detail:
            typer.echo(f"error: the engine at {url}: {detail}", err=True)
            raise typer.Exit(1)
        if r.status_code == 404:
            typer.echo(f"error: {url} has no POST /approvals/{{id}}/{verb} (an engine older than this bsp?)", err=True)
            raise typer.Exit(1)
        if r.status_code == 409:
            typer.echo(f"error: {detail}", err=True)
            raise typer.Exit(1)
        if r.status_code == 400:
            typer.echo(f"error: {detail}", err=True)
            raise typer.Exit(2)
        raise _problem(r)


def _report(done: dict[str, Any], where: str) -> None:
    from engine.four_eyes import approval_text

    typer.echo(f"{approval_text({**done, 'run': None})}, recorded in {where}")
    run = done.get("run")
    if run:
        typer.echo(f"carried out: {run.get('outcome')}")
        if run.get("reply") is not None:      # a release: where its run's reply went, as `bsp deals resolve` says
            from engine.commands.deals_held import reply_lines

            for line in reply_lines(run):
                typer.echo(line)
        if not run.get("ok"):
            typer.echo(f"warning: the approved action did not go through: {run.get('outcome')}", err=True)
            raise typer.Exit(1)


@approvals_app.command("approve")
def approve(
    request_id: str = typer.Argument(..., help="The request's id (32 hex digits, or its first 8 or more)."),
    reason: str = REASON_OPT,
    live: bool = LIVE_OPT,
    deployment: Optional[Path] = DEPLOYMENT_ADMIN_OPT,
    env: Optional[str] = ENV_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """Approve another operator's request and carry its action out, once (the running engine does it).

    Only through the running engine's admin API (--live, `POST /approvals/{id}/approve`): who approves is the
    name of the admin token, which the engine authenticated; it must not be the requester's. On the ledger
    file bsp could tell only the OS user running it, which proves too little for a second pair of eyes, so
    an approval without --live is refused (exit 2). A request approved, rejected, void or expired already is
    refused (exit 1) and nothing runs twice; one whose dead letter or deal changed meanwhile (retried,
    released, resolved) is closed void and refused. An interrupted request (approved, then cut by a crash)
    may be approved again: the action's own record is read first (the letter's retry claim, the deal's
    hold or flag, the configuration's version) and it runs only if that shows it did not take effect,
    else it is closed void. A deal.reveal approved is fetched by its requester (`bsp approvals reveal`).
    The approval and the action's outcome record both operators (`bsp deals show`, `bsp dead show`).
    Exit 0 approved and carried out; 1 refused, not carried out, no such request, or the engine cannot be
    reached; 2 without --live, or a bad reason or id.
    """
    from engine.four_eyes import blocked_by_offline, check_reason

    try:
        reason = check_reason(reason)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).split(": ", 1)[1], param_hint="--reason") from None
    if not live:
        typer.echo(f"error: {blocked_by_offline('the approval')}", err=True)
        raise typer.Exit(2)
    _report(_decide_live(url, token_file, ca, cert, key, request_id, "approve", reason), f"the engine at {url}")


@approvals_app.command("reject")
def reject(
    request_id: str = typer.Argument(..., help="The request's id (32 hex digits, or its first 8 or more)."),
    reason: str = REASON_OPT,
    by: Optional[str] = typer.Option(None, "--by", help="Without --live: who rejects, kept beside the OS user "
                                                        "(stated_by); the OS user running bsp is recorded as who."),
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
    """Reject a pending request (its requester may withdraw it so): nothing is done, the request is closed.

    With --live the running engine records it (`POST /approvals/{id}/reject`), who is the admin token's name;
    without, the ledger file is written (no engine may hold it) with the audit key the engine writes with, who
    is the OS user running bsp (a rejection moves no money: bsp accepts it there).
    Exit 0 rejected; 1 not pending (decided or expired), no such request, or the engine cannot be reached;
    2 a bad reason or id, no ledger file, a locked ledger, a missing or wrong audit key.
    """
    from engine.four_eyes import Refused, check_reason, decide
    from engine.operator import os_user_not_by

    try:
        reason = check_reason(reason)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).split(": ", 1)[1], param_hint="--reason") from None
    if live:
        _report(_decide_live(url, token_file, ca, cert, key, request_id, "reject", reason), f"the engine at {url}")
        return
    from engine.commands.deals import require_ledger
    from engine.ledger_store import LedgerError, LedgerStore

    found = ledger_keys(ledger, deployment, env, "bsp approvals reject", audit=True)
    require_ledger(found.path)
    try:
        who, where = os_user_not_by(by)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).split(": ", 1)[1], param_hint="--by") from None
    try:
        store = LedgerStore.open(found.path, found.keys.audit_key)
        try:
            done = decide(store, request_id, False, who, "ledger file", reason, **where)
        finally:
            store.close()
    except Refused as exc:
        typer.echo(f"error: {found.path}: {exc}", err=True)
        raise typer.Exit(1) from None
    except (LedgerError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        lock_hint(exc)
        raise typer.Exit(2) from None
    if done is None:
        typer.echo(f"error: {found.path}: no four-eyes request {request_id!r}; list them with `bsp approvals list`",
                   err=True)
        raise typer.Exit(1)
    _report(done, str(found.path))


@approvals_app.command("reveal")
def reveal(
    request_id: str = typer.Argument(..., help="The deal.reveal or dead.reveal request's id (32 hex digits, or its "
                                                "first 8 or more)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
    live: bool = LIVE_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """Fetch your approved reveal: the deal with its sealed fields (the dead letter with its message) in clear, once.

    Under four eyes (operators.four_eyes lists deal.reveal) `bsp deals show ID --live --reveal` records a
    request (dead.reveal: `bsp dead show ID --live --reveal`, the message of a dead letter, to a token with the
    role raw); once another operator approves it, its requester (the same admin token) fetches it here, once,
    before the approval's fetch_until (four_eyes_expire after it) (`POST /approvals/{id}/reveal`). The fetch is
    recorded first (`approval done`, and `revealed` on the deal with both operators); the values are in this
    answer only, never in the ledger, the engine's log or `bsp approvals list`. Only with --live: the engine
    holds the keyring.
    Exit 0 shown; 1 refused (not yours, not approved, fetched already, lapsed, the engine has no keyring), no
    such request, or the engine cannot be reached; 2 without --live.
    """
    from urllib.parse import quote

    import orjson

    from engine.commands.admin import _call, _client, _problem
    from engine.commands.deals import _json_default, _story_text
    from engine.commands.live import typed
    from engine.exact_json import api_json
    from engine.reports.text import printable

    if not live:
        typer.echo("error: a reveal under four eyes is decrypted by the running engine for its requester: add "
                   "--live (and your admin token)", err=True)
        raise typer.Exit(2)
    with _client(url.rstrip("/"), token_file, ca, cert, key) as client:
        r = _call(client, "POST", f"/approvals/{quote(request_id, safe='')}/reveal")
        if r.status_code != 200:
            try:
                detail = str(r.json().get("detail") or r.text)
            except ValueError:
                detail = r.text
            if r.status_code in (404, 409, 403):
                typer.echo(f"error: the engine at {url}: {detail}", err=True)
                raise typer.Exit(1)
            raise _problem(r)
        done = api_json(r.text)
    if "dead_letter" in done:         # a dead.reveal: the letter with its message in clear
        _show_letter(done, as_json)
        return
    deal = typed(done["deal"])
    warnings = [str(w) for w in done.get("warnings") or ()]
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(deal, default=_json_default, option=orjson.OPT_UTC_Z) + b"\n")
        sys.stdout.buffer.flush()
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        return
    typer.echo(printable(_story_text(deal, warnings)))


def _show_letter(done: dict[str, Any], as_json: bool) -> None:
    """An approved dead.reveal fetched: the letter as `bsp dead show --reveal` shows it (its message's text, or
    offset, hex and ASCII; its deal's request with the sealed fields in clear)."""
    import base64

    import orjson

    from engine.commands.dead import _as_text, _block, _default, hexdump
    from engine.reports.text import printable

    r = dict(done["dead_letter"])
    encoded = r.pop("raw_base64", None)
    r["raw"] = base64.b64decode(encoded) if encoded is not None else None
    warnings = [str(w) for w in done.get("warnings") or ()]
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(r, default=_default, option=orjson.OPT_UTC_Z) + b"\n")
        sys.stdout.buffer.flush()
    else:
        for k, v in r.items():
            if k not in ("raw", "deal_request", "history", "approvals"):
                typer.echo(printable(f"{k:>15}: {'' if v is None else v}"))
        if r.get("deal_request") is not None:
            typer.echo(f"{'deal request':>15}: classified fields decrypted (bsp deals show {r.get('id')})")
            typer.echo(printable(_block(r["deal_request"])))
        raw = r["raw"]
        text = _as_text(raw) if raw is not None else None
        typer.echo(f"{'raw':>15}: " + ("(unreadable)" if raw is None else f"{len(raw)} bytes" + (
            "" if text is not None else ", binary: offset, hex, ASCII")))
        if raw is not None:
            typer.echo(text if text is not None else "\n".join(hexdump(raw)))
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")


__all__ = ["register"]
