"""``bsp deals``: list deals from the DuckDB ledger, as a table or JSON lines."""
from __future__ import annotations

import itertools
import re
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Optional

import orjson
import typer

from engine.commands.live import (CA_OPT, CERT_OPT, KEY_OPT, LIVE_OPT, TOKEN_FILE_OPT, URL_OPT, fetch, fetch_one,
                                  lock_hint)
from engine.commands.ledger_keys import (DEPLOYMENT_LEDGER_OPT, DEPLOYMENT_OPT, ENV_OPT, LEDGER_OPT, ledger_keys,
                                         missing_in_env)
from engine.commands.stdout import quiet_pipe
from engine.commands.deals_resolve import resolve
from engine.deal_letters import story_lines
from engine.deal_resolve import OUTCOMES, REVERSAL_ACKNOWLEDGED, stamp
from engine.defaults import DEAL_STATUSES as STATUSES, DEFAULT_LEDGER

_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime | None = None, option: str = "--since") -> datetime:
    """A point in time from ``2026-03-01``, ``2026-03-01T09:30``, ``...+08:00``, or ``30m`` / ``1h`` / ``2d`` ago.

    Dates and times without a zone are UTC.  Raises ``typer.BadParameter``
    (exit code 2) saying what forms are accepted.
    """
    now = now or datetime.now(timezone.utc)
    m = _RELATIVE.match(text)
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: write an ISO date or time (2026-03-01, 2026-03-01T09:30, "
            f"2026-03-01T09:30+08:00; no zone means UTC) or an age such as 30m, 1h, 2d, 1w",
            param_hint=option) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def time_range(since: str | None, until: str | None, *, what: str, until_option: str = "--until",
               now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` (or ``--older-than``) as times; a range whose start is not before its end is a
    usage error naming both (exit 2): swapped, say, nothing could match, and "none match" would read as "there
    are none".  ``what``: what could not match ("deal", "dead letter")."""
    now = now or datetime.now(timezone.utc)
    after = parse_when(since, now=now, option="--since") if since else None
    before = parse_when(until, now=now, option=until_option) if until else None
    if after is not None and before is not None and after >= before:
        raise typer.BadParameter(f"--since {since} ({after:%Y-%m-%d %H:%M:%S} UTC) is not before {until_option} "
                                 f"{until} ({before:%Y-%m-%d %H:%M:%S} UTC): no {what} can match; --since is "
                                 f"the start of the range, {until_option} its end", param_hint="--since")
    return after, before


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def _render_json(rows: Iterable[dict[str, Any]]) -> None:
    out = sys.stdout.buffer
    for row in rows:
        out.write(orjson.dumps(row, default=_json_default, option=orjson.OPT_UTC_Z) + b"\n")
    out.flush()


def _resolution_text(r: dict[str, Any] | None) -> str:
    if not r:
        return "open"
    at = r.get("at")
    if r.get("outcome") == REVERSAL_ACKNOWLEDGED:      # closed by the host, not by an operator
        return f"{REVERSAL_ACKNOWLEDGED} at {stamp(at)} (code {r.get('response_code')})"
    when = at.strftime("%Y-%m-%d %H:%M") if isinstance(at, datetime) else str(at or "")
    return f"{r.get('outcome')} by {r.get('by')} {when}: {r.get('note')}"


def _render_table(rows: list[dict[str, Any]], title: str, flagged: bool = False) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from engine.reports.text import printable

    table = Table(title=escape(printable(title)), title_justify="left")
    amount_width = max((len(str(r["amount"])) for r in rows if r["amount"] is not None), default=6)
    # money, times and references are never wrapped or cut; ids and routes may fold
    table.add_column("received (UTC)", no_wrap=True, min_width=23)
    table.add_column("type", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("reference", no_wrap=True)
    table.add_column("amount", justify="right", no_wrap=True, min_width=amount_width)
    table.add_column("cur", no_wrap=True)
    table.add_column("party", overflow="fold")
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("route", overflow="fold")
    table.add_column("deal id", overflow="fold")
    # the configuration version that served each, once the deals listed span more than one (after a reload)
    versions = len({r.get("config_version") for r in rows}) > 1
    if versions:
        table.add_column("config", no_wrap=True)
    if flagged:
        table.add_column("resolution", overflow="fold")
    style = {"committed": "green", "rejected": "yellow", "failed": "red", "duplicate": "cyan"}
    def text(value: Any) -> str:    # a counterparty's text is shown as it is: no rich markup, no terminal control
        return escape(printable("" if value is None else str(value)))

    for r in rows:
        table.add_row(
            r["received_at"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            text(r["deal_type"]),
            f"[{style.get(r['status'], '')}]{text(r['status'])}[/]",
            text(r["response_code"]),
            text(r["reference"]),
            "" if r["amount"] is None else str(r["amount"]),
            text(r["currency"]),
            text(r["party"]),
            f"{r['duration_ms']:.1f}",
            text(r["route"]),
            text(r["deal_id"]),
            *([text(r.get("config_version"))] if versions else []),
            *([text(_resolution_text(r.get("resolution")))] if flagged else []),
        )
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    if not rows:
        console.print("no deals match these filters")


def no_ledger(ledger: Path) -> str:
    """What to say when ``ledger`` is not a file (without ``error: ``)."""
    from engine.audit_cut import head_path

    if head_path(ledger).exists():      # a writer would refuse to start a new one here (audit_cut.orphaned)
        return (f"{ledger}: no ledger file here, but {head_path(ledger)} is: the audit chain head of a ledger that "
                f"was here, deleted or moved without it. Give the ledger's path with --ledger FILE (the "
                f"deployment file's `ledger:`), or restore it from a backup (docs/security.md#a-ledger-deleted-"
                f"or-moved).")
    return (f"{ledger}: no ledger file here. Give the ledger with --ledger FILE (the deployment file's "
            f"`ledger:`; default {DEFAULT_LEDGER}); an engine creates it on its first run.")


def require_ledger(ledger: Path) -> None:
    """Exit 2 with a message naming the file when there is no ledger there."""
    if not ledger.is_file():
        typer.echo(f"error: {no_ledger(ledger)}", err=True)
        raise typer.Exit(2)


def deals(
    ctx: typer.Context,
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_LEDGER_OPT,
    env: Optional[str] = ENV_OPT,
    deal_type: Optional[str] = typer.Option(None, "--type", help="Only this deal type, e.g. BILL_PAYMENT."),
    status: Optional[str] = typer.Option(None, "--status", help=f"Only this status: {', '.join(STATUSES)}."),
    ref: Optional[str] = typer.Option(None, "--ref", help="Only this reference."),
    currency: Optional[str] = typer.Option(None, "--currency", help="Only deals in this currency, in any case "
                                           "(cny finds CNY), e.g. to find the deals behind one line of a report's "
                                           "totals."),
    party: Optional[str] = typer.Option(None, "--party", help="Only deals whose party is exactly this text, as the "
                                        "ledger's party column holds it (the route's `deal` step's party, shown "
                                        "in the party column here; as `bsp report counterparty-statement --party` "
                                        "matches it). Only that column is compared, never the request's fields: a "
                                        "route that stores a masked party (mask_pan) is found by its mask."),
    flagged: bool = typer.Option(False, "--flagged", help="Only deals flagged for an operator (event `flagged`: "
                                 "a call or step left in doubt, or whose compensation failed; a deal left in "
                                 "doubt by a crash; or `reversal flagged`: an ISO 8583 reversal not "
                                 "acknowledged after its attempts, until the host acknowledges it with an "
                                 "approval) and not resolved yet: settle each with its counterpart, then "
                                 "record it with `bsp deals resolve ID`."),
    held: bool = typer.Option(False, "--held", help="Only deals a `screen` step held for a compliance officer "
                              "(on_hit = \"hold\": event `held`) and not decided yet, each with its hits (the step, "
                              "the list, the entry's id, the score, what matched: name, alias or id): release or "
                              "reject each with `bsp deals resolve ID --outcome release|reject --note REASON`."),
    statement_breaks: bool = typer.Option(False, "--statement-breaks", help="Only statements posted although they "
                                          "did not follow on from their account's last one (event `statement "
                                          "break` of a `continuity` step: a gap, a repeat, a late one, opening "
                                          "balance not the previous closing, a page missing): `bsp deals show ID` "
                                          "names the statement before it; `bsp report statement-continuity` "
                                          "shows the whole chain."),
    include_resolved: bool = typer.Option(False, "--all", help="With --flagged: the flagged deals an operator "
                                          "resolved, or whose flagged reversal the host acknowledged since, too, "
                                          "with their resolution. With --held: the held deals released or "
                                          "rejected too, with the decision."),
    since: Optional[str] = typer.Option(None, "--since", help="Received at or after: ISO date/time or an age (30m, 1h, 2d)."),
    until: Optional[str] = typer.Option(None, "--until", help="Received before: ISO date/time or an age (30m, 1h, 2d)."),
    limit: int = typer.Option(50, "--limit", min=0, help="Most deals to show (newest first); 0 for all."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
    live: bool = LIVE_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """List deals recorded in the ledger, newest first; `bsp deals show ID` tells one deal's story.

    Amounts are printed exactly (decimal, in the currency's minor units).
    Times are UTC.  The ledger is --ledger, else the deployment file's (`--deployment
    platform.yaml`, as bsp run takes it). A running engine holds the ledger file locked (DuckDB's
    single writer): `--live` asks the engine instead, through its admin API
    (`GET /deals`, page by page: --limit 0 lists every match), with the same filters; a listing of
    more than one page (1,000 deals) shows its progress on a terminal.
    Exit 0 (also when nothing matches); 1 the engine answered with a problem or cannot be reached
    (--live), or a deployment file with errors; 2 no ledger file, a bad option value, or a locked ledger.
    """
    if ctx.invoked_subcommand is not None:
        # `bsp deals --ledger FILE show ID`: the ledger (deployment, environment) named before the
        # subcommand is its default; one named after it wins. Until 2026-11-27 it was dropped silently
        # and `show` looked in var/bsp.duckdb.
        given = {k: str(v) for k, v in (("ledger", ledger), ("deployment", deployment), ("env", env))
                 if v is not None}
        if given:
            ctx.default_map = {**(ctx.default_map or {}),
                               ctx.invoked_subcommand: {**given, **((ctx.default_map or {})
                                                                    .get(ctx.invoked_subcommand) or {})}}
        return
    from engine.ledger_query import iter_deals      # DuckDB: loaded when deals are read, not for --help
    from engine.ledger_store import LedgerError

    if include_resolved and not flagged and not held:
        raise typer.BadParameter("--all lists the resolved flagged deals beside the open ones: add --flagged",
                                 param_hint="--all")
    if held and flagged:
        raise typer.BadParameter("--held and --flagged list two kinds of deals: give one", param_hint="--held")
    if held and statement_breaks:
        raise typer.BadParameter("--held and --statement-breaks list two kinds of deals: give one",
                                 param_hint="--statement-breaks")
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"{status!r} is not a status; use one of {', '.join(STATUSES)}",
                                 param_hint="--status")
    for option, value in (("--currency", currency), ("--party", party)):
        if value is not None and not value.strip():
            raise typer.BadParameter("is empty: give the text to match, or leave the option out", param_hint=option)
    t_since, t_until = time_range(since, until, what="deal")
    ledger = ledger_keys(ledger, deployment, env, "bsp deals").path
    if held:
        _held(ledger, include_resolved, limit, as_json, live, url, token_file, ca, cert, key)
        return
    if live:
        rows = fetch(url, token_file, ca, cert, key, "/deals", "deals",
                     {"type": deal_type, "status": status, "reference": ref, "currency": currency, "party": party,
                      "since": t_since, "until": t_until,
                      "flagged": "1" if flagged else None, "resolved": "1" if include_resolved else None,
                      "statement_breaks": "1" if statement_breaks else None},
                     limit, streamed=as_json)
        title = f"{_what(flagged, include_resolved)} in the engine at {url}"
    else:
        require_ledger(ledger)
        stream = iter_deals(ledger, deal_type=deal_type, status=status, reference=ref, currency=currency,
                            party=party, since=t_since, until=t_until, limit=limit or None, flagged=flagged,
                            resolved=include_resolved, statement_breaks=statement_breaks)
        try:
            first = next(stream, None)      # the query runs here: a locked or foreign file says so now
            rows = stream if first is None else itertools.chain((first,), stream)
            if as_json:         # streamed: millions of deals (--limit 0) in bounded memory
                _render_json(rows)
            else:
                _render_table(list(rows), f"{_what(flagged, include_resolved)} in {ledger}", flagged)
        except LedgerError as exc:
            typer.echo(f"error: {exc}", err=True)
            lock_hint(exc)
            raise typer.Exit(2) from None
        return
    if as_json:
        _render_json(rows)
    else:
        _render_table(list(rows), title, flagged)


