"""The statements of an MT940 or camt.053 file, checked before its lines are reconciled (``bsp reconcile``).

A camt.052's intraday reports and an MT940 file's MT942 interim reports carry no closing balance: each is
``unchecked`` and no link of its account's chain, but its entries must agree with its own totals (camt.052
``TxsSummry``, MT942 ``:90D:`` / ``:90C:``).

Each statement adds up (opening + entries = closing), and each account's statements form a chain: opening
where the one before closed, numbers following on, pages complete (engine/reconcile/continuity.py).  The
result is the form's ``statements`` table; a statement that breaks a control is a break of the
reconciliation (exit 1), as a line is: its lines may match the ledger one by one while a line is missing.
"""
from __future__ import annotations

from pathlib import Path

from formats.errors import FormatError
from formats.iso20022 import Iso20022Codec
from formats.swift import iter_statements

from engine.reconcile.continuity import PASSED, Finding, Head, check, head_camt052, head_camt053, head_mt940
from engine.reconcile.statement_camt053 import MESSAGES, item_offsets
from engine.reports.model import Column, Report, Table

# a statement's figures and what the checks found, as the ledger report (engine/reports/statement_continuity.py)
# shows them too
STATEMENT_COLUMNS = (
    Column("account", "text"),
    Column("statement", "text", "statement/page"),
    Column("reference", "text"),
    Column("day", "date", "closing date"),
    Column("opening", "money", currency="currency"),
    Column("entries", "int"),
    Column("entries_total", "money", "entries (net)", currency="currency"),
    Column("closing", "money", currency="currency"),
    Column("currency", "text"),
    Column("status", "text"),
    Column("note", "text"),
)
COLUMNS = (*STATEMENT_COLUMNS, Column("where", "text", "statement at"))


def file_heads(path: Path, kind: str) -> list[Head]:
    """The statements of a file the reconciliation has already read (so it is readable)."""
    if kind == "mt940":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        heads = []
        for start, fields in iter_statements(text):
            if isinstance(fields, FormatError):
                continue                    # load_mt940 refused the file already had one been bad
            heads.append(head_mt940(fields, place=f"{path}:{text.count(chr(10), 0, start) + 1}"))
        return heads
    if kind in MESSAGES:
        message, group, part, _ = MESSAGES[kind]
        data = path.read_bytes()
        doc = Iso20022Codec(message=message, validate=False).decode(data)
        stmts = (doc.get(group) or {}).get(part) or []
        stmts = stmts if isinstance(stmts, list) else [stmts]
        head = head_camt052 if kind == "camt052" else head_camt053     # an intraday report: as an MT942
        offsets = item_offsets(data, part)
        offsets = offsets if len(offsets) == len(stmts) else []        # a tag the regex cannot tell: none said
        return [head(s, place=f"{path}: {part} {i}" + (f" (byte {offsets[i - 1]})" if offsets else ""))
                for i, s in enumerate(stmts, 1)]
    return []


def rows(findings: list[Finding]) -> list[tuple]:
    return [(f.head.account, f.head.statement(), f.head.label, f.head.day, f.head.opening, f.head.entries,
             f.head.total, f.head.closing, f.head.currency, f.status, f.note or None, f.head.place)
            for f in findings]


def add_statement_checks(report: Report, path: Path, kind: str) -> int:
    """Adds the ``statements`` table to the form (MT940, camt.053, camt.052) and says in its figures how many statements
    break a control; returns that number."""
    heads = file_heads(path, kind)
    if not heads:
        return 0
    found = check(heads)
    bad = sum(1 for f in found if f.status not in PASSED)
    report.tables.append(Table("statements", "Statements: each adds up, each account's follow on", COLUMNS,
                               rows(found)))
    report.figures.insert(1, ("statement breaks", f"{bad:,}"))
    return bad


def statement_breaks(report: Report) -> int:
    """How many statements of the form's ``statements`` table break a control (0 without the table)."""
    for t in report.tables:
        if t.name == "statements":
            i = t.index("status")
            return sum(1 for r in t.rows if r[i] not in PASSED)
    return 0


__all__ = ["COLUMNS", "add_statement_checks", "file_heads", "statement_breaks"]
