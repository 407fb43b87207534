"""``file watch`` with ``end_message = true``: once a file has wholly run or been refused, ONE more message,
its summary, goes to the routes whose ``when`` reads ``file.end`` (engine/channels/file_end.py); here a
route writes it as a line of its own file, ``END-<name>``.  Once across a stop: tested with the index a
stop leaves (the message noted, not yet noted ended) and, in test_channels_file_kill.py, a SIGKILLed engine."""
from __future__ import annotations

import csv
from pathlib import Path

import trio

from engine.channels.file_index import INDEX_NAME, FileIndex
from kit import compile_text, deals, running

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

format Summary = csv header false {
    name       string
    status     string
    records    integer
    committed  integer
    rejected   integer
    failed     integer
    duplicate  integer
    company    string
    archived   string
    reason     string
}

channel inbox = file watch {
    dir           = "in"
    pattern       = "*.csv"
    record        = "csv"
    skip_header   = 1
    header        = Head
    header_count  = "count"
    header_total  = "total"
    total_field   = "amount"
    total_format  = Line
    end_message   = true
}

channel ends = file write {
    dir   = "out"
    name  = "END-{source}"
    mode  = "append"
}

route pay {
    receive from inbox as Line
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = file.header.company + "/" + msg.ref }
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
}

route file_ended {
    receive from inbox when file.end
    call w = ends as Summary {
        name      = file.name
        status    = file.status
        records   = file.records
        committed = file.committed
        rejected  = file.rejected
        failed    = file.failed
        duplicate = file.duplicate
        company   = if file.header == null then "-" else file.header.company
        archived  = file.archived
        reason    = if file.reason == null then "" else substr(file.reason, 0, 60)
    } name { source = file.name }
}
'''


async def wait_for(cond, what: str) -> None:
    with trio.fail_after(20):
        while not cond():
            await trio.sleep(0.05)


def _setup(tmp_path: Path, text: str = ROUTE) -> tuple[Path, Path, object]:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    return inbox, out, compile_text(tmp_path, text)


def _ends(out: Path, name: str) -> list[list[str]]:
    p = out / f"END-{name}"
    return list(csv.reader(p.read_text().splitlines())) if p.exists() else []


async def test_each_file_run_or_refused_gets_one_end_message(tmp_path: Path) -> None:
    inbox, out, prog = _setup(tmp_path)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b"ACME,2,4.75\nA1,1.50\nA2,3.25\n")
    (inbox / "b.csv").write_bytes(b"BETA,3,4.75\nB1,1.50\nB2,0.00\nB3,3.25\n")      # one record rejected
    (inbox / "c.csv").write_bytes(b"ACME,2,4.70\nC1,1.50\nC2,3.25\n")               # control total off
    (inbox / "d.csv").write_bytes(b"ACME,two,4.75\nD1,1.50\nD2,3.25\n")             # header unreadable
    async with running(prog, ledger):
        await wait_for(lambda: all((out / f"END-{x}.csv").exists() for x in "abcd"), "the four end messages")
    assert _ends(out, "a.csv") == [["a.csv", "done", "2", "2", "0", "0", "0", "ACME", "done/a.csv", ""]]
    assert _ends(out, "b.csv") == [["b.csv", "done", "3", "2", "1", "0", "0", "BETA", "error/b.csv", ""]]
    # refused whole, their data records read: counted, each a rejected deal (kind refused_whole), none run
    [c] = _ends(out, "c.csv")
    assert c[:9] == ["c.csv", "refused", "2", "0", "2", "0", "0", "ACME", "error/c.csv"]
    assert c[9].startswith("record 1, byte offset 0: the control totals do not match")
    [d] = _ends(out, "d.csv")
    assert d[:9] == ["d.csv", "refused", "2", "0", "2", "0", "0", "-", "error/d.csv"]
    assert "the header cannot be read" in d[9]
    refused = sorted((r["reference"], r["status"], r["response_code"]) for r in deals(ledger)
                     if r["route"] == "pay" and r["reference"][0] in "CD")
    assert refused == [(x, "rejected", "30") for x in ("C1", "C2", "D1", "D2")]
    # the end message is a deal of its route, after the file's records; its request is the summary
    rows = [r for r in deals(ledger) if r["route"] == "file_ended"]
    assert len(rows) == 4 and all(r["status"] == "committed" for r in rows)
    assert not [r for r in deals(ledger) if r["route"] == "(unrouted)"]     # never offered to route pay


async def test_the_same_bytes_again_are_refused_with_an_end_message(tmp_path: Path) -> None:
    inbox, out, prog = _setup(tmp_path)
    ledger = tmp_path / "l.duckdb"
    body = b"ACME,1,1.50\nA1,1.50\n"
    (inbox / "a.csv").write_bytes(body)
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "done" / "a.csv").exists(), "the file run")
        (inbox / "a.csv").write_bytes(body)
        await wait_for(lambda: len(_ends(out, "a.csv")) == 2, "the second end message")
    first, second = _ends(out, "a.csv")
    assert first[:2] == ["a.csv", "done"] and second[:2] == ["a.csv", "refused"]
    assert "the same bytes as file a.csv" in second[9] and second[8] == "error/a.csv"
    # a repeat is the file already run, whose records the ledger holds: none counted, none recorded again
    assert second[2:7] == ["0", "0", "0", "0", "0"]
    assert [(r["reference"], r["status"]) for r in deals(ledger) if r["route"] == "pay"] == [("A1", "committed")]


async def test_a_channel_without_end_message_sends_none(tmp_path: Path) -> None:
    text = ROUTE.replace("    end_message   = true\n", "")
    inbox, out, prog = _setup(tmp_path, text)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b"ACME,1,1.50\nA1,1.50\n")
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "done" / "a.csv").exists(), "the file run")
    assert not list(out.iterdir())
    assert [r["route"] for r in deals(ledger)] == ["pay"]


def _stopped_before_ended(inbox: Path) -> str:
    """The index as a stop leaves it between the end message's ``end`` line and its ``ended`` line: the file
    back in the folder (a stop before its move), the lines after ``end`` cut off; returns the deal id."""
    index = inbox / "done" / INDEX_NAME
    lines = index.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.split("\t")[1] == "end")
    index.write_text("".join(lines[:at + 1]))
    (inbox / "done" / "a.csv").rename(inbox / "a.csv")
    return lines[at].split("\t")[3].split(" ")[0]


async def test_a_stop_after_the_end_message_ran_does_not_run_it_again(tmp_path: Path) -> None:
    inbox, out, prog = _setup(tmp_path)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b"ACME,2,4.75\nA1,1.50\nA2,3.25\n")
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "done" / "a.csv").exists(), "the file run")
    deal_id = _stopped_before_ended(inbox)         # its deal is in the ledger: it ran
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "done" / "a.csv").exists(), "the file moved on")
    assert len(_ends(out, "a.csv")) == 1          # not written again
    assert [r["deal_id"] for r in deals(ledger) if r["route"] == "file_ended"] == [deal_id]
    assert FileIndex(inbox / "done").ends[deal_id].ended
    assert len([r for r in deals(ledger) if r["route"] == "pay"]) == 2      # no record ran again


async def test_a_stop_before_the_end_message_ran_runs_it_once_under_its_noted_id(tmp_path: Path) -> None:
    inbox, out, prog = _setup(tmp_path)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b"ACME,2,4.75\nA1,1.50\nA2,3.25\n")
    async with running(prog, tmp_path / "elsewhere.duckdb"):        # its deals in another ledger: to this one,
        await wait_for(lambda: (inbox / "done" / "a.csv").exists(), "the file run")     # the message never ran
    deal_id = _stopped_before_ended(inbox)
    (out / "END-a.csv").unlink()
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "done" / "a.csv").exists(), "the file moved on")
    assert _ends(out, "a.csv") == [["a.csv", "done", "2", "2", "0", "0", "0", "ACME", "done/a.csv", ""]]
    assert [r["deal_id"] for r in deals(ledger) if r["route"] == "file_ended"] == [deal_id]
    assert not [r for r in deals(ledger) if r["route"] == "pay"]        # its records are not run again


TRAILER_ROUTE = '''
format Line = csv header false {
    ref     string
    amount  decimal(2)
}