def _held(ledger: Path, include_decided: bool, limit: int, as_json: bool, live: bool, url: str,
          token_file: Optional[Path], ca: Optional[Path], cert: Optional[Path], key: Optional[Path]) -> None:
    """``bsp deals --held``: the deals held by a screening (engine.deal_hold)."""
    from engine.commands.deals_held import render_held
    from engine.ledger_store import LedgerError

    what = "held deals (open and decided)" if include_decided else "held deals not decided yet"
    if live:
        rows = list(fetch(url, token_file, ca, cert, key, "/deals", "deals",
                          {"held": "1", "resolved": "1" if include_decided else None}, limit, streamed=False))
        title = f"{what} in the engine at {url}"
    else:
        from engine.deal_hold import held_deals

        require_ledger(ledger)
        try:
            rows = held_deals(ledger, include_decided=include_decided, limit=limit or None)
        except LedgerError as exc:
            typer.echo(f"error: {exc}", err=True)
            lock_hint(exc)
            raise typer.Exit(2) from None
        title = f"{what} in {ledger}"
    if as_json:
        _render_json(iter(rows))
    else:
        render_held(rows, title)


def _what(flagged: bool, include_resolved: bool) -> str:
    if not flagged:
        return "deals"
    return "flagged deals (open and resolved)" if include_resolved else "flagged deals not resolved yet"


