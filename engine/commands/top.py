"""``bsp top``: a live terminal view of a running engine, read from its admin API.

Per route: request rate, counts by outcome, in flight, latency (mean, p50 and
p99 from the ``bsp_route_latency_seconds`` histogram); per channel: role,
address, open connections, frames, outbound circuit state and whether the counterpart is up
(``DEGRADED`` in yellow on the first line, with a line per down channel); and the running
configuration version, generation and last reload.  ``--once`` prints one
frame (two samples ``--interval`` apart, for the rates) and exits.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

import typer

from engine.commands.admin_url import DEPLOYMENT_ADMIN_OPT
from engine.commands.ledger_keys import ENV_OPT
from engine.commands.admin import (CA_OPTION, CERT_OPTION, KEY_OPTION, TOKEN_FILE_OPTION, URL_OPTION, _call,
                                   _client, _problem)

if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.text import Text


def _sample(client: Any) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]], float]:
    r = _call(client, "GET", "/status")
    if r.status_code != 200:
        raise _problem(r)
    m = _call(client, "GET", "/metrics")
    if m.status_code != 200:
        raise _problem(m)
    return r.json(), latency_buckets(m.text), time.monotonic()


def latency_buckets(text: str) -> dict[str, list[tuple[float, float]]]:
    """route -> [(le, cumulative count), ...] sorted by le, from the Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families
    out: dict[str, list[tuple[float, float]]] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != "bsp_route_latency_seconds":
            continue
        for s in fam.samples:
            if s.name.endswith("_bucket"):
                out.setdefault(s.labels["route"], []).append((float(s.labels["le"]), s.value))
    for v in out.values():
        v.sort()
    return out


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The bucket upper bound under which ``q`` of the observations fall (None when there are none)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    want = q * buckets[-1][1]
    for le, count in buckets:
        if count >= want:
            return le
    return math.inf


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "> 30000"
    return f"{v * 1000:.1f}" if v < 1 else f"{v * 1000:.0f}"


def _at(value: Any) -> str:
    """`` at 2026-11-26 09:12:03 UTC`` from the status' ISO 8601 time (an older engine's epoch seconds too)."""
    from datetime import datetime, timezone
    try:
        t = (datetime.fromtimestamp(value, timezone.utc) if isinstance(value, (int, float))
             else datetime.fromisoformat(str(value)).astimezone(timezone.utc))
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return f" at {t:%Y-%m-%d %H:%M:%S} UTC"


def console() -> Console:
    """A console as wide as the terminal, or 160 columns when the output is a file or pipe."""
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=160)


CIRCUIT_STYLE = {"open": "bold red", "STOPPED": "bold red", "half_open": "yellow"}


def _past(iso: Any) -> bool:
    try:
        return datetime.fromisoformat(iso) <= datetime.now(timezone.utc)
    except (TypeError, ValueError):
        return False


def _state(now: dict[str, Any]) -> list[tuple[str, str]]:
    """The head line's state: DEGRADED in yellow (an outbound counterpart is down, reversals stranded, a
    certificate bsp presents expired, a ledger file cannot be written), NOT READY in red."""
    state = now.get("state")
    if state == "degraded":
        n = sum(1 for c in (now.get("channels") or {}).values() if c.get("up") is False)
        stranded = (now.get("reversals") or {}).get("stranded") or 0
        expired = sum(1 for c in now.get("certificates") or () if c.get("role") in ("server", "client")
                      and _past(c.get("not_after")))            # expired while the engine ran
        storage = len((now.get("ledger") or {}).get("faults") or ())   # ledger files that cannot be written
        ended = sum(1 for c in now.get("calendars") or () if (c.get("days_left") or 0) <= 0)   # calendars run out
        flaps = sum(1 for c in (now.get("channels") or {}).values() if c.get("up") is not False and c.get("flapping"))
        why = ([f"{n} outbound channel{'s' if n != 1 else ''} down"]
               if n or not (stranded or expired or storage or ended or flaps) else []) + \
              ([f"{flaps} channel{'s' if flaps != 1 else ''} flapping"] if flaps else []) + \
              ([f"{ended} calendar{'s' if ended != 1 else ''} run out"] if ended else []) + \
              ([f"{stranded} reversal{'s' if stranded != 1 else ''} stranded"] if stranded else []) + \
              ([f"{expired} certificate{'s' if expired != 1 else ''} expired"] if expired else []) + \
              ([f"ledger storage failing: {storage} fault{'s' if storage != 1 else ''}"] if storage else [])
        return [(f"  DEGRADED ({', '.join(why)})", "bold yellow")]
    if state == "not_ready" and not now.get("draining"):
        return [("  NOT READY", "bold red")]
    return []


