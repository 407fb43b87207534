"""Fund subscription settled by bsp (two legs): the core account system and the fund company.

A failing request fails at one of the two legs, alternately: the core account system refuses the
debit of a settlement account ending in ``F`` (as ``mainframe_answer(refuse_field=...)`` does), so
the order is never placed; otherwise the fund company refuses the order (its reference ends in ``F``,
as every counterpart simulator does) and the route cancels the debit, which the core account system
accepts.  Both answer ``05``.  The core account system counts its debits and its cancels apart
(``ref``: the posting reference, `` cancel`` added for a cancel), so the demo's "reached a counterpart
twice" check still catches a debit made twice.
"""
from __future__ import annotations

import itertools
import random
from typing import Any

from engine.sim.services.common import dealing_day, dig, every, mf_code, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

# fund -> its row in routes/fund_subscription/sub_funds.csv that the generator relies on (open, CNY)
GOOD_FUNDS = {"110011": (1_000, 100_000), "000001": (100, 100_000), "000198": (1, 50_000)}


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("SS", n, kind, run=run)
    fund = rng.choice(sorted(GOOD_FUNDS))
    low, high = GOOD_FUNDS[fund]
    values: dict[str, Any] = {
        "txn_code": "SS01", "trace_no": ref, "settle_acct": f"6222{rng.randrange(10**12):012d}",
        "fund_code": fund, "amount": money(rng, low, high), "currency": "CNY", "trade_date": dealing_day(),
    }
    code = "00"
    if kind == "rejected":
        values["fund_code"], code = "999999", "14"                  # not a fund the bank sells
    elif kind == "failing":
        code = "05"
        if n % 2:
            values["settle_acct"] = values["settle_acct"][:-1] + "F"     # the core refuses the debit
    return Request(kind, values, code, ref)


def core_accounts() -> Any:
    """The core account system: posts a debit (refused for an account ending in F), cancels a posting."""
    seq = itertools.count(1)

    def answer(req: Any) -> dict[str, Any]:
        req = req or {}
        if req.get("op") == "CANCEL":
            return {"status": "CANCELLED", "posting_id": f"C{next(seq):011d}",
                    "cancelled": req.get("original_posting_id")}
        if refuses(req.get("account")):
            return {"status": "REFUSED", "reason": "insufficient funds"}
        return {"status": "POSTED", "posting_id": f"P{next(seq):011d}"}
    return answer


def core_ref(req: Any) -> Any:
    ref = dig(req, "posting_ref")
    return f"{ref} cancel" if ref and dig(req, "op") == "CANCEL" else ref


def fund_company(req: Any) -> dict[str, Any]:
    order_id = dig(req, "SubOrder", "OrderId") or ""
    if refuses(order_id):
        return {"SubOrderAck": {"OrderId": order_id, "Status": "REJECTED", "Reason": "investor not registered"}}
    return {"SubOrderAck": {"OrderId": order_id, "Status": "ACCEPTED", "AppSheetNo": "SA" + order_id[-12:]}}


SERVICE = Service(
    name="fund_subscription", title="Fund subscription (debit, then order)",
    inbound="fsub_mainframe", request_format="FundSubReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("fsub_core", "CorePosting", "CoreAck", core_accounts(), ref=core_ref),
                  Counterpart("fsub_fundco", "SubOrder", "SubOrderAck", fund_company,
                              ref=ref_at("SubOrder", "OrderId"))),
    keyed=every,
)
