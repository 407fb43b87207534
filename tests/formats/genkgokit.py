"""bsp's decoded camt.052/053/054 values in the shape of genkgo/camt's expected JSON, fact by fact.

genkgo's expected files (corpus ``iso20022/genkgo_*/expected/*.json``) are a getter
dump of its PHP DTOs: ``{"__CLASS__": ..., "getXxx": ...}``, amounts in minor units
with the debit sign applied, times converted to UTC, and ``"__RECURSIVITY__"`` where
the dumper meets an object it has already written.  ``facts()`` flattens such a dump
to ``{path: leaf}``; ``genkgo_dump()`` builds the same dump from **bsp's values**
(``Iso20022Codec.decode``), so the two flattenings must be equal: every leaf
genkgo holds, including every ``null`` (an element bsp must not invent).

Dropped from both sides, because they carry no fact:

* ``"__RECURSIVITY__"`` leaves (the object is written in full at another path: the
  first transaction detail, related agent, structured/unstructured block, the
  creditor reference lifted to the remittance information, the record);
* ``getRelatedParty`` (always ``"__RECURSIVITY__"``: a pointer to one of
  ``getRelatedParties``, the dump does not say which);
* ``__CLASS__`` except where it is a fact: the kind of account (``IbanAccount``,
  ``OtherAccount``), of party (``Creditor``, ``Debtor``, ``UltimateCreditor``,
  ``UltimateDebtor``), of agent (``CreditorAgent``, ``DebtorAgent``) and of
  identification (``OrganisationIdentification``).

genkgo's own conventions, mirrored here (they are not bsp facts): ``getAdditionalInfo``
and a proprietary code's ``getIssuer`` are ``""`` when absent; an agent's name and BIC
are ``""`` when absent; a transaction detail's amount and credit/debit indicator are the
entry's sign; ``getMessage`` is the first ``Ustrd``, else the first structured creditor
reference; only the first ``Othr`` of an identification and the first ``AddtlRmtInf`` of
a structured block are dumped; balance types are named (``OPBD`` -> ``opening`` ...).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

REC = "__RECURSIVITY__"
MINOR_DIGITS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3}
CLASSED = {"getAccount", "getRelatedPartyType", "getRelatedAgentType", "getIdentification"}
DROPPED = {"getRelatedParty"}
BALANCE_TYPES = {"OPBD": "opening", "PRCD": "opening", "OPAV": "opening_available", "CLBD": "closing",
                 "CLAV": "closing_available", "FWAV": "forward_available", "INFO": "information",
                 "ITAV": "interim_available", "ITBD": "interim", "XPCD": "expected_credit"}
ADDRESS = {"getAddressLines": "AdrLine", "getBuildingNumber": "BldgNb", "getCountry": "Ctry",
           "getCountrySubDivision": "CtrySubDvsn", "getDepartment": "Dept", "getPostCode": "PstCd",
           "getStreetName": "StrtNm", "getSubDepartment": "SubDept", "getTownName": "TwnNm"}
REFERENCES = {"getMessageId": "MsgId", "getAccountServicerReference": "AcctSvcrRef",
              "getPaymentInformationId": "PmtInfId", "getInstructionId": "InstrId", "getEndToEndId": "EndToEndId",
              "getUuidEndToEndReference": "UETR", "getTransactionId": "TxId", "getMandateId": "MndtId",
              "getChequeNumber": "ChqNb", "getClearingSystemReference": "ClrSysRef",
              "getAccountOwnerTransactionId": "AcctOwnrTxId", "getAccountServicerTransactionId": "AcctSvcrTxId",
              "getMarketInfrastructureTransactionId": "MktInfrstrctrTxId", "getProcessingId": "PrcgId"}
ROOTS = (("BkToCstmrStmt", "Stmt", "StmtPgntn", "AddtlStmtInf"),
         ("BkToCstmrAcctRpt", "Rpt", "RptPgntn", "AddtlRptInf"),
         ("BkToCstmrDbtCdtNtfctn", "Ntfctn", "NtfctnPgntn", "AddtlNtfctnInf"))


# ------------------------------------------------------------------ flattening

def facts(dump: Any, path: str = "", parent: str = "") -> dict[str, Any]:
    """``{path: leaf}`` of a genkgo-style dump, without nulls, empty lists and the dropped leaves above."""
    out: dict[str, Any] = {}
    if isinstance(dump, dict):
        for key, value in dump.items():
            if key == "__CLASS__":
                if parent in CLASSED:
                    out[f"{path}.@class"] = value.rsplit("\\", 1)[-1]
            elif key not in DROPPED:
                out.update(facts(value, f"{path}.{key}", key))
    elif isinstance(dump, list):
        for i, value in enumerate(dump):
            out.update(facts(value, f"{path}[{i}]", parent))
    elif dump is not None and dump != REC:
        out[path] = dump
    return out


# ------------------------------------------------------------------ bsp values -> genkgo dump

def many(v: Any) -> list[Any]:
    return [] if v is None else v if isinstance(v, list) else [v]


def first(v: Any) -> Any:
    items = many(v)
    return items[0] if items else None


def text(v: Any) -> str | None:
    """A leaf as genkgo's ``(string)`` cast gives it (sequence numbers are Decimal in bsp)."""
    return None if v is None else str(v)


