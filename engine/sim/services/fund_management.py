"""Fund management: the mainframe's subscriptions, redemptions, switches (FW01) and cancels (FX01, before
the cut-off), and the dividends of holdings paid in cash (FD01) or reinvested (FD02), the transfer agent's
answers (the simulated TA accepts the cancel of any order it is asked to cancel, and every dividend).

A dividend is one fund_dividends.csv declares (F00001's of ex-date 2026-06-15, F00002's of 2026-11-20), the
holding 1.00 to 5,000.00 units and the cash its dividend a unit x the units cut to the cent, as the route
computes it."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import dealing_day, every, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

GOOD_FUNDS = ("F00001", "F00002", "F00004")
SWITCHABLE = ("F00001", "F00002")          # open, CNY, one TA (TA01): a switch goes from one to the other
# fund: (ex-date, dividend a unit) -- as in routes/fund_management/fund_dividends.csv, both reinvestable
DIVIDENDS = {"F00001": (20260615, Decimal("0.080000")), "F00002": (20261120, Decimal("0.025000"))}


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    draw = rng.random()      # 45% subscriptions, 27% redemptions, 9% switches, 9% cancels, 10% dividends
    txn = ("FS01" if draw < 0.45 else "FR01" if draw < 0.72 else "FW01" if draw < 0.81 else "FX01" if draw < 0.9
           else "FD01" if draw < 0.95 else "FD02")
    ref = trace("FM", n, kind, run=run)
    fund = rng.choice(SWITCHABLE if txn in ("FW01", "FD01", "FD02") else GOOD_FUNDS)
    values: dict[str, Any] = {
        "txn_code": txn, "trace_no": ref,
        "cust_acct": f"6222{rng.randrange(10**12):012d}", "fund_code": fund,
        "amount": Decimal(rng.randrange(100_000, 5_000_000)) / 100 if txn == "FS01" else Decimal(0),
        # units to 0.01 (funds.csv unit_dp), at least the funds' 1.00 minimum redemption
        "units": Decimal(rng.randrange(100, 500_000)) / 100 if txn in ("FR01", "FW01") else Decimal(0),
        "currency": "CNY", "trade_date": dealing_day(), "sales_channel": "MB",
    }
    if txn in ("FD01", "FD02"):  # the holding, its dividend cut to the cent, the ex-date naming the dividend
        ex_date, per_unit = DIVIDENDS[fund]
        units = Decimal(rng.randrange(100, 500_000)) / 100
        gross = units * per_unit
        values.update(units=units, amount=(gross - gross % Decimal("0.01")).quantize(Decimal("0.01")),
                      trade_date=ex_date)
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
    name="fund_management", title="Fund management (subscriptions, redemptions, switches, dividends)",
    inbound="fm_mainframe", request_format="FundTxnReq", reply_format="MfRsp",
    make=make, code_of=lambda r: r["resp_code"],
    counterparts=(Counterpart("fm_ta", "TaOrder", "TaAck", answer, ref=ref_at("order_id")),),
    keyed=every,
)
