"""file.watch / file.write on a real directory with a real ledger: batches, done/ and error/."""
from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import trio

from engine.channels.base import ChannelError
from engine.channels.file_watch import FileWatcher
from engine.channels.file_write import FileWriter
from kit import compile_text, deals, running

ROUTE = '''
format Pay = json
format Out = json
format Written = json

channel inbox = file watch {
    dir     = "in"
    pattern = "*.jsonl"
    %s
}

channel outbox = file write {
    dir   = "out"
    name  = "PAY-{date}-{seq}.json"
    fsync = false
}

route pay {
    receive from inbox as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call w = outbox as Out reply Written {
        ref    = msg.ref
        amount = msg.amount
    }
}
'''


async def wait_for(cond, what: str) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


async def test_files_in_batches_done_and_error_with_reason(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    (inbox / "early.jsonl").write_text('{"ref": "E1", "amount": 1.50}\n{"ref": "E2", "amount": 2}\n')  # before start
    (inbox / "notes.txt").write_text("not mine")
    prog = compile_text(tmp_path, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger):
        done, error = inbox / "done", inbox / "error"
        await wait_for(lambda: (done / "early.jsonl").exists(), "initial scan")
        # a writer renames into place; the temporary name is never taken
        tmp = inbox / ".bad.jsonl.tmp"
        tmp.write_text('{"ref": "B1", "amount": 5}\n{"ref": "B2", "amount": \n{"ref": "B3", "amount": -1}\n')
        await trio.sleep(0.2)
        assert tmp.exists()
        os.replace(tmp, inbox / "bad.jsonl")
        (inbox / ".late.tmp").write_text('{"ref": "L1", "amount": 9}\n')
        os.replace(inbox / ".late.tmp", inbox / "late.jsonl")
        await wait_for(lambda: (error / "bad.jsonl").exists() and (done / "late.jsonl").exists(), "new files")
    assert (inbox / "notes.txt").exists()
    reason = (error / "bad.jsonl.reason.txt").read_text()
    assert "2 problem(s) in 3 record(s)" in reason
    assert "record 2, byte offset 27: rejected (malformed" in reason
    assert "record 3, byte offset 52: rejected (rejected, code 13): invalid amount" in reason
    rows = deals(ledger)
    st = {r["reference"]: r["status"] for r in rows if r["reference"]}
    assert st == {"E1": "committed", "E2": "committed", "B1": "committed", "L1": "committed"}
    assert sum(1 for r in rows if r["status"] == "rejected") == 2       # B2 (malformed) and B3 (rejected before its deal step) have no reference
    written = sorted((tmp_path / "out").iterdir())
    assert len(written) == 4 and all(p.name.startswith("PAY-") for p in written)
    assert {orjson.loads(p.read_bytes())["ref"] for p in written} == {"E1", "E2", "B1", "L1"}
    assert not list((tmp_path / "out").glob(".*"))                      # no temporary left


async def test_marker_mode_waits_for_done_file(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE % 'complete = "marker"')
    async with running(prog, tmp_path / "l.duckdb"):
        (inbox / "m.jsonl").write_text('{"ref": "M1", "amount": 1}\n')
        await trio.sleep(0.3)
        assert (inbox / "m.jsonl").exists()                             # no marker yet
        (inbox / "m.jsonl.done").write_text("")
        await wait_for(lambda: (inbox / "done" / "m.jsonl").exists(), "marker")
    assert not (inbox / "m.jsonl.done").exists()


async def test_unsplittable_file_goes_to_error_others_still_processed(tmp_path: Path) -> None:
    class Counter:
        def __init__(self):
            self.frames = []

        async def handle(self, conn, frames):
            self.frames.extend(frames)
            return [None] * len(frames)

    w = FileWatcher("fx", {"dir": str(tmp_path), "record": "fixed", "record_size": 4})
    (tmp_path / "a.dat").write_bytes(b"1111222")
    (tmp_path / "b.dat").write_bytes(b"33334444")
    h = Counter()
    async with trio.open_nursery() as n:
        await n.start(w.serve, h)
        await wait_for(lambda: w.files_done + w.files_error == 2, "both files")
        w.stop_accepting()
    assert list(w.failed) == ["a.dat"] and list(w.processed) == ["b.dat"]
    assert h.frames == [b"3333", b"4444"]
    reason = (tmp_path / "error" / "a.dat.reason.txt").read_text()
    assert "record 2, byte offset 4: cannot split the file into fixed records" in reason


async def test_file_write_atomic_names_and_errors(tmp_path: Path) -> None:
    w = FileWriter("o", {"dir": str(tmp_path / "out"), "name": "X-{seq}.txt"})
    await w.run()
    (tmp_path / "out" / "X-000002.txt").write_text("taken")
    got = await w.request_many([b"one", b"two"])
    assert [orjson.loads(g)["file"] for g in got] == ["X-000001.txt", "X-000003.txt"]
    assert (tmp_path / "out" / "X-000003.txt").read_bytes() == b"two"
    with pytest.raises(ValueError, match=r"unknown field\(s\) \{1when\}"):
        FileWriter("o", {"dir": str(tmp_path), "name": "X-{1when}.txt"})     # {word}: a call's value
    assert FileWriter("o", {"dir": str(tmp_path), "name": "X-{when}.txt"}).call_fields == ["when"]
    os.chmod(tmp_path / "out", 0o500)
    try:
        if os.geteuid() != 0:
            (r,) = await w.request_many([b"three"])
            assert r.kind == "failed" and "cannot write" in str(r)
    finally:
        os.chmod(tmp_path / "out", 0o700)


async def test_file_write_append_one_file_a_day_offsets_and_torn_tail(tmp_path: Path, caplog) -> None:
    out = tmp_path / "out"
    w = FileWriter("o", {"dir": str(out), "name": "SETTLE-{date}.csv", "mode": "append"})
    await w.run()
    first = await w.request_many([b"A,1.50", b"B,2.00"])
    second = await w.request_many([b"C,3.25"])
    replies = [orjson.loads(r) for r in first + second]
    (name,) = {r["file"] for r in replies}
    assert name.startswith("SETTLE-") and name.endswith(".csv") and w.written == [name]
    data = (out / name).read_bytes()
    assert data == b"A,1.50\nB,2.00\nC,3.25\n"
    assert [(r["offset"], r["bytes"]) for r in replies] == [(0, 6), (7, 6), (14, 6)]
    assert [data[r["offset"]:r["offset"] + r["bytes"]] for r in replies] == [b"A,1.50", b"B,2.00", b"C,3.25"]
    # a crash left half a record: a new writer (a restart) cuts it off before its first append
    with open(out / name, "ab") as f:
        f.write(b"D,4.")
    again = FileWriter("o", {"dir": str(out), "name": "SETTLE-{date}.csv", "mode": "append", "separator": "\n"})
    with caplog.at_level("WARNING", logger="bsp.channel.file_write"):
        (r,) = await again.request_many([b"D,4.75"])
    assert orjson.loads(r)["offset"] == 21
    assert (out / name).read_bytes() == b"A,1.50\nB,2.00\nC,3.25\nD,4.75\n"
    assert "4 bytes of a record cut short" in caplog.text
    # a file without one whole record is not cut (it may not be ours): the call fails, naming it
    (out / "SETTLE-foreign.csv").write_bytes(b"no separator here")
    other = FileWriter("o", {"dir": str(out), "name": "SETTLE-foreign.csv", "mode": "append"})
    (err,) = await other.request_many([b"E,5.00"])
    assert err.kind == "failed" and "does not end with the record separator" in str(err)
    assert (out / "SETTLE-foreign.csv").read_bytes() == b"no separator here"


async def test_file_write_append_header_tops_every_new_file(tmp_path: Path, caplog) -> None:
    out = tmp_path / "out"
    opts = {"dir": str(out), "name": "SETTLE.csv", "mode": "append", "header": "ref,amount"}
    w = FileWriter("o", opts)
    await w.run()
    first = [orjson.loads(r) for r in await w.request_many([b"A,1.50", b"B,2.00"])]
    (second,) = [orjson.loads(r) for r in await w.request_many([b"C,3.25"])]
    data = (out / "SETTLE.csv").read_bytes()
    assert data == b"ref,amount\nA,1.50\nB,2.00\nC,3.25\n"              # one header, at the top
    assert [r["offset"] for r in first + [second]] == [11, 18, 25]
    assert [data[r["offset"]:r["offset"] + r["bytes"]] for r in first + [second]] == [b"A,1.50", b"B,2.00", b"C,3.25"]
    (out / "SETTLE.csv").rename(out / "SETTLE-yesterday.csv")           # the next file gets its own
    await w.request_many([b"D,4.00"])
    assert (out / "SETTLE.csv").read_bytes() == b"ref,amount\nD,4.00\n"
    # a crash in the middle of a new file's first write left part of the header: the file starts again
    (out / "SETTLE.csv").write_bytes(b"ref,am")
    again = FileWriter("o", opts)
    with caplog.at_level("WARNING", logger="bsp.channel.file_write"):
        (r,) = await again.request_many([b"E,5.00"])
    assert (out / "SETTLE.csv").read_bytes() == b"ref,amount\nE,5.00\n" and orjson.loads(r)["offset"] == 11
    assert "6 bytes of a header cut short" in caplog.text
    with pytest.raises(ValueError, match='option header: only with mode = "append"'):
        FileWriter("o", {"dir": str(out), "name": "X-{seq}.csv", "header": "ref,amount"})
    with pytest.raises(ValueError, match="option header: expected the text of the first line"):
        FileWriter("o", {**opts, "header": ""})


def test_file_write_append_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"uses \{seq\}, which would start a new file for every record"):
        FileWriter("o", {"dir": str(tmp_path), "name": "X-{seq}.csv", "mode": "append"})
    with pytest.raises(ValueError, match=r"mode: 'stream' is not a mode"):
        FileWriter("o", {"dir": str(tmp_path), "mode": "stream"})
    with pytest.raises(ValueError, match=r"separator: only with mode = \"append\""):
        FileWriter("o", {"dir": str(tmp_path), "separator": ";"})
    w = FileWriter("o", {"dir": str(tmp_path), "mode": "append", "separator": ""})
    assert w.pattern == "{date}.dat" and w.separator == b""


