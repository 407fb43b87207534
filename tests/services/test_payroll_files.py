"""Payroll bulk credit end to end with real files (what a route test, one record at a time, cannot send):
payroll files dropped into the watched folder (tmp dirs), the mainframe simulator on loopback, a result
file per payroll file, the file moved to done/ or to error/ with its reason, every salary a deal in a real
DuckDB ledger.  A file whose header's record count or control total disagrees with its lines is refused
whole (no credit sent, no deal); the same file dropped again (byte-identical) is refused whole by the
channel; a file with one line the route rejects is refused whole (all_or_nothing); a re-exported file (other
bytes, the same salaries) credits nobody twice (deal key company + value date + reference), and sends again
the salary the mainframe refused (on refusal free).  Every payroll file, refused ones included, gets its result file closed by the
batch's own line (line 1, COMPLETE or REFUSED: the channel's end-of-file message) and a .done marker."""
from __future__ import annotations

import csv
from decimal import Decimal
from typing import Any

import duckdb
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.services import payroll
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry

SERVICE = payroll.SERVICE


def _calls(rig: Any) -> int:
    return sum(sim.requests for sim in rig.sims.values())


def _result_lines(outbox) -> dict[str, list[list[str]]]:
    """Each result file's lines (after its header line), split at the commas."""
    out = {}
    for p in sorted(outbox.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            lines = p.read_text().splitlines()
            assert lines[0] == "line,status,code,reference,amount,host_ref,text", p.name
            out[p.name] = list(csv.reader(lines[1:]))
    return out


async def _settled(client: Any, names: list[str]) -> None:
    with trio.fail_after(60):
        while any(n in client.settled()["pending"] for n in names):
            await trio.sleep(0.02)


async def test_payroll_files_good_bad_total_repeated_and_re_exported(tmp_path):
    registry = services_registry()
    res = compile_paths(route_files(SERVICE.name), registry)
    assert res.program is not None, [d.message for d in res.diagnostics]
    ledger_path = tmp_path / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(res.program, registry, ledger, [SERVICE], work_dir=tmp_path / "files") as rig:
            inbox, outbox = rig.dirs["pr_batch_in"], rig.dirs["pr_result_out"]
            client = rig.batch_client(SERVICE, run="26110")
            good = client.requests(3, ["good", "failing", "good"])
            client.write_file("PAY-1.csv", good)
            await _settled(client, ["PAY-1.csv"])
            calls_good = _calls(rig)
            # the header's control total off by a cent: refused whole, nothing sent
            bad = client.requests(2, ["good", "good"])
            header = payroll.batch_header(bad)
            company, value_date, count, total = header.decode().strip().split(",")
            wrong = f"{company},{value_date},{count},{Decimal(total) + Decimal('0.01')}\n".encode()
            (inbox / ".PAY-2.csv.part").write_bytes(wrong + b"".join(
                client.request_codec.encode(r.values).rstrip(b"\r\n") + b"\n" for r in bad))
            (inbox / ".PAY-2.csv.part").rename(inbox / "PAY-2.csv")
            client.files.append("PAY-2.csv")
            # the first file dropped again, byte for byte, under another name: refused whole by run_once
            # (the first is in error/: one of its lines was refused by the mainframe)
            (inbox / ".PAY-1-again.csv.part").write_bytes((inbox / "error" / "PAY-1.csv").read_bytes())
            (inbox / ".PAY-1-again.csv.part").rename(inbox / "PAY-1-again.csv")
            client.files.append("PAY-1-again.csv")
            # a file with one line the route rejects (a wrong IBAN): refused whole (all_or_nothing), nothing sent
            one_bad = client.requests(3, ["good", "rejected", "good"])
            client.write_file("PAY-3.csv", one_bad)
            await _settled(client, ["PAY-2.csv", "PAY-1-again.csv", "PAY-3.csv"])
            calls_refused = _calls(rig)
            # re-exported: the same salaries and one more (other bytes): the credited ones are DUPLICATE; the one
            # the mainframe refused freed its key (on refusal free) and is sent again; the new one is credited
            client.write_file("PAY-1-reexport.csv", good + client.requests(1, ["good"]))
            await _settled(client, ["PAY-1-reexport.csv"])
            calls_after = _calls(rig)
            where = client.settled()
    assert calls_good == 3                  # two credits and one the mainframe refused
    assert calls_refused == 3, "a refused file sent a credit"
    assert calls_after == 5, "a credited line reached the mainframe again, or the refused one did not"
    assert where == {"done": [], "error": ["PAY-1.csv", "PAY-2.csv", "PAY-1-again.csv", "PAY-3.csv",
                                           "PAY-1-reexport.csv"], "pending": []}
    reason = (inbox / "error" / "PAY-2.csv.reason.txt").read_text()
    assert reason.startswith("file PAY-2.csv: 1 problem(s) in 0 record(s)\nrecord 1, byte offset 0: the control "
                             f"totals do not match: the header says 2 record(s) and control_total {Decimal(total) + Decimal('0.01')}; "
                             f"the file holds 2 record(s) with amount totalling {total}; no record was run"), reason
    assert "the same bytes as file PAY-1.csv" in (inbox / "error" / "PAY-1-again.csv.reason.txt").read_text()
    refused_whole = (f"record 2, byte offset {len(payroll.batch_header(one_bad))}: all_or_nothing = true on channel pr_batch_in: 1 of 3 record(s) fail "
                     "the checks of their route, so the file is refused whole and no record was run: record 3 (line "
                     "3): rejected 30 employee account is neither a valid IBAN nor an account number")
    reason = (inbox / "error" / "PAY-3.csv.reason.txt").read_text().splitlines()
    assert reason[0] == "file PAY-3.csv: 2 problem(s) in 0 record(s)" and reason[1] == refused_whole, reason
    results = _result_lines(outbox)
    # a result file per payroll file, refused ones included, each closed by the batch's line (line 1)
    assert sorted(results) == ["RESULT-PAY-1-again.csv", "RESULT-PAY-1-reexport.csv", "RESULT-PAY-1.csv",
                               "RESULT-PAY-2.csv", "RESULT-PAY-3.csv"]
    assert results["RESULT-PAY-2.csv"] == [[
        "1", "REFUSED", "30", "PAY-2.csv", str(Decimal(total) + Decimal("0.01")), "",
        "record 1, byte offset 0: the control totals do not match: the header says 2 record(s) and control_total "
        f"{Decimal(total) + Decimal('0.01')}; the file holds 2 record(s) with amount totalling {total}; no record was run"]]
    # the file with one bad line: its result file is the batch's line alone, naming the line and why
    total_3 = sum((r.values["amount"] for r in one_bad), start=Decimal(0))
    assert results["RESULT-PAY-3.csv"] == [["1", "REFUSED", "30", "PAY-3.csv", f"{total_3:.2f}", "", refused_whole]]
    [again_line] = results["RESULT-PAY-1-again.csv"]
    assert again_line[:4] == ["1", "REFUSED", "94", "PAY-1-again.csv"] and "the same bytes as file PAY-1.csv" in again_line[6]
    assert results["RESULT-PAY-1.csv"][-1][:4] == ["1", "COMPLETE", "00", "PAY-1.csv"]
    assert results["RESULT-PAY-1.csv"][-1][6] == "3 salaries: 2 credited, 0 rejected, 1 failed, 0 duplicate"
    assert results["RESULT-PAY-1-reexport.csv"][-1][6] == "4 salaries: 1 credited, 0 rejected, 1 failed, 2 duplicate"
    # the marker of each, written after its last line
    markers = rig.dirs["pr_result_done"]
    assert sorted(p.name for p in markers.iterdir()) == [f"{n}.done" for n in sorted(results)]
    assert list(csv.reader((markers / "RESULT-PAY-2.csv.done").read_text().splitlines())) == \
        results["RESULT-PAY-2.csv"]
    results = {n: [line for line in lines if line[0] != "1"] for n, lines in results.items()}    # the salaries
    # in the order the lines finished (a batch's results are one write), each naming its line of the file
    first = sorted(((line[0], line[1], line[2], line[3]) for line in results["RESULT-PAY-1.csv"]),
                   key=lambda x: int(x[0]))
    refs = [r.values["reference"] for r in good]
    assert first == [("2", "CREDITED", "00", refs[0]), ("3", "FAILED", "05", refs[1]),
                     ("4", "CREDITED", "00", refs[2])]
    again = {line[3]: (line[0], line[1], line[2]) for line in results["RESULT-PAY-1-reexport.csv"]}
    assert again[refs[0]] == ("2", "DUPLICATE", "94") and again[refs[2]] == ("4", "DUPLICATE", "94")
    # refused by the mainframe (05): `on refusal free` freed the key, so the line ran again (the simulator
    # refuses it again: a FAILED line of its own, not DUPLICATE)
    assert again[refs[1]] == ("3", "FAILED", "05")
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = con.execute("SELECT reference, status, party FROM deals WHERE channel = 'pr_batch_in' "
                           "AND route = 'payroll_credit' ORDER BY received_at").fetchall()
        (ends,) = con.execute("SELECT count(*) FROM deals WHERE route = 'payroll_file_end' AND status = 'committed'"
                              ).fetchone()
    finally:
        con.close()
    refused = {b.values["reference"] for b in bad}
    # the file refused for its control totals: nothing sent, each line a rejected deal (kind refused_whole)
    assert [s for ref, s, _ in rows if ref in refused] == ["rejected"] * 2
    # the file refused whole by its route's checks (all_or_nothing): each line a rejected deal, nothing run
    # (tests/services/test_payroll_refused_whole.py tells them apart)
    assert [s for ref, s, _ in rows if ref in {b.values["reference"] for b in one_bad}] == ["rejected"] * 3
    assert [s for ref, s, _ in rows if ref == refs[0]] == ["committed", "duplicate"]
    assert [s for ref, s, _ in rows if ref == refs[1]] == ["failed", "failed"]
    assert {p for _, _, p in rows} == {company}
    assert ends == 5                        # one end message per payroll file
