"""The ``classify`` paths of the services' JSON, XML and ISO 20022 formats reach real fields.

A wrong path classifies nothing, silently.  So each service runs end to end on
loopback (its routes, its counterpart simulators, good requests) and every
message of those formats that really travelled is collected: the requests the
client sends, the replies it gets, the calls the counterpart simulators decode
and their answers.  Masking a message with its codec's tags
(``formats.classify.tags_of`` / ``mask``) must change exactly the customer's or
counterparty's account numbers and names in it, and each declared path must
match a field of at least one message.  Paths real traffic from the simulators
does not carry (a camt.053 account's name and owner, an entry's related
parties; a pacs.002's original transaction parties) are checked on a message
built here and passed through the XSD-validating codec.

Lastly no account or name classified anywhere in a service's traffic is left
in plain text in a masked message of another of its json / xml / iso20022
formats (the copybook records' own classification is checked in test_classified_copybooks.py).
"""
from __future__ import annotations

import copy
import datetime as dt
import random
from decimal import Decimal
from typing import Any, Iterator, Mapping

import pytest

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.runtime.binder import Binder
from engine.sim.services import account_consolidation
from engine.sim.services.remittance import cbpr_gateway
from engine.sim.services.catalog import SERVICES, route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry
from formats.classify import classified_values, mask, mask_value, tags_of

P = "personal"

# service -> format -> the leaves (dotted keys, list items crossed) masking must change.
# Every json / xml / iso20022 format of the service is listed: an empty set says it carries no
# account number, name, card number or secret.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "fund_management": {"TaOrder": {"investor"}, "TaAck": set()},
    "fund_brokerage": {"DistOrder": {"DistOrder.Investor"}, "DistOrderAck": set()},
    "fund_subscription": {"CorePosting": {"account"}, "CoreAck": set(), "SubOrder": {"SubOrder.Investor"},
                          "SubOrderAck": set()},
    "claims_payout": {
        "ClaimSettlement": {"beneficiary.name", "beneficiary.iban"},
        "ClaimAnswer": set(),
        "ClaimPacs008": {"FIToFICstmrCdtTrf.CdtTrfTxInf.Dbtr.Nm", "FIToFICstmrCdtTrf.CdtTrfTxInf.DbtrAcct.Id.Othr.Id",
                         "FIToFICstmrCdtTrf.CdtTrfTxInf.Cdtr.Nm", "FIToFICstmrCdtTrf.CdtTrfTxInf.CdtrAcct.Id.IBAN"},
        "ClaimPacs002": set(),
        "ClaimResult": {"beneficiary_name", "beneficiary_iban"},
        "ClaimWritten": set(),
    },
    "insurance_brokerage": {"PremiumNotice": {"payer.account", "payer.name"}, "PremiumReceipt": set()},
    "premium_collection": {"PcNotice": {"account"}, "PcAnswer": set()},
    "issuance": {"Allotment": {"investor"}, "AllotmentAck": set()},
    "bond_cashing": {"PayClaim": {"holder"}, "PayClaimAck": set()},
    "remittance": {
        "ClearPost": {"debtor.account", "debtor.name", "creditor.account", "creditor.name"},
        "ClearAck": set(),
        "GwAck": set(),
        "Pacs008": {"FIToFICstmrCdtTrf.CdtTrfTxInf.Dbtr.Nm", "FIToFICstmrCdtTrf.CdtTrfTxInf.DbtrAcct.Id.Othr.Id",
                    "FIToFICstmrCdtTrf.CdtTrfTxInf.Cdtr.Nm", "FIToFICstmrCdtTrf.CdtTrfTxInf.CdtrAcct.Id.Othr.Id"},
        "Pacs002": set(),
    },
    "trade_receiving": {"TradeSettle": {"TradeSettlement.Account", "TradeSettlement.Applicant",
                                        "TradeSettlement.Beneficiary"},
                        "TradeSettleAck": set()},
    "broker_system": {"XferReq": {"XferReq.BankAcct", "XferReq.SecAcct"}, "XferRsp": set()},
    "customer_service": {"CrmReq": {"account"}, "CrmRsp": {"account"}},
    "account_consolidation": {"Camt053": {"BkToCstmrStmt.Stmt.Acct.Id.IBAN"}, "StmtAck": {"account"},
                              "Camt052": set()},     # refused, never sent by the simulator: built_camt052
    "middle_office": {"DeskReq": {"counterparty"}, "DeskRsp": set(), "CaseOpen": {"counterparty"},
                      "CaseAck": set()},
}