ROUTE_APPEND = '''
format Pay = json
format Line = csv header false {
    ref     string
    amount  decimal(2)
}
format Written = json

channel inbox = file watch {
    dir     = "in"
    pattern = "*.jsonl"
}

channel day = file write {
    dir   = "out"
    name  = "SETTLE-{date}.csv"
    mode  = "append"
}

route pay {
    receive from inbox as Pay
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call w = day as Line reply Written {
        ref    = msg.ref
        amount = msg.amount
    }
}
'''


async def test_file_write_append_in_a_route_every_deal_one_line(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE_APPEND)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.jsonl").write_text("".join(f'{{"ref": "R{i}", "amount": {i}.50}}\n' for i in range(1, 6)))
    async with running(prog, ledger):
        await wait_for(lambda: (tmp_path / "in" / "done" / "a.jsonl").exists(), "file done")
    (out,) = list((tmp_path / "out").glob("SETTLE-*.csv"))
    lines = out.read_text().splitlines()
    assert sorted(lines) == [f"R{i},{i}.50" for i in range(1, 6)]
    assert [d["status"] for d in deals(ledger)] == ["committed"] * 5


ROUTE_CSV = '''
format Line = csv header false {
    ref     string
    amount  decimal(2)
}

channel inbox = file watch {
    dir          = "in"
    pattern      = "*.csv"
    skip_header  = 1
    skip_trailer = 1
}

route pay {
    receive from inbox as Line
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
}
'''


