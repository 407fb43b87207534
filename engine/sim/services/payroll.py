"""Payroll bulk credit: a company's CSV payroll files (a batch header line: company, value date, record
count, control total; then one salary per line, 50 to a file) dropped in the watched folder; each salary
is sent to the mainframe as PAY-CREDIT-REQ and its result appended to the file's own result file
(``RESULT-<file name>``)."""
from __future__ import annotations

import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

from engine.sim.services.common import business_day, mainframe_answer, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, trace

COMPANIES = ("CO000001", "CO000002", "CO000003")
IBANS = ("DE89370400440532013000", "GB29NWBK60161331926819", "FR1420041010050500013M02606",
         "NL91ABNA0417164300")
ACCOUNTS = ("0532013000", "4100900012", "77001234567")
BAD_IBAN = "DE88370400440532013000"          # the check digits of DE89... changed: rejected 30
PER_FILE = 50


def _berlin_today() -> dt.date:
    """The route judges the value date on Berlin's date (``today("Europe/Berlin")``), whatever the machine's zone."""
    from dsl.clock import now                  # the engine's clock (bsp run / demo / sim --at), as the route's
    return now().astimezone(ZoneInfo("Europe/Berlin")).date()


def _number(reference: str) -> int:
    return int(reference[7:-1])                # PR + the run's tag (5) + digits + the kind letter


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("PR", n, kind, width=20, run=run)          # the run's tag in it: unique per run; F fails
    values: dict[str, Any] = {
        "employee_acct": rng.choice(IBANS + ACCOUNTS),
        "employee_name": rng.choice(("ANNA SCHMIDT", "BERND MEIER", "CLARA JONES", "DORA KLEIN")),
        "amount": money(rng, 800, 6_000), "currency": "EUR", "reference": ref,
    }
    code = "00"
    if kind == "rejected":
        values["employee_acct"], code = BAD_IBAN, "30"
    elif kind == "failing":
        code = "05"                                 # the mainframe refuses a reference ending in F
    return Request(kind, values, code, ref)


def batch_of(values: Any) -> str:
    """50 salaries to a file: ``PAY-`` + the run's tag + the file's number (from the reference).  A salary the
    route rejects (a wrong IBAN) goes in a file of its own, named after its reference: the channel refuses a
    file with a line its checks fail whole (``all_or_nothing``), so the others run; that file's batch line
    (REFUSED, 30, its reference the file's name) answers it, and it is a rejected deal of its own (refused_whole)."""
    ref = str(values["reference"])
    if ref.endswith("R"):
        return ref
    return f"PAY-{ref[2:7]}-{(_number(ref) - 1) // PER_FILE:05d}"


def record_key(values: Any) -> tuple[str]:
    """A salary by its reference; the batch line of a file refused whole names the file (``REF.csv``)."""
    return (str(values["reference"]).removesuffix(".csv"),)


def batch_header(reqs: list[Request]) -> bytes:
    """The file's first line: its company (by the file's number), value date (3 days ahead on Berlin's date,
    rolled to a TARGET2 business day as the route requires), record count and control total (the exact sum
    of its amounts)."""
    company = COMPANIES[((_number(reqs[0].values["reference"]) - 1) // PER_FILE) % len(COMPANIES)]
    total = sum((r.values["amount"] for r in reqs), start=0)
    value_date = business_day(_berlin_today() + dt.timedelta(days=3))
    return f"{company},{value_date:%Y-%m-%d},{len(reqs)},{total:.2f}\n".encode()


SERVICE = Service(
    name="payroll", title="Payroll bulk credit (batch files)",
    inbound="pr_batch_in", request_format="PrLine", reply_format="PrResult", make=make,
    code_of=lambda r: str(r["code"]), transport="file", ack_channel="pr_result_out",
    batch_header=batch_header, ack_header=True, batch_of=batch_of,
    record_key=record_key, refused_whole=frozenset({"rejected"}),
    counterparts=(Counterpart("pr_mainframe", "PrCreditReq", "MfRsp",
                              mainframe_answer("pay_ref", message="credited"), framing="length2",
                              ref=ref_at("pay_ref")),),
)
