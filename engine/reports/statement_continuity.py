"""``statement-continuity``: the counterparty statements the engine posted, checked as a chain per account.

The ledger is the memory: every statement a route committed is a deal whose ``request`` holds the decoded
statement (the MT940's, MT950's or MT942's SWIFT message, or the camt.053 ``Stmt``; a camt.052 intraday report's ``Rpt``), its opening and
closing balances, statement number and entries in clear (only the account and the owner's information are masked).  So the report needs no table
of its own, nothing is kept in the engine's memory, and it reads the same after a restart.  The account is
named by the deal key's first part (``member/reference/date`` in the account consolidation routes: the
account's member number, as the key keeps it in clear); a deal without a key by its party.

Every committed statement received up to the end of the period is checked (engine/reconcile/continuity.py:
adds up, opens where the one before closed, numbers follow on, pages complete); the statements received in
the period are listed.  An intraday report (camt.052, or an MT942) is listed but is no link of the chain: its
balances are the day's so far, not a closing balance.  Statements ``bsp ledger archive`` moved out are read from the archive files beside
the ledger (their names are in its anchors), so a chain goes on across an archive; an archive not there is
named in the header (the chains then start after it).  The other SWIFT deals of the ledger (an MT103, an MT202:
block 2 says so, or block 4 has a field no statement has) are no statements and not read.  A statement rejected by its route (it did not add
up, an unknown account) is no link of the chain: the next one shows the gap.  The second table is the last
statement of each account: what the next one must open with.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from engine.reconcile.continuity import PASSED, Head, check, head_camt052, head_camt053, head_mt940, summary
from engine.reconcile.statement_checks import STATEMENT_COLUMNS
from engine.reports.model import Column, Report, Table
from engine.reports.source import Period, open_read_only
from formats.swift.statement_kind import swift_statement

COLUMNS = (Column("received_at", "timestamp", "received (UTC)"), *STATEMENT_COLUMNS,
           Column("deal_id", "text", "deal id"))

LAST_COLUMNS = (
    Column("account", "text"),
    Column("statements", "int"),
    Column("breaks", "int"),
    Column("last_statement", "text", "last statement/page"),
    Column("last_reference", "text", "last reference"),
    Column("last_day", "date", "its closing date"),
    Column("closing", "money", "its closing balance", currency="currency"),
    Column("currency", "text"),
    Column("next", "text", "next expected"),
)

# committed deals whose request is a statement; the key from the ledger's key index, else the `accepted` event
SQL = """
SELECT d.deal_id, d.received_at, d.party, d.request,
       coalesce(k.key, (SELECT json_extract_string(e.detail, '$.key') FROM deal_events e
                        WHERE e.deal_id = d.deal_id AND e.to_state = 'accepted' LIMIT 1))
FROM deals d LEFT JOIN (SELECT deal_id, min(key) AS key FROM deal_keys GROUP BY deal_id) k ON k.deal_id = d.deal_id
WHERE d.status = 'committed' AND d.received_at < ?
  AND (json_exists(d.request, '$.block4') OR json_exists(d.request, '$.BkToCstmrStmt')
       OR json_exists(d.request, '$.BkToCstmrAcctRpt'))
