"""Insurance brokerage: premium collection confirmed to insurers' JSON APIs."""
from __future__ import annotations

import random
from typing import Any

from engine.sim.services.common import every, mf_code, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("IB", n, kind, run=run)
    values: dict[str, Any] = {
        "txn_code": "IP01", "trace_no": ref, "policy_no": f"P{rng.randrange(10**12):012d}",
        "insurer": rng.choice(("PICC", "PAIC", "CLIC")), "payer_acct": f"6222{rng.randrange(10**12):012d}",
        "payer_name": rng.choice(("ZHANG WEI", "LI NA", "WANG FANG")), "premium": money(rng, 200, 50_000),
        "currency": "CNY", "due_date": 20261130, "instalment": rng.randrange(1, 13),
    }
    code = "00"
    if kind == "rejected":
        values["premium"], code = money(rng, 1_000_001, 2_000_000), "61"    # over the insurer's limit
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


def insurer(req: Any) -> dict[str, Any]:
    req = req or {}
    pid = str(req.get("payment_id", ""))
    if refuses(pid):
        return {"result": "DECLINED", "reason": "policy lapsed"}
    return {"result": "PAID", "receipt_no": "RC" + pid[-12:], "policy_no": req.get("policy_no")}


SERVICE = Service(
    name="insurance_brokerage", title="Insurance brokerage (premium collection)",
    inbound="ib_mainframe", request_format="PremiumReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("ib_insurer", "PremiumNotice", "PremiumReceipt", insurer, ref=ref_at("payment_id")),),
    keyed=every,
)
