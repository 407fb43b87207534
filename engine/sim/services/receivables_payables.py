"""Receivables and payables: an ERP's AR/AP batch files (CSV, one record per line, 50 records per batch,
ended by a ``TRAILER,count,total`` control record) dropped in the watched folder; each record is posted on
the mainframe and acknowledged in a file."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import mainframe_answer, money, ref_at
from engine.sim.services.model import FAIL_MARK, Counterpart, Request, Service


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    batch = f"B{run or '2611'}{(n - 1) // 50:05d}"          # the run's tag in it: unique per run
    record_no = n
    values: dict[str, Any] = {
        "batch_id": batch, "record_no": record_no, "kind": rng.choice(("AR", "AP")),
        "corp_id": rng.choice(("C0000001", "C0000002", "C0000003")),
        "counterparty": rng.choice(("WIDGETS CO", "ACME SUPPLY", "NORTHWIND LTD")),
        "cp_account": f"{rng.randrange(10**12):012d}", "amount": money(rng, 100, 400_000), "currency": "CNY",
        "due_date": dt.date(2026, 11, 30), "invoice": f"INV-{n:07d}",
    }
    code = "00"
    if kind == "rejected":
        values["corp_id"], code = "C9999999", "14"
    elif kind == "failing":
        values["cp_account"] += FAIL_MARK         # the host refuses this account
        code = "05"
    return Request(kind, values, code, f"{batch}-{record_no:06d}")


def trailer(reqs: list[Request]) -> bytes:
    """The batch file's control record: how many records, and their amounts' exact sum."""
    total = sum((r.values["amount"] for r in reqs), Decimal(0))
    return f"TRAILER,{len(reqs)},{total:.2f}\n".encode()


SERVICE = Service(
    name="receivables_payables", title="Receivables and payables (AR/AP batch files)",
    inbound="rp_batch_in", request_format="ArApRecord", reply_format="ArApAck", make=make,
    code_of=lambda r: str(r["code"]), transport="file", ack_channel="rp_ack_out", trailer=trailer,
    counterparts=(Counterpart("rp_mainframe", "PostingReq", "MfRsp",
                              mainframe_answer("trace_no", refuse_field="other_acct"), framing="length2",
                              ref=ref_at("trace_no")),),
)