# what a built camt.053 statement adds to the simulator's (account owner and name, entry parties)
CAMT053_BUILT = {"BkToCstmrStmt.Stmt.Acct.Id.IBAN", "BkToCstmrStmt.Stmt.Acct.Nm", "BkToCstmrStmt.Stmt.Acct.Ownr.Nm",
                 "BkToCstmrStmt.Stmt.Ntry.NtryDtls.TxDtls.RltdPties.Dbtr.Nm",
                 "BkToCstmrStmt.Stmt.Ntry.NtryDtls.TxDtls.RltdPties.DbtrAcct.Id.IBAN",
                 "BkToCstmrStmt.Stmt.Ntry.NtryDtls.TxDtls.RltdPties.Cdtr.Nm",
                 "BkToCstmrStmt.Stmt.Ntry.NtryDtls.TxDtls.RltdPties.CdtrAcct.Id.Othr.Id"}

# a camt.052 intraday report (the routes read it only to refuse it): its account, name and owner, an entry's parties
CAMT052_BUILT = {"BkToCstmrAcctRpt.Rpt.Acct.Id.IBAN", "BkToCstmrAcctRpt.Rpt.Acct.Nm", "BkToCstmrAcctRpt.Rpt.Acct.Ownr.Nm",
                 "BkToCstmrAcctRpt.Rpt.Ntry.NtryDtls.TxDtls.RltdPties.Dbtr.Nm",
                 "BkToCstmrAcctRpt.Rpt.Ntry.NtryDtls.TxDtls.RltdPties.DbtrAcct.Id.IBAN",
                 "BkToCstmrAcctRpt.Rpt.Ntry.NtryDtls.TxDtls.RltdPties.Cdtr.Nm",
                 "BkToCstmrAcctRpt.Rpt.Ntry.NtryDtls.TxDtls.RltdPties.CdtrAcct.Id.Othr.Id"}

# what a built pacs.002 status adds to the simulator's: the original transaction's parties (OrgnlTxRef)
PACS002_BUILT = {"FIToFIPmtStsRpt.TxInfAndSts.OrgnlTxRef.Dbtr.Pty.Nm",
                 "FIToFIPmtStsRpt.TxInfAndSts.OrgnlTxRef.DbtrAcct.Id.Othr.Id",
                 "FIToFIPmtStsRpt.TxInfAndSts.OrgnlTxRef.Cdtr.Pty.Nm",
                 "FIToFIPmtStsRpt.TxInfAndSts.OrgnlTxRef.CdtrAcct.Id.IBAN"}
BUILT = {("account_consolidation", "Camt053"): CAMT053_BUILT, ("account_consolidation", "Camt052"): CAMT052_BUILT,
         ("remittance", "Pacs002"): PACS002_BUILT,
         ("claims_payout", "ClaimPacs002"): PACS002_BUILT}

# file write channels of a service: channel -> the format its calls write (the files are read back; each
# write's answer, {"file", "bytes"}, in the call's reply format)
FILE_WRITES = {"claims_payout": {"clm_results": ("ClaimResult", "ClaimWritten")}}

CLASSIFIABLE = ("json", "xml", "iso20022")
GOOD = ["good"] * 12


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(dotted path, scalar) of every leaf; list items are crossed (no index in the path)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from leaves(v, path + (str(k),))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from leaves(v, path)
    else:
        yield ".".join(path), value


def changed(before: Any, after: Any) -> set[str]:
    out = {p for (p, a), (_, b) in zip(leaves(before), leaves(after)) if a != b}
    assert [p for p, _ in leaves(before)] == [p for p, _ in leaves(after)], "masking changed the shape"
    return out


def matches(declared: str, leaf: str) -> bool:
    d, parts = declared.split("."), leaf.split(".")
    return len(parts) >= len(d) and all(x == "*" or x == y for x, y in zip(d, parts))


def program_of(name: str) -> tuple[Any, Any]:
    registry = services_registry()
    res = compile_paths(route_files(name), registry)
    assert res.program is not None, [str(d.message) for d in res.diagnostics]
    return res.program, registry


def first_decoded(binder: Any, formats: list[str], payload: bytes) -> tuple[str, Any]:
    """(format, decoded) for the first of ``formats`` that reads ``payload`` (a fixed-length record of another
    layout fails on its length)."""
    for i, fmt in enumerate(formats):
        try:
            return fmt, binder.codec(fmt).decode(payload)
        except Exception:
            if i == len(formats) - 1:
                raise
    raise AssertionError(f"no format among {formats}")


