"""camt.053 bank-to-customer statements (``formats.iso20022.Iso20022Codec``) as statement lines.

One line per ``Ntry``; an entry that batches several ``TxDtls`` with their own
amounts gives one line per transaction.  Dates: ``BookgDt`` and ``ValDt``
(``Dt`` or ``DtTm``).  Sign: ``CdtDbtInd`` DBIT is negative.  Candidate
references, most specific first: ``Refs/EndToEndId``, ``Refs/TxId``,
``Refs/InstrId``, ``Refs/AcctSvcrRef``, the entry's ``AcctSvcrRef`` and
``NtryRef``, the structured creditor reference (``RmtInf/Strd/CdtrRefInf/Ref``);
``NOTPROVIDED`` counts as none.  ``RmtInf/Ustrd``, ``AddtlTxInf`` and
``AddtlNtryInf`` are searched for a ledger reference when none of these matches.

Without ``xsd_dir`` the document is read without schema validation (leaves
are text, amounts Decimal); with it, it is validated against the XSD first.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from formats.errors import FormatError
from formats.iso20022 import Iso20022Codec

from engine.reconcile.lines import StatementLine
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


def _date(node: Any) -> date | None:
    if node is None:
        return None
    v = _get(node, "Dt") or _get(node, "DtTm")
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, str) and v:
        return date.fromisoformat(v[:10])
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


def load_camt053(path: Path, xsd_dir: Path | None = None) -> list[StatementLine]:
    codec = Iso20022Codec(message="camt.053", xsd_dir=str(xsd_dir) if xsd_dir else None,
                          validate=xsd_dir is not None)
    try:
        doc = codec.decode(path.read_bytes())
    except FormatError as exc:
        raise ReportError(f"{path}: not a readable camt.053 statement: {exc}") from None
    out: list[StatementLine] = []
    statements = many((doc.get("BkToCstmrStmt") or {}).get("Stmt"))
    for si, stmt in enumerate(statements, start=1):
        for ni, ntry in enumerate(many(stmt.get("Ntry")), start=1):
            amt = _amount(ntry.get("Amt"))
            if amt is None:
                raise ReportError(f"{path}: Stmt {si} / Ntry {ni}: field Amt: expected an amount with a Ccy")
            sign = -1 if str(ntry.get("CdtDbtInd", "")).upper() == "DBIT" else 1
            booking, value = _date(ntry.get("BookgDt")), _date(ntry.get("ValDt"))
            entry_refs = [_get(ntry, "AcctSvcrRef"), _get(ntry, "NtryRef")]
            entry_text = _texts(ntry, "AddtlNtryInf")
            txs = [tx for d in many(ntry.get("NtryDtls")) for tx in many(d.get("TxDtls") if isinstance(d, dict) else None)]
            split = len(txs) > 1 and all(_tx_amount(t) for t in txs)
            for ti, tx in enumerate(txs if split else [txs[0] if txs else {}], start=1):
                refs = [_get(tx, "Refs", k) for k in ("EndToEndId", "TxId", "InstrId", "AcctSvcrRef")]
                refs += entry_refs
                refs += [_get(s, "CdtrRefInf", "Ref") for s in many(_get(tx, "RmtInf", "Strd"))]
                text = " ".join(_texts(_get(tx, "RmtInf") or {}, "Ustrd") + _texts(tx, "AddtlTxInf") + entry_text)
                a, cur = _tx_amount(tx) if split else amt
                tx_sign = sign
                if split and tx.get("CdtDbtInd"):
                    tx_sign = -1 if str(tx["CdtDbtInd"]).upper() == "DBIT" else 1
                where = f"{path}: Stmt {si} / Ntry {ni}" + (f" / TxDtls {ti}" if split else "")
                out.append(StatementLine(where=where, amount=a * tx_sign, currency=cur, booking_date=booking,
                                         value_date=value, refs=tuple(str(r) for r in refs if r), text=text))
    if not out:
        raise ReportError(f"{path}: the camt.053 statement has no Ntry (entry) to reconcile")
    return out


__all__ = ["load_camt053", "many"]
