"""camt.053 bank-to-customer statements and camt.052 intraday account reports (``formats.iso20022.Iso20022Codec``)
as statement lines.

A camt.052 (``BkToCstmrAcctRpt``) is read as a camt.053: each ``Rpt`` as a ``Stmt``, its entries the same way
(``file: Rpt 1 / Ntry 2``).  An error in an entry names the file, the statement (report), its ``Id``, the
entry and the byte offset of its start tag.

One line per ``Ntry``; an entry that batches several ``TxDtls`` with their own
amounts gives one line per transaction.  Dates: ``BookgDt`` and ``ValDt``
(``Dt`` or ``DtTm``).  Sign: ``CdtDbtInd`` DBIT is negative.  Candidate
references, most specific first: ``Refs/EndToEndId``, ``Refs/UETR`` (SWIFT gpi), ``Refs/TxId``,
``Refs/InstrId``, ``Refs/AcctSvcrRef``, the entry's ``AcctSvcrRef`` and
``NtryRef``, the structured creditor reference (``RmtInf/Strd/CdtrRefInf/Ref``);
``NOTPROVIDED`` counts as none.  ``RmtInf/Ustrd``, ``AddtlTxInf`` and
``AddtlNtryInf`` are searched for a ledger reference when none of these matches.

Without ``xsd_dir`` the document is read without schema validation (leaves
are text, amounts Decimal); with it, it is validated against the XSD first.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from formats.errors import FormatError, SpecError
from formats.iso20022 import Iso20022Codec
from formats.swift.statement_kind import describe_text

from engine.reconcile.lines import StatementLine
from engine.reconcile.statement_type import byte_at, text_of, type_hint
from engine.reports.model import ReportError


def many(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if isinstance(node, list):
            node = node[0] if node else None
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node[0] if isinstance(node, list) and node and not isinstance(node[0], (dict, list)) else node


def _date(node: Any, where: str = "", name: str = "") -> date | None:
    if node is None:
        return None
    v = _get(node, "Dt") or _get(node, "DtTm")
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, str) and v:
        try:
            return date.fromisoformat(v[:10])
        except ValueError as exc:
            raise ReportError(f"{where}: field {name}: {v!r} is not a date ({exc}); expected YYYY-MM-DD "
                              f"(or a date and time) that exists in the calendar") from None
    return None


def _amount(node: Any) -> tuple[Decimal, str] | None:
    if isinstance(node, dict) and isinstance(node.get("value"), Decimal):
        return node["value"], str(node.get("Ccy", "")).upper()
    return None


def _texts(node: Any, *path: str) -> list[str]:
    v = _get(node, *path) if len(path) > 1 else (node.get(path[0]) if isinstance(node, dict) else None)
    return [str(x) for x in many(v) if isinstance(x, (str, int))]


def _tx_amount(tx: dict[str, Any]) -> tuple[Decimal, str] | None:
    return _amount(tx.get("Amt")) or _amount(_get(tx, "AmtDtls", "TxAmt", "Amt"))


# --type -> (the message, its group element, a statement's element, what one is called)
MESSAGES = {"camt053": ("camt.053", "BkToCstmrStmt", "Stmt", "statement"),
            "camt052": ("camt.052", "BkToCstmrAcctRpt", "Rpt", "report")}


def load_camt053(path: Path, xsd_dir: Path | None = None) -> list[StatementLine]:
    return load_camt(path, xsd_dir, "camt053")


def load_camt052(path: Path, xsd_dir: Path | None = None) -> list[StatementLine]:
    """A camt.052 intraday account report (``BkToCstmrAcctRpt``): each ``Rpt``'s entries, read as a camt.053
    statement's (``file: Rpt 1 / Ntry 2``)."""
    return load_camt(path, xsd_dir, "camt052")