def _when(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _block(value: Any) -> str:
    text = orjson.dumps(value, default=_json_default, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z).decode()
    return "\n".join("    " + line for line in text.splitlines())


def joined_lines(events: Iterable[dict[str, Any]]) -> list[str]:
    """What became of each reversal of the deal that joined another deal's queued one (its event ``reversal
    queued`` names that deal in ``joined``; engine/txn/saf.py ``_joined_story``): acknowledged (its ``reversed
    CALL`` event: when, the message, the host's code), or still waiting on that deal's attempts."""
    evs = list(events)
    out = []
    for i, ev in enumerate(evs):
        q = ev.get("detail")
        if ev.get("to_state") != "reversal queued" or not isinstance(q, dict) or not q.get("joined"):
            continue
        call, other = q.get("call"), q.get("joined")
        head = f"  reversal of call {call}: joined deal {other}'s reversal (call {q.get('joined_call')})"
        ack = next((e for e in evs[i + 1:] if e.get("to_state") == f"reversed {call}"), None)
        a = ack.get("detail") if ack is not None and isinstance(ack.get("detail"), dict) else None
        if a is None:
            out.append(f"{head}; not acknowledged yet: its attempts are on that deal (`bsp deals show {other}`)")
            continue
        code = a.get("response_code")
        verdict = ("approved: the host reversed the original" if a.get("approved") else
                   "not an approval: the host has the reversal but did not apply it; ask the host about the original")
        at = ack.get("at")
        out.append(f"{head}; acknowledged at {_when(at) if isinstance(at, datetime) else at} ({a.get('mti')}, code "
                   f"{'?' if code is None else code}, {verdict}); nothing is left to send")
    return out


def release_lines(events: Iterable[dict[str, Any]]) -> list[str]:
    """A held deal released (engine/deal_hold.py): the run's deal and where its reply went (event ``hold release
    ran``); the run's deal itself (event ``screening released``): its reply was not sent on the sender's connection."""
    out = []
    for ev in events:
        d = ev.get("detail") if isinstance(ev.get("detail"), dict) else {}
        if ev.get("to_state") == "hold release ran":
            from engine.deal_hold import reply_text

            went = reply_text(d.get("reply"))
            out.append(f"  released: ran as deal {d.get('deal')} ({d.get('status') or d.get('outcome')}); {went}")
        elif ev.get("to_state") == "screening released" and d.get("held_deal"):
            out.append(f"  reply not sent on the sender's connection: this deal is the release of held deal "
                       f"{d.get('held_deal')}, whose sender was answered `held`; the reply below is kept here, and "
                       f"where else it went is on that deal (`released:`, event `hold release ran`)")
    return out


def _story_text(d: dict[str, Any], problems: list[str]) -> str:
    out = [f"deal {d['deal_id']}  {d['deal_type']}  {d['status']}"
           + (f"  code {d['response_code']}" if d["response_code"] else "")]
    facts = [("route", d["route"]), ("channel", d["channel"]), ("reference", d["reference"]),
             ("amount", None if d["amount"] is None else f"{d['amount']} {d['currency'] or ''}".strip()),
             ("party", d["party"])]
    out.append("  " + "  ".join(f"{k} {v}" for k, v in facts if v is not None))
    out.append(f"  received {_when(d['received_at'])}  finished {_when(d['finished_at'])}  "
               f"({d['duration_ms']:.1f} ms)")
    if d["reason"]:
        out.append(f"  reason: {d['reason']}")
    res = d.get("resolution")
    if res and d.get("flag") == "acknowledged":
        out.append(f"  flag closed: {REVERSAL_ACKNOWLEDGED} at {_when(res.get('at'))} (code {res.get('response_code')}, "
                   f"call {res.get('call')}) after the flag: the host reversed the original; nothing is left to "
                   f"settle, nothing to resolve")
    elif res:
        out.append(f"  resolved {_when(res.get('at'))} by {res.get('by')} (via {res.get('via')}"
                   + "".join(f", {k.replace('_', ' ')} {res[k]}" for k in ("stated_by", "os_user", "host", "peer",
                                                                           "client_cert") if res.get(k))
                   + f"): {res.get('outcome')}: {res.get('note')}")
    elif d.get("flag") == "open":
        out.append(f"  flagged for an operator, not resolved: settle it with the counterpart, then "
                   f"`bsp deals resolve {d['deal_id']} --outcome {'|'.join(OUTCOMES)} --note TEXT`")
    out.extend(joined_lines(d.get("events") or ()))
    out.extend(release_lines(d.get("events") or ()))
    cfg = d["config"]
    if cfg is None:
        out.append(f"  configuration {d['config_version']} (not recorded in config_versions)")
    else:
        out.append(f"  configuration {cfg['version']} loaded {_when(cfg['loaded_at'])}: "
                   f"{', '.join(cfg['files']) or 'no files'}")
    out.append(f"  audit chain seq {d['chain_seq'] if d['chain_seq'] is not None else '(none)'}")
    out.append("request:")
    out.append(_block(d["request"]))
    out.append("steps:" if d["steps"] else "steps: (no trace recorded)")
    for st in d["steps"]:
        vote = f"  vote {st['vote']}" if st["vote"] else ""
        out.append(f"  {st['seq']:>2}. {st['step']} ({st['kind']}) {st['outcome']}  "
                   f"{st['duration_ms']:.1f} ms  at {_when(st['started_at'])}{vote}")
        if st["detail"] is not None:
            out.append(_block(st["detail"]))
    if d["calls"]:
        out.append("calls:")
        for st in d["calls"]:
            out.append(f"  {st['step']}: {st['outcome']} in {st['duration_ms']:.1f} ms")
    out.append("reply:")
    out.append(_block(d["response"]))
    out.append("events:" if d["events"] else "events: (none recorded)")
    for ev in d["events"]:
        out.append(f"  {_when(ev['at'])}  {ev['from_state'] or '(start)'} -> {ev['to_state']}"
                   + (f"  {orjson.dumps(ev['detail']).decode()}" if ev["detail"] is not None else ""))
    out.extend(story_lines(d.get("dead_letters") or [], d.get("events") or ()))      # absent from an engine of an older bsp
    for p in problems:
        out.append(f"warning: {p}")
    return "\n".join(out)


def show(
    deal_id: str = typer.Argument(..., help="The deal id (32 hex digits, or its first 8 or more)."),
    ledger: Optional[Path] = LEDGER_OPT,
    deployment: Optional[Path] = DEPLOYMENT_OPT,
    env: Optional[str] = ENV_OPT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
    reveal: bool = typer.Option(False, "--reveal", help="Decrypt encrypted fields (needs the field keyring: "
                                                        "--deployment's ledger.field_keys, else "
                                                        "BSP_FIELD_KEYS_FILE or BSP_FIELD_KEYS); each reveal "
                                                        "is recorded in the audit trail first."),
    by: Optional[str] = typer.Option(None, "--by", help="With --reveal: who reveals, recorded with it (default: "
                                                        "the OS user running bsp)."),
    live: bool = LIVE_OPT,
    url: str = URL_OPT,
    token_file: Optional[Path] = TOKEN_FILE_OPT,
    ca: Optional[Path] = CA_OPT,
    cert: Optional[Path] = CERT_OPT,
    key: Optional[Path] = KEY_OPT,
) -> None:
    """One deal's whole story: request, steps, calls, reply, state changes, configuration, dead letters.

    A rejected or failed deal ends with its dead letter (also one never retried): id, status, kind, reason,
    its retries (each status change: time, who, outcome), the letters a retry refused again left the
    message in, and where the message waits now (JSON: `dead_letters`).

    `--live` asks a running engine (`GET /deals/{id}`); `--reveal` still decrypts here, with the
    keyring of this shell (GET /deals/{id} never sends clear text of an encrypted field): the deployment
    file's ledger.field_keys (`--deployment platform.yaml`, as bsp run takes it), else
    BSP_FIELD_KEYS_FILE / BSP_FIELD_KEYS.
    Every --reveal is recorded first in the ledger's audit trail (PCI DSS 10.2): the event `revealed` on
    the deal, with who (--by, else the OS user), the host and the fields shown in clear, never their
    values; on the ledger file with the audit key the engine writes with (ledger.audit_key, else
    BSP_AUDIT_KEY_FILE / BSP_AUDIT_KEY), with --live by the engine (`POST /deals/{id}/reveals`, its token
    the who). When it cannot be recorded, nothing is revealed (exit 2).
    Four eyes (operators.four_eyes lists deal.reveal): with --live (no keyring needed here) the engine
    records a request and nothing is shown (exit 0); once another operator approves it, the requester
    fetches the fields, decrypted by the engine, once: `bsp approvals reveal ID --live`. On the ledger
    file such a reveal is refused (exit 2).
    Exit 0 shown; 1 no such deal (one moved out by `bsp ledger archive` is named with its archive file
    and the command to read it there), or (--live) the engine cannot be reached, or a deployment file
    with errors; 2 no ledger file, an ambiguous id, or no (or an unusable) keyring for --reveal (a key that
    is not the one the ledger sealed with under its id: docs/security.md#keys-and-rotation), or a reveal
    that could not be recorded (a locked ledger, a keyed chain without its audit key, an archive).
    """
    from engine import fieldcrypt
    from engine.archive_lookup import archived_where, hint
    from engine.ledger_query import AmbiguousId, get_deal
    from engine.ledger_store import LedgerError
    from engine.reports.text import printable

    from engine import reveal_log

    who, where = who_reveals(by, reveal)
    found = ledger_keys(ledger, deployment, env, "bsp deals show", fields=reveal, audit=reveal and not live)
    ledger = found.path
    if not live:
        require_ledger(ledger)
    keyring = found.keys.keyring
    if reveal and not live:
        from engine.four_eyes import blocked_by_offline, offline_policy

        policy = offline_policy(ledger, found.deployment)
        if policy is not None and policy.covers("deal.reveal"):
            typer.echo(f"error: {blocked_by_offline('deal.reveal')}; under four eyes the engine decrypts the fields "
                       f"for the requester once another operator approved: `bsp deals show {deal_id} --live "
                       f"--reveal`, then `bsp approvals reveal ID --live`. Nothing was revealed", err=True)
            raise typer.Exit(2)
    if reveal and keyring is None and not live:
        needs_keyring(deployment, env)
    if live:
        from urllib.parse import quote

        problem: dict[str, Any] = {}
        d = fetch_one(url, token_file, ca, cert, key, f"/deals/{quote(deal_id, safe='')}", missing=problem)
        if d is None:
            info = problem.get("archived")
            why = f": {hint(info, 'deal', deal_id)}" if isinstance(info, dict) else ". List deals with `bsp deals --live`."
            typer.echo(f"error: the engine at {url} has no deal {deal_id!r}{why}", err=True)
            raise typer.Exit(1)
    else:
        if reveal:
            reveal_check(ledger, keyring)
        try:
            d = get_deal(ledger, deal_id)
        except (LedgerError, ValueError, AmbiguousId) as exc:
            typer.echo(f"error: {exc}", err=True)
            lock_hint(exc)
            raise typer.Exit(2) from None
        if d is None:
            info = archived_where(ledger, deal_id)
            why = (f": {hint(info, 'deal', deal_id, ledger.parent)}" if info is not None else
                   f". List deals with `bsp deals --ledger {ledger}`.")
            typer.echo(f"error: {ledger}: no deal {deal_id!r}{why}", err=True)
            raise typer.Exit(1)
    if reveal:        # recorded before anything is shown in clear; not recorded: nothing shown
        fields = reveal_log.sealed_paths(d["request"], "request") + reveal_log.sealed_paths(d["response"], "response")
        if live:
            from engine.commands.live import post_reveal

            body: dict[str, Any] = {"fields": fields, "by": who}
            if keyring is None:     # no keyring here: only a request under four eyes (the engine decrypts)
                body["four_eyes"] = True
            said = post_reveal(url, token_file, ca, cert, key, f"/deals/{d['deal_id']}/reveals", body)
            if said.get("pending"):
                from engine.four_eyes import pending_text

                typer.echo(pending_text({**said, "target": d["deal_id"]}, True))
                typer.echo(f"then {said.get('by')} fetches it, once, with `bsp approvals reveal {said.get('id')} "
                           f"--live` (the engine decrypts the fields for the requester alone)")
                return
            if said.get("why") == "not_under_four_eyes":
                needs_keyring(deployment, env)
        else:
            record_reveal(d["deal_id"], reveal_log.detail("deal", fields, who, "bsp deals show", **where),
                          ledger, found.keys.audit_key, None)
    problems: list[str] = []
    if keyring is not None:
        for k in ("request", "response"):
            d[k] = fieldcrypt.reveal(d[k], keyring, context=d["deal_id"], root=k, problems=problems)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(d, default=_json_default, option=orjson.OPT_UTC_Z) + b"\n")
        sys.stdout.buffer.flush()
        for p in problems:
            typer.echo(f"warning: {p}", err=True)
    else:
        typer.echo(printable(_story_text(d, problems)))   # the deal's text may hold terminal controls


