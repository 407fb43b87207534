"""Receivables and payables end to end with real files: batch files dropped into the watched folder
(tmp dirs), the mainframe simulator on loopback, acknowledgement files written, the batch file
moved to done/ or to error/ with its reason file, every record a deal in a real DuckDB ledger."""
from __future__ import annotations

import duckdb

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.services import receivables_payables
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry

SERVICE = receivables_payables.SERVICE


async def test_batch_files_are_posted_acknowledged_and_filed(tmp_path):
    registry = services_registry()
    res = compile_paths(route_files(SERVICE.name), registry)
    assert res.program is not None, [d.message for d in res.diagnostics]
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(res.program, registry, ledger, [SERVICE], work_dir=tmp_path / "files") as rig:
            inbox, outbox = rig.dirs["rp_batch_in"], rig.dirs["rp_ack_out"]
            client = rig.batch_client(SERVICE, run="2611")          # a fixed run tag: the batch ids below
            await client.run(total=6, kinds=["good"] * 6, deadline=10)                      # batch B261100000
            client.n = 50                                                                   # next batch id
            result = await client.run(total=4, kinds=["good", "rejected", "failing", "good"], deadline=10)
            # a file whose control totals disagree with its records: refused whole, nothing posted
            client.n = 100
            bad = client.requests(2, ["good", "good"])
            client.write_file("B261100002.csv", bad, trailer=b"TRAILER,2,1.00\n")
            where = await client.wait_settled()
    assert [o.code for o in result.outcomes] == ["00"] * 6 + ["00", "14", "05", "00"]
    assert all(o.latency_ms is not None for o in result.outcomes)
    assert where == {"done": ["B261100000.csv"], "error": ["B261100001.csv", "B261100002.csv"], "pending": []}
    total = bad[0].values["amount"] + bad[1].values["amount"]
    assert (inbox / "error" / "B261100002.csv.reason.txt").read_text() == (
        "file B261100002.csv: 1 problem(s) in 0 record(s)\n"
        f"record 3, byte offset {(inbox / 'error' / 'B261100002.csv').stat().st_size - 15}: the control totals do "
        f"not match: the trailer says 2 record(s) and total 1.00; the file holds 2 record(s) with amount totalling "
        f"{total:.2f}; no record was run\n")
    assert (inbox / "done" / "B261100000.csv").read_bytes().splitlines()[-1].startswith(b"TRAILER,6,")
    reason = (inbox / "error" / "B261100001.csv.reason.txt").read_text()
    assert reason.startswith("file B261100001.csv: 2 problem(s) in 4 record(s)")
    assert "record 2, byte offset " in reason and "rejected (rejected, code 14): unknown corporate" in reason
    assert "record 3, byte offset " in reason and "failed (refused, code 05)" in reason
    acks = sorted(p.name for p in outbox.iterdir())
    assert len(acks) == 10 and all(n.startswith("ACK-") and n.endswith(".csv") for n in acks)
    assert not list(inbox.glob("*.csv"))                       # nothing left behind in the inbox
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = dict(con.execute("SELECT reference, status FROM deals WHERE channel = 'rp_batch_in'").fetchall())
        kinds = dict(con.execute("SELECT deals.reference, d.error_kind FROM dead_letters d JOIN deals "
                                 "ON d.id = deals.deal_id").fetchall())
    finally:
        con.close()
    # the file refused for its control totals: nothing posted, each record a rejected deal (kind refused_whole)
    refused = sorted(ref for ref in rows if ref.startswith("B261100002-"))      # the batch id, the record's
    assert len(refused) == len(bad)
    assert [rows.pop(ref) for ref in refused] == ["rejected", "rejected"]
    assert [kinds[ref] for ref in refused] == ["refused_whole", "refused_whole"]
    assert len(rows) == 10
    assert rows["B261100001-000052"] == "rejected" and rows["B261100001-000053"] == "failed"
    assert sum(1 for s in rows.values() if s == "committed") == 8