def load_camt(path: Path, xsd_dir: Path | None, kind: str) -> list[StatementLine]:
    message, group, part, noun = MESSAGES[kind]
    if xsd_dir is not None and not xsd_dir.is_dir():
        raise ReportError(f"--xsd-dir {xsd_dir}: {'not a folder' if xsd_dir.exists() else 'no such folder'}; "
                          f"give the folder that holds the {message} XSD (e.g. {message}.001.02.xsd), or leave "
                          f"--xsd-dir out to read the {noun} without validation")
    try:
        codec = Iso20022Codec(message=message, xsd_dir=str(xsd_dir) if xsd_dir else None,
                              validate=xsd_dir is not None)
    except SpecError as exc:          # several schemas of one version in the folder
        raise ReportError(f"--xsd-dir {xsd_dir}: {exc.message.replace('xsd_dir folder', 'folder')}; give a folder "
                          f"holding one of them (move the others to a folder of their own)") from None
    data = path.read_bytes()
    try:
        doc = codec.decode(data)
    except FormatError as exc:
        if exc.message.startswith("no XSD for") and xsd_dir is not None:
            raise ReportError(f"--xsd-dir {xsd_dir}: {exc.message}; put that XSD there, or "
                              f"leave --xsd-dir out to read the {noun} without validation") from None
        place = _locate(data, exc, part) if exc.field and exc.offset is None else None
        if place is not None:
            raise ReportError(f"{path}: {place}: field {exc.field}: {exc.message}"
                              + ("; write it with a point and no thousands separator, e.g. 1234.50"
                                 if "decimal number" in exc.message else "")) from None
        if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):      # no XML at all: say what it is
            text = text_of(data)
            what, at = describe_text(text)
            raise ReportError(f"{path}:{text.count(chr(10), 0, at) + 1}: byte {byte_at(data, text, at)}: "
                              f"found {what}, not a {message} XML document ({group}){type_hint(data, kind)}") \
                from None
        other = _other_message(exc.message, kind)
        raise ReportError(f"{path}: not a readable {message} {noun}: {exc}" + other) from None
    offsets = entry_offsets(data, part)
    out: list[StatementLine] = []
    statements = many((doc.get(group) or {}).get(part))
    for si, stmt in enumerate(statements, start=1):
        ident = str(stmt.get("Id") or "").strip()
        for ni, ntry in enumerate(many(stmt.get("Ntry")), start=1):
            at = f"{path}: {part} {si} / Ntry {ni}"
            off = offsets.get((si, ni))
            detail = ", ".join(p for p in (f"{noun} {ident}" if ident else "",
                                           f"byte {off}" if off is not None else "") if p)
            detail = f" ({detail})" if detail else ""
            amt = _amount(ntry.get("Amt"))
            if amt is None:
                raise ReportError(f"{at}{detail}: field Amt: expected an amount with a Ccy")
            sign = -1 if str(ntry.get("CdtDbtInd", "")).upper() == "DBIT" else 1
            booking = _date(ntry.get("BookgDt"), at + detail, "BookgDt")
            value = _date(ntry.get("ValDt"), at + detail, "ValDt")
            entry_refs = [_get(ntry, "AcctSvcrRef"), _get(ntry, "NtryRef")]
            entry_text = _texts(ntry, "AddtlNtryInf")
            txs = [tx for d in many(ntry.get("NtryDtls")) for tx in many(d.get("TxDtls") if isinstance(d, dict) else None)]
            split = len(txs) > 1 and all(_tx_amount(t) for t in txs)
            for ti, tx in enumerate(txs if split else [txs[0] if txs else {}], start=1):
                refs = [_get(tx, "Refs", k) for k in ("EndToEndId", "UETR", "TxId", "InstrId", "AcctSvcrRef")]
                refs += entry_refs
                refs += [_get(s, "CdtrRefInf", "Ref") for s in many(_get(tx, "RmtInf", "Strd"))]
                text = " ".join(_texts(_get(tx, "RmtInf") or {}, "Ustrd") + _texts(tx, "AddtlTxInf") + entry_text)
                a, cur = _tx_amount(tx) if split else amt
                tx_sign = sign
                if split and tx.get("CdtDbtInd"):
                    tx_sign = -1 if str(tx["CdtDbtInd"]).upper() == "DBIT" else 1
                where = at + (f" / TxDtls {ti}" if split else "")
                out.append(StatementLine(where=where, amount=a * tx_sign, currency=cur, booking_date=booking,
                                         value_date=value, refs=tuple(str(r) for r in refs if r), text=text,
                                         detail=detail))
    if not out:
        raise ReportError(f"{path}: the {message} {noun} has no Ntry (entry) to reconcile"
                          + ("; an intraday report without entries moved nothing since the last one"
                             if kind == "camt052" else ""))
    return out


def _other_message(message: str, kind: str) -> str:
    """A hint when the file is the other camt message (a camt.052 given as camt053, or the reverse)."""
    for other, (msg, *_rest) in MESSAGES.items():
        if other != kind and f"got {msg}" in message:
            return f"; it is a {msg}: give --type {other}"
    return ""


def entry_offsets(data: bytes, part: str) -> dict[tuple[int, int], int]:
    """The byte offset of each entry's start tag, ``(statement no, entry no) -> offset`` (both from 1), found
    by its tag in the file's bytes; empty when the tags cannot be trusted (a comment or CDATA section)."""
    if b"<!--" in data or b"<![CDATA[" in data:
        return {}
    out: dict[tuple[int, int], int] = {}
    si = ni = 0
    for m in re.finditer(rb"<(?:[A-Za-z_][\w.-]*:)?(" + part.encode() + rb"|Ntry)[\s>/]", data):
        if m[1] == b"Ntry":
            if si:
                ni += 1
                out[(si, ni)] = m.start()
        else:
            si, ni = si + 1, 0
    return out


def item_offsets(data: bytes, part: str) -> list[int]:
    """The byte offset of each statement's (``Stmt``) or report's (``Rpt``) start tag, in the file's order; empty
    when the tags cannot be trusted (a comment or CDATA section)."""
    if b"<!--" in data or b"<![CDATA[" in data:
        return []
    return [m.start() for m in re.finditer(rb"<(?:[A-Za-z_][\w.-]*:)?" + part.encode() + rb"[\s>/]", data)]


def _locate(data: bytes, exc: FormatError, part: str = "Stmt") -> str | None:
    """``Stmt 1 / Ntry 2`` (``Rpt 1 / Ntry 2``) holding the element a decode error names (``exc.field``), when it
    is in an entry, with the statement's Id and the entry's byte offset when they can be told."""
    from lxml import etree

    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None

    def local(el: Any) -> str:
        return etree.QName(el).localname if isinstance(el.tag, str) else ""

    stmts = [el for el in root.iter() if local(el) == part]
    offsets = entry_offsets(data, part)
    for si, stmt in enumerate(stmts, start=1):
        entries = [el for el in stmt if local(el) == "Ntry"]
        for ni, ntry in enumerate(entries, start=1):
            for el in ntry.iter():
                if local(el) == exc.field and len(el) == 0 and (el.text or "") in exc.message:
                    ident = next(((c.text or "").strip() for c in stmt if local(c) == "Id"), "")
                    said = ", ".join(p for p in ((f"{'report' if part == 'Rpt' else 'statement'} {ident}"
                                                  if ident else ""),
                                                 (f"byte {offsets[(si, ni)]}" if (si, ni) in offsets else "")) if p)
                    return f"{part} {si} / Ntry {ni}" + (f" ({said})" if said else "")
    return None


__all__ = ["MESSAGES", "entry_offsets", "item_offsets", "load_camt", "load_camt052", "load_camt053", "many"]
