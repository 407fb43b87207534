"""``bsp dead``: list, show, retry and purge dead letters (docs/ledger.md#dead_letters)."""
from __future__ import annotations

import base64
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import orjson
import typer

from engine.commands.live import (CA_OPT, CERT_OPT, KEY_OPT, LIVE_OPT, PANEL, TOKEN_FILE_OPT, URL_OPT, fetch,
                                  lock_hint)
from engine.commands.ledger_keys import DEPLOYMENT_LEDGER_OPT, DEPLOYMENT_OPT, ENV_OPT, LEDGER_OPT, ledger_keys
from engine.commands.stdout import quiet_pipe
from engine.defaults import DEAD_KINDS, DEAD_STATUSES

SELECT = "Selecting by filters"

dead_app = typer.Typer(help="Dead letters: every exchange rejected or failed (unrouted, malformed, refused by a "
                "rule or a counterpart, unreachable ...), kept with its message.",
                       no_args_is_help=True, add_completion=False)


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Decimal):          # a deal request's amount, exactly
        return str(value)
    raise TypeError(type(value).__name__)


def _no_such(ids: list[str]) -> str:
    """"no dead letter X" for ids not found; a short hex id is taken for the prefix it is, and told so."""
    bare = [i.strip("'") for i in ids]
    prefix = any(len(i) < 32 and all(c in "0123456789abcdefABCDEF" for c in i) for i in bare)
    return f"no dead letter {', '.join(ids)}" + (
        " (a dead letter is found by its whole 32-digit id, as `bsp dead list` prints it, not by a prefix)"
        if prefix else "")


def _query(ledger: Path, **filters: Any) -> list[dict[str, Any]]:
    from engine.commands.deals import require_ledger
    from engine.ledger_query import query_dead_letters
    from engine.ledger_store import LedgerError

    require_ledger(ledger)
    try:
        return query_dead_letters(ledger, **filters)
    except LedgerError as exc:
        typer.echo(f"error: {exc}", err=True)
        lock_hint(exc)
        raise typer.Exit(2) from None


def _filters(route: str | None, channel: str | None, reason: str | None, status: str | None,
             since: str | None, until: str | None, *, kind: str | None = None,
             until_option: str = "--until", code: str | None = None) -> dict[str, Any]:
    from engine.commands.deals import time_range

    if status is not None and status not in DEAD_STATUSES:
        raise typer.BadParameter(f"{status!r} is not a status; use one of {', '.join(DEAD_STATUSES)}",
                                 param_hint="--status")
    if kind is not None and kind not in DEAD_KINDS:
        raise typer.BadParameter(f"{kind!r} is not an error kind; use one of {', '.join(DEAD_KINDS)} (the kind "
                                 f"column of bsp dead list)", param_hint="--kind")
    after, before = time_range(since, until, what="dead letter", until_option=until_option)
    found = dict(route=route, channel=channel, reason=reason, status=status, kind=kind, since=after, until=before)
    return found if code is None else {**found, "code": code}


_COLUMNS = ("id", "at (UTC)", "status", "channel", "route", "kind", "code", "reason")


def _render_table(rows: list[dict[str, Any]], title: str) -> None:
    """The rows as a table under a title naming where they come from, the same for the ledger file and
    for --live; a counterparty's text is shown as it is, terminal controls made visible."""
    from engine.reports.text import printable

    typer.echo(printable(title))
    if not rows:
        typer.echo("no dead letters match these filters")
        return
    cells = [tuple(printable("-" if v is None else str(v)) for v in (
        r["id"], r["at"].strftime("%Y-%m-%d %H:%M:%S"), r["status"], r["channel"], r["route"], r["error_kind"],
        r.get("error_code"), r["reason"])) for r in rows]
    widths = [max(len(c[i]) for c in [_COLUMNS, *cells]) for i in range(len(_COLUMNS) - 1)]
    for line in [_COLUMNS, *cells]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1])


