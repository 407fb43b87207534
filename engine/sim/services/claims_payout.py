"""Insurance claim payout (routes/claims_payout): the insurer posts settled claims as JSON over HTTP;
bsp debits the insurer's settlement account at the mainframe, writes the claim's result file, and
credits the beneficiary by pacs.008 through the clearing.

A failing request fails at one of the two legs, alternately: the mainframe refuses a debit (CP01)
whose narrative ends in ``F`` (the policy number ends in ``F``, the narrative's last word), so nothing
is credited; otherwise the clearing refuses the credit (its end-to-end id, the claim id, ends in ``F``,
as every counterpart simulator does), the route voids the result file and reverses the debit (CP02),
which the mainframe accepts.  Both answer ``05``.  The mainframe counts its debits and its reversals
apart (``ref``: the trace number, `` reversal`` added for a CP02), so the demo's "reached a counterpart
twice" check still catches a debit made twice.
"""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import dig, every, mainframe_answer, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, trace
from engine.sim.services.remittance import cbpr_gateway

# product -> (lowest, highest) payout the generator sends, under its max_payout in claim_products.csv (EUR)
PRODUCTS = {"HEALTH01": (50, 5_000), "MOTOR01": (200, 20_000), "LIFE01": (10_000, 250_000)}
LIMITS = {"HEALTH01": Decimal("5000.00"), "MOTOR01": Decimal("20000.00"), "LIFE01": Decimal("250000.00")}
IBANS = ("DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819", "FR1420041010050500013M02606",
         "NL91 ABNA 0417 1643 00")
NAMES = ("ANNA SCHMIDT", "JAN DE VRIES", "CLAIRE MARTIN", "OLIVER SMITH")


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("CL", n, kind, run=run)
    product = rng.choice(sorted(PRODUCTS))
    low, high = PRODUCTS[product]
    values: dict[str, Any] = {
        "claim_id": ref, "policy_no": f"POL-{rng.randrange(10**5):05d}", "product": product,
        "amount": money(rng, low, high), "currency": "EUR",
        "beneficiary": {"name": rng.choice(NAMES), "iban": rng.choice(IBANS)},
    }
    code = "00"
    if kind == "rejected":
        if n % 2:
            values["product"], code = "PET01", "14"                  # not a product of the insurer's
        else:
            values["amount"], code = LIMITS[product] + Decimal("0.01"), "61"     # over the product's limit
    elif kind == "failing":
        code = "05"
        if n % 2:
            values["policy_no"] = values["policy_no"][:-1] + "F"    # the mainframe refuses the debit
    return Request(kind, values, code, ref)


def mainframe() -> Any:
    """The mainframe: debits (refused when the narrative ends in F) and reverses (always accepted)."""
    post = mainframe_answer("trace_no", refuse_field="narrative", message="claim payout")

    def answer(req: Any) -> dict[str, Any]:
        if req and req.get("txn_code") == "CP02":
            req = {**req, "narrative": ""}
        return post(req)
    return answer


def mainframe_ref(req: Any) -> Any:
    ref = dig(req, "trace_no")
    return f"{str(ref).strip()} reversal" if ref and dig(req, "txn_code") == "CP02" else ref


SERVICE = Service(
    name="claims_payout", title="Insurance claim payout (HTTP; debit, then pacs.008)",
    inbound="clm_insurer", request_format="ClaimSettlement", reply_format="ClaimAnswer", make=make,
    code_of=lambda r: str(r["code"]), transport="http", http_path="/claims/settlements",
    counterparts=(Counterpart("clm_mainframe", "ClaimDebit", "MfRsp", mainframe(), framing="length2",
                              ref=mainframe_ref),
                  Counterpart("clm_clearing", "ClaimPacs008", "ClaimPacs002", cbpr_gateway,
                              ref=ref_at("FIToFICstmrCdtTrf", "CdtTrfTxInf", "PmtId", "EndToEndId"))),
    keyed=every,
)
