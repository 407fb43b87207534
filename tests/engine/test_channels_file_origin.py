"""A record of a `file watch` file knows where it came from: `file.name`, `file.line`, ... in the route
(checked by `bsp check` on file watch routes only), and a record that does not decode is told at its
byte offset in the file, naming the line, whatever the record kind and with or without a header row."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio

from dsl.load import compile_source
from engine.registry import default_registry
from kit import REPO, compile_text, deals, running

DOC_ROUTE = next(b for b in re.findall(r"```route\n(.*?)```", (REPO / "docs" / "channels.md").read_text(), re.S)
                 if "route pay_line" in b)


async def wait_for(cond) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


async def run_files(tmp_path: Path, route: str, files: dict[str, bytes]) -> Path:
    """Serve ``route`` (its file watch on tmp_path/in) until every file is in done/ or error/."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, route)
    for name, data in files.items():
        (inbox / name).write_bytes(data)
    async with running(prog, tmp_path / "l.duckdb"):
        await wait_for(lambda: all((inbox / "done" / n).exists() or (inbox / "error" / n).exists() for n in files))
    return inbox


def result_lines(tmp_path: Path) -> list[str]:
    return sorted(line for p in (tmp_path / "out").iterdir() for line in p.read_text().splitlines())


async def test_the_documented_route_names_each_result_lines_file_and_line(tmp_path: Path) -> None:
    inbox = await run_files(tmp_path, DOC_ROUTE, {"PAY-1.csv": b"ref,amount\nR1,1.50\nR2,2.00\n"})
    assert (inbox / "done" / "PAY-1.csv").exists()
    assert result_lines(tmp_path) == ["PAY-1.csv,2,R1,ACCEPTED", "PAY-1.csv,3,R2,ACCEPTED"]


ROUTE_ALL = '''
format In = csv {
    ref     string
    amount  decimal(2)
    memo    string
}
format Out = csv header false {
    source  string
    line    string
    record  integer
    offset  integer
    records integer
    ref     string
}
format Written = json

channel inbox = file watch {
    dir         = "in"
    pattern     = "*.csv"
    record      = "csv"
    skip_header = 1
    header_row  = true
    batch       = 2
}

channel outbox = file write {
    dir  = "out"
    name = "R-{date}.csv"
    mode = "append"
}

route r {
    receive from inbox as In
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call w = outbox as Out reply Written {
        source  = file.name
        line    = file.line
        record  = file.record
        offset  = file.offset
        records = file.records
        ref     = msg.ref
    }
}
'''


async def test_lines_count_blank_lines_quoted_line_breaks_and_a_byte_order_mark(tmp_path: Path) -> None:
    data = (b"\xef\xbb\xbfTITLE\r\n"            # line 1: a title (skip_header), after a UTF-8 byte order mark
            b"memo,amount,ref\r\n"              # line 2: the header row
            b"\"two\r\nlines\",1.00,A\r\n"      # lines 3-4: one row
            b"\r\n"                             # line 5: blank
            b"plain,2.00,B\n"                   # line 6
            b"x,3.00,C\n")                      # line 7 (a second batch: batch = 2)
    await run_files(tmp_path, ROUTE_ALL, {"S.csv": data})
    at_a, at_b, at_c = data.index(b'"two'), data.index(b"plain"), data.index(b"x,3")
    # the records: 1 the title, 2 the header row, then 3, 4 and 5 (the blank line is no record)
    assert result_lines(tmp_path) == [f"S.csv,3,3,{at_a},3,A",
                                      f"S.csv,6,4,{at_b},3,B", f"S.csv,7,5,{at_c},3,C"]


ROUTE_BAD = '''
format In = csv {
    ref     string
    amount  decimal(2)
}
channel inbox = file watch {
    dir        = "in"
    pattern    = "*.csv"
    record     = "csv"
    %s
}
route r {
    receive from inbox as In
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
}
'''


def reason(inbox: Path, name: str) -> str:
    return (inbox / "error" / f"{name}.reason.txt").read_text()


