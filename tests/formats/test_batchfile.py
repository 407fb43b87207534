"""formats.batchfile: a batch file split into records with their byte offsets (file.watch's splitter)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats.batchfile import RECORD_KINDS, split_records
from formats.copybook.records import frame_rdw
from formats.errors import FormatError
from formats.swift import split_rje

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "swift"


def test_lines_fixed_whole() -> None:
    assert split_records(b"a\r\n\nb\n", "lines") == [(0, b"a"), (4, b"b")]
    assert split_records(b"aaabbb", "fixed", 3) == [(0, b"aaa"), (3, b"bbb")]
    assert split_records(b"all", "whole") == [(0, b"all")]
    assert split_records(b"", "whole") == []
    with pytest.raises(FormatError) as ei:
        split_records(b"aaabb", "fixed", 3)
    assert ei.value.record == 2 and ei.value.offset == 3 and "2 byte(s) left over" in str(ei.value)
    with pytest.raises(ValueError, match="unknown record kind 'tape'; expected one of lines, csv"):
        split_records(b"x", "tape")


def test_a_utf8_byte_order_mark_is_text_s_not_the_first_record_s() -> None:
    bom = b"\xef\xbb\xbf"
    assert split_records(bom + b"a\r\nb\n", "lines") == [(3, b"a"), (6, b"b")]
    assert split_records(bom + b'a,"x\ny"\nb\n', "csv") == [(3, b'a,"x\ny"'), (11, b"b")]
    assert split_records(bom + b"a\nb\n", "csv", quote="") == [(3, b"a"), (5, b"b")]
    assert split_records(bom + b"\nb\n", "lines") == [(4, b"b")]          # a line of the mark alone is blank
    assert split_records(b"a\n" + bom + b"b\n", "lines") == [(0, b"a"), (2, bom + b"b")]   # only at the start
    assert split_records(bom + b"abc", "fixed", 3) == [(0, bom), (3, b"abc")]          # bytes: kept
    assert split_records(bom + b"x", "whole") == [(0, bom + b"x")]


def test_csv_rows_may_hold_line_breaks_in_quotes() -> None:
    data = (b'ref,memo,amount\r\n'
            b'R1,"two\r\nlines",1.50\r\n'
            b'R2,"say ""hi""\nthere",2\n'
            b'\n'
            b'R3,plain,3')
    rows = split_records(data, "csv")
    assert [off for off, _ in rows] == [0, 17, 39, 64]
    assert [r for _, r in rows] == [b"ref,memo,amount", b'R1,"two\r\nlines",1.50', b'R2,"say ""hi""\nthere",2',
                                    b"R3,plain,3"]
    assert [next(csv.reader(io.StringIO(r.decode(), newline=""))) for _, r in rows][2] == ["R2", 'say "hi"\nthere', "2"]
    assert split_records(data, "lines")[3] == (39, b'R2,"say ""hi""')            # what lines would have cut
    assert split_records(b"a;'x\ny';1\n", "csv", quote="'") == [(0, b"a;'x\ny';1")]
    assert split_records(b'a,"b\nc\n', "csv", quote="") == [(0, b'a,"b'), (5, b"c")]      # no quoting: lines


def test_csv_unclosed_quote_names_its_row() -> None:
    with pytest.raises(FormatError) as ei:
        split_records(b'R1,ok,1\nR2,"never closed,2\nR3,x,3\n', "csv")
    assert ei.value.record == 2 and ei.value.offset == 8
    assert "not closed before the end of the file" in str(ei.value) and "quote option" in str(ei.value)


_CELL = st.text(alphabet=st.sampled_from('ab,"\r\n '), max_size=6)
_ROW = st.lists(_CELL, min_size=1, max_size=4).filter(lambda row: any(c.strip() for c in row))


@given(st.lists(_ROW, max_size=6))
def test_csv_split_agrees_with_the_csv_module(table: list[list[str]]) -> None:
    # (a row of blanks only is a blank line to the splitter, as for record = lines)
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerows(table)
    data = buf.getvalue().encode()
    got = [next(csv.reader(io.StringIO(r.decode(), newline=""))) for _, r in split_records(data, "csv")]
    want = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert got == want


def test_rdw_both_byte_orders() -> None:
    big = frame_rdw(b"abc") + frame_rdw(b"z")
    little = frame_rdw(b"abc", little=True) + frame_rdw(b"z", little=True)
    assert split_records(big, "rdw") == [(0, b"abc"), (7, b"z")]
    assert split_records(little, "rdw_le") == [(0, b"abc"), (7, b"z")]
    with pytest.raises(FormatError) as ei:
        split_records(big + b"\x00\x09\x00\x00x", "rdw")                # says 9 bytes, 5 are there
    assert ei.value.record == 3 and ei.value.offset == 12 and "file ends inside a record" in str(ei.value)
    with pytest.raises(FormatError) as ei:
        split_records(little, "rdw")                                    # the wrong byte order
    assert ei.value.record == 1 and ei.value.offset == 0 and 'try record = "rdw_le"' in str(ei.value)


@pytest.mark.parametrize("name", ["MT103-out-ack.rje", "MT103-bulk-with-ack.rje"])
def test_rje_agrees_with_the_swift_reader_on_the_corpus(name: str) -> None:
    data = (CORPUS / "prowide_mt103_rje_batches" / "input" / name).read_bytes()
    records = split_records(data, "rje")
    assert [r.decode() for _, r in records] == split_rje(data.decode())
    for offset, record in records:
        assert data[offset:offset + len(record)] == record and record.startswith(b"{1:")


def test_every_kind_is_covered() -> None:
    assert set(RECORD_KINDS) == {"lines", "csv", "fixed", "rdw", "rdw_le", "rje", "whole", "camt053"}


def _csv(*fields):
    from dsl.ir import FieldDecl, FormatDecl
    from formats import csv_codec
    return csv_codec.build(FormatDecl("F", "csv", {"header": False}, tuple(FieldDecl(*f) for f in fields)))


TRAILER = _csv(("tag", "string"), ("count", "integer"), ("total", "decimal", 2))
LINE = _csv(("ref", "string"), ("amount", "decimal", 2))
RECORDS = [(11, b"R1,1.50"), (19, b"R2,3.25")]


def controls(**kw):
    from formats.batchfile import ControlTotals
    kw.setdefault("count_field", "count")
    return ControlTotals(TRAILER, **kw)


def test_control_totals_agree_or_say_what_differs() -> None:
    both = controls(total_field="total", sum_field="amount", sum_codec=LINE)
    assert both.check((27, b"TOTAL,2,4.75"), 4, RECORDS, 2) is None
    assert both.check((27, b"TOTAL,3,4.75"), 4, RECORDS, 2) == (
        "record 4, byte offset 27: the control totals do not match: the trailer says 3 record(s) and total "
        "4.75; the file holds 2 record(s) with amount totalling 4.75; no record was run")
    assert "says 2 record(s) and total 4.70; the file holds 2 record(s) with amount totalling 4.75" \
        in both.check((27, b"TOTAL,2,4.70"), 4, RECORDS, 2)
    assert controls().check((27, b"TOTAL,2,0.00"), 4, RECORDS, 2) is None       # the count alone
    assert "cannot read its amount for the total" in both.check((27, b"TOTAL,2,4.75"), 4,
                                                                 [(11, b"R1,1.5x"), (19, b"R2,3.25")], 2)
    assert both.check((27, b"TOTAL,2,4.75"), 4, [(11, b"R1,1.5x")], 2).startswith("record 2, byte offset 11:")
    assert both.check((27, b"TOTAL,two,4.75"), 4, RECORDS, 2).startswith(
        "record 4, byte offset 27: the trailer cannot be read: ")


def test_control_totals_sum_exactly_in_decimal() -> None:
    many = [(i, b"R,0.10") for i in range(10)]
    both = controls(total_field="total", sum_field="amount", sum_codec=LINE)
    assert both.check((0, b"T,10,1.00"), 12, many, 2) is None        # ten times 0.10 is 1.00, exactly


def test_control_totals_options_are_checked() -> None:
    from formats.batchfile import ControlTotals
    with pytest.raises(ValueError, match="needs a count field, a total field or both"):
        ControlTotals(TRAILER)
    with pytest.raises(ValueError, match="a total needs"):
        ControlTotals(TRAILER, total_field="total")


def test_a_trailer_whose_fields_are_not_numbers_is_named() -> None:
    from formats.batchfile import ControlTotals
    text = _csv(("count", "string"), ("total", "string"))            # a trailer read as text
    both = ControlTotals(text, count_field="count", total_field="total", sum_field="amount", sum_codec=LINE)
    assert both.check((27, b"0002,4.75"), 4, RECORDS, 2) is None     # digits as text count, too
    assert both.check((27, b"two,4.75"), 4, RECORDS, 2) == (
        "record 4, byte offset 27: the trailer's count is 'two', not a number of records")
    assert both.check((27, b"2,4.7x"), 4, RECORDS, 2) == (
        "record 4, byte offset 27: the trailer's total is '4.7x', not an amount")
