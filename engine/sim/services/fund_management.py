"""Fund management: the mainframe's subscriptions, redemptions and cancels (FX01, before the cut-off), the
transfer agent's answers (the simulated TA accepts the cancel of any order it is asked to cancel)."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import dealing_day, every, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

GOOD_FUNDS = ("F00001", "F00002", "F00004")


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    draw = rng.random()
    subscribe, cancel = draw < 0.55, draw >= 0.9          # 55% subscriptions, 35% redemptions, 10% cancels
    ref = trace("FM", n, kind, run=run)
    values: dict[str, Any] = {
        "txn_code": "FX01" if cancel else "FS01" if subscribe else "FR01", "trace_no": ref,
        "cust_acct": f"6222{rng.randrange(10**12):012d}", "fund_code": rng.choice(GOOD_FUNDS),
        "amount": Decimal(rng.randrange(100_000, 5_000_000)) / 100 if subscribe else Decimal(0),
        "units": Decimal(0) if subscribe or cancel else Decimal(rng.randrange(100, 500_000)) / 100,   # units to 0.01
        "currency": "CNY", "trade_date": dealing_day(), "sales_channel": "MB",
    }
    code = "00"
    if kind == "rejected":
        values["fund_code"], code = "F99999", "14"          # unknown fund
    elif kind == "failing":
        code = "05"                                          # the TA refuses the order
    return Request(kind, values, code, ref)


def answer(order: Any) -> dict[str, Any]:
    order = order or {}
    if refuses(order.get("order_id")):
        return {"status": "REJECTED", "reason": "investor account frozen at the TA"}
    return {"status": "ACCEPTED", "confirmation": f"{order.get('ta', 'TA')}-{order.get('order_id', '')[-10:]}",
            "accepted_at": dt.datetime(2026, 11, 25, 15, 0).isoformat()}


SERVICE = Service(
    name="fund_management", title="Fund management (subscriptions, redemptions)",
    inbound="fm_mainframe", request_format="FundTxnReq", reply_format="MfRsp",
    make=make, code_of=lambda r: r["resp_code"],
    counterparts=(Counterpart("fm_ta", "TaOrder", "TaAck", answer, ref=ref_at("order_id")),),
    keyed=every,
)
