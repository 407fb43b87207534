"""Payroll, all or nothing, for the auditor: a payroll file refused whole because one line fails the route's
checks (all_or_nothing = true) records each of its lines as a rejected deal (kind refused_whole), none sent:
the line that failed with its own code and reason, the others saying they passed and were not run, each
naming the file's refusal.  Their dead letters are not retried one by one (`bsp dead retry` refuses: a line run
alone would break the all or nothing).  The company's corrected file (the bad line fixed: other bytes, the same
references) runs: no deal key was taken by the refused lines.  Real files in tmp dirs, the mainframe simulator
on loopback, a real DuckDB ledger."""
from __future__ import annotations

import subprocess
import sys

import duckdb
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.ledger_query import query_dead_letters
from engine.sim.services import payroll
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry
from tests.engine.kit import REPO

SERVICE = payroll.SERVICE


async def _settled(client, names: list[str]) -> None:
    with trio.fail_after(60):
        while any(n in client.settled()["pending"] for n in names):
            await trio.sleep(0.02)


async def test_a_file_refused_whole_records_each_line_rejected_and_its_corrected_file_runs(tmp_path):
    registry = services_registry()
    res = compile_paths(route_files(SERVICE.name), registry)
    assert res.program is not None, [d.message for d in res.diagnostics]
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(res.program, registry, ledger, [SERVICE], work_dir=tmp_path / "files") as rig:
            client = rig.batch_client(SERVICE, run="26120")
            lines = client.requests(3, ["good", "rejected", "good"])       # line 3: a wrong IBAN
            client.write_file("PAY-7.csv", lines)
            await _settled(client, ["PAY-7.csv"])
            sent_refused = sum(sim.requests for sim in rig.sims.values())
            # corrected: the bad line's account fixed, the same references (other bytes: it is no repeat)
            fixed = [lines[0], client.requests(1, ["good"])[0], lines[2]]
            fixed[1].values["reference"] = lines[1].values["reference"]
            client.write_file("PAY-7-fixed.csv", fixed)
            await _settled(client, ["PAY-7-fixed.csv"])
            sent_after = sum(sim.requests for sim in rig.sims.values())
            where = client.settled()
    assert sent_refused == 0, "a line of the refused file reached the mainframe"
    assert sent_after == 3, "the corrected file's lines did not all run"
    assert where["error"] == ["PAY-7.csv"] and where["done"] == ["PAY-7-fixed.csv"], where
    refs = [r.values["reference"] for r in lines]
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = con.execute("SELECT deal_id, reference, status, response_code, reason, amount, party FROM deals "
                           "WHERE route = 'payroll_credit' ORDER BY received_at, reference").fetchall()
    finally:
        con.close()
    refused = [r for r in rows if r[2] == "rejected"]
    assert sorted(r[1] for r in refused) == sorted(refs)          # every line of the refused file: a deal
    by_ref = {r[1]: r for r in refused}
    head = "all_or_nothing = true on channel pr_batch_in: not run, its file PAY-7.csv was refused whole: 1 of 3 " \
           "record(s) fail the checks of their route (the first: record 3 (line 3): rejected 30 employee account " \
           "is neither a valid IBAN nor an account number)"
    bad = by_ref[refs[1]]
    assert bad[3] == "30" and bad[4].startswith("refused_whole: " + head + "; this record fails them: rejected 30 "
                                                "employee account is neither a valid IBAN nor an account number"), bad
    for ref in (refs[0], refs[2]):
        ok = by_ref[ref]
        assert ok[3] == "30" and ok[4].startswith("refused_whole: " + head + "; this record passed them; the "
                                                  "corrected file, dropped again, runs it"), ok
    for line in lines:          # the deal's values, as its deal step gave them in the check
        assert by_ref[line.values["reference"]][5] == line.values["amount"] and by_ref[line.values["reference"]][6]
    assert by_ref[refs[0]][4].endswith("; file PAY-7.csv record 2 (line 2, byte offset 31)")    # where it is
    # the corrected file: its three lines credited under the same references (no key was taken)
    assert sorted(r[1] for r in rows if r[2] == "committed") == sorted(refs)
    # each refused line has its dead letter (kind refused_whole), and a retry of one alone is refused
    letters = [x for x in query_dead_letters(ledger_path) if x["error_kind"] == "refused_whole"]
    assert sorted(x["id"] for x in letters) == sorted(r[0] for r in refused)
    out = subprocess.run([sys.executable, "-m", "engine.cli", "dead", "retry", letters[0]["id"], "--ledger",
                          str(ledger_path), *sum((["--routes", str(p)] for p in route_files(SERVICE.name)), [])],
                         cwd=str(REPO), capture_output=True, text=True, timeout=120)
    said = out.stdout + out.stderr
    assert "refused: the record was not run because its file was refused whole (kind refused_whole: " \
           "all_or_nothing, its control totals or its header; the letter's reason says which)" in said, said
    [row] = [x for x in query_dead_letters(ledger_path) if x["id"] == letters[0]["id"]]
    assert row["status"] == "new"
