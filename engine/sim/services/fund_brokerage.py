"""Fund brokerage: distribution orders to fund companies' XML gateways."""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import dealing_day, dig, every, mf_code, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("FB", n, kind, run=run)
    values: dict[str, Any] = {
        "txn_code": rng.choice(("FB01", "FB01", "FB02")), "trace_no": ref,
        "cust_acct": f"6222{rng.randrange(10**12):012d}", "fund_co": rng.choice(("HXFD", "EFND", "CHAM")),
        "fund_code": f"{rng.randrange(1, 999999):06d}", "amount": money(rng, 1_000, 500_000),
        "currency": "CNY", "fee_rate": Decimal("0.0150") if rng.random() < 0.3 else Decimal("0.0060"),
        "order_date": dealing_day(),
    }
    code = "00"
    if kind == "rejected":
        values["fund_co"], code = "ZZZZ", "14"
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


def fund_company(req: Any) -> dict[str, Any]:
    order_id = dig(req, "DistOrder", "OrderId") or ""
    if refuses(order_id):
        return {"DistOrderAck": {"OrderId": order_id, "Status": "REJECTED", "Reason": "investor not registered"}}
    return {"DistOrderAck": {"OrderId": order_id, "Status": "ACCEPTED", "AppSheetNo": "AS" + order_id[-12:]}}


SERVICE = Service(
    name="fund_brokerage", title="Fund brokerage (distribution orders)",
    inbound="fb_mainframe", request_format="FundBrkReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("fb_fundco", "DistOrder", "DistOrderAck", fund_company,
                              ref=ref_at("DistOrder", "OrderId")),),
    keyed=every,
)