async def test_header_and_trailer_records_are_not_deals(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    prog = compile_text(tmp_path, ROUTE_CSV)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_text("ref,amount\nR1,1.50\nR2,0.00\nR3,3.25\nTOTAL,4.75\n")
    (inbox / "b.csv").write_text("ref,amount\n")                       # not even its trailer
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "error" / "a.csv").exists() and (inbox / "error" / "b.csv").exists(),
                       "both files handled")
    rows = deals(ledger)
    assert sorted((r["reference"], r["status"]) for r in rows) == [
        ("R1", "committed"), ("R2", "rejected"), ("R3", "committed")]       # no "ref" nor "TOTAL" deal
    reason_a = (inbox / "error" / "a.csv.reason.txt").read_text()
    assert "record 3, byte offset 19: rejected (rejected, code 13): invalid amount" in reason_a
    reason_b = (inbox / "error" / "b.csv.reason.txt").read_text()
    assert "1 record(s), fewer than its 1 header and 1 trailer record(s)" in reason_b


def test_skip_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="skip_header: expected 0 or more records"):
        FileWatcher("w", {"dir": str(tmp_path), "skip_header": -1})
    with pytest.raises(ValueError, match="record = whole makes the file one record"):
        FileWatcher("w", {"dir": str(tmp_path), "record": "whole", "skip_trailer": 1})


ROUTE_CSV_MEMO = '''
format Line = csv header false {
    ref     string
    memo    string
    amount  decimal(2)
}

channel inbox = file watch {
    dir         = "in"
    pattern     = "*.csv"
    record      = "csv"
    skip_header = 1
}

route pay {
    receive from inbox as Line
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "CNY"  party = msg.memo }
}
'''


async def test_csv_rows_with_line_breaks_in_quotes_are_one_deal_each(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    prog = compile_text(tmp_path, ROUTE_CSV_MEMO)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b'ref,memo,amount\r\nR1,"first line\r\nsecond line",1.50\r\nR2,plain,2.00\r\n')
    (inbox / "b.csv").write_bytes(b'ref,memo,amount\nR3,ok,3.00\nR4,"never closed,4.00\n')
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "done" / "a.csv").exists() and (inbox / "error" / "b.csv").exists(),
                       "both files handled")
    rows = sorted(deals(ledger), key=lambda r: r["reference"])
    assert [(r["reference"], r["party"], r["status"]) for r in rows] == [
        ("R1", "first line\r\nsecond line", "committed"), ("R2", "plain", "committed")]
    reason = (inbox / "error" / "b.csv.reason.txt").read_text()
    assert "record 3, byte offset 27: cannot split the file into csv records" in reason
    assert "not closed before the end of the file" in reason