def _expiry(cert: dict[str, Any] | None) -> Text:
    """The channel's first certificate to expire: ``2026-12-06 (9d, server)``; yellow within WARN_DAYS,
    red once expired."""
    from rich.text import Text

    from engine.certexpiry import WARN_DAYS
    if not cert:
        return Text("-")
    days = cert.get("days_left")
    date = str(cert.get("not_after", ""))[:10]
    if not isinstance(days, (int, float)):
        return Text(date)
    # from not_after, not from days_left (rounded to 0.1 day): a certificate with an hour left showed
    # EXPIRED, one with 4.96 days "5d" beside the log's "in 4 days"
    try:
        days = (datetime.fromisoformat(str(cert["not_after"])).timestamp() - time.time()) / 86400.0
    except (KeyError, ValueError):
        pass
    left = "EXPIRED" if days <= 0 else f"{int(days * 24)}h" if days < 1 else f"{int(days)}d"
    text = f"{date} ({left}, {cert.get('role')})"
    out = Text(text, style="bold red" if days <= 0 else "yellow" if days <= WARN_DAYS else "")
    if "on_disk" in cert:             # the file holds another certificate now: renewed, not yet reloaded
        disk = cert["on_disk"]
        out.append(f"; on disk {str(disk.get('not_after', ''))[:10]}, reload" if disk else "; file unreadable",
                   style="bold yellow")
    return out


def _totals(tot: dict[str, Any], most: int = 10) -> Any:
    """The fullest `limit` running totals (engine/totals.py): what deals that committed (or stand flagged)
    count, and what deals in flight hold."""
    from rich.table import Table

    title = (f"limit totals: {tot.get('buckets', 0):,} kept; business day {tot.get('day') or '-'} "
             f"({tot.get('business_day')})")
    table = Table(title=title, expand=True)
    for col in ("total", "key", "currency", "day", "confirmed", "reserved"):
        table.add_column(col, no_wrap=True, justify="right" if col in ("confirmed", "reserved") else "left")
    for r in (tot.get("fullest") or [])[:most]:
        table.add_row(str(r.get("total")), str(r.get("key")), str(r.get("currency") or "-"),
                      str(r.get("day") or "-"), str(r.get("confirmed")), str(r.get("reserved")))
    return table


def _calendars(rows: list[dict[str, Any]]) -> Any:
    """The calendar tables and when each runs out: yellow when bsp status warns of it (within the deployment's
    calendars.warn_days, 60 unless told), red once run out."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="calendars", expand=True)
    for col in ("calendar", "file", "covers", "runs out", "routes"):
        table.add_column(col, no_wrap=col != "routes")
    for c in rows:
        left = c.get("days_left")
        style = ("" if not isinstance(left, int) else "bold red" if left <= 0 else "yellow" if c.get("warning")
                 else "")
        when = f"{c.get('runs_out')} ({'RUN OUT' if isinstance(left, int) and left <= 0 else f'{left}d'})"
        table.add_row(str(c.get("table")), str(c.get("path")), str(c.get("covers")), Text(when, style=style),
                      ", ".join(c.get("routes") or ()))
    return table



def _resets(c: dict) -> str:
    """A tcp connect's connections closed by bsp after a call timed out (replies in order not to be trusted),
    and a MUX's reversals not sent because the same one was in flight (they shared its answer)."""
    n, j = c.get("resets") or 0, c.get("joined") or 0     # joined: a MUX's reversals sharing one in flight
    return (f", {n} reset{'s' if n != 1 else ''}" if n else "") + (f", {j} joined" if j else "")