async def traffic(name: str, tmp_path: Any) -> tuple[Any, dict[str, list[Any]]]:
    """format name -> decoded messages of that format the service really exchanged."""
    program, registry = program_of(name)
    binder = Binder(program, registry)
    services = [s for s in SERVICES if s.name == name]
    seen: dict[str, list[Any]] = {}

    def add(fmt: str, values: Any) -> None:
        seen.setdefault(fmt, []).append(values)

    async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None) as ledger:
        async with running_services(program, registry, ledger, services) as rig:
            for svc in services:
                result = await rig.load(svc, total=len(GOOD), kinds=GOOD, deadline=60)
                assert [o.code for o in result.outcomes] == ["00"] * len(GOOD), \
                    [(o.ref, o.code, o.reply) for o in result.outcomes]
                for o in result.outcomes:
                    add(svc.reply_format, o.reply)
                rng = random.Random(f"{name}:classify")
                codec = binder.codec(svc.request_format)
                # a channel that takes more than one record (insurance brokerage's PREMIUM-REQ and CANCEL-REQ):
                # a request is decoded with the first of its routes' formats that reads it, the service's first
                inbound = [svc.request_format] + sorted({r.format for r in program.routes
                                                         if r.channel == svc.inbound and r.format
                                                         and r.format != svc.request_format})
                for n in range(1, len(GOOD) + 1):       # requests as the client sends them, decoded
                    req = svc.make("good", n, rng)
                    payload = svc.encode(codec, req.values) if svc.encode else codec.encode(req.values)
                    add(*first_decoded(binder, inbound, payload))
            for channel, (fmt, reply_fmt) in FILE_WRITES.get(name, {}).items():
                for path in sorted(rig.dirs[channel].iterdir()):
                    data = path.read_bytes()
                    add(fmt, binder.codec(fmt).decode(data))
                    add(reply_fmt, {"file": path.name, "bytes": len(data)})
            for svc in services:
                for cp in svc.counterparts:
                    sim = rig.sims[cp.channel]
                    reply_codec = binder.codec(cp.reply_format)
                    for req in sim.seen:
                        assert req is not None
                        add(cp.request_format, req)
                        add(cp.reply_format, reply_codec.decode(reply_codec.encode(cp.answer(req))))
    return binder, seen


def built_camt053(binder: Any) -> Any:
    """A simulator statement with what bank statements also carry: the account's name and owner,
    an entry with its related parties; through the codec (XSD-validated both ways)."""
    stmt = account_consolidation.make_camt053("good", 1, random.Random(3)).values
    stmt = copy.deepcopy(stmt)
    s = stmt["BkToCstmrStmt"]["Stmt"][0]
    ccy = s["Acct"]["Ccy"]
    s["Acct"]["Nm"] = "SUZHOU SOLAR CO OPERATING ACCOUNT"
    s["Acct"]["Ownr"] = {"Nm": "SUZHOU SOLAR CO"}
    s["Ntry"] = [{
        "Amt": {"value": Decimal("1250.00"), "Ccy": ccy}, "CdtDbtInd": "CRDT", "Sts": "BOOK",
        "BookgDt": {"Dt": dt.date(2026, 11, 24)}, "ValDt": {"Dt": dt.date(2026, 11, 24)},
        "BkTxCd": {"Domn": {"Cd": "PMNT", "Fmly": {"Cd": "RCDT", "SubFmlyCd": "ESCT"}}},
        "NtryDtls": [{"TxDtls": [{
            "Refs": {"EndToEndId": "INV-2026-0042"},
            "RltdPties": {"Dbtr": {"Nm": "GLOBEX GMBH"}, "DbtrAcct": {"Id": {"IBAN": "DE44500105175407324931"}},
                          "Cdtr": {"Nm": "SUZHOU SOLAR CO"},
                          "CdtrAcct": {"Id": {"Othr": {"Id": "310012345678"}}}},
        }]}],
    }]
    codec = binder.codec("Camt053")
    return codec.decode(codec.encode(stmt))


