"""Sales: wealth product sales booked on the sales platform (CSV lines)."""
from __future__ import annotations

import random
from typing import Any

from engine.sim.services.common import every, mf_code, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

PRODUCTS = {"WM2026A1": (2, 50_000, "CNY"), "WM2026B3": (3, 100_000, "CNY"), "SD2026C1": (4, 50_000, "CNY"),
            "QD2026U1": (3, 10_000, "USD")}


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("SL", n, kind, run=run)
    product = rng.choice(list(PRODUCTS))
    risk, minimum, ccy = PRODUCTS[product]
    values: dict[str, Any] = {
        "txn_code": "SL01", "trace_no": ref, "product": product, "cust_acct": f"6222{rng.randrange(10**12):012d}",
        "cust_risk": rng.randrange(risk, 6), "amount": money(rng, minimum, minimum * 10), "currency": ccy,
        "sales_rep": f"R{rng.randrange(10**6):07d}", "branch": f"BR{rng.randrange(100, 999):04d}",
    }
    code = "00"
    if kind == "rejected":
        values["product"], values["cust_risk"], values["currency"], code = "SD2026C1", 2, "CNY", "65"
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


def order_book(req: Any) -> dict[str, Any]:
    req = req or {}
    oid = str(req.get("order_id", ""))
    if refuses(oid):
        return {"order_id": oid, "status": "REFUSED", "booking_no": "", "reason": "quota exhausted"}
    return {"order_id": oid, "status": "BOOKED", "booking_no": "BK" + oid[-12:], "reason": ""}


SERVICE = Service(
    name="sales", title="Sales (wealth products)",
    inbound="sl_mainframe", request_format="SalesReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("sl_platform", "SalesOrder", "SalesAck", order_book, ref=ref_at("order_id")),),
    keyed=every,
)
