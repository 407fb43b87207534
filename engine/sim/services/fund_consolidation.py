"""Fund consolidation: cash-pool sweeps sent as MT101 through the SWIFT gateway, or, for a downward sweep
whose header account is held at the bank (POOL0001-0003; POOL0004's is at another bank), posted to the
mainframe (POOL-POST FP01, the header's debit) and paid by MT103 through the same gateway.

The gateway NAKs any message whose field 20 ends in ``F``; the mainframe's posting interface refuses
nothing, so a failing downward sweep from a header held here is debited, NAKed, and its debit reversed
(FP02): the reply is 05 as for an MT101 the gateway NAKs.

Two request records on the one mainframe channel: SWEEP-REQ (FC01, a sweep up or down) and ZBA-REQ
(FC02, one leg of a zero-balancing / target-balance sweep, a member's closing balance). The client's
codec is SweepReq's (``Service.request_format``); ``encode`` writes an FC02 request with ZBA-REQ's,
read from the route folder's copybook with the route's options (cp037, names lower).
"""
from __future__ import annotations

import functools
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.sim.services.common import dig, every, mainframe_answer, mf_code, money, mt_ref
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace
from formats.copybook.codec import CopybookCodec
from formats.copybook.layout import parse_copybook
from formats.copybook.options import CopybookOptions

# routes/fund_consolidation/pools.csv: the active pools -> currency (POOL0004's header account is held at
# another bank: its downward sweeps are MT101s to that bank; the others' are debited here and paid by MT103)
POOLS = {"POOL0001": "CNY", "POOL0002": "USD", "POOL0004": "EUR"}
# routes/fund_consolidation/zba_members.csv: the active pools' members -> (pool, target balance)
ZBA_MEMBERS = {"ZM000001": ("POOL0001", Decimal("0.00")), "ZM000002": ("POOL0001", Decimal("250000.00")),
               "ZM000003": ("POOL0002", Decimal("0.00")), "ZM000004": ("POOL0002", Decimal("10000.00"))}
ZBA_SUSPENDED = ("ZM000005", "POOL0003", "USD")      # a member of the suspended pool: 57
ZBA_SHARE = 0.3                                      # of the requests, FC02 legs
ZBA_COPYBOOK = Path(__file__).resolve().parents[3] / "routes" / "fund_consolidation" / "copybooks" / "ZBA-REQ.cpy"


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    if rng.random() < ZBA_SHARE:
        return make_zba(kind, n, rng, run)
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


def make_zba(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    """An FC02 leg: good ones sweep what is above the member's target (1.00 to 1,000.00, so the pools'
    daily totals hold a few hundred demo runs a day); rejected ones belong to the suspended pool (57);
    failing ones are refused by the gateway (05). A leg with nothing to sweep (00, no MT101) is left to
    the route tests: every good request here reaches the counterpart (tests/services/test_services_e2e.py)."""
    ref = trace("ZB", n, kind, run=run)
    member = rng.choice(sorted(ZBA_MEMBERS))
    pool, target = ZBA_MEMBERS[member]
    balance = target + money(rng, 1, 1_000)
    values: dict[str, Any] = {"txn_code": "FC02", "trace_no": ref, "pool_id": pool, "member_id": member,
                              "balance": balance, "currency": POOLS[pool], "value_date": 20261125}
    code = "00"
    if kind == "rejected":
        values["member_id"], values["pool_id"], values["currency"] = ZBA_SUSPENDED
        code = "57"
    elif kind == "failing":
        code = "05"
    return Request(kind, values, code, ref)


@functools.lru_cache(maxsize=1)
def zba_codec() -> CopybookCodec:
    return CopybookCodec(parse_copybook(ZBA_COPYBOOK.read_text(encoding="utf-8"), str(ZBA_COPYBOOK)),
                         CopybookOptions(encoding="cp037", names="lower"), name="ZbaReq")


def encode(codec: Any, values: Any) -> bytes:
    return zba_codec().encode(values) if values.get("txn_code") == "FC02" else codec.encode(values)


def swift_gateway(req: Any) -> dict[str, Any]:
    ref = next((f["value"] for f in dig(req, "block4") or [] if f.get("tag") == "20"), "")
    if refuses(ref):
        return {"status": "NAK", "error": f"H50 receiver not enabled for MT{dig(req, 'block2', 'type') or ''}"}
    return {"status": "ACK", "mir": "261125BSPBCNSHAXXX0000" + str(ref)[-7:-1].rjust(6, "0")}


def posting() -> Any:
    """The mainframe's posting interface: debits a header account (FP01) and reverses a debit (FP02). It
    refuses neither (``refuse_field`` is the transaction code, which never ends in F): a failing sweep is
    the gateway's NAK, after the debit."""
    return mainframe_answer("trace_no", refuse_field="txn_code", message="pool cover posted")


def posting_ref(req: Any) -> Any:
    """A debit is counted under its trace number, a reversal under the trace number and `` reversal``: the
    demo's "reached a counterpart twice" check still catches a header debited twice."""
    ref = dig(req, "trace_no")
    return f"{str(ref).strip()} reversal" if ref and dig(req, "txn_code") == "FP02" else ref


SERVICE = Service(
    name="fund_consolidation", title="Fund consolidation (cash-pooling sweeps)",
    inbound="fc_mainframe", request_format="SweepReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("fc_swift", "Mt101", "FinAck", swift_gateway, ref=mt_ref, also=("CoverMt103",)),
                  Counterpart("fc_posting", "PoolPost", "MfRsp", posting(), framing="length2", ref=posting_ref)),
    keyed=every, encode=encode,
)
