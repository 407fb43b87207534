"""MT940 statements (``formats.swift.parse_statements`` + ``statement_view``) as statement lines; MT942 interim
reports and MT950 statement messages (FIN, or block 4 alone) read the same.  Any other file (an MT103, a
pain.001, a CSV) is refused saying what it is, where, and which ``--type`` reads it (statement_type.py).

Per :61: line: booking date (entry date, else value date), value date, the
signed amount in the statement's currency, and candidate references in this
order: the SEPA end-to-end id (``EREF+`` in :86:), the :61: customer
reference (account owner's), the bank reference (after ``//``), then
``KREF+`` and ``MREF+``; ``NONREF`` counts as none.  The :86: text, with its
``?NN`` sub-field markers and line breaks removed, is searched for a ledger
reference when none of these matches.
"""
from __future__ import annotations

import re
from pathlib import Path

from formats.errors import FormatError
from formats.swift import parse_statements, statement_view
from formats.swift.statement_kind import NotAStatement

from engine.reconcile.lines import StatementLine
from engine.reconcile.statement_type import text_of, type_hint
from engine.reports.model import ReportError

_SUBFIELD = re.compile(r"\?\d{2}")
_KEYWORD = re.compile(r"(EREF|KREF|MREF|CRED|SVWZ|ABWA|ABWE|DEBT|BREF|RREF|COAM|OAMT|SQTY|IBAN|BIC)\+")


def flat_86(text: str | None, joiner: str = "") -> str:
    """:86: as one line: sub-field markers ``?20`` removed, its 65-column lines joined with ``joiner``."""
    return _SUBFIELD.sub("", (text or "").replace("\r", "").replace("\n", joiner))


def sepa_refs(flat: str) -> dict[str, str]:
    """``EREF+X SVWZ+Y`` -> {"EREF": "X", "SVWZ": "Y"}."""
    out: dict[str, str] = {}
    marks = list(_KEYWORD.finditer(flat))
    for m, nxt in zip(marks, marks[1:] + [None]):
        out.setdefault(m[1], flat[m.end(): nxt.start() if nxt else len(flat)].strip())
    return out


def load_mt940(path: Path) -> list[StatementLine]:
    raw = path.read_bytes()
    text = text_of(raw)                  # banks' .sta exports are often ISO 8859-1
    try:
        statements = parse_statements(text)
        views = [statement_view(s) for s in statements]
    except FormatError as exc:
        where = f"{path}:{text.count(chr(10), 0, exc.offset) + 1}" if exc.offset is not None else str(path)
        if isinstance(exc, NotAStatement):        # not a statement at all: what it is, and what reads it
            raise ReportError(f"{where}: {exc}{type_hint(raw, 'mt940')}") from None
        raise ReportError(f"{where}: not a readable MT940 statement: {exc}") from None
    # line numbers of the :61: fields, in order (statement_view keeps their order)
    lines_61 = [i for i, line in enumerate(text.splitlines(), start=1) if line.startswith(":61:")]
    out: list[StatementLine] = []
    k = 0
    for view in views:
        for tx in view["transactions"]:
            lineno = lines_61[k] if k < len(lines_61) else 0
            k += 1
            flat = flat_86(tx.get("transaction_details"))
            sepa = sepa_refs(flat)
            refs = tuple(r for r in (sepa.get("EREF"), tx.get("customer_reference"), tx.get("bank_reference"),
                                     sepa.get("KREF"), sepa.get("MREF")) if r)
            out.append(StatementLine(
                where=f"{path}:{lineno}", amount=tx["amount"]["amount"],
                currency=(tx["amount"]["currency"] or "").upper(),
                booking_date=tx.get("entry_date") or tx["date"], value_date=tx["date"],
                refs=refs,
                # a line break may split a word or end one: search both readings
                text=" | ".join(p for p in (flat, flat_86(tx.get("transaction_details"), " "),
                                             tx.get("extra_details") or "") if p)))
    if not out:
        raise ReportError(f"{path}: the MT940 file has no :61: statement lines to reconcile")
    return out


__all__ = ["flat_86", "load_mt940", "sepa_refs"]
