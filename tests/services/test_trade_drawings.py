"""The trade receiving simulator draws within what is left of each instrument (routes/trade_receiving
``limit drawn``), after what the engine's ledger has counted already: ``bsp demo`` runs again and again on
one ledger, and its good drawings must still be booked (``00``), never refused ``61``."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import duckdb

from dsl.clock import engine_clock, parse_instant
from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.model import Request
from engine.sim.services.registry import services_registry
from engine.sim.services.trade_receiving import INSTRUMENTS, SERVICE, Drawings, instruments

AT = parse_instant("2026-11-25T02:00:00Z")[0]
LEAVE = Decimal("50.00")          # what the first load leaves of each instrument


def _drawn(ledger_path) -> dict[str, Decimal]:
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = con.execute("SELECT json_extract_string(detail, '$.key'), json_extract_string(detail, '$.amount') "
                           "FROM deal_events WHERE to_state = 'counted'").fetchall()
    finally:
        con.close()
    out: dict[str, Decimal] = {}
    for key, amount in rows:
        out[key] = out.get(key, Decimal(0)) + Decimal(amount)
    return out


async def test_drawings_stay_within_what_the_ledger_has_left(tmp_path):
    registry = services_registry()
    program = compile_paths(route_files(SERVICE.name), registry).program
    table = instruments()
    docs = list(INSTRUMENTS)

    def nearly_all(kind, n, rng, run=""):        # a run before: each instrument drawn to LEAVE
        doc = docs[n - 1]
        txn, ccy = INSTRUMENTS[doc]
        ref = f"TP{run}{n:08d}G"
        return Request("good", {"txn_code": txn, "trace_no": ref, "doc_ref": doc, "cust_acct": "3100000000000001",
                                "counter_bank": "CHASUS33XXX", "amount": table[doc][0] - LEAVE, "currency": ccy,
                                "value_date": 20261125, "docs_conform": "Y"}, "00", ref)

    before = dataclasses.replace(SERVICE, make=nearly_all, prepare=None)
    drawings = Drawings()
    after = dataclasses.replace(SERVICE, make=drawings.make, prepare=drawings.prepare)
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        with engine_clock(AT):
            async with running_services(program, registry, ledger, [SERVICE]) as rig:
                first = await rig.load(before, total=len(docs), kinds=["good"] * len(docs), deadline=60)
                assert [o.code for o in first.outcomes] == ["00"] * len(docs)
            async with running_services(program, registry, ledger, [SERVICE]) as rig:     # the next run
                result = await rig.load(after, total=60, kinds=["good", "failing", "good", "rejected"] * 15,
                                        deadline=60)
    wrong = [(o.kind, o.ref, o.code, o.reply) for o in result.outcomes if o.code != o.expect_code]
    assert not wrong, wrong
    drawn = _drawn(ledger_path)
    for doc in docs:
        outstanding, key = table[doc]
        assert outstanding - LEAVE < drawn[key] <= outstanding, (doc, drawn[key])


def test_an_instrument_drawn_to_the_last_cent_gets_an_over_draw_expecting_61(tmp_path):
    import random

    csv = tmp_path / "instruments.csv"
    csv.write_text("doc_ref,product,direction,currency,outstanding,status,customer,as_of\n" +
                   "".join(f"{d},LC,x,{c},1.00,open,X,2026-11-24T18:00\n" for d, (_, c) in INSTRUMENTS.items()))
    gen = Drawings(csv)
    rng = random.Random(1)
    reqs = [gen.make("good", n, rng) for n in range(1, 521)]      # 500 cents, then over-draws
    booked = [r for r in reqs if r.expect_code == "00"]
    assert sum(r.values["amount"] for r in booked) == Decimal("1.00") * len(INSTRUMENTS)
    over = [r for r in reqs if r.expect_code == "61"]
    assert over and all(r.kind == "rejected" and r.values["amount"] == Decimal("0.01") for r in over)