def built_camt052(binder: Any) -> Any:
    """A bank's camt.052 intraday report of the same account (what the routes refuse): the built statement's
    account, name, owner and entry under BkToCstmrAcctRpt/Rpt, with an interim booked balance; through the
    codec (XSD-validated both ways)."""
    s = copy.deepcopy(built_camt053(binder)["BkToCstmrStmt"]["Stmt"][0])
    bal = s["Bal"][0]
    bal["Tp"] = {"CdOrPrtry": {"Cd": "ITBD"}}
    rpt = {"Id": "AI000000000001G", "CreDtTm": "2026-11-25T10:00:00", "Acct": s["Acct"], "Bal": [bal],
           "Ntry": s["Ntry"]}
    report = {"message": "camt.052.001.02",
              "BkToCstmrAcctRpt": {"GrpHdr": {"MsgId": "MAI000000000001G", "CreDtTm": "2026-11-25T10:00:00"},
                                   "Rpt": [rpt]}}
    codec = binder.codec("Camt052")
    return codec.decode(codec.encode(report))


def built_pacs002(binder: Any, fmt: str = "Pacs002") -> Any:
    """The CBPR+ simulator's status report with the original transaction's parties, as gateways may
    send it (OrgnlTxRef); through the codec (XSD-validated both ways)."""
    status = cbpr_gateway({"FIToFICstmrCdtTrf": {"CdtTrfTxInf": {"PmtId": {"EndToEndId": "RM0000000000001G"}}}})
    status["FIToFIPmtStsRpt"]["TxInfAndSts"][0]["OrgnlTxRef"] = {
        "IntrBkSttlmAmt": {"value": Decimal("1250.00"), "Ccy": "USD"},
        "Dbtr": {"Pty": {"Nm": "ZHANG WEI"}}, "DbtrAcct": {"Id": {"Othr": {"Id": "6222000011112222333"}}},
        "Cdtr": {"Pty": {"Nm": "GLOBEX GMBH"}}, "CdtrAcct": {"Id": {"IBAN": "DE44500105175407324931"}}}
    codec = binder.codec(fmt)
    return codec.decode(codec.encode(status))


def check_format(fmt: str, codec: Any, messages: list[Any], expected: set[str]) -> set[str]:
    tags = tags_of(codec)
    hit: set[str] = set()
    for values in messages:
        masked = mask(values, tags)
        present = {p for p, v in leaves(values) if v not in (None, "")}
        diff = changed(values, masked)
        assert diff == expected & present, f"{fmt}: masking changed {sorted(diff)}, expected " \
                                           f"{sorted(expected & present)} in {values!r}"
        for p, v in leaves(values):
            if p in diff:
                tag = next(t for d, t in tags.items() if matches(d, p))
                assert dict(leaves(masked)).get(p) is not None
                assert mask_value(v, tag) in [m for q, m in leaves(masked) if q == p]
        hit |= diff
    for declared in tags:
        assert any(matches(declared, p) for p in hit), f"{fmt}: classify path {declared!r} matches no field"
    return hit


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_classified_paths_match_real_fields(name, tmp_path):
    binder, seen = await traffic(name, tmp_path)
    program = binder.program
    formats = {f for f, decl in program.formats.items() if decl.kind in CLASSIFIABLE}
    assert formats == set(EXPECTED[name]), "every json / xml / iso20022 format of the service is listed"
    if name == "account_consolidation":
        seen["Camt053"].append(built_camt053(binder))
        seen.setdefault("Camt052", []).append(built_camt052(binder))
    if name == "remittance":
        seen["Pacs002"].append(built_pacs002(binder))
    if name == "claims_payout":
        seen["ClaimPacs002"].append(built_pacs002(binder, "ClaimPacs002"))
    known: dict[str, str] = {}
    for fmt in sorted(formats):
        assert seen.get(fmt), f"{fmt}: no message of this format travelled"
        expected = set(EXPECTED[name][fmt]) | BUILT.get((name, fmt), set())
        codec = binder.codec(fmt)
        hit = check_format(fmt, codec, seen[fmt], expected)
        assert hit == expected, f"{fmt}: fields {sorted(expected - hit)} never masked"
        if not expected:
            assert tags_of(codec) == {}, f"{fmt}: classifies fields it does not carry"
        for values in seen[fmt]:
            known.update(classified_values(values, tags_of(codec)))
    assert known, "the service's traffic carries accounts or names"
    # no classified account or name travels in plain text in another classifiable format
    for fmt in sorted(formats):
        tags = tags_of(binder.codec(fmt))
        for values in seen[fmt]:
            plain = [(p, v) for p, v in leaves(mask(values, tags))
                     if v is not None and not isinstance(v, bool) and str(v) in known]
            assert plain == [], f"{fmt}: classified values left in plain text: {plain}"
