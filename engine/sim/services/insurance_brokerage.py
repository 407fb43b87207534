"""Insurance brokerage: premium collection confirmed to insurers' JSON APIs (IP01), and cooling-off
(free-look) cancellations (IP02) asked of the same APIs.

Two request records on the one mainframe channel: PREMIUM-REQ (IP01) and CANCEL-REQ (IP02, about one
request in ten). The client's codec is PremiumReq's (``Service.request_format``); ``encode`` writes an
IP02 request with CANCEL-REQ's, read from the route folder's copybook with the route's options (cp037,
names lower). A cancellation is dated today in Shanghai on the engine's clock (``dsl.clock.now()``: the wall
clock, or where ``--at`` set it, as the route's ``today()``; the route refuses a request dated later) and
its policy was delivered a few days before (inside every insurer's period); a rejected one was
delivered 30 days before (31, past the period). The insurer confirms the refund the route worked out
(premium less its fee, insurers.csv) and refuses, as for a premium, any reference ending in ``F``.
"""
from __future__ import annotations

import datetime as dt
import functools
import random
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.sim.services.common import every, mf_code, money
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace
from formats.copybook.codec import CopybookCodec
from formats.copybook.layout import parse_copybook
from formats.copybook.options import CopybookOptions

CANCEL_SHARE = 0.1                                   # of the requests, IP02 cancellations
CANCEL_COPYBOOK = (Path(__file__).resolve().parents[3] / "routes" / "insurance_brokerage" / "copybooks"
                   / "CANCEL-REQ.cpy")
# routes/insurance_brokerage/insurers.csv: api_code -> the fee kept on a cooling-off cancellation
CANCEL_FEES = {"PICC-API": Decimal("0.00"), "PAIC-API": Decimal("10.00"), "CLIC-API": Decimal("10.00")}


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    if rng.random() < CANCEL_SHARE:
        return make_cancel(kind, n, rng, run)
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


def make_cancel(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    """An IP02 cooling-off cancellation: its policy number is new per request and per run (the route's key is
    the insurer and the policy, and the key store outlives a run: the number carries the reference less its
    ``IC``, so the run's tag, and a second ``make demo`` the same day cancels other policies, not the first
    run's again), requested today, delivered 0 to 10 days before (30 for a rejected one)."""
    ref = trace("IC", n, kind, run=run)
    from dsl.clock import now                  # the engine's clock (bsp run / demo / sim --at), as the route's today()
    today = now().astimezone(ZoneInfo("Asia/Shanghai")).date()
    delivered = today - dt.timedelta(days=30 if kind == "rejected" else rng.randrange(0, 11))
    values: dict[str, Any] = {
        "txn_code": "IP02", "trace_no": ref, "policy_no": f"C{rng.randrange(10**5):05d}{ref[2:]}",
        "insurer": rng.choice(("PICC", "PAIC", "CLIC")), "payer_acct": f"6222{rng.randrange(10**12):012d}",
        "payer_name": rng.choice(("ZHANG WEI", "LI NA", "WANG FANG")), "premium": money(rng, 200, 50_000),
        "currency": "CNY", "delivery_date": int(delivered.strftime("%Y%m%d")),
        "request_date": int(today.strftime("%Y%m%d")),
    }
    code = {"good": "00", "rejected": "31", "failing": "05"}[kind]
    return Request(kind, values, code, ref)


@functools.lru_cache(maxsize=1)
def cancel_codec() -> CopybookCodec:
    return CopybookCodec(parse_copybook(CANCEL_COPYBOOK.read_text(encoding="utf-8"), str(CANCEL_COPYBOOK)),
                         CopybookOptions(encoding="cp037", names="lower"), name="CancelReq")


def encode(codec: Any, values: Any) -> bytes:
    return cancel_codec().encode(values) if values.get("txn_code") == "IP02" else codec.encode(values)


def insurer(req: Any) -> dict[str, Any]:
    req = req or {}
    if req.get("type") == "COOLING_OFF_CANCEL":
        cid = str(req.get("cancel_id", ""))
        if refuses(cid):
            return {"result": "DECLINED", "reason": "a claim was made on the policy"}
        refund = Decimal(str(req.get("premium"))) - CANCEL_FEES.get(str(req.get("api")), Decimal("0.00"))
        return {"result": "CANCELLED", "cancel_no": "CX" + cid[-12:], "refund": refund,
                "policy_no": req.get("policy_no")}
    pid = str(req.get("payment_id", ""))
    if refuses(pid):
        return {"result": "DECLINED", "reason": "policy lapsed"}
    return {"result": "PAID", "receipt_no": "RC" + pid[-12:], "policy_no": req.get("policy_no")}


def insurer_ref(req: Any) -> Any:
    """A premium is counted under its payment id, a cancellation under its cancel id: the demo's "reached a
    counterpart twice" check catches either sent twice."""
    req = req or {}
    return req.get("cancel_id") if req.get("type") == "COOLING_OFF_CANCEL" else req.get("payment_id")


SERVICE = Service(
    name="insurance_brokerage", title="Insurance brokerage (premium collection, cooling-off cancellations)",
    inbound="ib_mainframe", request_format="PremiumReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("ib_insurer", "PremiumNotice", "PremiumReceipt", insurer, ref=insurer_ref),),
    keyed=every, encode=encode,
)