format Tail = csv header false {
    tag    string
    count  integer
}

format Summary = csv header false {
    name     string
    status   string
    records  integer
    count    string
    reason   string
}

channel inbox = file watch {
    dir            = "in"
    pattern        = "*.csv"
    record         = "csv"
    skip_trailer   = 1
    trailer        = Tail
    trailer_count  = "count"
    max_file_bytes = 60
    end_message    = true
}

channel ends = file write {
    dir   = "out"
    name  = "END-{source}"
    mode  = "append"
}

route pay {
    receive from inbox as Line
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
}

route file_ended {
    receive from inbox when file.end
    call w = ends as Summary {
        name    = file.name
        status  = file.status
        records = file.records
        count   = if file.trailer == null then "-" else "" + file.trailer.count
        reason  = if file.reason == null then "" else substr(file.reason, 0, 70)
    } name { source = file.name }
}
'''


async def test_the_end_message_reads_the_trailer_and_tells_a_file_too_big(tmp_path: Path) -> None:
    inbox, out, prog = _setup(tmp_path, TRAILER_ROUTE)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b"A1,1.50\nA2,3.25\nT,2\n")
    (inbox / "big.csv").write_bytes(b"B1,1.50\n" * 10 + b"T,10\n")          # 85 bytes: over max_file_bytes
    async with running(prog, ledger):
        await wait_for(lambda: all((out / f"END-{x}.csv").exists() for x in ("a", "big")), "both end messages")
    assert _ends(out, "a.csv") == [["a.csv", "done", "2", "2", ""]]
    [big] = _ends(out, "big.csv")
    assert big[:4] == ["big.csv", "refused", "0", "-"]
    assert big[4].startswith("the file is 85 bytes, over max_file_bytes = 60 of channel inbox")
    assert (inbox / "error" / "big.csv").exists()


async def test_a_file_dropped_again_after_a_stop_that_lost_the_line_of_its_move_gets_its_own_end_message(
        tmp_path: Path) -> None:
    """A stop between a repeat's move to error/ and its ``repeat`` line leaves its end message's note open; the
    same bytes dropped again under the name are another file (the noted one lies in error/ already): refused
    with an end message of their own, not taken for the one noted."""
    inbox, out, prog = _setup(tmp_path)
    ledger = tmp_path / "l.duckdb"
    body = b"ACME,1,1.50\nA1,1.50\n"
    (inbox / "a.csv").write_bytes(body)
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "done" / "a.csv").exists(), "the file run")
        (inbox / "a.csv").write_bytes(body)
        await wait_for(lambda: (inbox / "error" / "a.csv").exists(), "the repeat refused")
    index = inbox / "done" / INDEX_NAME
    lines = index.read_text().splitlines(keepends=True)
    assert lines[-1].split("\t")[1] == "repeat"
    index.write_text("".join(lines[:-1]))            # the stop came after the move, before its line
    (inbox / "a.csv").write_bytes(body)
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "error" / "a.2.csv").exists(), "the second repeat refused")
    first, second, third = _ends(out, "a.csv")
    assert [first[1], second[1], third[1]] == ["done", "refused", "refused"]
    assert (second[8], third[8]) == ("error/a.csv", "error/a.2.csv")