def test_quote_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="option quote: expected one ASCII character"):
        FileWatcher("w", {"dir": str(tmp_path), "record": "csv", "quote": "<<"})
    with pytest.raises(ValueError, match='option quote is for record = "csv"'):
        FileWatcher("w", {"dir": str(tmp_path), "quote": "'"})
    assert FileWatcher("w", {"dir": str(tmp_path), "record": "csv", "quote": ""}).quote == ""


ROUTE_CSV_NAMED = '''
format Settle = csv {
    ref     string
    amount  decimal(2)
    memo    string
}

channel inbox = file watch {
    dir         = "in"
    pattern     = "*.csv"
    record      = "csv"
    skip_header = 1
    header_row  = true
}

route settle {
    receive from inbox as Settle
    deal SETTLEMENT { ref = msg.ref  amount = msg.amount  currency = "CNY"  party = msg.memo }
}
'''


async def test_header_row_maps_csv_columns_by_name(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    prog = compile_text(tmp_path, ROUTE_CSV_NAMED)
    ledger = tmp_path / "l.duckdb"
    # a title line (skip_header), then the header row: its own column order, one column the format lacks
    (inbox / "a.csv").write_bytes(b'SETTLEMENT 2026-11-26\r\nmemo,batch,amount,ref\r\n'
                                  b'"two\r\nlines",B1,1.50,R1\r\nplain,B1,2.00,R2\r\n')
    (inbox / "b.csv").write_bytes(b"SETTLEMENT\nref,memo\nR3,no amount column\n")
    (inbox / "c.csv").write_bytes(b"SETTLEMENT\n")                        # no header row
    async with running(prog, ledger):
        await wait_for(lambda: all(p.exists() for p in (inbox / "done" / "a.csv", inbox / "error" / "b.csv",
                                                         inbox / "error" / "c.csv")), "the three files handled")
    rows = sorted(deals(ledger), key=lambda r: r["reference"] or "")
    assert [(r["reference"], r["amount"], r["party"], r["status"]) for r in rows if r["reference"]] == [
        ("R1", Decimal("1.50"), "two\r\nlines", "committed"), ("R2", Decimal("2.00"), "plain", "committed")]
    reason = (inbox / "error" / "b.csv.reason.txt").read_text()
    assert "record 3, byte offset 20: rejected (malformed" in reason
    assert "header has no column 'amount'" in reason and "header columns are: ref, memo" in reason
    assert "fewer than its 2 header and 0 trailer record(s)" in (inbox / "error" / "c.csv.reason.txt").read_text()


def test_header_row_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='option header_row is for record = "csv" or "lines"'):
        FileWatcher("w", {"dir": str(tmp_path), "record": "fixed", "record_size": 10, "header_row": True})
    with pytest.raises(ValueError, match="option header_row: expected true or false"):
        FileWatcher("w", {"dir": str(tmp_path), "record": "csv", "header_row": "yes"})
    assert FileWatcher("w", {"dir": str(tmp_path), "record": "lines", "header_row": True}).header_row is True


ROUTE_CONTROLS = '''
format Line = csv {
    ref     string
    amount  decimal(2)
}

format Trailer = csv header false {
    tag     string
    count   integer
    total   decimal(2)
}

channel inbox = file watch {
    dir           = "in"
    pattern       = "*.csv"
    record        = "csv"
    header_row    = true
    skip_trailer  = 1
    trailer       = Trailer
    trailer_count = "count"
    trailer_total = "total"
    total_field   = "amount"
    total_format  = Line
}

route pay {
    receive from inbox as Line
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "CNY" }
}
'''


