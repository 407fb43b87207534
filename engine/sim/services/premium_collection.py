"""Premium collection (routes/premium_collection): an insurer's system posts premium-due notices as JSON
over HTTP (``POST /premiums/notices``); bsp debits the customer's account at the mainframe (PC01, a
fixed-width cp037 record over tcp length2) and answers the insurer.

The deal key is ``policy_no/due_date`` (not the notice id), and the key store outlives a run, so the
policy number carries the run: ``PL`` + the run tag read as a number (8 digits, base 36 ``ZZZZZ`` is
60,466,175) + the request number's last 2 digits, and the due date carries the rest of the number
(``n // 100`` days after the day after tomorrow, UTC, so it is today or later in Asia/Shanghai too).

Rejected requests cycle through the route's checks and what an insurer gets wrong in the body:
a due date past the 60-day grace period (31), a currency not collected (15), the amount as a text (13, refused by the
deal step), a due date not written YYYY-MM-DD (30), a body that is not JSON (a form-encoded post, 30,
answered by the channel's ``on error reply``; it ends in ``notice_id=<reference>`` so the demo's count
finds its row, which has no reference) and a policy number that is not PL + 10 digits (30).
Every notice names the insurer's creditor id (``INS00009``) and the customer's direct-debit mandate for it
(``pc_mandates.csv``, the ``MD-SIM-*`` rows: the mandate of the notice's currency, whose account the notice
debits; their limit, 20,000.00, is the generator's largest amount). Two more rejected notices: under a
revoked mandate (57) and one cent over the mandate's limit (61).
A failing request's notice id ends in ``F``: the mainframe refuses the debit (51), the insurer gets
502 ``FAILED`` ``05``.
"""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from engine.sim.services.common import every, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

CURRENCIES = ("CNY", "CNY", "CNY", "USD", "EUR")       # pc_currencies.csv, mostly CNY
REJECTS = 8                                          # the rejected variants below, in turn
CREDITOR = "INS00009"                                # the simulated insurer's creditor id
# the simulated customers' ACTIVE mandates for it, per currency: (mandate id, account) as in pc_mandates.csv
MANDATES = {"CNY": (("MD-SIM-CNY-1", "6222880000000001"), ("MD-SIM-CNY-2", "6217880000000002"),
                    ("MD-SIM-CNY-3", "6228880000000003")),
            "USD": (("MD-SIM-USD-1", "6222880000000004"),),
            "EUR": (("MD-SIM-EUR-1", "6222880000000005"),)}
MANDATE_LIMIT = Decimal("20000.00")                  # every MD-SIM mandate's max_amount
REVOKED = ("MD-SIM-REV-1", "6222880000000006")       # a CNY mandate the customer revoked


def _run_number(run: str) -> int:
    return int(run, 36) if run else 0


def _today() -> dt.date:
    from dsl.clock import now                  # the engine's clock (bsp run / demo / sim --at)
    return now().date()


def policy_and_due(n: int, run: str) -> tuple[str, dt.date]:
    """A policy number and due date (the deal key) of request ``n`` no other request of any run has."""
    return f"PL{_run_number(run):08d}{n % 100:02d}", _today() + dt.timedelta(days=2 + n // 100)


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("PC", n, kind, run=run)
    policy, due = policy_and_due(n, run)
    currency = rng.choice(CURRENCIES)
    mandate, account = rng.choice(MANDATES[currency])
    values: Any = {
        "notice_id": ref, "policy_no": policy, "account": account, "creditor_id": CREDITOR, "mandate_id": mandate,
        "amount": money(rng, 50, 20_000), "currency": currency, "due_date": due.isoformat(),
    }
    code = "00"
    if kind == "rejected":
        variant = n % REJECTS
        if variant == 0:
            # past the 60-day grace period (62 days: a day either side of the UTC / Asia/Shanghai date)
            values["due_date"], code = (_today() - dt.timedelta(days=62)).isoformat(), "31"
        elif variant == 1:
            values["currency"], code = "GBP", "15"                       # not in pc_currencies.csv
        elif variant == 2:
            values["amount"], code = str(values["amount"]), "13"         # a text amount
        elif variant == 3:
            values["due_date"], code = due.strftime("%Y%m%d"), "30"       # not written YYYY-MM-DD
        elif variant == 4:
            values, code = f"policy_no={policy}&amount={values['amount']}&notice_id={ref}", "30"  # not JSON
        elif variant == 5:
            values["policy_no"], code = policy[2:], "30"                 # no PL
        elif variant == 6:
            (values["mandate_id"], values["account"]), values["currency"] = REVOKED, "CNY"
            code = "57"                                                  # MD01: the mandate was revoked
        else:
            values["amount"], code = MANDATE_LIMIT + Decimal("0.01"), "61"   # AM02: over the mandate's limit
    elif kind == "failing":
        code = "05"                                  # the notice id ends in F: the mainframe refuses
    return Request(kind, values, code, ref)


def encode(codec: Any, values: Any) -> bytes:
    """A body that is not JSON is sent as it is; any other through the route's PcNotice codec."""
    return values.encode("ascii") if isinstance(values, str) else codec.encode(values)


def mainframe() -> Any:
    """The mainframe's PC01 debit: answers PcDebitRsp; refuses a trace number ending in F (51)."""
    counter = {"n": 0}

    def answer(req: Any) -> dict[str, Any]:
        trace_no = str((req or {}).get("trace_no") or "").strip()
        if req is None or refuses(trace_no):
            return {"trace_no": trace_no, "resp_code": "51", "host_ref": "", "message": "account blocked"}
        counter["n"] += 1
        return {"trace_no": trace_no, "resp_code": "00", "host_ref": f"PCH{counter['n']:012d}",
                "message": "premium debited"}
    return answer


def keyed(values: Any) -> bool:
    """Every good notice goes to premium_notice, keyed (a str is a body that is not JSON, never good)."""
    return isinstance(values, dict) and every(values)


SERVICE = Service(
    name="premium_collection", title="Premium collection (HTTP notices; PC01 debit)",
    inbound="pc_insurer", request_format="PcNotice", reply_format="PcAnswer", make=make,
    code_of=lambda r: str(r["code"]), transport="http", http_path="/premiums/notices", encode=encode,
    counterparts=(Counterpart("pc_mainframe", "PcDebitReq", "PcDebitRsp", mainframe(), framing="length2",
                              ref=ref_at("trace_no")),),
    keyed=keyed,
)
