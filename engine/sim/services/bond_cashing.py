"""Bond cashing: redemptions, coupons and early encashments drawn from the paying agent (JSON).

About 65% of the requests are coupons (BC02), 28% redemptions at maturity (BC01) and 7% early
encashments (BC03: a tenth of the draws, those that picked a savings bond) of a savings bond on 2026-06-01 (before its maturity, after its lock-up): the
principal less the penalty, rounded as the route rounds it (half up, once on the holding's total)."""
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
# isin: early-encashment penalty, % of the principal (bonds.csv `early_penalty`) -- the bonds cashed early
EARLY_PENALTY = {"CND100012012": Decimal("0.2250"), "CND100012020": Decimal("1.0000")}
EARLY_PAY_DATE = 20260601                 # after both savings bonds' lock-up (early_from), before maturity
CENT = Decimal("0.01")


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("BC", n, kind, run=run)
    isin = rng.choice(list(BONDS))
    face, rate, freq, ccy = BONDS[isin]
    holding = rng.randrange(1, 2000)
    draw = rng.random()
    if draw < 0.65:
        txn, pay_date = "BC02", 20261125
        amount = (holding * face * rate / 100 / freq).quantize(CENT, ROUND_HALF_UP)
    elif draw >= 0.9 and isin in EARLY_PENALTY:
        txn, pay_date = "BC03", EARLY_PAY_DATE
        principal = (holding * face).quantize(CENT, ROUND_HALF_UP)
        amount = principal - (principal * EARLY_PENALTY[isin] / 100).quantize(CENT, ROUND_HALF_UP)
    else:
        txn, pay_date = "BC01", MATURITY[isin]
        amount = (holding * face).quantize(CENT, ROUND_HALF_UP)
    values: dict[str, Any] = {
        "txn_code": txn, "trace_no": ref, "isin": isin,
        "holder_acct": f"6222{rng.randrange(10**12):012d}", "holding": holding,
        "amount": amount, "currency": ccy, "pay_date": pay_date,
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
    name="bond_cashing", title="Bond cashing (redemption, coupon payment, early encashment)",
    inbound="bc_mainframe", request_format="BondCashReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("bc_agent", "PayClaim", "PayClaimAck", paying_agent, ref=ref_at("claim_id")),),
    keyed=every,
)
