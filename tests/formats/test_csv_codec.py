"""csv codec: one row per message, whole files with header mapping and row numbers."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from dsl.ir import FieldDecl as F, FormatDecl
from formats import csv_codec
from formats.errors import FormatError, SpecError

FIELDS = (F("ref", "string"), F("amount", "decimal", scale=2), F("value_date", "date"), F("count", "integer"))


def codec(fields=FIELDS, **opts):
    return csv_codec.build(FormatDecl("P", "csv", opts, fields))


def test_one_row_message():
    c = codec(delimiter=";")
    v = c.decode(b"A-1;120.5;2024-01-31;3\r\n")
    assert v == {"ref": "A-1", "amount": Decimal("120.50"), "value_date": dt.date(2024, 1, 31), "count": 3}
    assert str(v["amount"]) == "120.50"
    assert c.encode(v) == b"A-1;120.50;2024-01-31;3"
    assert c.encode({"ref": "a;b", "amount": None}) == b'"a;b";;;'
    assert c.decode(b'"a;b";;;') == {"ref": "a;b", "amount": None, "value_date": None, "count": None}


@pytest.mark.parametrize("data, field, words", [
    (b"A,1.5,2024-01-31", "count", "row has 3 columns, the format declares 4"),
    (b"A,1.5x,2024-01-31,1", "amount", "expected a decimal number"),
    (b"A,1.505,2024-01-31,1", "amount", "more than 2 decimal places"),
    (b"A,1.5,31/01/2024,1", "value_date", "not a date in the form '%Y-%m-%d'"),
    (b"A,1.5,2024-01-31,1.0", "count", "expected an integer"),
])
def test_row_errors_name_field(data, field, words):
    with pytest.raises(FormatError) as e:
        codec().decode(data)
    assert e.value.field == field and words in str(e.value)


def test_too_many_decimal_places_on_decode_tell_the_sender_not_the_route():
    """A file's value with more places than the format declares is the sender's, not a route's value:
    the hint is not "round it first" (advice for a route building a message)."""
    with pytest.raises(FormatError) as e:
        codec().decode(b"A,1.234,2024-01-31,1")
    assert e.value.field == "amount" and "1.234 has more than 2 decimal places" in e.value.message
    assert "round" not in (e.value.hint or "")
    assert e.value.hint == ("the format declares amount decimal(2): the sender must write at most 2 decimal "
                            "places, or declare more places in the format (decimal(3))")
    with pytest.raises(FormatError) as e:            # encoding a route's value: rounding is the fix
        codec().encode({"ref": "A", "amount": Decimal("1.234")})
    assert "round(x, 2)" in (e.value.hint or "")


def test_row_structure_errors():
    with pytest.raises(FormatError, match="expected one row, found 2"):
        codec().decode(b"A,1,2024-01-01,1\nB,1,2024-01-01,1")
    with pytest.raises(FormatError, match="bad CSV"):
        codec().decode(b'"A,1,2024-01-01,1')
    with pytest.raises(FormatError) as e:
        codec().decode(b"A\xff,1,2024-01-01,1")
    assert e.value.offset == 1


FILE = (
    b"count,ref,value_date,amount,comment\n"
    b"1,A-1,2024-01-31,120.50,first\n"
    b'2,"B,2",2024-02-01,7,"multi\nline"\n'
    b"\n"
    b"3,C-3,2024-02-30,1.00,bad date\n"
    b"4,D-4,,,empty\n"
)


def test_batch_with_header_mapping_and_row_numbers():
    c = codec()
    results = list(c.iter_batch(FILE))
    assert [(r, off) for r, off, _ in results] == [(1, 36), (2, 66), (3, 101), (4, 132)]
    assert results[1][2] == {"ref": "B,2", "amount": Decimal("7.00"), "value_date": dt.date(2024, 2, 1), "count": 2}
    err = results[2][2]
    assert isinstance(err, FormatError) and err.record == 3 and err.offset == 101 and err.field == "value_date"
    assert results[3][2]["amount"] is None
    with pytest.raises(FormatError) as e:
        c.decode_batch(FILE)
    assert e.value.record == 3 and "record 3, byte 101, field value_date" in str(e.value)
    good = FILE.replace(b"2024-02-30", b"2024-02-29")
    rows = c.decode_batch(good)
    assert [r["ref"] for r in rows] == ["A-1", "B,2", "C-3", "D-4"]
    again = c.encode_batch(rows)
    assert again.startswith(b"ref,amount,value_date,count\n") and c.decode_batch(again) == rows


def test_batch_missing_header_column_and_untyped():
    with pytest.raises(FormatError) as e:
        codec().decode_batch(b"ref,amount,count\nA,1,1\n")
    assert e.value.field == "value_date" and "header has no column" in str(e.value)
    untyped = csv_codec.build(FormatDecl("U", "csv", {}))
    assert untyped.decode_batch(b"a,b\n1,2\n") == [{"a": "1", "b": "2"}]
    with pytest.raises(FormatError) as e:
        untyped.decode_batch(b"a,b\n1,2,3\n")
    assert e.value.record == 1
    headless = csv_codec.build(FormatDecl("U", "csv", {"header": False, "delimiter": "|"}))
    assert headless.decode_batch(b"1|2\n3|4\n") == [["1", "2"], ["3", "4"]]


def test_encode_errors_and_check():
    with pytest.raises(FormatError) as e:
        codec().encode({"amount": 1.5})
    assert e.value.field == "amount" and "never float" in str(e.value)
    with pytest.raises(FormatError) as e:
        codec().encode({"value_date": "2024-01-01"})
    assert e.value.field == "value_date" and e.value.hint and "parse_date(" in e.value.hint
    with pytest.raises(FormatError) as e:
        codec().encode({"nope": 1})
    assert e.value.field == "nope"
    errors = csv_codec.check(FormatDecl("P", "csv", {"delimiter": ";;", "header": "yes"},
                                        (F("a", "decimal", scale=-1), F("a", "string"))))
    text = " | ".join(map(str, errors))
    assert "delimiter must be one character" in text and "header must be true or false" in text
    assert "scale must be >= 0" in text and "declared twice" in text
    with pytest.raises(SpecError):
        codec(delimiter="")
    assert csv_codec.COMPONENT.fields(FormatDecl("P", "csv", {}, FIELDS)) == ["ref", "amount", "value_date", "count"]


# ------------------------------------------------------------------ properties

row = st.fixed_dictionaries({
    "ref": st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=10),
    "amount": st.none() | st.decimals(min_value=-10**12, max_value=10**12, places=2),
    "value_date": st.none() | st.dates(min_value=dt.date(1000, 1, 1)),
    "count": st.none() | st.integers(),
})


@settings(max_examples=300, deadline=None)
@given(row)
def test_roundtrip_row(values):
    c = codec()
    assert c.decode(c.encode(values)) == values


@settings(max_examples=100, deadline=None)
@given(st.lists(row, max_size=5))
def test_roundtrip_batch(rows):
    c = codec(delimiter=";")
    assert c.decode_batch(c.encode_batch(rows)) == rows


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_only_format_error(data):
    for c in (codec(), csv_codec.build(FormatDecl("U", "csv", {}))):
        try:
            c.decode(data)
        except FormatError:
            pass
        try:
            list(c.iter_batch(data))
        except FormatError:
            pass


def test_a_message_with_its_header_row_matches_columns_by_name():
    c = codec()
    v = c.decode(b"count,extra,value_date,amount,ref\r\n3,x,2024-01-31,120.5,A-1\r\n")
    assert v == {"ref": "A-1", "amount": Decimal("120.50"), "value_date": dt.date(2024, 1, 31), "count": 3}
    assert c.decode(b"count,extra,value_date,amount,ref\n4,y,,1.00,B-2") == {
        "ref": "B-2", "amount": Decimal("1.00"), "value_date": None, "count": 4}
    with pytest.raises(FormatError) as e:                       # a declared column the header lacks
        c.decode(b"ref,amount,count\nA-1,1.00,3")
    assert e.value.field == "value_date" and e.value.record is None
    assert str(e.value) == ("byte 0, field value_date: header has no column 'value_date' "
                            "(hint: header columns are: ref, amount, count)")
    with pytest.raises(FormatError) as e:                       # two rows, the first no header
        c.decode(b"A,1,2024-01-01,1\nB,1,2024-01-01,1")
    assert "expected one row, found 2, and the first is not a header naming the columns" in str(e.value)
    with pytest.raises(FormatError) as e:                       # the row is checked at its own offset
        c.decode(b"ref,amount,value_date,count\nA-1,1.5x,2024-01-31,3")
    assert e.value.field == "amount" and e.value.offset == 28
    with pytest.raises(FormatError, match="expected one row, found 2") as e:     # header false: positional only
        codec(header=False).decode(b"ref,amount,value_date,count\nA-1,1.00,2024-01-31,3")
    assert "header true" in e.value.hint


def test_plain_csv_encode_batch_takes_its_columns_and_header_from_the_first_row():
    c = csv_codec.CsvCodec()                                    # no declared fields, header true
    rows = [{"id": "1", "amount": "5"}, {"amount": "6", "id": "2"}]
    assert c.encode_batch(rows) == b"id,amount\n1,5\n2,6\n"
    assert c.decode_batch(c.encode_batch(rows)) == [{"id": "1", "amount": "5"}, {"id": "2", "amount": "6"}]
    assert csv_codec.CsvCodec(header=False).encode_batch(rows) == b"1,5\n2,6\n"
    with pytest.raises(FormatError) as ei:
        c.encode_batch(rows + [{"id": "3"}])
    assert ei.value.record == 3 and ei.value.field == "amount" and "row has no column 'amount'" in ei.value.message
    with pytest.raises(FormatError) as ei:
        c.encode_batch(rows + [{"id": "3", "amount": "7", "memo": "x"}])
    assert ei.value.record == 3 and ei.value.field == "memo" and "the first row does not have" in ei.value.message
    with pytest.raises(FormatError) as ei:
        csv_codec.CsvCodec(header=False).encode_batch([["1", "5"], ["2"]])
    assert ei.value.record == 2 and "row has 1 columns, the first row has 2" in ei.value.message


def test_positional_csv_refuses_extra_columns_in_a_file():
    c = codec(header=False)
    good = b"A-1,120.50,2024-01-31,3\n"
    assert c.decode_batch(good)[0]["ref"] == "A-1"
    out = list(c.iter_batch(good + b"A-2,1.00,2024-01-31,4,surplus\n"))
    err = out[1][2]
    assert isinstance(err, FormatError) and err.record == 2 and err.offset == len(good)
    assert "row has 5 columns, the format declares 4" in err.message
    # with a header, columns are matched by name and extra ones are ignored
    assert codec().decode_batch(b"ref,amount,value_date,count,memo\nA-1,1.00,2024-01-31,3,x\n")[0]["count"] == 3


def test_a_huge_line_is_read_without_copies_four_times_its_size() -> None:
    # the hostile pass: a 64 MB one-line file in a `file watch` inbox took the engine from 330 MB to 1 GB
    # (its trailer record read as a CSV row through io.StringIO, 4 bytes a character, twice on the error
    # path); a 1 GB file (max_file_bytes' default) would have taken 11 GB
    import tracemalloc

    codec = csv_codec.CsvCodec(header=False)
    line = b"A" * (4 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="field larger than field limit") as info:
            codec.decode(line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.offset == 0
    assert peak < 2 * len(line), f"decoding a {len(line)} byte line took {peak} bytes"


def test_rows_split_on_every_line_ending_as_before() -> None:
    codec = csv_codec.CsvCodec(header=False)
    assert codec.decode(b'a,"b\r\nc",d') == ["a", "b\r\nc", "d"]
    with pytest.raises(FormatError, match="expected one row, found 2"):
        codec.decode(b"a,b\rc,d")
    with pytest.raises(FormatError) as info:
        codec.decode(b'a\r\nb,"c"x')
    assert info.value.offset == 3


def test_a_carriage_return_in_a_cell_is_quoted_or_refused():
    # QUOTE_MINIMAL left "AB\rX" bare: most readers (Python's csv, spreadsheets) took it for the end of the row,
    # so a partner's reference made a second row in the file written
    import csv as _csv
    import io as _io
    from dsl.ir import FieldDecl as F
    quoted = csv_codec.build(FormatDecl("P", "csv", {"header": False}, [F("ref", "string"), F("amt", "string")]))
    line = quoted.encode({"ref": "AB\rR9 999999.00", "amt": "1"})
    assert line == b'"AB\rR9 999999.00","1"'
    assert list(_csv.reader(_io.StringIO(line.decode(), newline=""))) == [["AB\rR9 999999.00", "1"]]
    assert quoted.decode(line) == {"ref": "AB\rR9 999999.00", "amt": "1"}
    assert quoted.encode({"ref": "AB", "amt": "1"}) == b"AB,1"
    bare = csv_codec.build(FormatDecl("P", "csv", {"header": False, "quote": ""}, [F("ref", "string"), F("amt", "string")]))
    with pytest.raises(FormatError, match="carriage return") as e:
        bare.encode({"ref": "AB\rX", "amt": "1"})
    assert e.value.field == "ref"