async def test_a_bad_line_under_a_header_row_is_told_at_its_file_offset_and_line(tmp_path: Path) -> None:
    # the analyst's case: the third line starts at byte 152; the error said "byte 81", counted from the
    # header row the record carries, not from the file
    second = b"R1,1.50," + b"n" * 127 + b"\n"
    data = b"ref,amount,note\n" + second + b'R2,"12,50",x\n'
    assert data.index(b"R2") == 152
    inbox = await run_files(tmp_path, ROUTE_BAD % "header_row = true", {"a.csv": data})
    text = reason(inbox, "a.csv")
    assert "record 3, byte offset 152: rejected (malformed, code 30)" in text
    assert "line 3, byte 152, field amount: expected a decimal number" in text
    assert "byte 16," not in text


async def test_a_header_the_records_cannot_be_read_by_is_told_at_the_header_line(tmp_path: Path) -> None:
    inbox = await run_files(tmp_path, ROUTE_BAD % "skip_header = 2\n    header_row = true",
                            {"h.csv": b"TITLE\nDATE 2026-11-26\nref,memo\nR1,x\n"})
    assert "record 4, byte offset 31: rejected (malformed, code 30)" in reason(inbox, "h.csv")
    assert "line 3, byte 22, field amount: header has no column 'amount'" in reason(inbox, "h.csv")


async def test_a_quote_left_open_in_a_row_is_told_at_that_row_not_at_the_header(tmp_path: Path) -> None:
    # record = lines: the row is a record of its own, and the csv format cannot read it
    inbox = await run_files(tmp_path, ROUTE_BAD.replace('record     = "csv"', 'record     = "lines"')
                            % "header_row = true", {"q.csv": b'ref,amount\nR1,1.00\nR2,"2.00\n'})
    assert "record 3, byte offset 19: rejected (malformed" in reason(inbox, "q.csv")
    assert "line 3, byte 19: bad CSV:" in reason(inbox, "q.csv")


async def test_without_a_header_row_the_offset_still_counts_from_the_file(tmp_path: Path) -> None:
    route = ROUTE_BAD.replace("format In = csv {", "format In = csv header false {") % ""
    inbox = await run_files(tmp_path, route, {"n.csv": b"R1,1.00\nR2,abc\n"})
    assert "record 2, byte offset 8: rejected" in reason(inbox, "n.csv")
    assert "line 2, byte 8, field amount" in reason(inbox, "n.csv")


async def test_a_bad_record_s_dead_letter_and_deal_name_its_file_record_line_and_offset(tmp_path: Path) -> None:
    """``bsp dead list`` and ``bsp deals`` show the reason: with thousands of records a day from many files,
    the clerk needs the file and the place in it there, not only in the reason file in error/."""
    import duckdb
    route = ROUTE_BAD.replace("format In = csv {", "format In = csv header false {").replace(
        "    deal PAYMENT", '    validate { msg.amount > 0 else reject "13" "invalid amount" }\n    deal PAYMENT') % ""
    data = b"R1,1.00\nR2,abc\nR3,2.00\nR4,0.00\n"
    await run_files(tmp_path, route, {"PAY-7.csv": data})
    con = duckdb.connect(str(tmp_path / "l.duckdb"), read_only=True)
    try:
        letters = dict(con.execute("SELECT error_kind, reason FROM dead_letters").fetchall())
        reasons = sorted(r for (r,) in con.execute("SELECT reason FROM deals WHERE reason IS NOT NULL").fetchall())
    finally:
        con.close()
    assert letters["malformed"].endswith("; file PAY-7.csv record 2 (line 2, byte offset 8)"), letters
    at = data.index(b"R4")
    assert letters["rejected"].endswith(f"; file PAY-7.csv record 4 (line 4, byte offset {at})"), letters
    assert reasons == sorted(letters.values())        # the deals' own reasons say the same


ROUTE_FIXED = '''
format Rec = fixed {
    ref     string(8)
    amount  decimal(10, 2)
}
channel inbox = file watch {
    dir         = "in"
    pattern     = "*.dat"
    record      = "fixed"
    record_size = 18
}
route r {
    receive from inbox as Rec
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
}
'''


