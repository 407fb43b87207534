"""Utility standing-order collection: a utility company's CSV batch files of direct-debit instructions
(a header line naming the columns, then one instruction per line, 50 to a file) dropped in the watched
folder; each instruction is sent to the mainframe as SO-COLL-REQ and its result appended to the day's
result file."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo
import random
from typing import Any

from engine.sim.services.common import mainframe_answer, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, trace

COLUMNS = b"utility_id,mandate_ref,debtor_name,debtor_iban,amount,currency,due_date,bill_ref\n"
IBANS = ("DE89370400440532013000", "GB29NWBK60161331926819", "FR1420041010050500013M02606",
         "NL91ABNA0417164300")



def _berlin_today() -> dt.date:
    """The route judges a due date on Berlin's date (``today("Europe/Berlin")``), whatever the machine's zone."""
    from dsl.clock import now                  # the engine's clock (bsp run / demo / sim --at), as the route's
    return now().astimezone(ZoneInfo("Europe/Berlin")).date()

def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    mandate = trace("MND", n, kind, width=20, run=run)      # the run's tag in it: unique per run; F fails
    values: dict[str, Any] = {
        "utility_id": rng.choice(("UT000001", "UT000002", "UT000003")), "mandate_ref": mandate,
        "debtor_name": rng.choice(("JANE PAYER", "JOHN DEBTOR", "MARIE CLIENT")), "debtor_iban": rng.choice(IBANS),
        "amount": money(rng, 5, 1_900), "currency": "EUR",
        # 5 days ahead at least: METRO GAS (UT000003) collects a due date on a non-business day on the business
        # day before (utilities.csv non_business_day preceding), at most 4 days back (Easter Monday -> Thursday),
        # so a sooner due date could be moved into the past and refused 57
        "due_date": _berlin_today() + dt.timedelta(days=rng.randrange(5, 35)), "bill_ref": f"BILL-{n:07d}",
    }
    code = "00"
    if kind == "rejected":
        values["utility_id"], code = "UT999999", "14"
    elif kind == "failing":
        code = "05"                                 # the mainframe refuses a mandate ending in F
    return Request(kind, values, code, mandate)


def batch_of(values: Any) -> str:
    """50 instructions to a file: ``SO-`` + the run's tag + the file's number (from the mandate reference)."""
    mandate = str(values["mandate_ref"])
    return f"SO-{mandate[3:8]}-{(int(mandate[8:-1]) - 1) // 50:05d}"


SERVICE = Service(
    name="standing_orders", title="Utility standing-order collection (batch files)",
    inbound="so_batch_in", request_format="SoInstruction", reply_format="SoResult", make=make,
    code_of=lambda r: str(r["code"]), transport="file", ack_channel="so_result_out",
    file_header=COLUMNS, ack_header=True,
    batch_of=batch_of,
    record_key=lambda v: (str(v["utility_id"]), str(v["mandate_ref"]), v["due_date"]),
    counterparts=(Counterpart("so_mainframe", "SoCollReq", "MfRsp",
                              mainframe_answer("mandate_ref", message="debited"), framing="length2",
                              ref=ref_at("mandate_ref")),),
)