def utc(v: Any) -> dict[str, str] | None:
    if isinstance(v, dict):  # DateAndDateTimeChoice
        v = v.get("DtTm", v.get("Dt"))
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        v = v.astimezone(dt.timezone.utc) if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
    else:
        v = dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc)
    return {"0": v.strftime("%Y-%m-%dT%H:%M:%S+00:00")}


def money(amt: dict[str, Any] | None, cdi: str | None) -> dict[str, Any] | None:
    if amt is None:
        return None
    units = int(amt["value"].scaleb(MINOR_DIGITS.get(amt["Ccy"], 2)))
    return {"getAmount": str(-units if cdi == "DBIT" and units else units), "getCurrency": {"getCode": amt["Ccy"]}}


def head_and_tail(items: list[Any]) -> tuple[Any, list[Any]]:
    """genkgo's ``getX()`` (the first, written in full) and ``getXs()`` (the first again: a recursion)."""
    return (items[0] if items else None), ([REC] + items[1:] if items else [])


def account(acct: dict[str, Any] | None) -> dict[str, Any] | None:
    if acct is None:
        return None
    ident = acct["Id"]
    if "IBAN" in ident:
        return {"__CLASS__": "IbanAccount", "getIban": {"getIban": ident["IBAN"]},
                "getIdentification": ident["IBAN"], "getName": acct.get("Nm")}
    if "Othr" in ident:
        other = ident["Othr"]
        return {"__CLASS__": "OtherAccount", "getIdentification": other["Id"], "getIssuer": other.get("Issr"),
                "getSchemeName": first(list((other.get("SchmeNm") or {}).values()))}
    raise AssertionError(f"account identification not mapped to genkgo: {sorted(ident)}")


def address(adr: dict[str, Any] | None) -> dict[str, Any] | None:
    if adr is None:
        return None
    return {getter: (many(adr.get(key)) if getter == "getAddressLines" else adr.get(key))
            for getter, key in ADDRESS.items()}


def organisation(org: dict[str, Any]) -> dict[str, Any]:
    other = first(org.get("Othr")) or org.get("PrtryId") or {}
    bic = org.get("BIC") or org.get("BICOrBEI") or org.get("AnyBIC")
    return {"__CLASS__": "OrganisationIdentification", "getBic": bic, "getBei": org.get("BICOrBEI") or org.get("BEI"),
            "getIbei": org.get("IBEI"), "getEangln": org.get("EANGLN"), "getChipsUniversalId": org.get("USCHU"),
            "getDuns": org.get("DUNS"), "getBankPartyId": org.get("BkPtyId"), "getTaxId": org.get("TaxIdNb"),
            "getOtherId": other.get("Id"), "getOtherIssuer": other.get("Issr"), "getOtherType": other.get("Tp"),
            "getOtherSchemeName": first(list((other.get("SchmeNm") or {}).values())),
            "getIdentification": other.get("Id") or bic, "getIssuer": None}


def identification(ident: dict[str, Any] | None) -> dict[str, Any] | None:
    if ident is None:
        return None
    if "OrgId" in ident:
        return organisation(ident["OrgId"])
    raise AssertionError(f"party identification not mapped to genkgo: {sorted(ident)}")


def party(node: dict[str, Any]) -> dict[str, Any]:
    """Name, address and identification of a party: v8 wraps them in ``Pty`` (or ``Agt/FinInstnId``)."""
    return node.get("Pty") or (node.get("Agt") or {}).get("FinInstnId") or node


