"""Fund consolidation: cash-pool sweeps sent as MT101 through the SWIFT gateway."""
from __future__ import annotations

import random
from typing import Any

from engine.sim.services.common import dig, every, mf_code, money, mt_ref
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

POOLS = {"POOL0001": "CNY", "POOL0002": "USD"}


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("FC", n, kind, run=run)
    pool = rng.choice(list(POOLS))
    values: dict[str, Any] = {
        "txn_code": "FC01", "trace_no": ref, "pool_id": pool, "member_acct": f"{rng.randrange(10**14):014d}",
        "member_bank": rng.choice(("ICBKCNBJXXX", "PCBCCNBJXXX", "HSBCHKHHXXX")), "direction": rng.choice("UUD"),
        "amount": money(rng, 10_000, 3_000_000), "currency": POOLS[pool], "value_date": 20261125,
    }
    code = "00"
    if kind == "rejected":
        values["pool_id"], values["currency"], code = "POOL0003", "USD", "57"     # suspended pool
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


def swift_gateway(req: Any) -> dict[str, Any]:
    ref = next((f["value"] for f in dig(req, "block4") or [] if f.get("tag") == "20"), "")
    if refuses(ref):
        return {"status": "NAK", "error": "H50 receiver not enabled for MT101"}
    return {"status": "ACK", "mir": "261125BSPBCNSHAXXX0000" + str(ref)[-7:-1].rjust(6, "0")}


SERVICE = Service(
    name="fund_consolidation", title="Fund consolidation (cash-pooling sweeps)",
    inbound="fc_mainframe", request_format="SweepReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("fc_swift", "Mt101", "FinAck", swift_gateway, ref=mt_ref),),
    keyed=every,
)