def render(now: dict[str, Any], before: dict[str, Any] | None, seconds: float,
           buckets: dict[str, list[tuple[float, float]]]) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    reloads = now.get("reloads") or []
    last = reloads[-1] if reloads else None
    head = Text.assemble(
        ("bsp ", "bold"), f"{now.get('version')}  config ", (str(now.get("config_version")), "bold cyan"),
        (f"  env {now['environment']}" if now.get("environment") else
         "  env (base)" if now.get("deployment") else "", "bold"),
        f"  generation {now.get('generation')}  up {now.get('uptime_s', 0):.0f}s",
        ("  DRAINING" if now.get("draining") else "", "bold red"),
        *_state(now),
        f"  last reload: {last['source']} {'ok' if last['ok'] else 'FAILED'}{_at(last.get('at'))}" if last else "")
    routes = Table(title="routes", expand=True)
    for col in ("route", "channel", "req/s", "received", "committed", "rejected", "failed", "duplicate", "in flight",
                "avg ms", "p50 ms", "p99 ms"):
        routes.add_column(col, justify="left" if col in ("route", "channel") else "right", no_wrap=True)
    prev = (before or {}).get("routes", {})
    for name, r in sorted((now.get("routes") or {}).items()):
        p = prev.get(name)
        rate = (r["received"] - p["received"]) / seconds if p and seconds > 0 else None
        errors = r["failed"]
        b = buckets.get(name, [])
        routes.add_row(name, str(r.get("channel", "")), f"{rate:.1f}" if rate is not None else "-",
                       str(r["received"]), str(r["committed"]), str(r["rejected"]),
                       Text(str(errors) + (f" ({r['unrecorded']} not recorded)" if r.get("unrecorded") else ""),
                            style="bold red" if errors or r.get("unrecorded") else ""), str(r.get("duplicate", 0)),
                       str(r.get("in_flight", 0)),
                       f"{r['avg_latency_ms']:.1f}" if r.get("avg_latency_ms") is not None else "-",
                       _ms(quantile(b, 0.5)), _ms(quantile(b, 0.99)))
    channels = Table(title="channels", expand=True)
    for col in ("channel", "role", "address", "connections", "frames in", "frames out", "circuit", "counterpart",
                "cert expires"):
        channels.add_column(col, no_wrap=True)
    for name, c in sorted((now.get("channels") or {}).items()):
        circuit = "STOPPED" if c.get("stopped") else c.get("circuit", "")
        up = c.get("up")
        channels.add_row(name, str(c.get("role", "")), str(c.get("address", "")),
                         str(c.get("connections", "-")), str(c.get("frames_in", "-")),
                         str(c.get("frames_out", "-")),
                         Text(circuit, style=CIRCUIT_STYLE.get(circuit, "")),
                         Text(("-" if up is None else
                              f"FLAPPING {c['flapping']['lost_connections']} lost/{c['flapping']['window_s']}s"
                              if up and c.get("flapping") else "up" if up else
                              f"DOWN {c.get('failed_calls') or 0} failed") + _resets(c),
                              style="" if up is not False and not c.get("flapping") else
                              "bold yellow" if up else "bold red"),
                         _expiry(c.get("cert_expiry")))
    parts: list[Any] = [head]
    if last and not last.get("ok") and last.get("error"):   # a --watch / SIGHUP reload's failure is seen here first
        parts.append(Text(f"last reload FAILED, the running configuration is kept: {last['error']}; fix the files "
                          f"(bsp check), then reload again", style="bold red"))
    if now.get("state") == "degraded":                 # which outbound channel is down, since when, why
        parts += [Text(f"degraded: {r}", style="yellow") for r in now.get("reasons") or []]
    parts += [routes, channels]
    # certificates of what has no row above (the admin API's: its own and its client_ca): the first to expire
    # of each, as the `cert expires` column shows a channel's (a renewal forgotten there went unseen)
    firsts: dict[str, dict[str, Any]] = {}
    for c in now.get("certificates") or ():
        owner = str(c.get("channel"))
        if owner not in (now.get("channels") or {}) and c.get("role") != "peer" and (
                owner not in firsts or str(c.get("not_after")) < str(firsts[owner].get("not_after"))):
            firsts[owner] = c
    for owner, c in sorted(firsts.items()):
        parts.append(Text.assemble(f"{owner}: certificate expires ", _expiry(c), f" ({c.get('path')})"))
    # what is served and what is on disk differ (a renewal written, no reload since): each, with what to do
    parts += [Text(f"{c.get('channel')}: {c.get('role')} certificate {c.get('path')}: served expires "
                   f"{str(c.get('not_after', ''))[:16]}; {c['note']}", style="bold yellow")
              for c in now.get("certificates") or () if c.get("note")]
    if now.get("calendars"):           # business-day calendars the routes use (engine/calexpiry.py)
        parts.append(_calendars(now["calendars"]))
        parts += [Text(f"warning: {c['warning']}", style="bold red" if (c.get("days_left") or 0) <= 0 else "yellow")
                  for c in now["calendars"] if c.get("warning") and (c.get("days_left") or 0) > 0]
    if (now.get("totals") or {}).get("fullest"):     # `limit` running totals (engine/totals.py)
        parts.append(_totals(now["totals"]))
    for name, c in sorted((now.get("channels") or {}).items()):     # a file watch running a file: how far
        if c.get("running") and c.get("running_records"):
            done, total = c.get("running_done") or 0, c["running_records"]
            parts.append(Text(f"file watch {name}: {c['running']}: {done:,} of {total:,} records run "
                              f"({100 * done // total}%); {c.get('files_done', 0)} file(s) to done/, "
                              f"{c.get('files_error', 0)} to error/ since start"))
        for file, why in sorted((c.get("stuck") or {}).items()):      # cannot be read or moved: stays
            parts.append(Text(f"file watch {name}: {file} stays in {c.get('address', 'its folder')}: {why} (tried "
                              f"again at each look)", style="bold red"))
    audit = (now.get("ledger") or {}).get("audit") or {}
    if audit.get("break_at_start"):    # records cut from the audit chain while stopped, recorded at this start
        b = audit["break_at_start"]
        parts.append(Text(f"AUDIT BREAK recorded at this start (seq {b.get('seq')}): {b.get('what')}; bsp audit verify "
                          f"reports it from now on (docs/security.md#a-cut-while-the-engine-was-stopped)",
                          style="bold red"))
    elif audit and not audit.get("keyed"):
        parts.append(Text("ledger records not tamper-protected: no audit key (ledger.audit_key, BSP_AUDIT_KEY_FILE)",
                          style="yellow"))
    if now.get("open_flags"):          # deals whose flag is open now, whenever raised (engine/ops/openflags.py)
        parts.append(Text(f"deals waiting for an operator: {now['open_flags']} (flag open, not resolved: "
                          f"bsp deals --flagged --live lists them; settle each, then bsp deals resolve)",
                          style="bold red"))
    loop = now.get("event_loop") or {}
    if loop.get("stalls"):             # the loop woke a task over 0.5 s late (engine/ops/looplag.py)
        parts.append(Text(f"event loop stalls since start: {loop['stalls']:,} (worst {loop.get('max_lag_ms', 0):,.0f} "
                          f"ms at {loop.get('max_lag_at')}; now {loop.get('lag_ms', 0):,.1f} ms): every timeout and "
                          f"reply waited with it; a counterpart's timeouts then may be the engine's own (look at the "
                          f"CPU)", style="yellow"))
    sc = now.get("statement_chains") or {}
    if sc.get("breaks"):               # `continuity` steps: statements posted that did not follow on
        kinds = ", ".join(f"{k.replace('_', ' ')} {n:,}" for k, n in (sc.get("breaks_by_kind") or {}).items())
        parts.append(Text(f"statement breaks since start: {sc['breaks']:,} of {sc.get('statements', 0):,} statements "
                          f"({kinds}): posted all the same; bsp deals --statement-breaks --live lists them "
                          f"(each deal's event `statement break` names the statement before it)", style="yellow"))
    if now.get("dead_letters_new"):    # dead letters waiting now, whatever run wrote them (engine/ops/deadcount.py)
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted((now.get("dead_letters_new_by_kind") or {}).items(),
                                                          key=lambda kv: -kv[1]) if n)
        parts.append(Text(f"dead letters waiting: {now['dead_letters_new']:,}{f' ({kinds})' if kinds else ''}: "
                          f"rejected or failed deals, not retried nor purged; bsp dead list --live --status new "
                          f"lists them; once the cause is gone, bsp dead retry --live --kind KIND --dry-run, then "
                          f"--yes", style="yellow"))
    if now.get("flagged_deals"):       # failed deals left at a counterpart (engine/txn/flagging.py)
        done = f", {now['resolved_deals']} resolved since" if now.get("resolved_deals") else ""
        parts.append(Text(f"deals flagged for an operator since start: {now['flagged_deals']}{done} (something of "
                          f"them may stand at a counterpart: bsp deals --flagged --live lists those not resolved)",
                          style="bold red"))
    rev = now.get("reversals")
    if rev and (rev.get("pending") or rev.get("attempts") or rev.get("cancelled")):   # ISO 8583 store and forward
        flagged = rev.get("flagged") or 0
        parts.append(Text.assemble(
            f"reversals: {rev.get('pending', 0)} pending, ",
            (f"{flagged} flagged for an operator (not acknowledged after {rev.get('alert_after')} attempts)",
             "bold red") if flagged else "0 flagged",
            (f", {rev['stranded']} stranded (no call for their channel: kept, not sent)", "bold yellow")
            if rev.get("stranded") else "",
            f", {rev.get('attempts', 0)} attempts, {rev.get('acknowledged', 0)} acknowledged since start",
            (f" ({rev['not_approved']} with a response code not approved: check them with the host)", "bold yellow")
            if rev.get("not_approved") else "",
            f", {rev['cancelled']} cancelled by an operator's resolution of their deal" if rev.get("cancelled")
            else ""))
        for r in rev.get("queue") or []:
            if r.get("stranded"):
                parts.append(Text(f"  deal {r['deal_id']} route {r['route']} call {r['call']}: {r['attempts']} "
                                  f"attempts since {r['queued_at']}; {r['stranded']}", style="yellow"))
            elif r.get("flagged"):
                parts.append(Text(f"  deal {r['deal_id']} route {r['route']} call {r['call']}: "
                                  f"{r['attempts']} attempts since {r['queued_at']}; last {r.get('last')}",
                                  style="red"))
    return Group(*parts)