def record_reveal(ident: str, event: dict[str, Any], ledger: Optional[Path], audit_key: Any,
                  live: tuple[Any, ...] | None) -> None:
    """Record a reveal in the audit trail (engine/reveal_log.py) before it is shown: in the ledger file, or
    (``live``: url, token file, ca, cert, key, path) by the running engine; one ``error:`` line and exit 2
    when it cannot be (nothing is shown)."""
    from engine import reveal_log

    if live is None:
        assert ledger is not None
        try:
            reveal_log.record_in_file(ledger, ident, event, audit_key)
        except reveal_log.NotRecorded as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        return
    from engine.commands.live import post_reveal

    post_reveal(*live, {"fields": event["fields"], "by": event["by"]})


def needs_keyring(deployment: Optional[Path], env: Optional[str], what: str = "--reveal") -> None:
    """``--reveal`` without a field keyring: one ``error:`` line saying where the keyring is looked for, exit 2
    (``bsp deals show --reveal``, ``bsp dead show --reveal`` of a sealed letter)."""
    from engine import fieldcrypt

    if deployment is None:
        where = (f"give the deployment file whose ledger.field_keys the engine writes with (--deployment "
                 f"platform.yaml), or set {fieldcrypt.ENV_FILE} (a JSON key file) or {fieldcrypt.ENV_KEYS} "
                 f"(id:base64,...)")
    else:   # the file was given: say it names no keyring, rather than asking for it again
        where = (f"{deployment} sets no ledger.field_keys{missing_in_env(env)} and neither "
                 f"{fieldcrypt.ENV_FILE} nor {fieldcrypt.ENV_KEYS} is set; if the engine writes with "
                 f"a keyring, add it under the file's `ledger:` (`field_keys: {{file: "
                 f"keys/field-keys.json}}`)")
    typer.echo(f"error: {what} needs the field keyring: {where}; see docs/security.md", err=True)
    raise typer.Exit(2)