def related_parties(tx: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for rp in many(tx.get("RltdPties")):
        for key, acct_key, cls in (("Cdtr", "CdtrAcct", "Creditor"), ("UltmtCdtr", None, "UltimateCreditor"),
                                   ("Dbtr", "DbtrAcct", "Debtor"), ("UltmtDbtr", None, "UltimateDebtor")):
            if key in rp:
                p = party(rp[key])
                out.append({"getAccount": account(rp.get(acct_key)) if acct_key else None,
                            "getRelatedPartyType": {"__CLASS__": cls, "getName": p.get("Nm"),
                                                    "getAddress": address(p.get("PstlAdr")),
                                                    "getIdentification": identification(p.get("Id"))}})
    return out


def related_agents(tx: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ra in many(tx.get("RltdAgts")):
        for key, cls in (("CdtrAgt", "CreditorAgent"), ("DbtrAgt", "DebtorAgent")):
            if key in ra:
                fi = ra[key].get("FinInstnId") or {}
                out.append({"getRelatedAgentType": {"__CLASS__": cls, "getName": fi.get("Nm") or "",
                                                    "getBIC": fi.get("BIC") or fi.get("BICFI") or ""}})
    return out


def bank_transaction_code(btc: dict[str, Any] | None) -> dict[str, Any] | None:
    if btc is None:
        return None
    out: dict[str, Any] = {}
    if "Prtry" in btc:
        out["getProprietary"] = {"getCode": btc["Prtry"]["Cd"], "getIssuer": btc["Prtry"].get("Issr") or ""}
    if "Domn" in btc:
        domain = btc["Domn"]
        family = domain.get("Fmly")
        out["getDomain"] = {"getCode": domain["Cd"], "getFamily": None if family is None else
                            {"getCode": family["Cd"], "getSubFamilyCode": family["SubFmlyCd"]}}
    return out


def references(refs: dict[str, Any] | None) -> dict[str, Any] | None:
    if refs is None:
        return None
    out: dict[str, Any] = {getter: refs.get(key) for getter, key in REFERENCES.items()}
    out["getProprietaries"] = [{"getType": p.get("Tp"), "getReference": p.get("Ref")} for p in many(refs.get("Prtry"))]
    return out


def remittance(rmt: dict[str, Any] | None) -> dict[str, Any] | None:
    if rmt is None:
        return None
    unstructured = [{"getMessage": u} for u in many(rmt.get("Ustrd"))]
    lifted = None
    structured = []
    for s in many(rmt.get("Strd")):
        block: dict[str, Any] = {"getAdditionalRemittanceInformation": first(s.get("AddtlRmtInf"))}
        if "CdtrRefInf" in s:
            c = s["CdtrRefInf"]
            kind = (c.get("Tp") or {}).get("CdOrPrtry") or {}
            cri = {"getRef": c.get("Ref"), "getCode": kind.get("Cd"), "getProprietary": kind.get("Prtry")}
            if not unstructured and lifted is None:
                lifted, cri = cri, REC
            block["getCreditorReferenceInformation"] = cri
        structured.append(block)
    s_first, s_all = head_and_tail(structured)
    u_first, u_all = head_and_tail(unstructured)
    message = unstructured[0]["getMessage"] if unstructured else (lifted or {}).get("getRef")
    return {"getCreditorReferenceInformation": lifted, "getMessage": message,
            "getStructuredBlock": s_first, "getStructuredBlocks": s_all,
            "getUnstructuredBlock": u_first, "getUnstructuredBlocks": u_all}


def transaction_detail(tx: dict[str, Any], cdi: str) -> dict[str, Any]:
    agent, agents = head_and_tail(related_agents(tx))
    return {"getAmount": money(tx.get("Amt"), cdi),
            "getAmountDetails": money(((tx.get("AmtDtls") or {}).get("TxAmt") or {}).get("Amt"), cdi),
            "getBankTransactionCode": bank_transaction_code(tx.get("BkTxCd")), "getCreditDebitIndicator": cdi,
            "getReference": references(tx.get("Refs")), "getRelatedAgent": agent, "getRelatedAgents": agents,
            "getRelatedParties": related_parties(tx), "getRemittanceInformation": remittance(tx.get("RmtInf")),
            "getAdditionalTransactionInformation": tx.get("AddtlTxInf")}


def entry(e: dict[str, Any], index: int, record: dict[str, Any] | None) -> dict[str, Any]:
    cdi = e["CdtDbtInd"]
    dtls = first(e.get("NtryDtls")) or {}
    txs = [transaction_detail(tx, cdi) for d in many(e.get("NtryDtls")) for tx in many(d.get("TxDtls"))]
    tx_first, tx_all = head_and_tail(txs)
    batch = ((first(dtls.get("TxDtls")) or {}).get("Refs") or {}).get("PmtInfId") \
        or (first(dtls.get("Btch")) or {}).get("PmtInfId")
    sts = e.get("Sts")
    return {"getAccountServicerReference": e.get("AcctSvcrRef"), "getAdditionalInfo": e.get("AddtlNtryInf") or "",
            "getAmount": money(e["Amt"], cdi), "getBankTransactionCode": bank_transaction_code(e.get("BkTxCd")),
            "getBatchPaymentId": batch, "getBookingDate": utc(e.get("BookgDt")), "getCreditDebitIndicator": cdi,
            "getIndex": index, "getRecord": record, "getReference": e.get("NtryRef"),
            "getReversalIndicator": e.get("RvslInd", False),
            "getStatus": (sts.get("Cd") or sts.get("Prtry")) if isinstance(sts, dict) else sts,
            "getTransactionDetail": tx_first, "getTransactionDetails": tx_all, "getValueDate": utc(e.get("ValDt"))}


def pagination(pg: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if pg is None else {"getPageNumber": text(pg.get("PgNb"))}


def recipient(r: dict[str, Any] | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"getName": r.get("Nm"), "getAddress": address(r.get("PstlAdr")), "getCountryOfResidence": r.get("CtryOfRes"),
            "getIdentification": identification(r.get("Id")), "getContactDetails": r.get("CtctDtls")}


def record(rec: dict[str, Any], pgntn: str, addtl: str) -> dict[str, Any]:
    frto = rec.get("FrToDt") or {}
    return {"getAccount": account(rec.get("Acct")), "getAdditionalInformation": rec.get(addtl),
            "getBalances": [{"getAmount": money(b["Amt"], b["CdtDbtInd"]), "getDate": utc(b["Dt"].get("Dt")),
                             "getType": BALANCE_TYPES[b["Tp"]["CdOrPrtry"]["Cd"]]} for b in many(rec.get("Bal"))],
            "getCopyDuplicateIndicator": rec.get("CpyDplctInd"), "getCreatedOn": utc(rec.get("CreDtTm")),
            "getElectronicSequenceNumber": text(rec.get("ElctrncSeqNb")), "getEntries": [REC],
            "getFromDate": utc(frto.get("FrDtTm")), "getId": rec["Id"],
            "getLegalSequenceNumber": text(rec.get("LglSeqNb")), "getPagination": pagination(rec.get(pgntn)),
            "getToDate": utc(frto.get("ToDtTm"))}


def genkgo_dump(values: dict[str, Any], record_id: str) -> dict[str, Any]:
    """genkgo's dump of ``values``: the group header, and the entries of the record ``record_id``."""
    root, key, pgntn, addtl = next(r for r in ROOTS if r[0] in values)
    msg = values[root]
    (rec,) = [r for r in many(msg[key]) if r["Id"] == record_id]
    gh = msg["GrpHdr"]
    query = gh.get("OrgnlBizQry")
    return {
        "getEntries": [entry(e, i, record(rec, pgntn, addtl) if i == 0 else REC)
                       for i, e in enumerate(many(rec.get("Ntry")))],
        "getGroupHeader": {
            "getAdditionalInformation": gh.get("AddtlInf"), "getCreatedOn": utc(gh["CreDtTm"]),
            "getMessageId": gh["MsgId"], "getMessageRecipient": recipient(gh.get("MsgRcpt")),
            "getPagination": pagination(gh.get("MsgPgntn")),
            "getOriginalBusinessQuery": None if query is None else {
                "getMessageId": query.get("MsgId"), "getMessageNameId": query.get("MsgNmId"),
                "getCreatedOn": utc(query.get("CreDtTm"))}},
        "getRecords": [REC for _ in many(msg[key])],
    }


def record_id(expected: dict[str, Any]) -> str:
    return expected["getEntries"][0]["getRecord"]["getId"]
