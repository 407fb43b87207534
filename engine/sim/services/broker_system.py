"""Broker business system: bank-securities transfers (XML in), posted on the mainframe."""
from __future__ import annotations

import random

from engine.sim.services.common import every, mainframe_answer, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, trace


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("BK", n, kind, run=run)
    req = {"Type": rng.choice(("B2S", "S2B")), "SerialNo": ref, "BrokerId": rng.choice(("BRK001", "BRK002", "BRK003")),
           "BankAcct": f"6222{rng.randrange(10**12):012d}", "SecAcct": f"{rng.randrange(10**12):012d}",
           "Amount": str(money(rng, 100, 200_000)), "Currency": "CNY"}
    code = "00"
    if kind == "rejected":
        req["BrokerId"], code = "BRK999", "14"
    elif kind == "failing":
        code = "05"
    return Request(kind, {"XferReq": req}, code, ref)


SERVICE = Service(
    name="broker_system", title="Broker business system (bank-securities transfers)",
    inbound="bk_broker", request_format="XferReq", reply_format="XferRsp", make=make,
    code_of=lambda r: str(r["XferRsp"]["Code"]), framing="length4",
    counterparts=(Counterpart("bk_mainframe", "BrkXferReq", "MfRsp", mainframe_answer("trace_no"),
                              framing="length2", ref=ref_at("trace_no")),),
    keyed=every,
)
