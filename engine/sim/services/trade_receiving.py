"""Import and export receiving: LC / collection settlements booked on the trade platform (XML)."""
from __future__ import annotations

import random
from typing import Any

from engine.sim.services.common import dig, every, mf_code, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

# doc_ref: (direction, currency) -- as in routes/trade_receiving/instruments.csv
INSTRUMENTS = {"LC26IM0000000001": ("TI01", "USD"), "LC26IM0000000002": ("TI01", "EUR"),
               "DC26IM0000000003": ("TI01", "USD"), "LC26EX0000000004": ("TE01", "USD"),
               "DC26EX0000000005": ("TE01", "EUR")}


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("TR", n, kind, run=run)
    doc = rng.choice(list(INSTRUMENTS))
    txn, ccy = INSTRUMENTS[doc]
    values: dict[str, Any] = {
        "txn_code": txn, "trace_no": ref, "doc_ref": doc, "cust_acct": f"3100{rng.randrange(10**10):010d}",
        "counter_bank": rng.choice(("CHASUS33XXX", "DEUTDEFFXXX", "HSBCHKHHXXX")),
        "amount": money(rng, 5_000, 250_000), "currency": ccy, "value_date": 20261125, "docs_conform": "Y",
    }
    code = "00"
    if kind == "rejected":
        values["doc_ref"], values["txn_code"], values["currency"], code = "LC26IM0000000009", "TI01", "USD", "57"
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


def platform(req: Any) -> dict[str, Any]:
    ref = dig(req, "TradeSettlement", "Ref") or ""
    if refuses(ref):
        return {"TradeSettlementAck": {"Ref": ref, "Result": "HELD", "Reason": "sanctions screening hit"}}
    return {"TradeSettlementAck": {"Ref": ref, "Result": "BOOKED", "BookingRef": "TF" + ref[-12:]}}


SERVICE = Service(
    name="trade_receiving", title="Import and export receiving (LC, collections)",
    inbound="tr_mainframe", request_format="TradeReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("tr_platform", "TradeSettle", "TradeSettleAck", platform,
                              ref=ref_at("TradeSettlement", "Ref")),),
    keyed=every,
)
