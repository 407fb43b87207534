"""``bsp deals --held`` (the deals a screening held for a compliance officer) and the offline side of
``bsp deals resolve ID --outcome release|reject`` (engine.deal_hold)."""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer


def hit_text(h: dict[str, Any]) -> str:
    """``party: UN SYN-1 on alias, score 0.965 (threshold 0.90)``: what the officer looks up in the list."""
    return (f"{h.get('step')}: {h.get('list')} {h.get('entry')} on {h.get('on')}, score {h.get('score')} "
            f"(threshold {h.get('threshold')})")


def decision_text(d: dict[str, Any] | None) -> str:
    if not d:
        return "held: `bsp deals resolve ID --outcome release|reject --note REASON`"
    at = d.get("at")
    when = at.strftime("%Y-%m-%d %H:%M") if isinstance(at, datetime) else str(at or "")[:16]
    run = f", ran as deal {d['deal']}" if d.get("deal") else ""
    return f"{d.get('outcome')} by {d.get('by')} {when}: {d.get('note')}{run}"


def render_held(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from engine.reports.text import printable

    def text(value: Any) -> str:
        return escape(printable("" if value is None else str(value)))

    table = Table(title=escape(printable(title)), title_justify="left")
    for name, opts in (("received (UTC)", {"no_wrap": True}), ("route", {"overflow": "fold"}),
                       ("reference", {"no_wrap": True}), ("amount", {"justify": "right", "no_wrap": True}),
                       ("cur", {"no_wrap": True}), ("code", {"no_wrap": True}), ("hits", {"overflow": "fold"}),
                       ("decision", {"overflow": "fold"}), ("deal id", {"overflow": "fold"})):
        table.add_column(name, **opts)
    for r in rows:
        at = r.get("received_at")
        table.add_row(at.strftime("%Y-%m-%d %H:%M:%S") if isinstance(at, datetime) else text(str(at or "")[:19]),
                      text(r.get("route")), text(r.get("reference")), text(r.get("amount")), text(r.get("currency")),
                      text(r.get("response_code")), text("; ".join(hit_text(h) for h in r.get("hits") or ())),
                      text(decision_text(r.get("decision"))), text(r.get("deal_id")))
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 220)
    console.print(table)
    if not rows:
        console.print("no deal held by a screening")


def decide_offline(found: Any, deal_id: str, outcome: str, note: str, by: str, *, host: str,
                   os_user: str | None) -> dict[str, Any] | None:
    """The decision recorded in the ledger file (no engine may hold it); a release runs the deal's request
    through the deployment's routes, in this process, against the counterparts (as `bsp dead retry` does)."""
    import trio

    from engine.deal_hold import decide
    from engine.ledger import open_ledger

    path: Path = found.path
    program = registry = overrides = None
    if outcome == "release":
        if found.deployment is None:
            raise typer.BadParameter("release runs the held request through the routes, against their "
                                     "counterparts: give --deployment platform.yaml (its routes and overrides), "
                                     "or --live to have the running engine run it", param_hint="--outcome")
        from engine.commands.dead import _configuration

        program, registry, overrides = _configuration(None, found.deployment)

    async def run() -> dict[str, Any] | None:
        keys = found.keys
        async with open_ledger(path, audit_key=keys.audit_key, keyring=keys.keyring) as led:
            if program is None:
                return await decide(led, deal_id, outcome, note, by, via="ledger file", host=host,
                                    os_user=os_user, hint_list=f"bsp deals --held --ledger {path}")
            from engine.deadletter import offline_injector

            async with offline_injector(program, registry, led, overrides) as inject:
                return await decide(led, deal_id, outcome, note, by, via="ledger file", host=host,
                                    os_user=os_user, injector=inject, keyring=keys.keyring,
                                    hint_list=f"bsp deals --held --ledger {path}")

    return trio.run(run)


def report(done: dict[str, Any], where: str) -> None:
    """What the decision did, for the operator."""
    beside = "".join(f", {k.replace('_', ' ')} {done[k]}" for k in ("stated_by", "os_user") if done.get(k))
    verb = "released" if done["outcome"] == "release" else "rejected"
    typer.echo(f"deal {done['deal_id']} {verb} by {done['by']}{f' ({beside[2:]})' if beside else ''} at "
               f"{done['at']}, recorded in {where}")
    for h in done.get("hits") or ():
        typer.echo(f"  hit {hit_text(h)}")
    run = done.get("run")
    if run:
        typer.echo(f"its request ran as deal {run.get('deal')}: {run.get('outcome')}")
        if not run.get("ok"):
            typer.echo(f"warning: the released request did not go through: {run.get('outcome')}", err=True)
        for line in reply_lines(run):
            typer.echo(line)
        if run.get("not_recorded"):
            typer.echo(f"warning: {run['not_recorded']}", err=True)


def reply_lines(run: dict[str, Any]) -> list[str]:
    """Where the released run's reply went (engine.deal_hold.reply_whereabouts): said plainly, the reply shown."""
    import orjson

    reply = run.get("reply")
    if not isinstance(reply, dict):
        return []
    if reply.get("delivered"):
        return [f"its reply was delivered to {reply.get('to')}; kept on deal {reply.get('kept_on')} too: "
                f"`bsp deals show {reply.get('kept_on')}`"]
    if reply.get("to"):
        return [f"warning: its reply was NOT delivered: {reply.get('why')}"]
    kept = reply.get("kept_on")
    head = "its reply went to no one (the sender was answered `held` and its connection is not kept)"
    if reply.get("values") is None:
        return [f"{head}; {reply.get('why', '').rsplit('; ', 1)[-1]}"]
    return [f"{head}; it is kept on deal {kept}: `bsp deals show {kept}`; tell the sender the outcome",
            f"  reply: {orjson.dumps(reply['values']).decode()}"]
