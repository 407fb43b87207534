"""``file watch`` with ``header = FORMAT``: a batch file whose first record carries the batch's identity
and its control totals (a payroll file: company, value date, count, total), checked before any record
runs; the routes read the header's fields as ``file.header.FIELD``."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.channels.file_watch import FileWatcher
from kit import compile_text, deals, running

ROUTE_HEADER = '''
format Line = csv header false {
    ref     string
    amount  decimal(2)
}

format Head = csv header false {
    company     string
    value_date  date("%Y%m%d")
    count       integer
    total       decimal(2)
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
}

route pay {
    receive from inbox as Line
    deal PAYMENT {
        ref      = msg.ref
        amount   = msg.amount
        currency = "EUR"
        party    = file.header.company
        key      = file.header.company + "/" + format_date(file.header.value_date, "%Y%m%d") + "/" + msg.ref
    }
}
'''


async def wait_for(cond, what: str) -> None:
    with trio.fail_after(20):
        while not cond():
            await trio.sleep(0.05)


async def test_a_header_record_checks_the_control_totals_and_is_read_as_file_header(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    prog = compile_text(tmp_path, ROUTE_HEADER)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b"ACME,20261130,2,4.75\nA1,1.50\nA2,3.25\n")
    (inbox / "b.csv").write_bytes(b"ACME,20261130,2,4.70\nB1,1.50\nB2,3.25\n")       # total off by 0.05
    (inbox / "c.csv").write_bytes(b"ACME,20261130,3,4.75\nC1,1.50\nC2,3.25\n")       # a record missing
    (inbox / "d.csv").write_bytes(b"ACME,30.11.2026,2,4.75\nD1,1.50\nD2,3.25\n")     # a header it cannot read
    files = [inbox / "done" / "a.csv"] + [inbox / "error" / f"{x}.csv" for x in "bcd"]
    async with running(prog, ledger):
        await wait_for(lambda: all(p.exists() for p in files), "the four files handled")
    rows = sorted(deals(ledger), key=lambda r: r["reference"])
    # nothing of b, c, d ran: each of their records is a rejected deal of its file's refusal (kind refused_whole),
    # with the header's fields where it could be read
    assert [(r["reference"], r["party"], r["status"]) for r in rows] == [
        ("A1", "ACME", "committed"), ("A2", "ACME", "committed"), ("B1", "ACME", "rejected"),
        ("B2", "ACME", "rejected"), ("C1", "ACME", "rejected"), ("C2", "ACME", "rejected"), ("D1", None, "rejected"),
        ("D2", None, "rejected")]
    assert all(r["reason"].startswith(f"refused_whole: not run, its file {r['reference'][0].lower()}.csv on "
                                      f"channel inbox was refused whole: record 1, byte offset 0: ")
               for r in rows[2:]), rows
    assert "the header cannot be read: byte 0, field value_date" in rows[-1]["reason"]
    assert (inbox / "error" / "b.csv.reason.txt").read_text() == (
        "file b.csv: 1 problem(s) in 0 record(s)\n"
        "record 1, byte offset 0: the control totals do not match: the header says 2 record(s) and total "
        "4.70; the file holds 2 record(s) with amount totalling 4.75; no record was run\n")
    assert "the header says 3 record(s) and total 4.75; the file holds 2 record(s)" \
        in (inbox / "error" / "c.csv.reason.txt").read_text()
    reason = (inbox / "error" / "d.csv.reason.txt").read_text()
    assert "record 1, byte offset 0: the header cannot be read:" in reason and "value_date" in reason
    assert "no record was run" in reason


async def test_file_header_is_null_on_a_channel_without_a_header_format(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    text = ROUTE_HEADER.replace('''    header        = Head
    header_count  = "count"
    header_total  = "total"
    total_field   = "amount"
    total_format  = Line
''', "").replace("party    = file.header.company", 'party    = if file.header == null then "none" else "?"')
    text = text.replace('key      = file.header.company + "/" + format_date(file.header.value_date, "%Y%m%d") + "/" + msg.ref',
                        "key      = msg.ref")
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b"ACME,20261130,2,4.75\nA1,1.50\n")
    async with running(compile_text(tmp_path, text), ledger):
        await wait_for(lambda: (inbox / "done" / "a.csv").exists(), "the file handled")
    assert [(r["reference"], r["party"]) for r in deals(ledger)] == [("A1", "none")]


def test_header_options_are_checked(tmp_path: Path) -> None:
    d = str(tmp_path)
    with pytest.raises(ValueError, match="option header: the header is the file's first record and not a deal; "
                                         "set skip_header = 1"):
        FileWatcher("w", {"dir": d, "header": "Head"})
    with pytest.raises(ValueError, match="option header_count needs header, the format of the file's header"):
        FileWatcher("w", {"dir": d, "skip_header": 1, "header_count": "count"})
    with pytest.raises(ValueError, match="option header_total needs total_field"):
        FileWatcher("w", {"dir": d, "skip_header": 1, "header": "Head", "header_total": "total"})
    with pytest.raises(ValueError, match="option total_field is for trailer_total or header_total"):
        FileWatcher("w", {"dir": d, "skip_header": 1, "header": "Head", "total_field": "amount"})
    # a header read for its fields alone (no control totals) is fine
    assert FileWatcher("w", {"dir": d, "skip_header": 1, "header": "Head"}).header == "Head"
    assert FileWatcher("w", {"dir": d, "skip_header": 1, "header": "Head", "header_count": "count",
                             "header_total": "total", "total_field": "amount", "total_format": "Line"})


def test_a_header_and_a_trailer_may_both_be_checked(tmp_path: Path) -> None:
    FileWatcher("w", {"dir": str(tmp_path), "skip_header": 1, "header": "Head", "header_count": "count",
                      "skip_trailer": 1, "trailer": "T", "trailer_total": "total", "total_field": "amount",
                      "total_format": "Line"})


def test_header_totals_need_a_total_and_its_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="option header_total needs total_field"):
        FileWatcher("w", {"dir": str(tmp_path), "skip_header": 1, "header": "Head", "header_total": "total",
                          "total_field": "amount"})



async def test_a_file_refused_for_its_control_totals_again_records_its_records_once(tmp_path: Path) -> None:
    """The rows of a refusal for the control totals have ids made from the file's bytes, as all_or_nothing's: the
    same file refused again (as at a restart that stopped between the rows and the file's move; here dropped
    again as it was, with run_once = false) records none a second time."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    text = ROUTE_HEADER.replace('    total_format  = Line\n', '    total_format  = Line\n    run_once      = false\n')
    ledger = tmp_path / "l.duckdb"
    (inbox / "b.csv").write_bytes(b"ACME,20261130,2,4.70\nB1,1.50\nB2,3.25\n")       # total off by 0.05
    async with running(compile_text(tmp_path, text), ledger):
        await wait_for(lambda: (inbox / "error" / "b.csv").exists(), "the file refused")
        (inbox / "error" / "b.csv").rename(inbox / "b.csv")        # the same bytes and modification time
        await wait_for(lambda: not (inbox / "b.csv").exists() and (inbox / "error" / "b.csv").exists(),
                       "the file refused again")
    index = (inbox / "done" / ".bsp-files").read_text().splitlines()
    assert [line.split("\t")[1] for line in index].count("error") == 2            # refused twice
    assert sorted((r["reference"], r["status"]) for r in deals(ledger)) == [("B1", "rejected"), ("B2", "rejected")]
