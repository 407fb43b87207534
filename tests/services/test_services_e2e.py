"""Each service end to end on loopback: its routes in the engine, its
counterpart simulators, a small batch of good, rejected and failing requests;
checks every reply code and the ledger rows in a real DuckDB file.

The engine's clock (dsl.clock, what ``bsp run --at`` sets) starts at AT, and the simulators date their
requests by it: the fund and remittance routes reckon trade and value dates on business-day calendars that
list given years only, so on the wall clock these tests would fail from the first day of a year the shipped
calendars do not list yet (2027-01-01 for cn_exchange.csv and cny_holidays.csv)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from dsl.clock import engine_clock, parse_instant
from dsl.fileend import reads_file_end
from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.services.catalog import SERVICES, route_files
from engine.sim.services.harness import running_services
from engine.sim.services.model import STATUS_OF_KIND
from engine.sim.services.registry import services_registry

AT = parse_instant("2026-11-25T02:00:00Z")[0]     # a Wednesday: 10:00 in Shanghai, 03:00 in Berlin
BATCH = ["good", "rejected", "good", "failing", "good", "rejected", "failing", "good"]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: f"{s.name}:{s.inbound}")
async def test_service_end_to_end(service, tmp_path):
    registry = services_registry()
    res = compile_paths(route_files(service.name), registry)
    assert res.program is not None, [str(d.message) for d in res.diagnostics]
    program = res.program
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        with engine_clock(AT):
            async with running_services(program, registry, ledger, [service]) as rig:
                result = await rig.load(service, total=len(BATCH), kinds=BATCH, deadline=60)   # a hang guard
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = con.execute("SELECT reference, status, amount, response_code, reason, route FROM deals "
                           "ORDER BY received_at").fetchall()
    finally:
        con.close()
    # a file's end-of-file message (end_message = true) is a deal of its own, one per file: not a request's
    ends = {r.name for r in program.routes if reads_file_end(r.when)}
    assert all(r[1] == "committed" for r in rows if r[5] in ends)
    rows = [r[:5] for r in rows if r[5] not in ends]
    reasons = {r[0]: r[4] for r in rows}
    assert [o.kind for o in result.outcomes] == BATCH
    for o in result.outcomes:
        assert o.code == o.expect_code, \
            f"{service.name}: {o.kind} request {o.ref} got {o.code}: {o.reply}; ledger: {reasons.get(o.ref)}"
    # the counterpart saw every good and failing request, decodable
    for sim in rig.sims.values():
        assert sim.bad_requests == 0
    called = sum(sim.requests for sim in rig.sims.values())
    assert called >= BATCH.count("good") + BATCH.count("failing")
    # a request the route's checks refuse on a channel with all_or_nothing (payroll) is in a file of its own,
    # refused whole: a rejected deal of its own, kind refused_whole, not run (engine/channels/file_precheck.py);
    # its batch line answers it
    whole = service.refused_whole
    assert len(rows) == len(BATCH)
    by_ref = {r[0].strip() if r[0] else r[0]: r for r in rows}
    for o in result.outcomes:
        row = by_ref.get(o.ref)
        if o.kind in whole:
            assert row is not None and row[1] == "rejected" and row[4].startswith("refused_whole: "), \
                f"{service.name}: {o.ref} was refused whole with its file: {row}"
            continue
        assert row is not None, f"no ledger row for {o.ref}; refs: {sorted(map(str, by_ref))}"
        assert row[1] == STATUS_OF_KIND[o.kind], (o.kind, row)
        if o.kind == "good":
            assert isinstance(row[2], Decimal) and row[2] >= 0
        else:
            assert row[3] == o.expect_code



async def test_premium_collection_every_rejected_notice_is_answered_and_found_by_the_demo_count(tmp_path):
    """routes/premium_collection's generator cycles through eight rejected notices; the batch above meets
    two. Each of the eight gets its code (a revoked mandate 57, one over the mandate's limit 61 among them), and the demo's lost count (engine.sim.ledger_count) finds each
    one's ledger row: the body that is not JSON too, whose MALFORMED row has no reference."""
    from engine.sim.ledger_count import SentRequest, count_lost, ledger_rows
    from engine.sim.services.premium_collection import REJECTS, SERVICE

    registry = services_registry()
    program = compile_paths(route_files(SERVICE.name), registry).program
    ledger_path = tmp_path / "ledger.duckdb"
    started = dt.datetime.now(dt.timezone.utc)
    kinds = ["rejected"] * REJECTS
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        await ledger.record_config(program.version, program.sources)
        async with running_services(program, registry, ledger, [SERVICE]) as rig:
            result = await rig.load(SERVICE, total=len(kinds), kinds=kinds, deadline=60)   # a hang guard: not a timing
    assert sorted(o.code for o in result.outcomes) == ["13", "15", "30", "30", "30", "31", "57", "61"], \
        [(o.ref, o.code, o.reply) for o in result.outcomes]
    assert [o.code for o in result.outcomes] == [o.expect_code for o in result.outcomes]
    assert sum(o.reply.get("status") == "ERROR" for o in result.outcomes) == 1     # the not-JSON body, 400
    keys, dups = ledger_rows(ledger_path, program.version, started)
    sent = [SentRequest(SERVICE.name, SERVICE.inbound, o.ref, o.code is not None) for o in result.outcomes]
    acc = count_lost(sent, keys, duplicates=dups)
    assert (acc.sent, acc.in_ledger, acc.lost) == (REJECTS, REJECTS, 0), acc.lost_examples