@dead_app.command("list")
@quiet_pipe
def list_(
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_LEDGER_OPT,
    env: Optional[str] = ENV_OPT,
    route: Optional[str] = typer.Option(None, "--route", help="Only this route."),
    channel: Optional[str] = typer.Option(None, "--channel", help="Only this channel."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Reason contains this text (any case; `flagged` "
                                         "finds the flagged deals' letters, also those whose ISO 8583 reversal "
                                         "was flagged since)."),
    status: Optional[str] = typer.Option(None, "--status", help=f"Only this status: {', '.join(DEAD_STATUSES)}."),
    kind: Optional[str] = typer.Option(None, "--kind", help=f"Only this error kind: {', '.join(DEAD_KINDS)} "
                                       "(the kind column)."),
    code: Optional[str] = typer.Option(None, "--code", help="Only this error code, exactly (the code column: the "
                                       "code its deal records, e.g. a rule's 13, 30 malformed, 91 unreachable)."),
    since: Optional[str] = typer.Option(None, "--since", help="At or after: ISO date/time or an age (30m, 2d)."),
    until: Optional[str] = typer.Option(None, "--until", help="Before: ISO date/time or an age."),
    every: bool = typer.Option(False, "--all", help="Every status (retried and purged ones too); without it, "
                               "and without --status, only what waits (new, not yet retried into a deal) or is "
                               "held by a retry (retrying)."),
    limit: int = typer.Option(50, "--limit", min=0, help="Most to show (newest first); 0 for all."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    live: bool = LIVE_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """List dead letters, newest first: a table under a line naming the ledger (or engine), or JSON lines.

    Without --status or --all, only the letters that wait for an operator (status new and not yet retried
    into a deal: one per message, a retry refused again leaves the message in its new deal's letter) and
    those a retry holds (retrying); --all lists every status, --status one. When more match than --limit
    shows (50 unless given), a last line says so (on standard error with --json).
    The ledger is --ledger, else the deployment file's (`--deployment platform.yaml`, as bsp run takes
    it). A running engine holds the ledger file locked: `--live` asks it instead, through its admin API
    (`GET /dead-letters`, page by page: --limit 0 lists every match), with the same filters; it prints
    the same table or JSON; a listing of more than one page (1,000 rows) shows its progress on a terminal.
    Exit 0 (also when none match); 1 the engine answered with a problem or cannot be reached
    (--live), or a deployment file with errors; 2 no ledger file, a bad option value, or a locked ledger.
    """
    if every and status is not None:
        raise typer.BadParameter("--all lists every status, --status one: give one of them", param_hint="--all")
    filters = _filters(route, channel, reason, status, since, until, kind=kind, code=code)
    ledger = ledger_keys(ledger, deployment, env, "bsp dead list").path
    open_only = not every and status is None
    which = "dead letters waiting (new or retrying; --all lists every status)" if open_only else "dead letters"
    ask = limit + 1 if limit else 0          # one more than shown: whether more match than --limit shows
    if live:
        rows = fetch(url, token_file, ca, cert, key, "/dead-letters", "dead_letters",
                     {**filters, "open": "true" if open_only else None}, ask, streamed=as_json)
        title = f"{which} in the engine at {url}"
    else:
        rows = _query(ledger, **filters, limit=ask or None, open_only=open_only)
        title = f"{which} in {ledger}"
    shown = 0
    more = False
    if as_json:
        for r in rows:
            if limit and shown == limit:
                more = True
                break
            sys.stdout.buffer.write(orjson.dumps(r, default=_default, option=orjson.OPT_UTC_Z) + b"\n")
            shown += 1
        sys.stdout.buffer.flush()
    else:
        listed = list(rows)
        more = bool(limit) and len(listed) > limit
        _render_table(listed[:limit] if limit else listed, title)
    if more:       # never a silent cut: the operator would take the newest --limit for all there is
        typer.echo(f"more dead letters match: the newest {limit:,} are shown; --limit 0 lists every one (or "
                   f"narrow the filters: --since, --kind, --route ...)", err=as_json)


@dead_app.command("show")
@quiet_pipe
def show(
    letter_id: str = typer.Argument(..., help="The dead letter id."),
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_OPT,
    env: Optional[str] = ENV_OPT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object (raw as hex, with --reveal)."),
    reveal: bool = typer.Option(False, "--reveal", help="Show the stored message (it may hold card numbers, "
                                "track data, names): decrypted with the field keyring when it was sealed "
                                "(--deployment's ledger.field_keys, else BSP_FIELD_KEYS_FILE or BSP_FIELD_KEYS). "
                                "Without it the message's bytes are withheld. Each reveal is recorded in the "
                                "audit trail first."),
    by: Optional[str] = typer.Option(None, "--by", help="With --reveal: who reveals, recorded with it (default: "
                                                        "the OS user running bsp)."),
    live: bool = LIVE_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """One dead letter; its message's bytes only with --reveal.

    Without --reveal the stored message (the bytes as received: they may hold a card number, track data, a
    name, and no format says which bytes are which) is withheld: `raw` says its size (or the field key it is
    sealed with) and its SHA-256, and the letter's deal, when it has one whose request decoded (rejected or
    failed), is shown as the ledger keeps its request: the fields its format classifies (pan, secret,
    personal) masked, as `bsp deals show` shows them (`deal request`; JSON `deal_request`). --reveal shows
    the bytes (text, or offset, hex and ASCII), decrypted with the field keyring when the letter was sealed
    (a sealed letter without the keyring: exit 2, as `bsp deals show --reveal`), and the deal's request with
    its classified fields decrypted.

    When a retry refused again left its message in another letter, `history` lists the letters of the
    message, oldest first, the one where it waits pointed at (JSON: `history`, [{id, status}]).
    A purged letter's raw line says when and by whom it was purged (its status event; with --live as the engine
    answers it: `purge`), or that bsp did not record who (a purge before 2026-11-28).

    A running engine holds the ledger file locked: `--live` asks it instead (`GET /dead-letters/{id}`; the
    message comes only to a token with the role raw, sealed as stored: to another, `raw` says the engine
    withheld it and why, and --reveal exits 2, recording nothing); --reveal decrypts here, with this
    shell's field keyring: the deployment file's ledger.field_keys (`--deployment platform.yaml`, as bsp run
    takes it), else BSP_FIELD_KEYS_FILE / BSP_FIELD_KEYS.
    Every --reveal is recorded first in the ledger's audit trail (PCI DSS 10.2): the event `revealed` on the
    letter's id, with who (--by, else the OS user), the host and what was shown (`message`, the deal
    request's sealed fields), never the bytes; on the ledger file with the audit key the engine writes with,
    with --live by the engine (`POST /dead-letters/{id}/reveals`). When it cannot be recorded, nothing is
    revealed (exit 2).
    Four eyes (operators.four_eyes lists dead.reveal): with --live the engine records a request and nothing
    is shown (exit 0; the engine withholds a message stored in clear from GET /dead-letters/{id}); once
    another operator approves it, the requester (a token with the role raw) fetches the message, decrypted by
    the engine, once: `bsp approvals reveal ID --live`. On the ledger file --reveal is refused (exit 2).
    Exit 0 shown (or, under four eyes, requested); 1 no such dead letter (one that `bsp ledger archive` may have moved is named with the
    archive file to look in), or (--live) the engine cannot be reached or answers with a problem;
    2 no ledger file, a locked ledger, --reveal of a sealed letter without the field keyring (or, --live, of a
    message the engine withheld from the token), a field key that is not the one the ledger sealed with under
    its id, or a reveal that could not be recorded.
    """
    from engine.archive_lookup import archived_where, hint
    from engine.commands.deals import needs_keyring, reveal_check
    from engine.deadletter import raw_bytes
    from engine.fieldcrypt import KeyringError

    from engine import fieldcrypt, reveal_log
    from engine.commands.deals import record_reveal, who_reveals

    who, where = who_reveals(by, reveal)
    found_keys = ledger_keys(ledger, deployment, env, "bsp dead show", fields=reveal, audit=reveal and not live)
    ledger = found_keys.path
    keyring = found_keys.keys.keyring
    if reveal and not live:
        _four_eyes_offline(ledger, found_keys.deployment, letter_id)
    if live:
        from engine.commands.live import fetch_one
        problem: dict[str, Any] = {}
        found = fetch_one(url, token_file, ca, cert, key, f"/dead-letters/{letter_id}", missing=problem)
        if found is None:
            info = problem.get("archived")
            why = (hint(info, "dead letter", letter_id) if isinstance(info, dict) else
                   "list them with `bsp dead list --live`")
            typer.echo(f"error: {_no_such([repr(letter_id)])} in the engine at {url}; {why}", err=True)
            raise typer.Exit(1)
        encoded = found.pop("raw_base64", None)
        found["raw"] = base64.b64decode(encoded) if encoded is not None else None
        rows = [found]
    else:
        if reveal and keyring is not None:
            reveal_check(ledger, keyring)   # another key under a key id the ledger sealed with: exit 2
        rows = _query(ledger, ids=[letter_id], limit=1, with_raw=True)
        if rows:
            rows[0]["history"] = _history(ledger, letter_id)
            rows[0]["purge"] = _purge_of(ledger, rows[0])
            from engine.four_eyes import requests_in_file
            rows[0]["approvals"] = requests_in_file(ledger, every=True, target=rows[0]["id"], limit=None)[::-1]
    if not rows:
        info = archived_where(ledger, letter_id, kind="dead letter") if not live else None
        why = hint(info, "dead letter", letter_id, ledger.parent) if info is not None else "list them with `bsp dead list`"
        typer.echo(f"error: {ledger}: {_no_such([repr(letter_id)])}; {why}", err=True)
        raise typer.Exit(1)
    r = rows[0]
    problems: list[str] = []
    stored = r.get("raw")
    engine_withheld = r.pop("raw_withheld", None) if live and stored is None else None
    held = bool(r.pop("raw_four_eyes", None))      # four eyes (dead.reveal): the engine sends it once approved
    if reveal and live and (held or not engine_withheld):
        # recorded (or, under four eyes, requested) by the engine before anything is shown in clear
        if _reveal_live(r, who, held or (stored is not None and r.get("raw_key") is not None and keyring is None),
                        (url, token_file, ca, cert, key)):
            return
        engine_withheld = None
    if engine_withheld:       # the engine kept the message to itself (a token without the role raw): say why
        fix = ("give --token-file (or $BSP_ADMIN_TOKEN_FILE) a token with the roles read and raw "
               "(docs/admin-api.md#roles)")
        if reveal:            # nothing to reveal: say so, record nothing, exit 2 (as a sealed one without the keyring)
            typer.echo(f"error: --reveal of dead letter {r['id']}: the engine withheld its message ({engine_withheld}); "
                       f"{fix}", err=True)
            raise typer.Exit(2)
        engine_withheld = f"withheld by the engine: {engine_withheld}" + ("" if held else f"; {fix}")
    if reveal and stored is not None and r.get("raw_key") is not None and keyring is None:
        needs_keyring(deployment, env, f"--reveal of dead letter {r['id']} (sealed with field key {r['raw_key']!r})")
    if not live:
        request = _deal_request(ledger, r["id"], None, problems)      # as stored: decrypted once recorded
        if request is not _NO_DEAL:
            r["deal_request"] = request
    withheld = None
    if reveal:        # recorded before anything is shown in clear; not recorded: nothing shown
        fields = (["message"] if stored is not None else []) + reveal_log.sealed_paths(r.get("deal_request"),
                                                                                       "deal.request")
        if not live:      # with --live the engine recorded it above
            record_reveal(r["id"], reveal_log.detail("dead letter", fields, who, "bsp dead show", **where),
                          ledger, found_keys.keys.audit_key, None)
        if keyring is not None and "deal_request" in r:
            r["deal_request"] = fieldcrypt.reveal(r["deal_request"], keyring, context=r["id"], root="request",
                                                  problems=problems)
        try:
            r["raw"] = raw_bytes(r, keyring)
        except KeyringError as exc:
            problems.append(str(exc))
            r["raw"] = None
    elif stored is not None:
        r["raw"] = None
        withheld = _withheld(r, stored)
        r["raw_withheld"] = withheld
    elif engine_withheld:
        withheld = r["raw_withheld"] = engine_withheld
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(r, default=_default, option=orjson.OPT_UTC_Z) + b"\n")
        sys.stdout.buffer.flush()
    else:
        from engine.reports.text import printable

        history = r.pop("history", None) or []
        purge = r.pop("purge", _NOT_SAID)
        approvals = r.pop("approvals", None) or []
        for k, v in r.items():
            if k not in ("raw", "raw_withheld", "deal_request"):   # a counterparty's text as it is, controls made visible
                typer.echo(printable(f"{k:>15}: {'' if v is None else v}"))
        for line in _history_lines(history, r["id"]):
            typer.echo(line)
        if approvals:           # four eyes (engine/four_eyes.py): who asked, who approved or rejected
            from engine.four_eyes import approval_text
            typer.echo(f"{'four eyes':>15}: " + printable(approval_text(approvals[0])))
            for a in approvals[1:]:
                typer.echo(" " * 17 + printable(approval_text(a)))
        if "deal_request" in r:
            typer.echo(f"{'deal request':>15}: as the ledger keeps it" + (
                ", classified fields decrypted" if reveal and keyring is not None else
                ", classified fields (pan, secret, personal) masked") + f" (bsp deals show {r['id']})")
            typer.echo(printable(_block(r["deal_request"])))
        raw = r["raw"]
        text = _as_text(raw) if raw is not None else None
        typer.echo(f"{'raw':>15}: " + (withheld if withheld is not None else
                                        _purged(purge) if raw is None and r["status"] == "purged" else
                                        "(unreadable)" if raw is None else f"{len(raw)} bytes" + (
                                            "" if text is not None else ", binary: offset, hex, ASCII")))
        if raw is not None:
            typer.echo(text if text is not None else "\n".join(hexdump(raw)))
    for note in problems:
        typer.echo(f"warning: {note}", err=True)


_NO_DEAL = object()


def _four_eyes_offline(ledger: Path, deployment: Any, letter_id: str) -> None:
    """``--reveal`` on the ledger file while the policy (the deployment file's, or the one the ledger recorded)
    lists dead.reveal: refused (exit 2), as a deal's reveal is: an approval is taken through the admin API."""
    from engine.four_eyes import blocked_by_offline, offline_policy

    policy = offline_policy(ledger, deployment)
    if policy is not None and policy.covers("dead.reveal"):
        typer.echo(f"error: {blocked_by_offline('dead.reveal')}; under four eyes the engine decrypts the message for "
                   f"the requester once another operator approved: `bsp dead show {letter_id} --live --reveal`, then "
                   f"`bsp approvals reveal ID --live`. Nothing was revealed", err=True)
        raise typer.Exit(2)


def _reveal_live(r: dict[str, Any], who: Any, four_eyes: bool, conn: tuple[Any, ...]) -> bool:
    """``--live --reveal``: the engine records the reveal (``POST /dead-letters/{id}/reveals``) before anything is
    shown; under four eyes (dead.reveal) it records a request instead: said, True (nothing is shown: the requester
    fetches it once approved).  ``four_eyes``: nothing can be shown here without it (the engine withheld the
    message, or it is sealed and this shell has no keyring): a 409 ``not_under_four_eyes`` then, False."""
    from engine.commands.live import post_reveal

    fields = ["message"] if r.get("raw") is not None or four_eyes else []
    body: dict[str, Any] = {"fields": fields, "by": who}
    if four_eyes:
        body["four_eyes"] = True
    said = post_reveal(*conn, f"/dead-letters/{r['id']}/reveals", body)
    if said.get("pending"):
        from engine.four_eyes import pending_text

        typer.echo(pending_text({**said, "target": r["id"]}, True))
        typer.echo(f"then {said.get('by')} fetches it, once, with `bsp approvals reveal {said.get('id')} --live` "
                   f"(the engine decrypts the message for the requester alone)")
        return True
    return False


def _purge_of(ledger: Path, letter: dict[str, Any]) -> dict[str, Any] | None:
    """A purged letter's purge on the ledger file: when and by whom (its status event), as the engine answers it
    in ``GET /dead-letters/{id}`` (``purge``); None for a letter not purged."""
    if letter.get("status") != "purged":
        return None
    from engine.ledger_query import letter_purge

    return letter_purge(ledger, letter["id"])


_NOT_SAID = object()      # an engine of a bsp before 2026-11-28 answers GET /dead-letters/{id} without `purge`


def _purged(purge: Any) -> str:
    """A purged letter's message: when and by whom (``purge``: its status event, from the ledger file or the
    engine's ``GET /dead-letters/{id}``)."""
    from engine.deal_letters import purge_text

    if purge is _NOT_SAID:
        return ("(purged; the engine did not say when or by whom: an engine of an older bsp; `bsp dead show ID` "
                "on the ledger file says it; the row stays as a tombstone, the message is gone)")
    return purge_text(purge)


def _withheld(letter: dict[str, Any], stored: Any) -> str:
    """What ``bsp dead show`` says of a message it does not show (no --reveal)."""
    size = (f"sealed with field key {letter['raw_key']!r}" if letter.get("raw_key") is not None
            else f"{len(bytes(stored))} bytes")
    return (f"{size}, not shown: the bytes as received may hold a card number, track data or a name; "
            f"--reveal shows them")


def _deal_request(ledger: Path, letter_id: str, keyring: Any, problems: list[str]) -> Any:
    """The request of the letter's deal (a dead letter of a deal has the deal's id) as the ledger keeps it:
    classified fields masked or sealed (engine.fieldcrypt.protect), decrypted with ``keyring`` when given;
    ``_NO_DEAL`` when the letter has no deal in this ledger (unrouted, archived ...)."""
    from engine import fieldcrypt
    from engine.ledger_query import AmbiguousId, get_deal
    from engine.ledger_store import LedgerError

    try:
        d = get_deal(ledger, letter_id) if len(letter_id) == 32 else None
    except (LedgerError, ValueError, AmbiguousId):
        return _NO_DEAL
    if d is None or d.get("deal_id") != letter_id:
        return _NO_DEAL
    request = d["request"]
    if not isinstance(request, (dict, list)):
        # a request that did not decode: its bytes (as hex, sealed with a keyring, in clear without one), the
        # same as the letter's message: shown as that is, only with --reveal
        return _NO_DEAL
    if keyring is not None:
        request = fieldcrypt.reveal(request, keyring, context=d["deal_id"], root="request", problems=problems)
    return request


def _block(value: Any) -> str:
    from engine.commands.deals import _block as block

    return block(value)


def _as_text(raw: bytes) -> str | None:
    """The message as text when it is UTF-8 with no control character but tab, line feed and CR (JSON, XML,
    fixed-width text, names in any script; CR shown as \\x0d), else None: it is shown as a hex dump."""
    from engine.reports.text import printable

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any((ord(c) < 0x20 and c not in "\t\n\r") or 0x7f <= ord(c) < 0xa0 for c in text):
        return None
    return printable(text)


def hexdump(raw: bytes, width: int = 16) -> list[str]:
    """One line per ``width`` bytes: the offset of its first byte in hex and in decimal (a reason's "byte 4"
    is decimal), the bytes in hex, their printable ASCII (others as ``.``)."""
    out = []
    for at in range(0, len(raw), width):
        chunk = raw[at:at + width]
        left, right = " ".join(f"{b:02x}" for b in chunk[:8]), " ".join(f"{b:02x}" for b in chunk[8:])
        shown = "".join(chr(b) if 0x20 <= b < 0x7f else "." for b in chunk)
        out.append(f"{at:08x} {at:>6}  {left:<23}  {right:<23}  |{shown}|")
    return out


def _history(ledger: Path, letter_id: str) -> list[dict[str, Any]]:
    from engine.ledger_query import letter_history
    from engine.ledger_store import LedgerError

    try:
        return letter_history(ledger, letter_id)
    except LedgerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _history_lines(history: list[dict[str, Any]], this: str) -> list[str]:
    """The letters of the message, oldest first, this one and the one where it waits pointed at."""
    if not history:
        return []
    out = [f"{'history':>15}: the dead letters of this message, oldest first (a retry refused again leaves the "
           f"message in its deal's own letter):"]
    for h in history:
        st = h.get("status")
        note = ("  <- this one" if h["id"] == this else "") + (
            f"  <- the message waits here: bsp dead retry {h['id']}" if st == "new" else
            "  (not in this ledger: moved by bsp ledger archive?)" if st is None else "")
        out.append(f"{'':>17}{h['id']}  {st or '?':<8}{note}")
    return out


def _retry_admin(url: str, ids: list[str], token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path],
                 key: Optional[Path], report: Any, *, again: bool = False, pending: Any = None) -> None:
    """``POST /dead-letters/{id}/retry`` on a running engine, one id after the other, each outcome to ``report``
    (``Tally.add``) as it comes; a letter the engine refuses as already retried (409) is reported skipped."""
    from engine.commands.admin import _call, _client, _problem

    with _client(url.rstrip("/"), token_file, ca, cert, key) as client:
        for lid in ids:
            resp = _call(client, "POST", f"/dead-letters/{lid}/retry", params={"again": "true"} if again else None)
            if resp.status_code == 404:
                detail = resp.json().get("detail", "") if resp.headers.get("content-type", "").endswith("json") else ""
                if "no dead letter" not in detail:
                    raise typer.BadParameter(f"{url} has no POST /dead-letters/{{id}}/retry (an older engine?)",
                                             param_hint="--url")
                info = resp.json().get("archived")
                if isinstance(info, dict):         # moved out by `bsp ledger archive` (engine.archive_lookup)
                    from engine.archive_lookup import retry_hint
                    why = retry_hint(info, lid)
                else:
                    why = "list them with `bsp dead list --live`"
                report(lid, False, _no_such([repr(lid)]) + f" in the engine at {url}; {why}")
                continue
            if resp.status_code == 409 and resp.json().get("why") == "already_retried":
                report(lid, False, str(resp.json().get("detail")), True)
                continue
            if resp.status_code == 202 and pending is not None:     # four eyes: recorded, not run (four_eyes.py)
                from engine.four_eyes import pending_text
                pending(lid, pending_text(resp.json(), True))
                continue
            if resp.status_code == 409 and resp.json().get("why") == "already_requested" and pending is not None:
                pending(lid, f"NOT retried: four eyes: {resp.json().get('detail')}")     # it waits already
                continue
            if resp.status_code == 409 and resp.json().get("why") == "stale":
                report(lid, False, f"four eyes: {resp.json().get('detail')}")
                continue
            if resp.status_code != 200:
                raise _problem(resp)
            body = resp.json()
            report(lid, bool(body.get("ok")), str(body.get("outcome")))


async def _retry_in_process(ledger: Path, program: Any, registry: Any, overrides: Any, rows: list[dict[str, Any]],
                            keys: Any, report: Any = None, again: bool = False, by: str | None = None) -> list[Any]:
    from engine.deadletter import offline_injector, retry_once
    from engine.ledger import open_ledger

    keyring = keys.keyring
    results = []
    async with open_ledger(ledger, audit_key=keys.audit_key, keyring=keyring) as led:
        async with offline_injector(program, registry, led, overrides) as inject:
            for r in rows:
                # claimed in the ledger (status retrying) before it runs: one already retried, or being
                # retried, is refused unless again (engine.deadletter.retry_once)
                # who asked (--by, else the OS user) recorded with the outcome, where the admin API records its
                # token's name (engine/operator.py)
                res = await retry_once(led, r, inject, keyring=keyring, again=again, by=by, via="bsp dead retry",
                                       by_what="by", who=f"bsp dead retry by {by!r}" if by else "bsp dead retry")
                results.append(res)
                if report is not None:
                    report(res.id, res.ok, res.outcome, res.skipped)
    return results


def _configuration(routes: Optional[list[Path]], dep: Any) -> tuple[Any, Any, Any]:
    """The program a retry runs, its registry and channel overrides: --routes as given (the route files'
    own addresses), else the deployment file's routes with its overrides, checked as bsp run checks them."""
    from engine.commands.run import _expand, compile_or_exit
    from engine.ops.effective import with_deployment
    from engine.ops.files import with_referenced_files
    from engine.ops.overrides import check_overrides, resolve_paths
    from engine.registry import default_registry

    registry = default_registry()
    # versioned as bsp run versions it (the files the routes name, the deployment's overrides), so the
    # retried deal records the version of the configuration it really ran under
    if routes:
        return with_referenced_files(compile_or_exit(_expand(routes), registry)), registry, {}
    program = with_referenced_files(compile_or_exit(list(dep.route_files), registry))
    problems = check_overrides(dep.channel_overrides, program, registry)
    if problems:
        for line in problems:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1)
    program = with_deployment(program, dep.channel_overrides, registry)
    return program, registry, resolve_paths(dep.channel_overrides, program, registry)


def _missing_offline(ledger: Path, missing: list[str]) -> None:
    """Exit 1 naming the ids the ledger lacks; one that `bsp ledger archive` moved (or may have) is named with its
    archive file, read-only: retried from nowhere, read there (engine.archive_lookup)."""
    from engine.archive_lookup import archived_where, retry_hint

    plain = []
    for lid in missing:
        info = archived_where(ledger, lid, kind="dead letter")
        if info is None:
            plain.append(lid)
        else:
            typer.echo(f"error: {ledger}: {_no_such([repr(lid)])}: {retry_hint(info, lid, ledger.parent)}", err=True)
    if plain:
        typer.echo(f"error: {ledger}: {_no_such(plain)}; list them with `bsp dead list`", err=True)
    raise typer.Exit(1)


def _interrupted(tally: Any, order: list[str], *, live: bool) -> None:
    """What Ctrl-C left: the letters done, the one whose retry was running, the ones not reached (untouched)."""
    done, total = tally.seen, len(order)
    running = order[done] if done < total else None
    where = (f"the engine finishes its retry and records its outcome (`bsp dead show {running} --live`)" if live else
             "it is left retrying, its outcome `interrupted`, and the next `bsp dead retry` or `bsp run` on this "
             "ledger settles it from its deal (`bsp dead list --status retrying`)")
    typer.echo(f"interrupted (Ctrl-C) after {done:,} of {total:,} dead letter(s)"
               + (f"; {running} was being retried: {where}" if running else "")
               + (f"; the {total - done - 1:,} not reached are untouched: run the same command again to go on (by "
                  f"filters, those already retried are skipped)" if running and total - done - 1 else ""),
               err=True)


@dead_app.command("retry")
def retry_cmd(
    ids: Optional[list[str]] = typer.Argument(None, help="Dead letter ids (else every one the filters select)."),
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = typer.Option(None, "--deployment", metavar="FILE", help="The deployment file "
                                              "(platform.yaml) bsp run serves: retry with its routes and channel "
                                              "overrides, its ledger and keys (ledger.audit_key, "
                                              "ledger.field_keys); --routes and --ledger still win, the file "
                                              "wins over the BSP_* variables."),
    env: Optional[str] = ENV_OPT,
    routes: Optional[list[Path]] = typer.Option(None, "--routes", help="Route files/folders of the current "
                                                "configuration: retry in this process (no engine running); "
                                                "wins over --deployment's routes."),
    route: Optional[str] = typer.Option(None, "--route", help="Select: only this route.", rich_help_panel=SELECT),
    channel: Optional[str] = typer.Option(None, "--channel", help="Select: only this channel.",
                                          rich_help_panel=SELECT),
    kind: Optional[str] = typer.Option(None, "--kind", help=f"Select: only this error kind: {', '.join(DEAD_KINDS)} "
                                       "(the kind column of bsp dead list).", rich_help_panel=SELECT),
    code: Optional[str] = typer.Option(None, "--code", help="Select: only this error code, exactly (the code column "
                                       "of bsp dead list: the code its deal records, e.g. 91 unreachable).",
                                       rich_help_panel=SELECT),
    reason: Optional[str] = typer.Option(None, "--reason", help="Select: reason contains this text (any case).",
                                         rich_help_panel=SELECT),
    status: Optional[str] = typer.Option(None, "--status", help=f"Select: only this status: "
                                         f"{', '.join(DEAD_STATUSES)}.", rich_help_panel=SELECT),
    since: Optional[str] = typer.Option(None, "--since", help="Select: at or after: ISO date/time or an age "
                                        "(30m, 2d).", rich_help_panel=SELECT),
    until: Optional[str] = typer.Option(None, "--until", help="Select: before: ISO date/time or an age.",
                                        rich_help_panel=SELECT),
    every: bool = typer.Option(False, "--all", help="Select every dead letter, as filters select (those a retry "
                               "already took, and purged ones, left out): after an outage, everything that waits.",
                               rich_help_panel=SELECT),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be retried, and what would be "
                                 "skipped, with their counts; retry nothing.", rich_help_panel=SELECT),
    yes: bool = typer.Option(False, "--yes", help="Retry more than one letter selected by filters without "
                             "asking (required when standard input is no terminal).", rich_help_panel=SELECT),
    again: bool = typer.Option(False, "--again", help="Also retry letters already retried (or whose retry never "
                               "recorded its outcome): on a route without a deal key the exchange runs again."),
    live: bool = typer.Option(False, "--live", help="Retry in the running engine, through its admin API "
                              "(--url / $BSP_ADMIN_URL).", rich_help_panel=PANEL),
    url: str = URL_OPT,
    admin: Optional[str] = typer.Option(None, "--admin", help="Same as --live --url URL (kept for old scripts).",
                                        metavar="URL", rich_help_panel=PANEL),
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
    by: Optional[str] = typer.Option(None, "--by", metavar="NAME", help="Who retries them, recorded with each "
                                     "outcome (default: the OS user running bsp); not with --live: the engine "
                                     "records the admin token's name."),
) -> None:
    """Re-inject dead letters into their channel through the current configuration.

    The letters are given by id, or selected with filters as `bsp dead list` takes them (--route, --channel,
    --kind, --code, --reason, --status, --since, --until), or --all (every one): then oldest first, leaving out those a retry already took
    (status retried or retrying; a letter left new by a bsp before 2026-11-27 after a retry whose deal was
    refused again: that deal has a dead letter of its own, the one to retry) and purged ones. --dry-run lists them and counts; more than one
    letter selected is retried after a confirmation, or with --yes (required when standard input is no
    terminal: a usage error otherwise). A line per letter as it ends, a progress line on standard error
    every 100 letters, and a summary: retried, committed, refused again, skipped because already retried.
    Each letter is claimed in the ledger before it runs (status retrying, in one update), so two retries
    of one letter started together run it once. A letter already retried, or whose retry is running, is
    refused (`NOT retried: refused: status retried: already retried at T: committed (deal ID)`), also by
    id, unless --again: a route with a deal key answers the repeat as a duplicate, but on a route without
    one the exchange runs a second time. A retry refused again leaves the message in its new deal's own
    dead letter, which waits now: the letter retried becomes retried, its outcome ending `the message waits
    again as dead letter ID` (one letter per message waits; `bsp dead show` lists them), and is refused,
    even with --again, while that one waits. A retry whose process was killed leaves status retrying, and so does
    one interrupted while its deal ran (Ctrl-C, the engine stopping: its outcome says `interrupted`); the next
    start of the engine (or of bsp dead retry) on that ledger settles it from its deal, named in the claim:
    retried when the deal committed, retried and linked to the deal's own letter when it was refused again,
    new again when it never began; when that cannot be known
    it stays retrying and its outcome says `unsettled` and what to check, then --again if it did not run.
    With --live, the running engine does it (`POST /dead-letters/{id}/retry` at --url or $BSP_ADMIN_URL,
    with the admin token, as `bsp dead list --live` reads; --admin URL is the same as --live --url URL);
    without --live, this process compiles the configuration, opens the ledger (no engine may hold
    it) and runs the deals itself. `--deployment platform.yaml [--env NAME]` gives it all as bsp run
    takes it: the file's routes with its channel overrides, its ledger, ledger.audit_key and
    ledger.field_keys. --routes PATH... wins over the file's routes (then the route files' own
    addresses apply) and --ledger over its ledger; without a deployment file the keys come from
    BSP_AUDIT_KEY(_FILE) / BSP_FIELD_KEYS(_FILE). Either way the outcome is recorded on the dead letter,
    with who asked: `(admin API, token 'NAME')` with --live, else `(bsp dead retry, by 'NAME')`, NAME the
    --by given or the OS user running bsp;
    one refused again names the new deal and why (`NOT retried: rejected (deal ID): REASON`, the reason as
    the ledger stores it).
    A keyed ledger is written only with the audit key its chain was sealed with (none, or another: refused,
    nothing written).
    A dead letter moved out by `bsp ledger archive` is not retried (an archive is read-only): the message
    names the archive file, where `bsp dead show ID --ledger FILE` reads it; its source sends it again.
    Ctrl-C stops it between letters or during one: it says how many were done, which letter's retry was
    running (left retrying and settled on the next start; with --live the engine finishes it) and that the
    ones not reached are untouched (the same command again goes on), then the summary; exit 130.
    Four eyes (the deployment file's operators.four_eyes lists dead.retry; on the ledger file also the policy
    the last engine recorded in it): nothing is run; each letter's retry is recorded as a request (`NOT done
    yet: four eyes: ...`, who: the admin token's name with --live, else the OS user running bsp) that another
    operator approves with `bsp approvals approve ID --live --reason TEXT`, which runs it once
    (docs/security.md#four-eyes).
    Exit 0 when every retry went through or was recorded as a request (by filters: every one run; those
    skipped do not count), 1
    otherwise (or the engine cannot be reached, or an id is no dead letter here, archived or not); 2 usage
    error, a locked ledger, a missing or wrong audit key; 130 interrupted.
    """
    from engine.commands.dead_select import Tally, confirm, select

    if admin and live and admin.rstrip("/") != url.rstrip("/"):
        raise typer.BadParameter(f"--admin {admin} and --url {url} name two engines; give one (--admin URL is "
                                 f"--live --url URL)", param_hint="--admin")
    if (admin or live) and routes:
        raise typer.BadParameter("--routes retries in this process, --live (or --admin) in a running engine: "
                                 "give one", param_hint="--routes")
    if (admin or live) and deployment:
        raise typer.BadParameter("--live (or --admin) retries in the running engine, with its own ledger and "
                                 "keys: drop --deployment", param_hint="--deployment")
    if (admin or live) and by is not None:
        raise typer.BadParameter("with --live the engine records the admin token's name as who retried; drop --by "
                                 "(or name the person in the token: admin.tokens)", param_hint="--by")
    if by is not None:
        from engine.operator import check_by
        try:
            by = check_by(by)
        except ValueError as exc:
            raise typer.BadParameter(str(exc).split(": ", 1)[1], param_hint="--by") from None
    filtered = every or any(v is not None for v in (route, channel, kind, code, reason, status, since, until))
    if ids and filtered:
        raise typer.BadParameter("give dead letter ids or filters that select them (or --all), not both",
                                 param_hint="IDS / --route ...")
    if not ids and not filtered:
        raise typer.BadParameter("say which dead letters: their ids, or filters as bsp dead list takes them "
                                 "(e.g. --status new --kind unreachable --since 2h), or --all for every one that "
                                 "waits; --dry-run lists them first", param_hint="IDS / --route ...")
    where_live = admin or url if (admin or live) else None
    if where_live is None and not routes and not deployment and not dry_run:
        raise typer.BadParameter("say where to retry: --live for the running engine (its admin API at --url "
                                 "or $BSP_ADMIN_URL), or --deployment platform.yaml (or --routes PATH...) to "
                                 "run the current configuration in this process",
                                 param_hint="--live / --deployment / --routes")
    filters = _filters(route, channel, reason, status, since, until, kind=kind, code=code) if filtered else {}
    if where_live is not None and ids and dry_run:
        raise typer.BadParameter("--dry-run with ids: see each with `bsp dead show --live ID`", param_hint="--dry-run")
    found = None
    if where_live is not None:
        rows = (list(fetch(where_live, token_file, ca, cert, key, "/dead-letters", "dead_letters", filters, 0))
                if filtered else [])
        where = f"the engine at {where_live}"
    else:
        from engine.ops.logs import command_logging
        command_logging()                     # the retried routes' warnings, masked as bsp run's
        found = ledger_keys(ledger, deployment, env, "bsp dead retry", audit=True, fields=True)
        ledger = found.path
        rows = _query(ledger, **filters, ids=ids or None, limit=None, with_raw=True)
        if ids:
            missing = sorted(set(ids) - {r["id"] for r in rows})
            if missing:
                _missing_offline(ledger, missing)
            rows.sort(key=lambda r: ids.index(r["id"]))
        where = str(ledger)
    sel = select(rows, again=again) if filtered else None
    if dry_run:
        shown = sel.run if sel else rows
        _render_table(shown, f"would retry {len(shown)} dead letter(s) in {where}, oldest first")
        if sel and sel.done:
            _render_table(sel.done, f"would skip {len(sel.done)} already retried (--again retries them too)")
        if sel and sel.purged:
            typer.echo(f"would skip {len(sel.purged)} purged (nothing left to retry)")
        typer.echo(f"{len(shown)} to retry" + (f", {len(sel.done)} already retried, {len(sel.purged)} purged"
                                               if sel else ""))
        return
    todo = sel.run if sel else rows
    if sel is not None:
        if not todo:
            typer.echo(f"no dead letter to retry in {where}")
            typer.echo(Tally(0).summary(sel))
            return
        if len(todo) > 1 and not yes:
            confirm(len(todo), where)
    policy = None
    if where_live is None:        # four eyes on the ledger file: the deployment's policy and the ledger's (four_eyes.py)
        from engine.four_eyes import offline_policy
        policy = offline_policy(ledger, found.deployment)
        policy = policy if policy is not None and policy.covers("dead.retry") else None
    tally = Tally(len(todo) if sel is not None else len(ids or []))
    order = [r["id"] for r in todo] if sel is not None else list(ids or [])
    try:
        if where_live is not None:
            _retry_admin(where_live, order, token_file, ca, cert, key, tally.add, again=again,
                         pending=tally.add_pending)
        elif policy is not None:
            _request_offline(ledger, found.keys.audit_key, todo, policy, again, by, tally)
        else:
            program, registry, overrides = _configuration(routes, found.deployment)
            import trio

            from engine.ledger_store import LedgerError
            try:
                from functools import partial

                from engine.operator import os_user
                trio.run(partial(_retry_in_process, ledger, program, registry, overrides, todo, found.keys,
                                 tally.add, again, by=by if by is not None else os_user()))
            except LedgerError as exc:      # locked, or (KeyMismatch) not the audit key its chain was sealed with
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
    except (KeyboardInterrupt, BaseExceptionGroup) as exc:
        # Ctrl-C lands in whichever task runs (a channel's sender, say): trio raises it in a group
        if isinstance(exc, BaseExceptionGroup) and exc.subgroup(KeyboardInterrupt) is None:
            raise
        _interrupted(tally, order, live=where_live is not None)
        if sel is not None:
            typer.echo(tally.summary(sel))
        raise typer.Exit(130) from None
    if sel is not None:
        typer.echo(tally.summary(sel))
    failed = tally.refused + (tally.skipped if sel is None else 0)
    if failed:
        raise typer.Exit(1)


