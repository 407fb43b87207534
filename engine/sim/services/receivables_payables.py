"""Receivables and payables: an ERP's AR/AP batch files (CSV, one record per line, 50 records per batch,
ended by a ``TRAILER,count,total`` control record) dropped in the watched folder; each record is posted on
the mainframe and acknowledged in a file.

An AR collection is first matched to its invoice at the mainframe (RP03, an enquiry). The simulated
receivables ledger holds every invoice the generator names open: for the amount the record collects (paid in
full), or twice it when the invoice reference ends in ``P`` (a part payment: one good AR record in five), so
every good record is posted. The enquiry carries the posting's trace number; the counterpart counts it under
``TRACE/RP03``, so the demo's "reached a counterpart twice" counts postings only."""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import mainframe_answer, money
from engine.sim.services.model import FAIL_MARK, Counterpart, Request, Service


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    batch = f"B{run or '2611'}{(n - 1) // 50:05d}"          # the run's tag in it: unique per run
    record_no = n
    values: dict[str, Any] = {
        "batch_id": batch, "record_no": record_no, "kind": rng.choice(("AR", "AP")),
        "corp_id": rng.choice(("C0000001", "C0000002", "C0000003")),
        "counterparty": rng.choice(("WIDGETS CO", "ACME SUPPLY", "NORTHWIND LTD")),
        "cp_account": f"{rng.randrange(10**12):012d}", "amount": money(rng, 100, 400_000), "currency": "CNY",
        "due_date": dt.date(2026, 11, 30), "invoice": f"INV-{n:07d}{'P' if n % 5 == 0 else ''}",
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


def mainframe() -> Any:
    """The mainframe: posts RP01/RP02 (refusing a counterparty account ending in F) and answers the RP03
    invoice enquiry from the simulated receivables ledger (module docstring)."""
    posting = mainframe_answer("trace_no", refuse_field="other_acct")

    def answer(req: Any) -> dict[str, Any]:
        req = req or {}
        if req.get("txn_code") != "RP03":
            return posting(req)
        trace_no, invoice = str(req.get("trace_no") or ""), str(req.get("invoice_ref") or "").strip()
        amount = req.get("amount") or Decimal(0)
        if not invoice:
            return {"trace_no": trace_no[-16:], "resp_code": "25", "host_ref": "", "amount": Decimal(0),
                    "currency": req.get("currency") or "", "message_text": "no open item"}
        return {"trace_no": trace_no[-16:], "resp_code": "00", "host_ref": f"ITEM-{invoice}"[:28],
                "amount": amount * 2 if invoice.endswith("P") else amount, "currency": req.get("currency") or "CNY",
                "message_text": "invoice open"}
    return answer


def posting_ref(req: Any) -> Any:
    """The counterpart's count key: the trace number, the invoice enquiry's under TRACE/RP03."""
    trace_no = str((req or {}).get("trace_no") or "").strip()
    return f"{trace_no}/RP03" if (req or {}).get("txn_code") == "RP03" else trace_no


SERVICE = Service(
    name="receivables_payables", title="Receivables and payables (AR/AP batch files)",
    inbound="rp_batch_in", request_format="ArApRecord", reply_format="ArApAck", make=make,
    code_of=lambda r: str(r["code"]), transport="file", ack_channel="rp_ack_out", trailer=trailer,
    counterparts=(Counterpart("rp_mainframe", "PostingReq", "MfRsp", mainframe(), framing="length2",
                              ref=posting_ref),),
)
