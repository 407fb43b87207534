"""Remittances: domestic clearing (JSON), SWIFT FIN gateway (MT103 in, JSON ack out),
CBPR+ gateway (pacs.008 in, pacs.002 out)."""
from __future__ import annotations

import datetime as dt
import random
from typing import Any

from engine.sim.services.common import CNY_HOLIDAYS, dealing_day, dig, every, mf_code, money, mt_ref, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

DOMESTIC_BANKS = ("102100099996", "103100000026", "105100000017")
FOREIGN_BANKS = ("CHASUS33XXX", "DEUTDEFFXXX", "HSBCHKHHXXX", "BARCGB22XXX")
# the beneficiary banks in IBAN countries (routes/remittance/banks.csv account_form IBAN): country, bank code
IBAN_BANKS = {"DEUTDEFFXXX": ("DE", "50070010"), "BARCGB22XXX": ("GB", "BARC200000")}
NAMES = ("ZHANG WEI", "LI NA", "WANG FANG", "CHEN JIE", "ACME TRADING LTD", "GLOBEX GMBH")



def iban(country_bank: tuple[str, str], rng: random.Random) -> str:
    """An IBAN of that country and bank code with right MOD 97-10 check digits (DE: 18 digits after them,
    GB: BARC + sort code + 8 digits)."""
    country, bank = country_bank
    bban = bank + f"{rng.randrange(10**8):08d}" + ("00" if country == "DE" else "")
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"

def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    txn = rng.choice(("RD01", "RD01", "RX01", "RX02"))
    ref = trace("RM", n, kind, run=run)
    domestic = txn == "RD01"
    values: dict[str, Any] = {
        "txn_code": txn, "trace_no": ref, "debtor_acct": f"6222{rng.randrange(10**15):015d}",
        "debtor_name": rng.choice(NAMES[:4]), "creditor_acct": f"{rng.randrange(10**12):012d}",
        "creditor_name": rng.choice(NAMES), "creditor_bank": rng.choice(DOMESTIC_BANKS if domestic else FOREIGN_BANKS),
        "amount": money(rng, 10, 200_000), "currency": "CNY" if domestic else rng.choice(("USD", "EUR", "HKD")),
        # the first CNAPS business day whose 17:00 cut-off (Beijing) is still ahead, as the routes want
        "value_date": dealing_day(dt.time(17, 0), calendar=CNY_HOLIDAYS), "charges": "SHA", "purpose": "INVOICE " + str(rng.randrange(1000, 9999)),
    }
    if values["creditor_bank"] in IBAN_BANKS:             # banks.csv account_form IBAN: paid to an IBAN only
        values["creditor_acct"] = iban(IBAN_BANKS[values["creditor_bank"]], rng)
    code = "00"
    if kind == "rejected":
        if domestic:
            values["creditor_bank"], code = "999999999999", "15"    # unknown beneficiary bank
        else:
            values["currency"], code = "CNY", "14"                  # cross-border in CNY not offered here
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


def clearing(req: Any) -> dict[str, Any]:
    ref = dig(req, "end_to_end_id")
    if refuses(ref):
        return {"status": "RJCT", "reason": "AC04 closed account"}
    return {"status": "ACSP", "clearing_ref": "HVPS" + str(ref)[-12:]}


def swift_gateway(req: Any) -> dict[str, Any]:
    block4 = dig(req, "block4") or []
    ref = next((f["value"] for f in block4 if f.get("tag") == "20"), "")
    if refuses(ref):
        return {"status": "NAK", "error": "T13 invalid field format"}
    return {"status": "ACK", "mir": "261125BSPBCNSHAXXX0000" + str(ref)[-7:-1].rjust(6, "0")}


def cbpr_gateway(req: Any) -> dict[str, Any]:
    e2e = dig(req, "FIToFICstmrCdtTrf", "CdtTrfTxInf", "PmtId", "EndToEndId") or ""
    status: dict[str, Any] = {"OrgnlEndToEndId": e2e, "TxSts": "ACSP"}
    if refuses(e2e):
        status = {"OrgnlEndToEndId": e2e, "TxSts": "RJCT", "StsRsnInf": [{"Rsn": {"Cd": "AC04"}}]}
    return {"message": "pacs.002.001.11",
            "FIToFIPmtStsRpt": {"GrpHdr": {"MsgId": "P2" + e2e[-14:], "CreDtTm": dt.datetime(2026, 11, 25, 10, 0)},
                                "TxInfAndSts": [status]}}


SERVICE = Service(
    name="remittance", title="Remittances (domestic; cross-border MT103 and pacs.008)",
    inbound="rm_mainframe", request_format="RemitReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("rm_clearing", "ClearPost", "ClearAck", clearing, ref=ref_at("end_to_end_id")),
                  Counterpart("rm_swift", "Mt103", "GwAck", swift_gateway, ref=mt_ref),
                  Counterpart("rm_cbpr", "Pacs008", "Pacs002", cbpr_gateway,
                              ref=ref_at("FIToFICstmrCdtTrf", "CdtTrfTxInf", "PmtId", "EndToEndId"))),
    keyed=every,
)