def _request_offline(ledger: Path, audit_key: Any, todo: list[dict[str, Any]], policy: Any, again: bool,
                     by: Optional[str], tally: Any) -> None:
    """Four eyes on the ledger file: each letter's retry recorded as a request (who: the OS user), none run."""
    from engine.four_eyes import Refused, pending_text, request_in_file
    from engine.ledger_store import LedgerError

    for r in todo:
        try:
            req = request_in_file(ledger, audit_key, "dead.retry", r["id"], {"again": again}, policy.expire, by)
        except Refused as exc:
            if exc.why == "already_requested":       # it waits for its approval already
                tally.add_pending(r["id"], f"NOT retried: four eyes: {exc}")
            else:
                tally.add(r["id"], False, f"four eyes: {exc}")
            continue
        except LedgerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        tally.add_pending(r["id"], pending_text(req, False))


@dead_app.command("purge")
def purge_cmd(
    ids: Optional[list[str]] = typer.Argument(None, help="Dead letter ids (else every one matching the filters)."),
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_OPT,
    env: Optional[str] = ENV_OPT,
    older_than: Optional[str] = typer.Option(None, "--older-than", help="Only those older than this age "
                                             "(30d) or before this date."),
    status: Optional[str] = typer.Option(None, "--status", help="Only this status (e.g. retried)."),
    route: Optional[str] = typer.Option(None, "--route", help="Only this route."),
    channel: Optional[str] = typer.Option(None, "--channel", help="Only this channel."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this error kind (e.g. rejected), as bsp dead "
                                       "list takes it."),
    code: Optional[str] = typer.Option(None, "--code", help="Only this error code, exactly (the code column of "
                                       "bsp dead list: the code its deal records, e.g. 30 malformed)."),
    include_waiting: bool = typer.Option(False, "--include-waiting", help="Also the letters that wait for an "
                                         "operator (new, not yet retried into a deal) or that a retry holds "
                                         "(retrying), which filters otherwise leave (--status new or retrying "
                                         "names them too)."),
    yes: bool = typer.Option(False, "--yes", help="Purge without --older-than (all matching), and without "
                             "asking on a terminal."),
    by: Optional[str] = typer.Option(None, "--by", metavar="NAME", help="Who purges, recorded with each "
                                     "letter's purge (its status event's by; default the OS user running bsp, "
                                     "kept beside a --by naming another). Under four eyes: who asks, kept beside "
                                     "the OS user running bsp (stated_by), which is recorded as who."),
) -> None:
    """Delete the stored messages of dead letters; their rows stay as tombstones (status purged).

    The ledger file is then rewritten with its live data only, so the messages' bytes are gone from it
    (DuckDB would keep them in free blocks); that needs free space for a copy of the file next to it
    (docs/ledger.md#dead-letters). No engine may hold the ledger.
    Who purged is recorded in each letter's chained status event (by: --by, else the OS user; via bsp dead
    purge; the host), which bsp deals show ID and bsp report operator-actions tell.
    The rows stay in the audit chain (the columns purge empties are outside it), and the ledger is opened
    with its audit key, checked against the chain as by every writer: --deployment platform.yaml's ledger
    and ledger.audit_key (as bsp run takes them), else BSP_AUDIT_KEY(_FILE).
    Requires --older-than or --yes; on a terminal it asks before purging, unless --yes.  Selected by
    filters, a letter that still waits for an operator (status new, not yet retried into a deal: a payment
    nobody retried) or that a retry holds (retrying) is left, and counted, unless --include-waiting or
    --status new / retrying says so; letters given by id are purged whatever their status.
    Four eyes (operators.four_eyes lists dead.purge, in the deployment file or the policy the last engine
    recorded in the ledger): give the ids; a letter is purged only once another operator approved its purge
    through the running engine (`bsp approvals approve ID --live`); for each other one a request is recorded
    (who: the OS user running bsp, --by beside it) and it is left (docs/security.md#four-eyes).
    Exit 0 purged (or requested) (also none matching the filters); 1 an id given that is no dead letter (nothing
    purged), or not confirmed; 2 usage error, no ledger file.
    """
    from engine.deadletter import purge
    from engine.ledger_store import LedgerError

    if not yes and not older_than:
        raise typer.BadParameter("purging deletes messages for good: add --older-than AGE (e.g. 30d) or --yes",
                                 param_hint="--yes")
    if by is not None:
        from engine.operator import check_by
        try:
            check_by(by)
        except ValueError as exc:
            raise typer.BadParameter(str(exc).removeprefix("--by: "), param_hint="--by") from None
    filters = _filters(route, channel, None, status, None, older_than, kind=kind, code=code,
                       until_option="--older-than")
    found = ledger_keys(ledger, deployment, env, "bsp dead purge", audit=True)
    ledger = found.path
    if ids:
        missing = sorted(set(ids) - {r["id"] for r in _query(ledger, ids=ids, limit=None)})
        if missing:
            typer.echo(f"error: {ledger}: {_no_such(missing)}; nothing purged "
                       f"(list them with `bsp dead list`)", err=True)
            raise typer.Exit(1)
    from engine.commands.dead_select import retried_before

    rows = [r for r in _query(ledger, **filters, ids=ids or None, limit=None) if r["status"] != "purged"]
    kept: list[dict[str, Any]] = []
    if not ids and not include_waiting and status is None:
        # waiting for an operator (or held by a retry): deleting its message loses a payment nobody handled
        kept = [r for r in rows if r["status"] == "retrying" or not retried_before(r)]
        rows = [r for r in rows if r["status"] != "retrying" and retried_before(r)]
    rows, dual = _purge_four_eyes(ledger, found, rows, ids, by)
    if rows and not yes and sys.stdin is not None and sys.stdin.isatty():
        if not typer.confirm(f"purge {len(rows)} dead letter(s) in {ledger} (their messages are deleted for good)?",
                             default=False, err=True):
            typer.echo("nothing purged", err=True)
            raise typer.Exit(1)
    try:
        n = purge(ledger, [r["id"] for r in rows], audit_key=found.keys.audit_key, by=by, four_eyes=dual)
    except (LedgerError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"purged {n} dead letter(s) in {ledger}" + (
        "; the file was rewritten without their messages (their rows stay, status purged)" if n else
        "; the file is unchanged" if kept else "; nothing matched, the file is unchanged"))
    if kept:
        typer.echo(f"left {len(kept)} dead letter(s) that still wait (new, not yet retried into a deal, or "
                   f"retrying): `bsp dead list` shows them; retry them, or add --include-waiting (or --status new) "
                   f"to purge them too")


