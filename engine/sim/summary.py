"""The demo's end-of-run tables, read from the ledger.

* ``summarize(ledger, program, since)``: per service (the route file's folder,
  found from the deal's inbound channel, so unrouted and malformed requests
  count under the service whose channel received them): deals, committed,
  rejected, failed, duplicate (a repeat answered with its original's reply),
  committed amounts by currency, success rate, and the
  engine's latency p50/p99 (the deal's ``duration_ms``).
* ``overall_table`` / ``service_table``: rich tables that fit 80-120 columns
  (one currency per row, short service labels), readable in a CI log too.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from rich import box
from rich.table import Table

# at most 14 characters, so the per-service table fits 80 columns
LABELS = {"receivables_payables": "recv./payables", "account_consolidation": "account consol",
          "insurance_brokerage": "insurance brok", "trade_receiving": "import/export",
          "fund_consolidation": "fund consol", "fund_management": "fund mgmt", "customer_service": "customer svc",
          "fund_subscription": "fund subscr.", "claims_payout": "claims payout",
          "premium_collection": "premium coll."}


def label(service: str) -> str:
    return LABELS.get(service, service.replace("_", " ")[:14])


def service_of_channel(program: Any) -> dict[str, str]:
    """inbound channel -> its service (the folder under routes/ of the routes receiving from it)."""
    return {r.channel: Path(r.pos.file).parent.name for r in program.routes if r.pos}


def summarize(ledger_path: Path, program: Any, since: datetime) -> list[dict[str, Any]]:
    """Per service, the deals of this run's requests: a file watch channel's end-of-file messages (routes whose
    `when` reads `file.end`) are deals of their own but no request a simulator sent, so they are left out (the
    request a batch client put in a file of its own, ``Service.refused_whole``, which its route's checks refused
    whole, is a rejected deal of its own: engine/channels/file_precheck.py)."""
    from dsl.fileend import reads_file_end

    svc_of = service_of_channel(program)
    ends = [r.name for r in program.routes if reads_file_end(getattr(r, "when", None))]
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        per_channel = con.execute(
            "SELECT channel, count(*), count(*) FILTER (WHERE status = 'committed'), "
            "count(*) FILTER (WHERE status = 'rejected'), count(*) FILTER (WHERE status = 'failed'), "
            "count(*) FILTER (WHERE status = 'duplicate'), list(duration_ms) "
            "FROM deals WHERE config_version = ? AND received_at >= ? AND NOT list_contains(?, route) "
            "GROUP BY channel", [program.version, since, ends]).fetchall()
        amounts = con.execute(
            "SELECT channel, currency, sum(amount) FROM deals WHERE config_version = ? AND received_at >= ? "
            "AND NOT list_contains(?, route) "
            "AND status = 'committed' AND currency IS NOT NULL AND currency <> '' AND amount <> 0 "
            "GROUP BY channel, currency", [program.version, since, ends]).fetchall()
    finally:
        con.close()
    by_svc: dict[str, dict[str, Any]] = {}
    for channel, n, ok, rej, failed, dup, durations in per_channel:
        s = by_svc.setdefault(svc_of.get(channel, channel),
                              {"deals": 0, "committed": 0, "rejected": 0, "failed": 0, "duplicate": 0, "durations": [],
                               "amounts": {}})
        s["deals"] += n
        s["committed"] += ok
        s["rejected"] += rej
        s["failed"] += failed
        s["duplicate"] += dup
        s["durations"] += [d for d in durations if d is not None]
    for channel, ccy, total in amounts:
        s = by_svc[svc_of.get(channel, channel)]
        s["amounts"][ccy] = s["amounts"].get(ccy, Decimal(0)) + total
    rows = []
    for name in sorted(by_svc):
        s = by_svc[name]
        d = sorted(s.pop("durations"))
        s.update(service=name, success_rate=(s["committed"] / s["deals"]) if s["deals"] else None,
                 p50_ms=percentile(d, 50), p99_ms=percentile(d, 99))
        rows.append(s)
    return rows


def percentile(values: list[float], p: int) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (None when empty)."""
    if not values:
        return None
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def overall_table(lines: list[dict[str, Any]], title: str) -> Table:
    """``lines``: dicts with name, sent, replies, committed, rejected, failed, duplicate, lost, rate (msgs/s)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False,
                  collapse_padding=True)
    table.add_column("", justify="left", no_wrap=True)
    for col in ("sent", "replies", "committed", "rejected", "failed", "dup", "lost", "msgs/s"):
        table.add_column(col, justify="right", no_wrap=True)
    for i, r in enumerate(lines):
        style = "bold" if i == len(lines) - 1 and len(lines) > 1 else None
        table.add_row(r["name"], f"{r['sent']:,}", f"{r['replies']:,}", f"{r['committed']:,}", f"{r['rejected']:,}",
                      f"{r['failed']:,}", f"{r.get('duplicate', 0):,}", f"{r['lost']:,}", f"{r['rate']:,.0f}",
                      style=style)
    return table


def service_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False,
                  collapse_padding=True)
    for col, just in (("service", "left"), ("deals", "right"), ("ok", "right"), ("rej", "right"),
                      ("fail", "right"), ("dup", "right"), ("ok %", "right"), ("p50ms", "right"), ("p99ms", "right"),
                      ("ccy", "left"), ("committed", "right")):
        table.add_column(col, justify=just, no_wrap=True, min_width=len(col))  # type: ignore[arg-type]
    for r in rows:
        rate = f"{r['success_rate']:.0%}" if r["success_rate"] is not None else "-"
        amounts = sorted(r["amounts"].items()) or [("-", None)]
        for i, (ccy, amt) in enumerate(amounts):
            amount = "-" if amt is None else f"{amt:,.2f}"
            if i == 0:
                table.add_row(label(r["service"]), f"{r['deals']:,}", f"{r['committed']:,}", f"{r['rejected']:,}",
                              f"{r['failed']:,}", f"{r.get('duplicate', 0):,}", rate, _ms(r["p50_ms"]),
                              _ms(r["p99_ms"]), ccy, amount)
            else:
                table.add_row("", "", "", "", "", "", "", "", "", ccy, amount)
    return table


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def reading_guide(total: dict[str, Any]) -> list[str]:
    """How to read the overall table, with this run's ``total`` line checked against it: sent = replies +
    lost, replies = committed + rejected + failed + dup.  A sum that does not hold is said, with both sides."""
    lines = ["how to read it: sent = replies + lost; replies = committed + rejected + failed + dup (the deals "
             "in the ledger). Rejected and failed are on purpose: the simulators send bad requests and their "
             "counterparts refuse some. Dup: requests the simulators sent again (as a mainframe does after a "
             "time-out), answered with the original's reply, recorded as duplicate deals. Lost must be 0."]
    if total["sent"] != total["replies"] + total["lost"]:
        lines.append(f"note: sent {total['sent']:,} is not replies {total['replies']:,} + lost {total['lost']:,}")
    deals = total["committed"] + total["rejected"] + total["failed"] + total.get("duplicate", 0)
    if deals != total["replies"]:
        lines.append(f"note: committed + rejected + failed + dup = {deals:,}, not the {total['replies']:,} replies "
                     f"(a request with no reply may still have its deal row, or a reply no deal row)")
    return lines


def bill_mix_line(by_kind: dict[str, int], expect: dict[str, str], refused: int) -> str:
    """The bill payment requests by kind, split into those meant to commit and those meant to be rejected."""
    good = [k for k in sorted(by_kind) if expect.get(k) == "00"]
    bad = [k for k in sorted(by_kind) if expect.get(k) != "00"]
    return (f"bill payment requests by kind: {', '.join(f'{k} {by_kind[k]:,}' for k in good)} meant to commit "
            f"(the biller refused {refused:,} of them: failed); "
            f"{', '.join(f'{k} {by_kind[k]:,}' for k in bad)} meant to be rejected")


def repeats_line(sent: int, same_reply: int, twice: int, refs: int, *, ran_again: int = 0,
                 past_retention: int = 0, again: int = 0) -> str:
    """The repeats: how many were sent again, how many got their original's reply byte for byte, and how
    many references reached a counterpart more than once (``refs``: the references the counterparts saw).
    Counted apart, by the ledger's record of them (engine.sim.ledger_count.split_repeats): ``ran_again``,
    repeats whose original freed its key (they ran as new deals, whatever they were answered);
    ``past_retention``, answered 94 past the key store's retention; ``again``, references that reached a
    counterpart again for such a deal (not twice for one deal: nothing of the first stood)."""
    apart = [f"{ran_again:,} ran again as new deals, their original having freed its key (nothing of it stayed "
             f"at a counterpart)"] if ran_again else []
    apart += [f"{past_retention:,} answered 94 past the key store's retention"] if past_retention else []
    tail = (f"; {again:,} more reached one again for a deal that ran again, their first deal undone or never "
            f"sent (not paid twice)") if again else ""
    return (f"repeats: {sent:,} good requests sent again after their reply (as a mainframe does after a "
            f"time-out), {same_reply:,} answered with the original reply byte for byte"
            + "".join(f", {a}" for a in apart)
            + f"; {twice:,} of {refs:,} references reached a counterpart twice (paid twice){tail}")


def next_steps(bsp: str, ledger: Path, default_ledger: Path, reports: list[Path], day: str) -> list[str]:
    """Where to look next: commands that run as printed (``bsp`` as this shell can start it) and the docs."""
    opt = "" if ledger == default_ledger else f" --ledger {ledger}"
    html = [p for p in reports if p.suffix == ".html"]
    lines = ["where to look next:",
             f"  the deals behind the figures:  {bsp} deals{opt} --status failed",
             f"  the day's figures again:       {bsp} report daily-summary{opt} --from {day}"]
    if html:
        lines.append("  the reports above:             the HTML pages open in any browser; the CSV files in a "
                     "spreadsheet")
    lines.append("  the documentation, by reader:  docs/index.md (analyst, administrator, tester)")
    return lines