ORDER BY d.received_at, d.deal_id
"""


def account_of_key(key: str | None, party: str | None) -> str:
    """``statement_mt940|M0002/AS.../20261124`` -> ``M0002``; no key: ``party P (no deal key)``."""
    if key:
        return key.split("|", 1)[-1].split("/", 1)[0]
    return f"party {party or '?'} (no deal key)"


def heads_of(request: Any, *, place: str, account: str) -> list[Head]:
    doc = orjson.loads(request) if isinstance(request, (str, bytes)) else request
    if not isinstance(doc, dict):
        return []
    try:
        swift = swift_statement(doc)        # an MT940, MT950 or MT942 (block 2 says which, else its fields)
    except ValueError:
        return []                           # an MT103, an MT202 ... the ledger holds: no statement
    if swift is not None:
        return [head_mt940(swift[1], place=place, account=account)]
    intraday = "BkToCstmrAcctRpt" in doc          # a camt.052 intraday report: as an MT942, no link of the chain
    group = doc.get("BkToCstmrAcctRpt" if intraday else "BkToCstmrStmt") or {}
    stmts = group.get("Rpt" if intraday else "Stmt") if isinstance(group, dict) else None
    stmts = stmts if isinstance(stmts, list) else [stmts] if isinstance(stmts, dict) else []
    head = head_camt052 if intraday else head_camt053
    return [head(s, place=place, account=account) for s in stmts]


def _next(h: Head) -> str:
    bal = f"{h.closing} {h.currency}" if h.closing is not None else "?"
    if h.intermediate_close and h.numbered:
        return f"page {h.number}/{(h.page or 0) + 1}, opening {bal}"
    return (f"statement {h.number + 1}, opening {bal}" if h.numbered        # type: ignore[operator]
            else f"opening {bal}")


def _statements(path: Path, when: Period) -> tuple[list[tuple], list[str]]:
    """The committed statement deals of a ledger file up to the period's end, and its archives' names."""
    from engine.audit import anchors

    con = open_read_only(path)
    try:
        return con.execute(SQL, [when.end]).fetchall(), [a.archive for a in anchors(con)]
    finally:
        con.close()


def build(ledger: str | Path, when: Period) -> Report:
    ledger = Path(ledger)
    rows, archives = _statements(ledger, when)
    earlier: list[tuple] = []
    missing: list[str] = []
    for name in archives:          # oldest first: the chain goes on from the statements `bsp ledger archive` moved
        path = ledger.parent / name
        if path.is_file():
            earlier += _statements(path, when)[0]
        else:
            missing.append(name)
    rows = earlier + rows
    heads: list[Head] = []
    meta: list[tuple[Any, str]] = []
    for deal_id, at, party, request, key in rows:
        for h in heads_of(request, place=f"deal {deal_id}", account=account_of_key(key, party)):
            heads.append(h)
            meta.append((at, deal_id))
    findings = check(heads)
    shown = []
    per_account: dict[str, list] = {}
    for (at, deal_id), f in zip(meta, findings):
        h = f.head
        acc = per_account.setdefault(h.account, [0, 0, None])
        acc[0] += 1
        acc[1] += f.status not in PASSED
        if f.last:
            acc[2] = h
        if at >= when.start:
            shown.append((when.clock.local(at) if not when.clock.is_utc_midnight else at, h.account, h.statement(),
                          h.label, h.day, h.opening, h.entries, h.total, h.closing, h.currency, f.status, f.note,
                          deal_id))
    last = [(a, n, b, h.statement(), h.label, h.day, h.closing, h.currency, _next(h)) if h is not None else
            (a, n, b, None, None, None, None, None, "any statement: only interim or intraday reports (MT942, "
                                                    "camt.052) or statements without balances so far")
            for a, (n, b, h) in sorted(per_account.items())]
    counts = summary([f for (at, _), f in zip(meta, findings) if at >= when.start])
    breaks = sum(n for s, n in counts.items() if s not in PASSED)
    figures = [("statements", f"{len(shown):,}"), ("breaks", f"{breaks:,}")] + [
        (s.replace("_", " "), f"{n:,}") for s, n in sorted(counts.items()) if s not in PASSED]
    cols = COLUMNS if when.clock.is_utc_midnight else tuple(
        Column(c.name, c.kind, f"received ({when.clock.title()})") if c.name == "received_at" else c for c in COLUMNS)
    params = {"ledger": str(ledger), **when.params()}
    if archives:
        read = [a for a in archives if a not in missing]
        params["archives"] = (", ".join(read) + " read" if read else "") + (
            ("; " if read else "") + f"not beside the ledger, so the chains start after them: {', '.join(missing)}"
            if missing else "")
    return Report(name="statement-continuity", title="Statement continuity",
                  params=params,
                  tables=[Table("statements", "Statements received, checked as a chain per account", cols, shown),
                          Table("accounts", "Last statement per account (all the ledger holds up to the period's "
                                            "end)", LAST_COLUMNS, last)],
                  figures=figures, breaks=breaks)


__all__ = ["build", "COLUMNS", "LAST_COLUMNS", "account_of_key", "heads_of"]