def _purge_four_eyes(ledger: Path, found: Any, rows: list[dict[str, Any]], ids: Optional[list[str]],
                     by: Optional[str]) -> tuple[list[dict[str, Any]], bool]:
    """Four eyes on dead.purge (engine/four_eyes.py): the letters whose purge another operator approved (through
    the admin API) are purged; for each other one a request is recorded and it is left.  Off: ``rows`` as given.
    With whether four eyes is on (the purge then records the OS user as who, --by beside)."""
    from engine.four_eyes import Refused, offline_policy, pending_text, request_in_file, requests_in_file
    from engine.ledger_store import LedgerError

    policy = offline_policy(ledger, found.deployment)
    if policy is None or not policy.covers("dead.purge"):
        return rows, False
    if not ids:
        typer.echo("error: four eyes: a purge needs a second operator's approval, letter by letter: give the dead "
                   "letters' ids (each is requested, then purged once approved)", err=True)
        raise typer.Exit(2)
    approved: list[dict[str, Any]] = []
    for r in rows:
        mine = [q for q in requests_in_file(ledger, every=True, target=r["id"], limit=None)
                if q.get("action") == "dead.purge"]
        done = [q for q in mine if q["state"] == "approved"]
        if done:
            d = done[0]["decision"] or {}
            typer.echo(f"{r['id']}: purge requested by {done[0].get('by')}, approved by {d.get('by')} (request "
                       f"{done[0]['id']})")
            approved.append(r)
            continue
        try:
            req = request_in_file(ledger, found.keys.audit_key, "dead.purge", r["id"], {}, policy.expire, by)
        except Refused as exc:
            typer.echo(f"{r['id']}: NOT purged: four eyes: {exc}")
            continue
        except (LedgerError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{r['id']}: {pending_text(req, False)}; once approved, purge it again (the engine stopped)")
    return approved, True


def register(app: typer.Typer) -> None:
    app.add_typer(dead_app, name="dead")


__all__ = ["register"]
