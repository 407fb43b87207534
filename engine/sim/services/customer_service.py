"""Customer services: balance and deal enquiries from the call centre's CRM (JSON), answered by the mainframe."""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import mainframe_answer, ref_at
from engine.sim.services.model import Counterpart, Request, Service, trace


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("CS", n, kind, run=run)
    acct = f"6222{rng.randrange(10**12):012d}"
    if rng.random() < 0.6:
        values: dict[str, Any] = {"type": "BALANCE", "request_id": ref, "account": acct, "currency": "CNY",
                                  "agent": f"CC{rng.randrange(100, 999)}"}
        if kind == "rejected":
            values["currency"] = "XAU"
        expect_rej = "15"
    else:
        values = {"type": "DEAL", "request_id": ref, "account": acct, "deal_ref": f"RM{rng.randrange(10**13):014d}",
                  "agent": f"CC{rng.randrange(100, 999)}"}
        if kind == "rejected":
            values["deal_ref"] = ""
        expect_rej = "30"
    return Request(kind, values, {"good": "00", "failing": "05", "rejected": expect_rej}[kind], ref)


def balance(req: Any) -> Decimal:
    return Decimal(int(str(req.get("account") or "0")[-6:] or 0)) / 100 if req.get("txn_code") == "CS01" else Decimal(0)


SERVICE = Service(
    name="customer_service", title="Customer services (balance and deal enquiries)",
    inbound="cs_crm", request_format="CrmReq", reply_format="CrmRsp", make=make,
    code_of=lambda r: str(r["code"]), framing="length4",
    counterparts=(Counterpart("cs_mainframe", "CustEnq", "MfRsp",
                              mainframe_answer("trace_no", amount=balance, message="SETTLED"), framing="length2",
                              ref=ref_at("trace_no")),),
)
