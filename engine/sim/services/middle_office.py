"""Middle-office support: limit enquiries (mainframe) and exception cases (case management)."""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import mainframe_answer, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

LIMITS = ("FXSPOT-USD01", "FXSPOT-EUR01", "BOND-CNY0001", "MMKT-CNY0001")
REASONS = ("SETTLEMENT_FAIL", "AMOUNT_MISMATCH", "MISSING_CONFIRMATION", "LIMIT_BREACH")


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("MO", n, kind, run=run)
    if rng.random() < 0.5:
        values: dict[str, Any] = {"type": "LIMIT", "request_id": ref, "limit_id": rng.choice(LIMITS),
                                  "user": "mo.analyst"}
        if kind == "rejected":
            values["limit_id"] = "NOSUCHLIMIT"
    else:
        values = {"type": "EXCEPTION", "request_id": ref, "deal_ref": f"FX{rng.randrange(10**8):08d}",
                  "reason": rng.choice(REASONS), "amount": money(rng, 1_000, 2_000_000), "currency": "USD",
                  "counterparty": rng.choice(("CHASUS33", "DEUTDEFF", "HSBCHKHH")), "user": "mo.analyst",
                  "note": "raised by the simulator"}
        if kind == "rejected":
            values["reason"] = "NOT_A_REASON"
    expect = {"good": "00", "failing": "05",
              "rejected": "14" if values["type"] == "LIMIT" else "30"}[kind]
    return Request(kind, values, expect, ref)


def case_management(req: Any) -> dict[str, Any]:
    req = req or {}
    case_id = str(req.get("case_id", ""))
    if refuses(case_id):
        return {"status": "REJECTED", "reason": "queue closed for maintenance"}
    return {"status": "OPEN", "case_no": "CASE" + case_id[-10:], "queue": req.get("queue")}


def used(req: Any) -> Decimal:
    # a deterministic used amount per limit: enough to make FXSPOT-EUR01 breach its limit
    return {"FXSPOT-EUR01": Decimal("31250000.00")}.get(str(req.get("limit_id")), Decimal("1234567.89"))


SERVICE = Service(
    name="middle_office", title="Middle-office support (limits, exception queue)",
    inbound="mo_desk", request_format="DeskReq", reply_format="DeskRsp", make=make,
    code_of=lambda r: str(r["code"]), framing="length4",
    counterparts=(Counterpart("mo_mainframe", "PosnEnq", "MfRsp", mainframe_answer("trace_no", amount=used,
                                                                                    message="position"),
                              framing="length2", ref=ref_at("trace_no")),
                  Counterpart("mo_cases", "CaseOpen", "CaseAck", case_management, ref=ref_at("case_id"))),
    keyed=lambda v: v["type"] == "EXCEPTION",          # limit enquiries have no key: asked again
)