async def test_a_file_failing_its_control_totals_runs_no_record(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    prog = compile_text(tmp_path, ROUTE_CONTROLS)
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(b"amount,ref\n1.50,A1\n3.25,A2\nTOTAL,2,4.75\n")
    (inbox / "b.csv").write_bytes(b"amount,ref\n1.50,B1\n3.25,B2\nTOTAL,2,4.70\n")       # total off by 0.05
    (inbox / "c.csv").write_bytes(b"amount,ref\n1.50,C1\nTOTAL,2,1.50\n")                # a record missing
    async with running(prog, ledger):
        await wait_for(lambda: all(p.exists() for p in (inbox / "done" / "a.csv", inbox / "error" / "b.csv",
                                                         inbox / "error" / "c.csv")), "the three files handled")
    rows = deals(ledger)
    assert sorted(r["reference"] for r in rows if r["status"] == "committed") == ["A1", "A2"]   # nothing of b, c ran
    # each record of b and c is a rejected deal of its file's refusal (kind refused_whole, code 30), its values read
    refused = {r["reference"]: r for r in rows if r["status"] == "rejected"}
    assert sorted(refused) == ["B1", "B2", "C1"] and {r["response_code"] for r in refused.values()} == {"30"}
    assert refused["B2"]["amount"] == Decimal("3.25")
    assert refused["B2"]["reason"] == (
        "refused_whole: not run, its file b.csv on channel inbox was refused whole: record 4, byte offset 27: the "
        "control totals do not match: the trailer says 2 record(s) and total 4.70; the file holds 2 record(s) with "
        "amount totalling 4.75; no record was run; the corrected file, dropped again, runs it; file b.csv record 3 "
        "(line 3, byte offset 19)")
    assert (inbox / "error" / "b.csv.reason.txt").read_text() == (
        "file b.csv: 1 problem(s) in 0 record(s)\n"
        "record 4, byte offset 27: the control totals do not match: the trailer says 2 record(s) and total "
        "4.70; the file holds 2 record(s) with amount totalling 4.75; no record was run\n")
    assert "the trailer says 2 record(s) and total 1.50; the file holds 1 record(s) with amount totalling 1.50" \
        in (inbox / "error" / "c.csv.reason.txt").read_text()



BOM = b"\xef\xbb\xbf"


async def test_a_utf8_byte_order_mark_is_not_part_of_the_first_record(tmp_path: Path) -> None:
    """Excel saves "CSV UTF-8" with a byte order mark: it was read as the start of the first column's
    name (a header row without `amount`: the file to error/), or of the first record (malformed).
    It is text's, so lines and csv drop it; the binary kinds keep it (there it may be data)."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    ledger = tmp_path / "l.duckdb"
    (inbox / "a.csv").write_bytes(BOM + b"amount,ref\r\n1.50,A1\r\n3.25,A2\r\nTOTAL,2,4.75\r\n")
    async with running(compile_text(tmp_path, ROUTE_CONTROLS), ledger):
        await wait_for(lambda: not (inbox / "a.csv").exists(), "the file handled")
    assert (inbox / "done" / "a.csv").exists(), (inbox / "error" / "a.csv.reason.txt").read_text()
    assert sorted(r["reference"] for r in deals(ledger) if r["status"] == "committed") == ["A1", "A2"]

    class Recorder:
        def __init__(self):
            self.frames = []

        async def handle(self, conn, frames):
            self.frames.extend(frames)
            return [b"ok"] * len(frames)

    for record, data, want in (("lines", BOM + b'{"ref": "L1"}\n{"ref": "L2"}\n', [b'{"ref": "L1"}', b'{"ref": "L2"}']),
                               ("csv", BOM + b'"x\ny",1\n', [b'"x\ny",1']),
                               ("rje", BOM + b"{1:F01}$", [BOM + b"{1:F01}"]),
                               ("whole", BOM + b"%PDF", [BOM + b"%PDF"])):
        h = Recorder()
        (inbox / f"b.{record}").write_bytes(data)
        assert await FileWatcher("w", {"dir": str(inbox), "record": record}).process(inbox / f"b.{record}", h)
        assert h.frames == want, record
    h = Recorder()
    (inbox / "c.dat").write_bytes(BOM + b"A" + b"BCDE")
    assert await FileWatcher("w", {"dir": str(inbox), "record": "fixed", "record_size": 4}).process(
        inbox / "c.dat", h)
    assert h.frames == [BOM + b"A", b"BCDE"]
    # the offset of the first record is still its place in the file
    w = FileWatcher("w", {"dir": str(inbox), "record": "csv"})
    (inbox / "d.csv").write_bytes(BOM + b'R1\nR2,"open\n')
    assert not await w.process(inbox / "d.csv", Recorder())
    assert "record 2, byte offset 6: cannot split" in (inbox / "error" / "d.csv.reason.txt").read_text()


def test_a_trailer_field_the_format_lacks_stops_the_engine_at_start(tmp_path: Path) -> None:
    from engine.registry import default_registry
    from engine.runtime.binder import BindError
    from engine.runtime.switchboard import Switchboard
    (tmp_path / "in").mkdir()
    # `bsp check` tells it now (E055, tests/engine/test_channel_checks.py); the engine's own check at start
    # stays, for a program whose formats the check could not see into
    prog = compile_text(tmp_path, ROUTE_CONTROLS)
    prog.channels["inbox"].options["trailer_total"] = "totl"
    with pytest.raises(BindError, match=r"test\.route:\d+:\d+: channel inbox: option trailer_total: format Trailer "
                                        r"has no field 'totl' \(its fields: tag, count, total\)"):
        Switchboard(prog, default_registry(), ledger=None)


async def test_a_file_is_run_once_and_no_archived_file_is_replaced(tmp_path: Path, caplog) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    done, error = inbox / "done", inbox / "error"
    first = b'{"ref": "P1", "amount": 1.50}\n{"ref": "P2", "amount": 2}\n'

    def drop(name: str, data: bytes) -> None:
        (inbox / f".{name}.tmp").write_bytes(data)
        os.replace(inbox / f".{name}.tmp", inbox / name)

    async with running(prog, ledger):
        drop("PAY.jsonl", first)
        await wait_for(lambda: (done / "PAY.jsonl").exists(), "the first run")
        drop("PAY.jsonl", first)                                     # the counterpart sends it again
        await wait_for(lambda: (error / "PAY.jsonl").exists(), "the repeat refused")
        drop("PAY.jsonl", b'{"ref": "P3", "amount": 3}\n')           # tomorrow's file, the same name
        await wait_for(lambda: (done / "PAY.2.jsonl").exists(), "the next file kept beside the first")
    assert sorted(r["reference"] for r in deals(ledger)) == ["P1", "P2", "P3"]      # P1, P2 paid once
    assert (done / "PAY.jsonl").read_bytes() == first
    reason = (error / "PAY.jsonl.reason.txt").read_text()
    assert "record 1, byte offset 0: the same bytes as file PAY.jsonl, run to its end at " in reason
    assert "(it is done/PAY.jsonl): a file is run once, so no record was run" in reason

    # a restart remembers; a file cut short by a stop (taken, never finished) is run again
    cut = b'{"ref": "Q1", "amount": 4}\n'
    from engine.channels.file_index import FileIndex, content_id
    FileIndex(done).note(content_id(cut), "taken", "CUT.jsonl")
    async with running(prog, ledger):
        with caplog.at_level("WARNING", logger="bsp.channel.file"):
            drop("PAY.jsonl", first)
            drop("CUT.jsonl", cut)
            await wait_for(lambda: (error / "PAY.2.jsonl").exists() and (done / "CUT.jsonl").exists(),
                           "after the restart")
    assert "CUT.jsonl was being run when the engine stopped; running it again" in caplog.text
    assert sorted(r["reference"] for r in deals(ledger)) == ["P1", "P2", "P3", "Q1"]

    # what an operator sees: each file's last state, from the index, oldest first
    from typer.testing import CliRunner
    from engine.cli import app
    out = CliRunner().invoke(app, ["files", str(inbox), "--json"])
    assert out.exit_code == 0, out.output
    runs = [orjson.loads(line) for line in out.output.splitlines()]
    seen = [(r["name"], r["status"], r["archived"]) for r in runs]
    assert seen[:3] == [("PAY.jsonl", "done", "PAY.jsonl"), ("PAY.jsonl", "repeat", "PAY.jsonl"),
                        ("PAY.jsonl", "done", "PAY.2.jsonl")]
    assert sorted(seen[3:]) == [("CUT.jsonl", "done", "CUT.jsonl"), ("PAY.jsonl", "repeat", "PAY.2.jsonl")]
    assert {r["sha256"] for r in runs if r["name"] == "PAY.jsonl" and r["archived"] != "PAY.2.jsonl"} == {content_id(first)}
    repeats = CliRunner().invoke(app, ["files", str(inbox), "--status", "repeat"])
    assert repeats.exit_code == 0 and repeats.output.count("error/PAY") == 2, repeats.output
    assert "error/PAY.2.jsonl" in repeats.output and "CUT" not in repeats.output
    table = CliRunner().invoke(app, ["files", str(inbox / "done"), "--name", "CUT*"])
    assert table.exit_code == 0 and "done/CUT.jsonl" in table.output and "PAY" not in table.output
    missing = CliRunner().invoke(app, ["files", str(tmp_path / "out")])
    assert missing.exit_code == 2 and "no .bsp-files here" in missing.output
    bad = CliRunner().invoke(app, ["files", str(inbox), "--status", "finished"])
    assert bad.exit_code == 2 and "--status 'finished': expected one of done, error, taken, ran, repeat" in bad.output


def test_free_name_keeps_every_archived_file(tmp_path: Path) -> None:
    from engine.channels.file_index import free_name
    for name in ("PAY.csv", "PAY.2.csv", "README", "README.2"):
        (tmp_path / name).write_text("x")
    assert [free_name(tmp_path, n) for n in ("PAY.csv", "README", "NEW.csv")] == ["PAY.3.csv", "README.3", "NEW.csv"]


async def test_run_once_false_runs_the_same_bytes_again(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE % "run_once = false")
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger):
        for n in (1, 2):
            (inbox / ".r.tmp").write_bytes(b'{"ref": "R1", "amount": 1}\n')
            os.replace(inbox / ".r.tmp", inbox / "R.jsonl")
            await wait_for(lambda: (inbox / "done" / ("R.jsonl" if n == 1 else "R.2.jsonl")).exists(), f"run {n}")
    assert [r["reference"] for r in deals(ledger)] == ["R1", "R1"]


async def test_a_file_name_that_already_ran_with_other_bytes_runs_with_a_warning(tmp_path: Path, caplog) -> None:
    """A bank's clerk expects a file sent twice to be refused: the same bytes are (any name); a file of a
    name that already ran, with other bytes (a corrected file sent again, or a sender reusing a name), runs,
    and the log says so, naming when the first ran and where it is."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE % "")
    ledger = tmp_path / "l.duckdb"
    with caplog.at_level("WARNING", logger="bsp.channel.file"):
        async with running(prog, ledger):
            for n, body in ((1, b'{"ref": "A1", "amount": 1}\n'), (2, b'{"ref": "A1", "amount": 1.5}\n')):
                (inbox / ".p.tmp").write_bytes(body)
                os.replace(inbox / ".p.tmp", inbox / "PAY.jsonl")
                await wait_for(lambda: (inbox / "done" / ("PAY.jsonl" if n == 1 else "PAY.2.jsonl")).exists(),
                               f"file {n}")
    said = [r.getMessage() for r in caplog.records if "a file of that name" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("channel inbox: PAY.jsonl: a file of that name, with other bytes, "
                                                 "ran at "), said
    assert "(done/PAY.jsonl); running this one too" in said[0]
    assert [r["amount"] for r in deals(ledger)] == [Decimal("1"), Decimal("1.5")]


async def test_a_second_watcher_of_the_folder_leaves_a_file_being_run_alone(tmp_path: Path) -> None:
    """During a reload the new generation's watcher starts while the old one may be running a file."""
    release = trio.Event()
    calls: list[int] = []

    class Slow:
        async def handle(self, conn, frames):
            calls.append(len(frames))
            await release.wait()
            return [b"ok"] * len(frames)

    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text('{"ref": "A1"}\n')
    old, new = FileWatcher("w", {"dir": str(inbox)}), FileWatcher("w", {"dir": str(inbox)})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(old.process, inbox / "a.jsonl", Slow())
        with trio.fail_after(5):
            while not calls:
                await trio.sleep(0.01)
        with trio.fail_after(30):                    # (running it too would wait for the release: a hang)
            await new._scan(Slow())                  # finds a.jsonl, being run: leaves it
        assert calls == [1]
        assert old.status() == {"files_done": 0, "files_error": 0, "running": "a.jsonl",  # bsp status
                                "running_records": 1, "running_done": 0, "problem": None, "stuck": {}}
        release.set()
    assert (inbox / "done" / "a.jsonl").exists() and calls == [1]
    assert old.status() == {"files_done": 1, "files_error": 0, "running": None, "running_records": None,
                            "running_done": None, "problem": None, "stuck": {}}


async def test_a_large_file_runs_in_bounded_batches_one_after_the_other(tmp_path: Path) -> None:
    sizes: list[int] = []

    class Recorder:
        async def handle(self, conn, frames):
            sizes.append(len(frames))
            return [b"ok"] * len(frames)

    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text("".join(f'{{"ref": "R{i}"}}\n' for i in range(5)))
    assert await FileWatcher("w", {"dir": str(inbox), "batch": 2}).process(inbox / "a.jsonl", Recorder())
    assert sizes == [2, 2, 1]
    with pytest.raises(ValueError, match="option batch: expected a number of records of 1 or more"):
        FileWatcher("w", {"dir": str(inbox), "batch": 0})


async def test_batches_keep_each_record_s_number_and_offset(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE % "batch = 2")
    ledger = tmp_path / "l.duckdb"
    lines = [f'{{"ref": "K{i}", "amount": {-1 if i == 4 else 1}}}\n' for i in range(1, 6)]
    (inbox / ".k.tmp").write_text("".join(lines))
    os.replace(inbox / ".k.tmp", inbox / "k.jsonl")
    async with running(prog, ledger):
        await wait_for(lambda: (inbox / "error" / "k.jsonl").exists(), "the file handled")
    offset = sum(len(line) for line in lines[:3])
    assert (f"record 4, byte offset {offset}: rejected (rejected, code 13): invalid amount"
            in (inbox / "error" / "k.jsonl.reason.txt").read_text())
    assert sorted(r["reference"] for r in deals(ledger) if r["status"] == "committed") == ["K1", "K2", "K3", "K5"]


async def test_a_file_cut_short_resumes_after_its_last_recorded_batch(tmp_path: Path, caplog) -> None:
    """The engine stopped after the first batch of two (its deals recorded, `ran 2` in the index):
    the next start runs records 3 to 5 only, so nothing is recorded twice."""
    from engine.channels.file_index import FileIndex, content_id
    inbox = tmp_path / "in"
    (inbox / "done").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE % "batch = 2")
    ledger = tmp_path / "l.duckdb"
    lines = [f'{{"ref": "K{i}", "amount": {-1 if i == 4 else 1}}}\n' for i in range(1, 6)]
    data = "".join(lines).encode()
    FileIndex(inbox / "done").note(content_id(data), "ran", "k.jsonl", "2")
    (inbox / "k.jsonl").write_bytes(data)
    with caplog.at_level("WARNING", logger="bsp.channel.file"):
        async with running(prog, ledger):
            await wait_for(lambda: (inbox / "error" / "k.jsonl").exists(), "the file handled")
    assert "k.jsonl was being run when the engine stopped; resuming after its first 2 data record(s)" in caplog.text
    assert sorted(r["reference"] for r in deals(ledger) if r["status"] == "committed") == ["K3", "K5"]
    reason = (inbox / "error" / "k.jsonl.reason.txt").read_text()
    assert "record 1, byte offset 0: records 1 to 2 ran before the engine stopped, 0 of them rejected or failed " \
           "(their deals are in the ledger); this run began at record 3" in reason
    assert f"record 4, byte offset {len(data) - len(lines[4]) - len(lines[3])}: rejected (rejected, code 13)" in reason
    from engine.channels.file_index import FileIndex as Index
    assert Index(inbox / "done").finished(content_id(data)).status == "error"


async def test_a_resumed_file_whose_earlier_records_failed_still_ends_in_error(tmp_path: Path) -> None:
    """ran 2:1 (one of the two records run before the stop was rejected); the rest all commit: the file
    still goes to error/, and its reason says so."""
    from engine.channels.file_index import FileIndex, content_id
    inbox = tmp_path / "in"
    (inbox / "done").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, ROUTE % "batch = 2")
    data = "".join(f'{{"ref": "M{i}", "amount": 1}}\n' for i in range(1, 5)).encode()
    FileIndex(inbox / "done").note(content_id(data), "ran", "m.jsonl", "2:1")
    (inbox / "m.jsonl").write_bytes(data)
    async with running(prog, tmp_path / "l.duckdb"):
        await wait_for(lambda: (inbox / "error" / "m.jsonl").exists(), "the file handled")
    assert sorted(r["reference"] for r in deals(tmp_path / "l.duckdb")) == ["M3", "M4"]
    assert "records 1 to 2 ran before the engine stopped, 1 of them rejected or failed (their deals are in the " \
           "ledger; their dead letters name them: bsp dead list --reason \"file m.jsonl record\"); this run began " \
           "at record 3" in (inbox / "error" / "m.jsonl.reason.txt").read_text()



