"""Card payments: ISO 8583 0200s from the mainframe's card front end, authorised by the card host.

The card host is ``engine.sim.iso_host.IsoHost`` (0200 -> 0210, DE 38 approval
code, DE 39); it declines (DE 39 ``05``) the amount ``DECLINED_AMOUNT``, which is
how a "failing counterpart" request is made here (the other simulators refuse a
reference ending in ``F``; the failing requests' DE 37 ends in ``F`` too).
"""
from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from engine.sim.iso_host import DECLINED_AMOUNTS, IsoHost
from engine.sim.services.common import every
from engine.sim.services.model import Request, Service, trace

DECLINED_AMOUNT = DECLINED_AMOUNTS[0]      # 666.00: the card host declines it (engine.sim.iso_host)
BINS = ("622848", "621700", "436742")     # routes/card_payments/card_bins.csv
# each BIN's limit_currency (card_bins.csv): a purchase in another currency is refused (57), not approved
BILLING = {"622848": "156", "621700": "156", "436742": "978"}
LIMIT_MINOR = 1_000_000                   # 10,000.00: below the smallest single-payment limit


def make(kind: str, n: int, rng: random.Random, run: str = "") -> Request:
    ref = trace("CP", n, kind, width=12, run=run)                          # DE 37, an 12
    pan = rng.choice(BINS) + f"{rng.randrange(10**10):010d}"
    values: dict[str, Any] = {
        "t": "0200", "2": pan, "3": "000000", "4": f"{rng.randrange(100, LIMIT_MINOR):012d}",
        "7": datetime.now().strftime("%m%d%H%M%S"), "11": f"{n % 1_000_000:06d}", "37": ref,
        "41": f"ATM{rng.randrange(1, 99999):05d}", "49": BILLING[pan[:6]],
    }
    code = "00"
    if kind == "rejected":
        values["2"], code = "4000000000" + pan[-6:], "14"          # a BIN this bank does not issue
    elif kind == "failing":
        values["4"], code = DECLINED_AMOUNT, "05"
    return Request(kind, values, code, ref)


def card_host() -> IsoHost:
    return IsoHost(framing="length2", spec="iso8583_1987_ascii", decline_amounts=DECLINED_AMOUNTS)


SERVICE = Service(
    name="card_payments", title="Card payments (ISO 8583 0200/0210)",
    inbound="cp_mainframe", request_format="CardIso", reply_format="CardIso", make=make,
    code_of=lambda r: str(r.get("39")), framing="length2", keyed=every,
    hosts=(("cp_host", card_host),),
)
