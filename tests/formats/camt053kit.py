"""camt.053 statements with a ``TxsSummry``, made from the conformance corpus's real files.

No camt.053 of the corpus carries a ``TxsSummry`` (genkgo's minimal, multi-statement, v4 and v8 files, prowide's
.001.07 and genkgo's wrong-negative one have none), so ``with_summary()`` writes one into a corpus file, right
after each statement's balances (``Bal``) as the schema orders it, and ``valid()`` checks the result against
the case's own XSD: the figures are the file's own entries (or, in the tests of a disagreement, one changed).
"""
from __future__ import annotations

import re
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "iso20022"
MULTI = CORPUS / "genkgo_camt053_v2_multi_statement"
MULTI_XML = MULTI / "input" / "camt053.v2.multi.statement.xml"
MULTI_XSD = MULTI / "xsd" / "camt.053.001.02.xsd"
V8 = CORPUS / "genkgo_camt053_v8"
V8_XML = V8 / "input" / "camt053.v8.xml"
V8_XSD = V8 / "xsd" / "camt.053.001.08.xsd"
# every camt.053 of the corpus that holds a statement: (case, input file, its XSD or None: prowide's .001.07 comes
# without one); genkgo_camt053_v2_wrong_negative holds none (a GrpHdr, no Stmt: upstream's rejection case)
CAMT053 = [("genkgo_camt053_v2_minimal", "camt053.v2.minimal.xml", "camt.053.001.02.xsd"),
           ("genkgo_camt053_v2_multi_statement", "camt053.v2.multi.statement.xml", "camt.053.001.02.xsd"),
           ("genkgo_camt053_v4", "camt053.v4.xml", "camt.053.001.04.xsd"),
           ("genkgo_camt053_v8", "camt053.v8.xml", "camt.053.001.08.xsd"),
           ("prowide_pacs008_pacs009_camt053_with_apphdr", "camt.053.001.07.xml", None)]


def valid(data: bytes, xsd: Path) -> bytes:
    """``data``, after checking it against ``xsd`` (an AssertionError otherwise)."""
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(xsd)))
    assert schema.validate(etree.fromstring(data)), schema.error_log.last_error
    return data


def side(name: str, n: int, total: str) -> str:
    """``TtlCdtNtries`` / ``TtlDbtNtries``: how many entries and their sum."""
    return f"<{name}><NbOfNtries>{n}</NbOfNtries><Sum>{total}</Sum></{name}>"


def totals_v2(n: int, total: str, net: str | None = None, ind: str = "CRDT") -> str:
    """camt.053.001.02's ``TtlNtries``: the net is ``TtlNetNtryAmt`` with a ``CdtDbtInd`` beside it."""
    net_xml = f"<TtlNetNtryAmt>{net}</TtlNetNtryAmt><CdtDbtInd>{ind}</CdtDbtInd>" if net is not None else ""
    return f"<TtlNtries><NbOfNtries>{n}</NbOfNtries><Sum>{total}</Sum>{net_xml}</TtlNtries>"


def totals_v4(n: int, total: str, net: str, ind: str = "CRDT") -> str:
    """From camt.053.001.04 on: the net is ``TtlNetNtry`` with its ``Amt`` and ``CdtDbtInd``."""
    return (f"<TtlNtries><NbOfNtries>{n}</NbOfNtries><Sum>{total}</Sum><TtlNetNtry><Amt>{net}</Amt>"
            f"<CdtDbtInd>{ind}</CdtDbtInd></TtlNetNtry></TtlNtries>")


def with_summary(data: bytes, *summaries: str) -> bytes:
    """``data`` with ``<TxsSummry>summaries[i]</TxsSummry>`` after the last ``</Bal>`` of its i-th ``<Stmt>``
    (an empty string: none for that statement)."""
    parts = re.split(rb"(?=<Stmt>)", data)
    head, stmts = parts[0], parts[1:]
    assert len(stmts) == len(summaries), f"{len(stmts)} statements, {len(summaries)} summaries"
    out = [head]
    for stmt, summ in zip(stmts, summaries):
        if summ:
            at = stmt.rindex(b"</Bal>") + len(b"</Bal>")
            stmt = stmt[:at] + f"<TxsSummry>{summ}</TxsSummry>".encode() + stmt[at:]
        out.append(stmt)
    return b"".join(out)