def top(deployment: Optional[Path] = DEPLOYMENT_ADMIN_OPT, env: Optional[str] = ENV_OPT,
        url: str = URL_OPTION, token_file: Optional[Path] = TOKEN_FILE_OPTION, ca: Optional[Path] = CA_OPTION,
        cert: Optional[Path] = CERT_OPTION, key: Optional[Path] = KEY_OPTION,
        interval: float = typer.Option(1.0, "--interval", help="Seconds between samples."),
        once: bool = typer.Option(False, "--once", help="Print one frame and exit.")) -> None:
    """Live view of a running engine: per-route rates, latencies, errors; channel connections.

    Ctrl-C leaves.  Exit 0; 1 the engine answered with a problem or cannot be reached; 2 usage error.
    """
    if interval <= 0:
        typer.echo(f"error: --interval must be > 0 seconds, got {interval}", err=True)
        raise typer.Exit(2)
    from rich.live import Live

    out = console()
    with _client(url, token_file, ca, cert, key) as client:
        before, _, t0 = _sample(client)
        if once:
            time.sleep(interval)
            now, buckets, t1 = _sample(client)
            out.print(render(now, before, t1 - t0, buckets))
            return
        with Live(render(before, None, 0, {}), console=out, refresh_per_second=4, screen=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    now, buckets, t1 = _sample(client)
                    live.update(render(now, before, t1 - t0, buckets))
                    before, t0 = now, t1
            except KeyboardInterrupt:
                pass


def register(app: typer.Typer) -> None:
    app.command("top")(top)
