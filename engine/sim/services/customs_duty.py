"""Customs duty payment (routes/customs_duty): the customs' single window posts duty payment requests as
JSON over HTTP (``POST /customs/duty-payments``); bsp debits the importer's account at the mainframe (CD01,
the CD-REQ copybook in cp037 over tcp length2, answered MF-RSP) and answers the single window.

The deal key is ``declaration_no/tax_type`` (not the request id), and the key store outlives a run, so
the declaration number carries the run: the customs code ``2201`` + the run tag read as a number (8
digits, base 36 ``ZZZZZ`` is 60,466,175) + the request number (6 digits): 18 digits, as a customs
declaration number has.

Rejected requests cycle through the route's checks and what a sender gets wrong in the body: a duty in
USD (15), the amount as a text (13, refused by the deal step), a due date not written YYYY-MM-DD (30), an
unknown tax type (30), a declaration number of 17 digits (30) and a body that is not JSON (30, answered by
the channel's ``on error reply``; it ends in ``request_id=<reference>`` so the demo's count finds its row,
which has no reference).
A failing request's id ends in ``F``: the mainframe refuses the debit (51), the single window gets 502
``FAILED`` ``05``.
"""
from __future__ import annotations

import datetime as dt
import random
from typing import Any

from engine.sim.services.common import every, mainframe_answer, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, trace

TAX_TYPES = ("A", "A", "L", "Y")                       # cd_tax_types.csv: import duty, import VAT, consumption tax
REJECTS = 6                                            # the rejected variants below, in turn


def declaration_no(n: int, run: str) -> str:
    """A declaration number (a part of the deal key) no other request of any run has: 18 digits."""
    return f"2201{int(run, 36) if run else 0:08d}{n % 1_000_000:06d}"


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("CD", n, kind, run=run)
    decl = declaration_no(n, run)
    values: Any = {
        "request_id": ref, "declaration_no": decl, "tax_type": rng.choice(TAX_TYPES), "customs_code": "2201",
        "payer_acct": f"6222{n % 10**12:012d}", "payer_name": "SHANGHAI SIM IMPORT CO",
        "amount": money(rng, 10, 500_000), "currency": "CNY",
        "due_date": (dt.date(2026, 1, 1) + dt.timedelta(days=n % 365)).isoformat(),
    }
    code = "00"
    if kind == "rejected":
        variant = n % REJECTS
        if variant == 0:
            values["currency"], code = "USD", "15"
        elif variant == 1:
            values["amount"], code = str(values["amount"]), "13"           # a text amount
        elif variant == 2:
            values["due_date"], code = values["due_date"].replace("-", ""), "30"   # not YYYY-MM-DD
        elif variant == 3:
            values["tax_type"], code = "Z", "30"                           # not in cd_tax_types.csv
        elif variant == 4:
            values["declaration_no"], code = decl[:17], "30"               # 17 digits
        else:
            values, code = f"declaration_no={decl}&request_id={ref}", "30"  # not JSON
    elif kind == "failing":
        code = "05"                                    # the request id ends in F: the mainframe refuses
    return Request(kind, values, code, ref)


def encode(codec: Any, values: Any) -> bytes:
    """A body that is not JSON is sent as it is; any other through the route's CdPayment codec."""
    return values.encode("ascii") if isinstance(values, str) else codec.encode(values)


def keyed(values: Any) -> bool:
    """Every good request goes to customs_duty_payment, keyed (a str is a body that is not JSON)."""
    return isinstance(values, dict) and every(values)


SERVICE = Service(
    name="customs_duty", title="Customs duty payment (HTTP requests; CD01 debit)",
    inbound="cd_single_window", request_format="CdPayment", reply_format="CdAnswer", make=make,
    code_of=lambda r: str(r["code"]), transport="http", http_path="/customs/duty-payments", encode=encode,
    counterparts=(Counterpart("cd_mainframe", "CdDebitReq", "MfRsp", mainframe_answer("trace_no", message="duty paid"),
                              framing="length2", ref=ref_at("trace_no")),),
    keyed=keyed,
)