def reveal_check(ledger: Path, keyring: Any) -> None:
    """Before revealing with ``keyring``: each of its keys must open its key id's check value in ``ledger``
    (engine/field_key_checks.py), else one ``error:`` line and exit 2; a key id the ledger sealed with that the
    ring lacks is a warning."""
    from engine.field_key_checks import check_file
    from engine.ledger_store import LedgerError

    try:
        warnings = check_file(ledger, keyring)
    except LedgerError as exc:             # KeyMismatch: another key under a key id the ledger sealed with
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=False, add_completion=False)
    group.callback(invoke_without_command=True)(quiet_pipe(deals))
    group.command("show")(quiet_pipe(show))
    group.command("resolve")(resolve)
    app.add_typer(group, name="deals")


__all__ = ["register", "deals", "parse_when", "require_ledger", "reveal_check", "needs_keyring", "record_reveal",
           "time_range"]


def who_reveals(by: Optional[str], reveal: bool) -> tuple[Any, Any]:
    """Who a show command's ``--reveal`` is recorded as (engine/reveal_log.py), and from where; ``--by``
    without ``--reveal``, or a ``--by`` the audit trail cannot take, is a usage error (exit 2)."""
    from engine.operator import by_else_os_user

    if by is not None and not reveal:
        raise typer.BadParameter("--by names who reveals: it goes with --reveal", param_hint="--by")
    try:
        return by_else_os_user(by)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).split(": ", 1)[-1], param_hint="--by") from None
