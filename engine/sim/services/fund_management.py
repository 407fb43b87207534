"""Fund management: the mainframe's subscriptions, redemptions, switches (FW01) and cancels (FX01, before
the cut-off), the transfer agent's answers (the simulated TA accepts the cancel of any order it is asked to
cancel)."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import dealing_day, every, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

GOOD_FUNDS = ("F00001", "F00002", "F00004")
SWITCHABLE = ("F00001", "F00002")          # open, CNY, one TA (TA01): a switch goes from one to the other


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    draw = rng.random()      # 50% subscriptions, 30% redemptions, 10% switches, 10% cancels
    txn = "FS01" if draw < 0.5 else "FR01" if draw < 0.8 else "FW01" if draw < 0.9 else "FX01"
    ref = trace("FM", n, kind, run=run)
    fund = rng.choice(SWITCHABLE if txn == "FW01" else GOOD_FUNDS)
    values: dict[str, Any] = {
        "txn_code": txn, "trace_no": ref,
        "cust_acct": f"6222{rng.randrange(10**12):012d}", "fund_code": fund,
        "amount": Decimal(rng.randrange(100_000, 5_000_000)) / 100 if txn == "FS01" else Decimal(0),
        # units to 0.01 (funds.csv unit_dp), at least the funds' 1.00 minimum redemption
        "units": Decimal(rng.randrange(100, 500_000)) / 100 if txn in ("FR01", "FW01") else Decimal(0),
        "currency": "CNY", "trade_date": dealing_day(), "sales_channel": "MB",
    }
    if txn == "FW01":        # a switch has no amount: TO-FUND takes its bytes (REDEFINES AMOUNT)
        del values["amount"]
        values["to_fund"] = SWITCHABLE[1 - SWITCHABLE.index(fund)]
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
