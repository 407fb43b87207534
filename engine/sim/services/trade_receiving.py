"""Import and export receiving: LC / collection settlements booked on the trade platform (XML).

The drawings under one instrument add up (the route's ``limit drawn``: at most the ``outstanding`` of
``routes/trade_receiving/instruments.csv``, per instrument and export ``as_of``), and the ledger keeps the
total from one run to the next.  So the generator draws as a mainframe that knows the credit would: each
good or failing drawing takes at most a 400th of what is left of its instrument (a cent once less is left),
after what the engine's ledger has counted already (``Drawings.prepare``, awaited by the harness before a
load with the engine's ledger: ``bsp demo`` runs again and again on one ledger) and what this process
generated since.  A run of a few hundred requests takes a few percent of what is left; once every
instrument is drawn to the last cent (after hundreds of runs on one ledger) a request is sent as an
over-draw, kind ``rejected``, expecting ``61``.  ``bsp sim traffic`` (no ledger at hand) counts only its
own drawings: against an engine that has counted others under the same export, a good drawing may be
refused ``61``.
"""
from __future__ import annotations

import csv
import random
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from engine.sim.services.common import dig, every, mf_code, money, ref_at
from engine.sim.services.model import Counterpart, Request, Service, refuses, trace

TOTAL = "drawn"          # the route's limit
SHARE = 400              # a drawing takes at most 1/SHARE of what is left
CENT = Decimal("0.01")
TABLE = Path(__file__).resolve().parents[3] / "routes" / "trade_receiving" / "instruments.csv"
# doc_ref: (transaction code, currency): the open instruments the generator draws on
INSTRUMENTS = {"LC26IM0000000001": ("TI01", "USD"), "LC26IM0000000002": ("TI01", "EUR"),
               "DC26IM0000000003": ("TI01", "USD"), "LC26EX0000000004": ("TE01", "USD"),
               "DC26EX0000000005": ("TE01", "EUR")}


def instruments(path: Path = TABLE) -> dict[str, tuple[Decimal, str]]:
    """doc_ref -> (outstanding, the limit's key ``doc_ref@as_of``) of INSTRUMENTS, from the route's table."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = {r["doc_ref"]: r for r in csv.DictReader(f)}
    return {doc: (Decimal(rows[doc]["outstanding"]), f"{doc}@{rows[doc]['as_of']}") for doc in INSTRUMENTS}


class Drawings:
    """The request generator (``make``) with what is drawn per instrument: the ledger's figure at
    ``prepare`` plus every good or failing drawing generated since (a failing one is given back by the
    engine, but may be in flight beside the others: it is counted here, to be safe)."""

    def __init__(self, table: Path = TABLE) -> None:
        self.table = instruments(table)
        self.used: dict[str, Decimal] = {}
        self.ledger: str | None = None

    async def prepare(self, ledger: Any) -> None:
        """Before a load on ``ledger``: what it has counted in ``drawn`` so far (a run before this one).  The
        same ledger again in this process keeps what was generated meanwhile (its journal may lag)."""
        where = str(getattr(ledger, "path", id(ledger)))
        if where == self.ledger:
            return
        self.ledger, self.used = where, {}
        read = getattr(ledger, "counted_totals", None)
        rows = await read("9999-12-31") if read is not None else []     # totals without a day only
        for total, key, _ccy, _day, amount, *_into in rows:     # into: where a `rekeyed` figure went
            if total == TOTAL:
                self.used[key] = self.used.get(key, Decimal(0)) + Decimal(str(amount))

    def left(self, doc: str) -> Decimal:
        outstanding, key = self.table[doc]
        return outstanding - self.used.get(key, Decimal(0))

    def make(self, kind: str, n: int, rng: random.Random, run: str = "") -> Request:
        ref = trace("TR", n, kind, run=run)     # an over-draw below keeps the letter of the kind asked for
        doc = rng.choice(list(INSTRUMENTS))
        txn, ccy = INSTRUMENTS[doc]
        amount = money(rng, 5_000, 250_000)
        code = "00"
        if kind in ("good", "failing"):
            docs = [doc] + [d for d in INSTRUMENTS if d != doc]
            doc = next((d for d in docs if self.left(d) >= CENT), doc)
            txn, ccy = INSTRUMENTS[doc]
            left = self.left(doc).quantize(CENT, ROUND_DOWN)
            amount = min(amount, max((left / SHARE).quantize(CENT, ROUND_DOWN), min(CENT, left)))
            if amount < CENT:            # every instrument drawn to the last cent: an over-draw, refused
                kind, amount, code = "rejected", CENT, "61"
            else:
                key = self.table[doc][1]
                self.used[key] = self.used.get(key, Decimal(0)) + amount
        values: dict[str, Any] = {
            "txn_code": txn, "trace_no": ref, "doc_ref": doc, "cust_acct": f"3100{rng.randrange(10**10):010d}",
            "counter_bank": rng.choice(("CHASUS33XXX", "DEUTDEFFXXX", "HSBCHKHHXXX")),
            "amount": amount, "currency": ccy, "value_date": 20261125, "docs_conform": "Y",
        }
        if kind == "rejected" and code == "00":
            values["doc_ref"], values["txn_code"], values["currency"], code = "LC26IM0000000009", "TI01", "USD", "57"
        elif kind == "failing" and code == "00":
            code = "05"
        return Request(kind, values, code, ref)


def platform(req: Any) -> dict[str, Any]:
    ref = dig(req, "TradeSettlement", "Ref") or ""
    if refuses(ref):
        return {"TradeSettlementAck": {"Ref": ref, "Result": "HELD", "Reason": "sanctions screening hit"}}
    return {"TradeSettlementAck": {"Ref": ref, "Result": "BOOKED", "BookingRef": "TF" + ref[-12:]}}


DRAWINGS = Drawings()
make = DRAWINGS.make

SERVICE = Service(
    name="trade_receiving", title="Import and export receiving (LC, collections)",
    inbound="tr_mainframe", request_format="TradeReq", reply_format="MfRsp", make=make, code_of=mf_code,
    counterparts=(Counterpart("tr_platform", "TradeSettle", "TradeSettleAck", platform,
                              ref=ref_at("TradeSettlement", "Ref")),),
    keyed=every, prepare=DRAWINGS.prepare,
)
