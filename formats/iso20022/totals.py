"""Control totals of payment messages: ``NbOfTxs`` and ``CtrlSum`` against the transactions they count.

A pain.001 / pain.008 initiation, or a pacs.008 / pacs.003 / pacs.009 transfer,
says in its group header (and, for initiations, in each ``PmtInf`` block) how
many transactions it holds and the sum of their amounts.  A bank refuses a
file whose figures disagree with its transactions: it was cut short, edited
by hand, or built wrong.  ``check_totals`` does the same, exactly (Decimal),
on the parsed tree, so an error can name the element's line::

    check_totals(document_element, data)      # raises FormatError on the first mismatch

The amount of a transaction is its ``Amt/InstdAmt`` (pain.001), ``InstdAmt``
(pain.008) or ``IntrBkSttlmAmt`` (pacs); ``CtrlSum`` is their plain sum,
whatever their currencies, as the standard defines it.  Messages without these
elements (statements, status reports) are left alone.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Iterable

from lxml import etree

from formats.errors import FormatError
from formats.iso20022.xsd_decimal import xs_decimal
from formats.xml_codec import line_offset, split

TRANSACTIONS = ("CdtTrfTxInf", "DrctDbtTxInf")
AMOUNT_PATHS = (("Amt", "InstdAmt"), ("InstdAmt",), ("IntrBkSttlmAmt",))


def _kids(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and split(c.tag)[1] == name]


def _kid(el: etree._Element, name: str) -> etree._Element | None:
    found = _kids(el, name)
    return found[0] if found else None


def _path(el: etree._Element) -> str:
    parts = []
    while el is not None and isinstance(el.tag, str) and split(el.tag)[1] != "Document":
        name = split(el.tag)[1]
        parent = el.getparent()
        same = _kids(parent, name) if parent is not None else [el]
        parts.append(f"{name}[{same.index(el)}]" if len(same) > 1 else name)
        el = parent
    return ".".join(reversed(parts))


def _where(el: etree._Element, data: bytes | None) -> int | None:
    return line_offset(data, el.sourceline or 1, 1) if data is not None and el.sourceline else None


def _amount(tx: etree._Element, data: bytes | None) -> Decimal:
    for path in AMOUNT_PATHS:
        el: etree._Element | None = tx
        for name in path:
            el = _kid(el, name) if el is not None else None
        if el is not None:
            try:
                return xs_decimal((el.text or "").strip())
            except InvalidOperation:
                raise FormatError(f"{(el.text or '').strip()!r} is not an amount", offset=_where(el, data),
                                  field=_path(el)) from None
    raise FormatError("the transaction has no amount (Amt/InstdAmt, InstdAmt or IntrBkSttlmAmt)",
                      offset=_where(tx, data), field=_path(tx))


def _compare(holder: etree._Element, txs: list[etree._Element], data: bytes | None) -> None:
    """``holder``'s NbOfTxs and CtrlSum (each optional) against ``txs``."""
    count = _kid(holder, "NbOfTxs")
    if count is not None:
        said = (count.text or "").strip()
        if not said.isdigit() or int(said) != len(txs):
            raise FormatError(f"the control totals do not match: NbOfTxs says {said}, the message holds "
                              f"{len(txs)} transaction(s) here", offset=_where(count, data), field=_path(count),
                              hint="a file cut short, or edited after it was made: ask the sender for it again")
    total = _kid(holder, "CtrlSum")
    if total is not None:
        text = (total.text or "").strip()
        try:
            said_sum = xs_decimal(text)
        except InvalidOperation:
            raise FormatError(f"CtrlSum {text!r} is not an amount", offset=_where(total, data),
                              field=_path(total)) from None
        summed = sum((_amount(tx, data) for tx in txs), Decimal(0))
        if said_sum != summed:
            raise FormatError(f"the control totals do not match: CtrlSum says {said_sum}, the {len(txs)} "
                              f"transaction(s) here total {summed}", offset=_where(total, data),
                              field=_path(total),
                              hint="a file cut short, or edited after it was made: ask the sender for it again")


def _transactions(el: etree._Element) -> list[etree._Element]:
    return [c for name in TRANSACTIONS for c in _kids(el, name)]


def check_totals(document: etree._Element, data: bytes | None = None) -> None:
    """Raise FormatError when a group header's or a payment block's NbOfTxs / CtrlSum disagrees with the
    transactions it counts.  ``document`` is the <Document> element; ``data`` the bytes it was parsed
    from (for byte offsets), or None for a tree being written."""
    body = next((c for c in document if isinstance(c.tag, str)), None)
    if body is None:
        return
    blocks = _kids(body, "PmtInf")
    direct = _transactions(body)
    every: list[etree._Element] = list(direct)
    for block in blocks:
        txs = _transactions(block)
        _compare(block, txs, data)
        every.extend(txs)
    header = _kid(body, "GrpHdr")
    if header is not None and (blocks or direct):
        _compare(header, every, data)


__all__: Iterable[str] = ["check_totals"]
