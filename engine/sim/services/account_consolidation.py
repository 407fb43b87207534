"""Bank account consolidation: MT940 and camt.053 statements in, balances posted to the mainframe."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import every, mainframe_answer, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, trace

ACCOUNTS = {"NL26VAYB8060476890": "EUR", "DE89370400440532013000": "EUR", "GB29NWBK60161331926819": "GBP",
            "HK0012345678901": "HKD", "US0987654321000": "USD"}
DAY = dt.date(2026, 11, 24)


def _account(kind: str, rng: random.Random) -> tuple[str, str]:
    if kind == "rejected":
        return "FR7630006000011234567890189", "EUR"       # not in a consolidation group
    acct = rng.choice(list(ACCOUNTS))
    return acct, ACCOUNTS[acct]


# counterparties of the German structured :86: (a credit's payer): name, IBAN, BIC
PAYERS = (("ERIKA MUSTERMANN", "DE02120300000000202051", "BYLADEM1001"),
          ("JAN DE VRIES", "NL91ABNA0417164300", "ABNANL2A"))


def _information(n: int, i: int) -> str:
    """:86: of statement line ``i``: the first in the German structured form (GVC 166, ?NN sub-fields,
    SEPA keywords; formats.swift.details86), the others free text."""
    if i:
        return f"PAYMENT {n}/{i}"
    name, iban, bic = PAYERS[n % len(PAYERS)]
    return f"166?00GUTSCHRIFT?20EREF+INV{n}{i}?21SVWZ+PAYMENT {n}/{i}\n?30{bic}?31{iban}?32{name}"


def make_mt940(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("AS", n, kind, run=run)
    acct, ccy = _account(kind, rng)
    opening = money(rng, 10_000, 900_000)
    lines, bal = [], opening
    for i in range(rng.randrange(1, 4)):
        amt = money(rng, 100, 5_000)
        mark = rng.choice("CD")
        bal += amt if mark == "C" else -amt
        lines += [{"tag": "61", "value": {"value_date": DAY, "entry_date": "1124", "mark": mark, "funds_code": None,
                                          "amount": amt, "type": "NTRF", "customer_reference": f"INV{n}{i}",
                                          "bank_reference": None, "supplementary": None}},
                  {"tag": "86", "value": _information(n, i)}]
    closing = {"mark": "C" if bal >= 0 else "D", "date": DAY, "currency": ccy, "amount": abs(bal)}
    values = {
        "block1": {"app": "F", "service": "01", "lt": "BSPBCNSHAXXX", "session": "0000", "sequence": "000000"},
        "block2": {"io": "I", "type": "940", "receiver": "BSPBCNSHXXXX", "priority": "N", "rest": ""},
        "block4": [{"tag": "20", "value": ref}, {"tag": "25", "value": acct}, {"tag": "28C", "value": f"{n % 99999}/1"},
                   {"tag": "60F", "value": {"mark": "C", "date": DAY, "currency": ccy, "amount": opening}},
                   *lines, {"tag": "62F", "value": closing}],
    }
    return Request(kind, values, {"good": "00", "rejected": "14", "failing": "05"}[kind], ref)


def make_camt053(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    """A camt.053 that adds up (the route checks it: OPBD + booked entries = CLBD)."""
    ref = trace("AC", n, kind, run=run)
    acct, ccy = _account(kind, rng)
    opening = money(rng, 10_000, 900_000)
    created = dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.timezone.utc)

    def bal(code: str, amount: Decimal) -> dict[str, Any]:
        return {"Tp": {"CdOrPrtry": {"Cd": code}}, "Amt": {"value": abs(amount), "Ccy": ccy},
                "CdtDbtInd": "CRDT" if amount >= 0 else "DBIT", "Dt": {"Dt": DAY}}
    entries, closing = [], opening
    for i in range(rng.randrange(1, 4)):
        amt = money(rng, 100, 5_000)
        ind = rng.choice(("CRDT", "DBIT"))
        closing += amt if ind == "CRDT" else -amt
        entries.append({"Amt": {"value": amt, "Ccy": ccy}, "CdtDbtInd": ind, "Sts": "BOOK",
                        "BookgDt": {"Dt": DAY}, "ValDt": {"Dt": DAY}, "BkTxCd": {"Prtry": {"Cd": "NTRF"}}})
    values = {"message": "camt.053.001.02", "BkToCstmrStmt": {
        "GrpHdr": {"MsgId": "M" + ref, "CreDtTm": created},
        "Stmt": [{"Id": ref, "CreDtTm": created, "Acct": {"Id": {"IBAN": acct}, "Ccy": ccy},
                  "Bal": [bal("OPBD", opening), bal("CLBD", closing)], "Ntry": entries}]}}
    return Request(kind, values, {"good": "00", "rejected": "14", "failing": "05"}[kind], ref)


def ack_code(reply: Any) -> str:
    return str(reply["code"])


HOST = Counterpart("ac_mainframe", "StmtBal", "MfRsp",
                   mainframe_answer("trace_no", amount=lambda r: r.get("balance"), message="balance posted"),
                   framing="length2", ref=ref_at("trace_no"))

SERVICES = (
    Service(name="account_consolidation", title="Account consolidation (MT940 statements)",
            inbound="ac_swift", request_format="Mt940", reply_format="StmtAck", make=make_mt940, code_of=ack_code,
            counterparts=(HOST,), framing="length4", keyed=every),
    Service(name="account_consolidation", title="Account consolidation (camt.053 statements)",
            inbound="ac_camt", request_format="Camt053", reply_format="StmtAck", make=make_camt053,
            code_of=ack_code, counterparts=(HOST,), framing="length4", keyed=every),
)
