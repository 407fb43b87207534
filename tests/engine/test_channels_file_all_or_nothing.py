"""``file watch`` with ``all_or_nothing = true``: every record is checked against its route (decoded, its
``let`` / ``deal`` / ``validate`` steps) before any runs; one that fails refuses the file whole: no record is
a deal that runs, nothing is sent, the file goes to ``error/`` and its end message names each failing record.
Each record of the refused file is recorded as a rejected deal of kind ``refused_whole`` (the ledger accounts
for every line), once, even when the same file is refused again."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from engine.channels.file_watch import FileWatcher
from engine.ledger_query import query_dead_letters
from kit import REPO, compile_text, deals, running

ROUTE = '''
format Line = csv header false {
    ref     string
    amount  decimal(2)
}

format Head = csv header false {
    company  string
    count    integer
    total    decimal(2)
}

format Sent = json

channel inbox = file watch {
    dir            = "in"
    pattern        = "*.csv"
    record         = "csv"
    skip_header    = 1
    header         = Head
    header_count   = "count"
    header_total   = "total"
    total_field    = "amount"
    total_format   = Line
    all_or_nothing = true
    end_message    = true
}

channel out = file write {
    dir  = "out"
    name = "{source}.json"
    mode = "append"
}

route pay {
    receive from inbox as Line
    let ref = trim(msg.ref)
    deal PAYMENT { ref = ref  amount = msg.amount  currency = "EUR"  key = file.header.company + "/" + ref }
    validate {
        len(ref) > 0       else reject "30" "reference missing"
        msg.amount > 0     else reject "13" "invalid amount"
    }
    call w = out as Sent reply Sent { ref = ref  amount = msg.amount } name { source = file.name }
}

route ended {
    receive from inbox when file.end
    call e = out as Sent reply Sent {
        status = file.status  reason = file.reason  records = file.records  rejected = file.rejected
        committed = file.committed
    } name { source = "END-" + file.name }
}
'''


async def wait_for(cond, what: str) -> None:
    with trio.fail_after(20):
        while not cond():
            await trio.sleep(0.05)


def _lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


async def test_a_file_with_a_record_its_route_rejects_is_refused_whole_before_any_record_runs(tmp_path: Path) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    ledger = tmp_path / "l.duckdb"
    (inbox / "good.csv").write_bytes(b"ACME,2,4.75\nG1,1.50\nG2,3.25\n")
    # lines 3 and 4 rejected by the rules: lines 2 and 5 would pass, and are not run
    (inbox / "bad.csv").write_bytes(b"ACME,4,4.00\nB1,1.50\nB2,0.00\n ,0.50\nB4,2.00\n")
    async with running(compile_text(tmp_path, ROUTE), ledger):
        await wait_for(lambda: (inbox / "done" / "good.csv").exists() and (inbox / "error" / "bad.csv").exists(),
                       "both files handled")
    rows = sorted(deals(ledger), key=lambda r: r["reference"] or "")
    # nothing of bad.csv ran: good.csv's two records are committed; each of bad.csv's is a rejected deal, kind
    # refused_whole, with its own code when it failed the checks, 30 when it passed them
    assert sorted(r["reference"] for r in rows if r["deal_type"] == "PAYMENT" and r["status"] == "committed") \
        == ["G1", "G2"]
    refused = {r["reference"]: r for r in rows if r["deal_type"] == "PAYMENT" and r["status"] == "rejected"}
    assert {k: v["response_code"] for k, v in refused.items()} == {"": "30", "B1": "30", "B2": "13", "B4": "30"}
    assert all(v["reason"].startswith("refused_whole: all_or_nothing = true on channel inbox: not run, its file "
                                      "bad.csv was refused whole: 2 of 4 record(s) fail the checks of their route "
                                      "(the first: record 3 (line 3): rejected 13 invalid amount); ")
               for v in refused.values()), refused
    assert "; this record fails them: rejected 13 invalid amount" in refused["B2"]["reason"]
    assert "; this record passed them; the corrected file, dropped again, runs it" in refused["B1"]["reason"]
    assert not (out / "bad.csv.json").exists(), "a record of the refused file ran its call"
    assert [x["ref"] for x in _lines(out / "good.csv.json")] == ["G1", "G2"]
    reason = (inbox / "error" / "bad.csv.reason.txt").read_text().splitlines()
    assert reason[0] == "file bad.csv: 3 problem(s) in 0 record(s)"
    assert reason[1].startswith(
        "record 2, byte offset 12: all_or_nothing = true on channel inbox: 2 of 4 record(s) fail the checks of "
        "their route, so the file is refused whole and no record was run: record 3 (line 3): rejected 13 invalid "
        "amount; record 4 (line 4): rejected 30 reference missing"), reason[1]
    assert reason[2] == "record 3, byte offset 20: rejected (rejected, code 13): invalid amount"
    assert reason[3] == "record 4, byte offset 28: rejected (rejected, code 30): reference missing"
    [end] = _lines(out / "END-bad.csv.json")
    # the end message counts what the file held and what was refused: its 4 records, each a rejected deal
    assert end["status"] == "refused" and end["records"] == 4 and end["rejected"] == 4 and end["committed"] == 0
    assert end["reason"] == reason[1]
    [end_good] = _lines(out / "END-good.csv.json")
    assert end_good == {"status": "done", "reason": None, "records": 2, "rejected": 0, "committed": 2}


async def test_a_record_that_does_not_decode_refuses_the_file(tmp_path: Path) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    ledger = tmp_path / "l.duckdb"
    # without control totals (they read every amount first): a record that does not decode reaches the check
    text = ROUTE.replace('''    header_count   = "count"
    header_total   = "total"
    total_field    = "amount"
    total_format   = Line
''', "")
    (inbox / "bad.csv").write_bytes(b"ACME,2,0\nM1,1.50\nM2,x.yz\n")
    async with running(compile_text(tmp_path, text), ledger):
        await wait_for(lambda: (inbox / "error" / "bad.csv").exists(), "the file handled")
    # nothing ran: M1 (it passed) a rejected deal of its file's refusal; M2, which no route could read, one too,
    # its route named as when it runs
    assert sorted((r["route"], r["status"], r["response_code"]) for r in deals(ledger) if r["route"] != "ended") \
        == [("(malformed)", "rejected", "30"), ("pay", "rejected", "30")]
    [m2] = [r for r in deals(ledger) if r["route"] == "(malformed)"]
    assert m2["reason"].startswith("refused_whole: all_or_nothing = true on channel inbox: not run, its file "
                                   "bad.csv was refused whole: 1 of 2 record(s) fail the checks of their route")
    assert "; this record fails them: rejected 30 request of 7 bytes on channel inbox: not a valid Line" \
        in m2["reason"]
    reason = (inbox / "error" / "bad.csv.reason.txt").read_text().splitlines()
    assert reason[1].startswith("record 2, byte offset 9: all_or_nothing = true on channel inbox: 1 of 2 record(s) "
                                "fail the checks of their route, so the file is refused whole and no record was "
                                "run: record 3 (line 3): rejected 30 request of "), reason[1]
    assert reason[2].startswith("record 3, byte offset 17: rejected (malformed, code 30): request of 7 bytes on "
                                "channel inbox: not a valid Line: line 3, byte 17, field amount: expected a "
                                "decimal number"), reason[2]


async def test_without_the_option_the_good_records_of_such_a_file_run(tmp_path: Path) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    ledger = tmp_path / "l.duckdb"
    (inbox / "bad.csv").write_bytes(b"ACME,3,4.00\nB1,1.50\nB2,0.00\nB4,2.50\n")
    async with running(compile_text(tmp_path, ROUTE.replace("all_or_nothing = true", "")), ledger):
        await wait_for(lambda: (inbox / "error" / "bad.csv").exists(), "the file handled")
    assert [x["ref"] for x in _lines(out / "bad.csv.json")] == ["B1", "B4"]


def test_all_or_nothing_is_true_or_false(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="option all_or_nothing: expected true or false, got 'yes'"):
        FileWatcher("w", {"dir": str(tmp_path), "all_or_nothing": "yes"})
    assert FileWatcher("w", {"dir": str(tmp_path), "all_or_nothing": True}).all_or_nothing is True
    assert FileWatcher("w", {"dir": str(tmp_path)}).all_or_nothing is False


async def test_a_file_refused_whole_again_records_its_records_once(tmp_path: Path) -> None:
    """The rows of a refusal have ids made from the file's bytes, record number and modification time: the same
    file refused again (as at a restart that stopped between the rows and the file's move; here dropped again
    as it was, with run_once = false) records none a second time."""
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    ledger = tmp_path / "l.duckdb"
    text = ROUTE.replace("    all_or_nothing = true\n", "    all_or_nothing = true\n    run_once = false\n")
    (inbox / "bad.csv").write_bytes(b"ACME,2,1.50\nB1,1.50\nB2,0.00\n")
    async with running(compile_text(tmp_path, text), ledger):
        await wait_for(lambda: (inbox / "error" / "bad.csv").exists(), "the file refused")
        (inbox / "error" / "bad.csv").rename(inbox / "bad.csv")        # the same bytes and modification time
        await wait_for(lambda: (out / "END-bad.csv.json").exists() and len(_lines(out / "END-bad.csv.json")) == 2
                       and not (inbox / "bad.csv").exists(), "the file refused again")
    rows = [r for r in deals(ledger) if r["deal_type"] == "PAYMENT"]
    assert sorted((r["reference"], r["status"]) for r in rows) == [("B1", "rejected"), ("B2", "rejected")]
    assert len([r for r in deals(ledger) if r["route"] == "ended"]) == 2      # refused twice: two end messages


NO_ROUTE_READS = ROUTE.replace('''    header_count   = "count"
    header_total   = "total"
    total_field    = "amount"
    total_format   = Line
''', "").replace("    all_or_nothing = true\n", "    all_or_nothing = true\n    run_once       = false\n") \
    .replace("    receive from inbox as Line\n    let ref", "    receive from inbox as Line when msg.amount < 1000\n    let ref")


async def test_the_records_no_route_reads_are_refused_whole_too_once(tmp_path: Path) -> None:
    """A record of a refused file that no route reads (it does not decode: malformed; no route's `when` takes it:
    unrouted) is a rejected deal of kind refused_whole like the others (its route named as when it runs): its
    dead letter is not retried alone (before 2026-11-28 it kept its own kind, and `bsp dead retry` ran it, one
    record of a file refused whole), and the file refused again records it once."""
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    ledger = tmp_path / "l.duckdb"
    assert NO_ROUTE_READS.count("when msg.amount < 1000") == 1 and "run_once" in NO_ROUTE_READS
    prog = compile_text(tmp_path, NO_ROUTE_READS, name="pay.route")
    # line 2 passes, line 3 does not decode, line 4 no route takes (amount 5000)
    (inbox / "bad.csv").write_bytes(b"ACME,3,0\nU1,1.50\nU2,x.yz\nU3,5000.00\n")
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "error" / "bad.csv").exists(), "the file refused")
        (inbox / "error" / "bad.csv").rename(inbox / "bad.csv")        # the same bytes and modification time
        await wait_for(lambda: (out / "END-bad.csv.json").exists() and len(_lines(out / "END-bad.csv.json")) == 2
                       and not (inbox / "bad.csv").exists(), "the file refused again")
    rows = [r for r in deals(ledger) if r["route"] != "ended"]
    assert sorted((r["route"], r["status"], r["response_code"]) for r in rows) == [
        ("(malformed)", "rejected", "30"), ("(unrouted)", "rejected", "12"), ("pay", "rejected", "30")]
    unrouted = next(r["reason"] for r in rows if r["route"] == "(unrouted)")
    assert unrouted.startswith("refused_whole: all_or_nothing = true on channel inbox: not run, its file bad.csv "
                               "was refused whole: 2 of 3 record(s) fail the checks of their route"), unrouted
    assert "; this record fails them: rejected 12 no route of channel inbox takes this request" in unrouted
    letters = query_dead_letters(ledger)
    assert sorted(x["error_kind"] for x in letters) == ["refused_whole"] * 3, letters
    assert all(e["records"] == 3 and e["rejected"] == 3 for e in _lines(out / "END-bad.csv.json"))
    for letter in [x for x in letters if x["route"] is None]:         # the malformed and the unrouted record
        with trio.fail_after(60):
            res = await trio.run_process([sys.executable, "-m", "engine.cli", "dead", "retry", letter["id"],
                                          "--routes", str(tmp_path / "pay.route"), "--ledger", str(ledger)],
                                         cwd=str(REPO), capture_stdout=True, capture_stderr=True, check=False)
        said = (res.stdout + res.stderr).decode()
        assert "refused: the record was not run because its file was refused whole (kind refused_whole: " \
            "all_or_nothing, its control totals or its header; the letter's reason says which)" in said, said
    assert [x["status"] for x in query_dead_letters(ledger)] == ["new"] * 3
    assert len(deals(ledger)) == 5              # nothing ran by the retries; the three records, two end messages