async def test_a_fixed_record_field_is_told_at_its_file_offset_with_no_line(tmp_path: Path) -> None:
    good = b"REF00001" + b"0000000150"
    bad = b"REF00003" + b"00000x0150"
    inbox = await run_files(tmp_path, ROUTE_FIXED, {"f.dat": good + good + bad})
    text = reason(inbox, "f.dat")
    assert "record 3, byte offset 36: rejected (malformed" in text
    m = re.search(r"not a valid Rec: (.*)", text)
    assert m is not None and m.group(1).startswith("byte 49, field amount"), text   # the "x" at 36 + 13
    assert "line" not in m.group(1).split(":")[0]


def test_file_values_are_known_on_a_file_watch_route_only(tmp_path: Path) -> None:
    reg = default_registry()
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    r = compile_source(DOC_ROUTE, reg, tmp_path / "ok.route")
    assert [d for d in r.diagnostics if d.is_error] == []
    bad = DOC_ROUTE.replace("source = file.name", "source = file.nmae")
    (d,) = [d for d in compile_source(bad, reg, tmp_path / "typo.route").diagnostics if d.is_error]
    assert (d.code, d.message) == ("E060", "`file` has no field `nmae`")
    assert d.help == ("did you mean `name`?; channel `pay_files` (file watch) gives file.name, file.line, "
                      "file.record, file.offset, file.records, file.header")
    tcp = DOC_ROUTE.replace('file watch {\n    dir        = "in"\n    pattern    = "*.csv"\n    record     = "csv"\n'
                            '    header_row = true\n}', 'tcp listen { address = "127.0.0.1:0" }')
    assert tcp != DOC_ROUTE
    diags = [d for d in compile_source(tcp, reg, tmp_path / "tcp.route").diagnostics if d.is_error]
    assert [(d.code, d.message) for d in diags] == [("E024", "unknown name `file`"), ("E024", "unknown name `file`")]
    assert diags[0].help.startswith("`file` (file.name, file.line, ...) is bound when the route receives from a "
                                    "file watch channel")


@pytest.mark.parametrize("kind", ["lines", "csv"])
async def test_a_route_test_style_handler_without_origins_reads_null(tmp_path: Path, kind: str) -> None:
    """Records dispatched without their origin (a route test, a dead letter retried) read file.* as null."""
    from engine.channels.base import ConnInfo
    from engine.channels.http_listen_dispatch import dispatch_batch
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, DOC_ROUTE.replace('"csv"', f'"{kind}"'))
    async with running(prog, tmp_path / "l.duckdb") as sb:
        out = await dispatch_batch(sb.dispatchers["pay_files"], ConnInfo("pay_files", "t", 1), [b"ref,amount\nR9,1.00"])
    assert out[0].status == "committed"
    assert result_lines(tmp_path) == [",,R9,ACCEPTED"]
    assert [r["reference"] for r in deals(tmp_path / "l.duckdb")] == ["R9"]


ROUTE_CUR = '''
format Pay = csv header false {
    ref     string
    amount  decimal(2)
    cur     string
}
channel inbox = file watch {
    dir     = "in"
    pattern = "*.csv"
    record  = "csv"
}
route pay {
    receive from inbox as Pay
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = msg.cur }
}
'''


async def test_a_half_written_last_line_refused_says_the_file_may_have_been_taken_too_soon(tmp_path: Path) -> None:
    """complete = "rename" (the default) trusts the sender: a file written in place is taken as it is seen,
    half a line included (`S000,1` of `S000,1.50,EUR`, walked with a real writer pausing 0.3 s). Its last
    record is refused; the reason now also says why that may be and what to do. A complete file without a
    final line break is not told so."""
    inbox = await run_files(tmp_path, ROUTE_CUR, {"slow.csv": b"S000,1.50,EUR\nS001,1",
                                                  "whole.csv": b"S000,1.50,EUR\nS001,2.00,EUR"})
    text = reason(inbox, "slow.csv")
    assert "record 2, byte offset 14: rejected (malformed" in text
    assert ("record 2, byte offset 14: the file does not end with a line break and its last record was refused: "
            "it may have been taken while its sender was still writing it") in text
    assert 'or set complete = "stable" (or "marker") on channel inbox' in text
    assert (inbox / "done" / "whole.csv").exists()