async def test_file_write_name_without_seq_never_loops_nor_replaces(tmp_path: Path) -> None:
    """A pattern without {seq} ("PAY-{date}.csv", a fixed name) whose file exists used to spin in
    `_next_name` for ever, freezing the whole engine; now that call fails (kind failed) naming the
    file, the existing file is untouched, no temporary file is left, and later calls still run."""
    import signal

    def stuck(signum: int, frame: object) -> None:
        raise TimeoutError("file write looped on a taken name (engine frozen)")

    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(20)          # a guard against the old endless loop, not a timing assertion
    try:
        out = tmp_path / "out"
        w = FileWriter("o", {"dir": str(out), "name": "PAY-{date}.csv", "fsync": False})
        await w.run()
        (first,) = await w.request_many([b"first"])
        name = orjson.loads(first)["file"]
        (second,) = await w.request_many([b"second"])
        assert isinstance(second, ChannelError) and second.kind == "failed"
        assert f"cannot write {out / name}: a file of that name exists; not replacing it" in str(second)
        assert "has no {seq}" in str(second)
        assert (out / name).read_bytes() == b"first"
        fixed = FileWriter("f", {"dir": str(out), "name": "SETTLE.csv", "fsync": False})
        (out / "SETTLE.csv").mkdir()          # a directory where the file should go
        (r,) = await fixed.request_many([b"x"])
        assert isinstance(r, ChannelError) and "SETTLE.csv" in str(r)
        assert sorted(p.name for p in out.iterdir()) == [name, "SETTLE.csv"]   # no .tmp left behind
        n = FileWriter("n", {"dir": str(out), "name": "N-{seq}.csv", "fsync": False})
        (out / "N-000001.csv").mkdir()
        (ok,) = await n.request_many([b"y"])
        assert orjson.loads(ok)["file"] == "N-000002.csv"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


async def test_a_watcher_keeps_counts_not_every_name(tmp_path: Path, monkeypatch) -> None:
    # a watcher runs for months: the names of its files run lately are bounded (RECENT_FILES), while the
    # counts `bsp status` shows keep counting (before: two lists that grew by one name a file, for ever)
    import engine.channels.file_watch as fw
    monkeypatch.setattr(fw, "RECENT_FILES", 2)

    class Sink:
        async def handle(self, conn, frames):
            return [None] * len(frames)

    w = FileWatcher("fx", {"dir": str(tmp_path), "record": "fixed", "record_size": 4})
    for i, name in enumerate(("a.dat", "b.dat", "c.dat")):
        (tmp_path / name).write_bytes(b"111%d" % i)       # each its own content: a repeat is not run
    (tmp_path / "d.dat").write_bytes(b"111")           # cannot be split into 4-byte records
    async with trio.open_nursery() as n:
        await n.start(w.serve, Sink())
        await wait_for(lambda: w.status()["files_done"] + w.status()["files_error"] == 4, "the four files")
        w.stop_accepting()
    assert w.status()["files_done"] == 3 and w.status()["files_error"] == 1
    assert len(w.processed) == 2 and list(w.failed) == ["d.dat"]
