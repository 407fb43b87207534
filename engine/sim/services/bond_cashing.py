"""Bond cashing: redemptions and coupons drawn from the paying agent (JSON)."""
from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.sim.services.common import every, mf_code, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

# isin: (face, coupon rate %, payments a year, currency) -- as in routes/bond_cashing/bonds.csv
BONDS = {"CND100012012": (Decimal("100.00"), Decimal("3.8000"), 1, "CNY"),
         "CND100012020": (Decimal("100.00"), Decimal("2.9500"), 2, "CNY"),
         "XS2100000004": (Decimal("1000.00"), Decimal("4.2500"), 2, "USD")}
# isin: maturity (YYYYMMDD) -- a redemption is claimed on it; coupons on 2026-11-25, a coupon date of all three
MATURITY = {"CND100012012": 20261125, "CND100012020": 20261125, "XS2100000004": 20270525}


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("BC", n, kind, run=run)
    isin = rng.choice(list(BONDS))
    face, rate, freq, ccy = BONDS[isin]
    holding = rng.randrange(1, 2000)
    coupon = rng.random() < 0.7
    amount = holding * face * rate / 100 / freq if coupon else holding * face
    values: dict[str, Any] = {
        "txn_code": "BC02" if coupon else "BC01", "trace_no": ref, "isin": isin,
        "holder_acct": f"6222{rng.randrange(10**12):012d}", "holding": holding,
        "amount": amount.quantize(Decimal("0.01"), ROUND_HALF_UP), "currency": ccy,
        "pay_date": 20261125 if coupon else MATURITY[isin],
    }
    code = "00"
    if kind == "rejected":
        values["amount"], code = values["amount"] + Decimal("0.01"), "13"   # claim differs from the computed amount
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


def paying_agent(req: Any) -> dict[str, Any]:
    req = req or {}
    claim = str(req.get("claim_id", ""))
    if refuses(claim):
        return {"status": "UNPAID", "reason": "insufficient funds from the issuer"}
    return {"status": "PAID", "payment_ref": f"{req.get('event', 'PAY')}{claim[-12:]}"}


SERVICE = Service(
    name="bond_cashing", title="Bond cashing (redemption, coupon payment)",
    inbound="bc_mainframe", request_format="BondCashReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("bc_agent", "PayClaim", "PayClaimAck", paying_agent, ref=ref_at("claim_id")),),
    keyed=every,
)
