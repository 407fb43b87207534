"""camt.052 intraday account reports for the tests, built from the corpus's camt.052.001.02 XSD.

The conformance corpus holds one camt.052 (genkgo's ``camt052.v2.xml``: one report, one entry, no balance,
no ``TxsSummry``).  Intraday reports with balances (``OPBD``, ``ITBD``, ``OPAV``, ``ITAV``), a ``TxsSummry``
and several reports in one file are not in it, so ``report()`` / ``document()`` write them element by element
in the schema's order, and ``valid()`` checks the result against that XSD (every test using them validates
its file first).
"""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / ".." / "shared" / "corpus" / "iso20022" / "genkgo_camt052_v2"
SAMPLE = CORPUS / "input" / "camt052.v2.xml"
XSD_DIR = CORPUS / "xsd"
XSD = XSD_DIR / "camt.052.001.02.xsd"
IBAN = "DE89370400440532013000"


def valid(data: bytes) -> bytes:
    """``data``, after checking it against the corpus's camt.052.001.02 XSD (an AssertionError otherwise)."""
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(XSD)))
    doc = etree.fromstring(data)
    assert schema.validate(doc), schema.error_log.last_error
    return data


def balance(code: str, amount: str, day: str = "2026-11-27T12:00:00", ccy: str = "EUR") -> str:
    a = amount.lstrip("-")
    when = f"<DtTm>{day}</DtTm>" if "T" in day else f"<Dt>{day}</Dt>"
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{ccy}\">{a}</Amt>"
            f"<CdtDbtInd>{'DBIT' if amount.startswith('-') else 'CRDT'}</CdtDbtInd><Dt>{when}</Dt></Bal>")


def entry(amount: str, e2e: str | None = None, *, status: str = "BOOK", day: str = "2026-11-27",
          ccy: str = "EUR", text: str | None = None) -> str:
    a = amount.lstrip("-")
    refs = f"<Refs><EndToEndId>{e2e}</EndToEndId></Refs>" if e2e else ""
    rmt = f"<RmtInf><Ustrd>{text}</Ustrd></RmtInf>" if text else ""
    dtls = f"<NtryDtls><TxDtls>{refs}{rmt}</TxDtls></NtryDtls>" if refs or rmt else ""
    booked = f"<BookgDt><Dt>{day}</Dt></BookgDt>" if status == "BOOK" else ""
    return (f"<Ntry><Amt Ccy=\"{ccy}\">{a}</Amt><CdtDbtInd>{'DBIT' if amount.startswith('-') else 'CRDT'}"
            f"</CdtDbtInd><Sts>{status}</Sts>{booked}<ValDt><Dt>{day}</Dt></ValDt>"
            f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>"
            f"{dtls}</Ntry>")


def summary(credits: tuple[int, str] | None = None, debits: tuple[int, str] | None = None) -> str:
    parts = ""
    for name, said in (("TtlCdtNtries", credits), ("TtlDbtNtries", debits)):
        if said is not None:
            parts += f"<{name}><NbOfNtries>{said[0]}</NbOfNtries><Sum>{said[1]}</Sum></{name}>"
    return f"<TxsSummry>{parts}</TxsSummry>"


def report(ident: str, seq: int, balances: list[str], entries: list[str], *, txs_summary: str = "",
           created: str = "2026-11-27T12:00:00", iban: str = IBAN) -> str:
    return (f"<Rpt><Id>{ident}</Id><ElctrncSeqNb>{seq}</ElctrncSeqNb><CreDtTm>{created}</CreDtTm>"
            f"<Acct><Id><IBAN>{iban}</IBAN></Id></Acct>{''.join(balances)}{txs_summary}{''.join(entries)}</Rpt>")


def document(*reports: str, msg_id: str = "INTRADAY-0001") -> bytes:
    body = "\n    ".join(reports)
    return valid(f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.02">
  <BkToCstmrAcctRpt>
    <GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>2026-11-27T12:00:00</CreDtTm></GrpHdr>
    {body}
  </BkToCstmrAcctRpt>
</Document>
""".encode())
