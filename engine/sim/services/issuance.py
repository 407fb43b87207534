"""Issuance: bond subscriptions registered with the registrar (JSON)."""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import every, mf_code, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("IS", n, kind, run=run)
    qty = rng.randrange(10, 5000)
    price = Decimal("100.0000")     # the issue price of both open issues (routes/issuance/issues.csv)
    values: dict[str, Any] = {
        "txn_code": "IS01", "trace_no": ref, "isin": rng.choice(("CND100012343", "CND100012350")),
        "investor_acct": f"6222{rng.randrange(10**12):012d}", "quantity": qty, "price": price,
        "amount": (qty * price).quantize(Decimal("0.01")), "currency": "CNY", "sub_date": 20261125,
    }
    code = "00"
    if kind == "rejected":
        values["amount"], code = values["amount"] + 1, "13"      # amount is not quantity x price
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


def registrar(req: Any) -> dict[str, Any]:
    req = req or {}
    app = str(req.get("application", ""))
    if refuses(app):
        return {"status": "REFUSED", "reason": "investor account not opened at the registrar"}
    return {"status": "REGISTERED", "allotment_id": "AL" + app[-12:]}


SERVICE = Service(
    name="issuance", title="Issuance (bond subscription)",
    inbound="is_mainframe", request_format="IssueReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("is_registrar", "Allotment", "AllotmentAck", registrar, ref=ref_at("application")),),
    keyed=every,
)
