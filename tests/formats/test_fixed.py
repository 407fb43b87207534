"""fixed-width records: the bill payment layouts from routes/bill_payment."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from dsl.ir import FieldDecl as F, FormatDecl, Pos
from formats import fixed
from formats.errors import FormatError, SpecError

REQ_FIELDS = (
    F("txn_code", "string", 4),
    F("trace_no", "string", 12),
    F("biller_id", "string", 6),
    F("account", "string", 20, classification="personal"),
    F("amount", "decimal", 12, 2),
    F("currency", "string", 3),
    F("value_date", "date", 8, pattern="%Y%m%d"),
)
REQ = FormatDecl("BillPayReq", "fixed", {}, REQ_FIELDS)
RECORD = b"BP01" + b"000000000001" + b"EL01  " + b"ACC-1".ljust(20) + b"000000012050" + b"CNY" + b"20240131"


def test_decode_bill_payment_request():
    codec = fixed.build(REQ)
    assert codec.length == 65
    v = codec.decode(RECORD)
    assert v == {
        "txn_code": "BP01", "trace_no": "000000000001", "biller_id": "EL01", "account": "ACC-1",
        "amount": Decimal("120.50"), "currency": "CNY", "value_date": dt.date(2024, 1, 31),
    }
    assert str(v["amount"]) == "120.50"  # exactly two places
    assert codec.encode(v) == RECORD


def test_negative_and_explicit_point():
    fields = (F("a", "decimal", 8, 2), F("n", "integer", 5))
    implied = fixed.build(FormatDecl("X", "fixed", {}, fields))
    assert implied.encode({"a": Decimal("-1.5"), "n": -42}) == b"-0000150-0042"
    assert implied.decode(b"-0000150-0042") == {"a": Decimal("-1.50"), "n": -42}
    assert implied.decode(b"+0000150+0042") == {"a": Decimal("1.50"), "n": 42}
    explicit = fixed.build(FormatDecl("X", "fixed", {"decimal_point": "explicit"}, fields))
    assert explicit.encode({"a": Decimal("120.5"), "n": 7}) == b"00120.5000007"
    assert explicit.decode(b"00120.5000007")["a"] == Decimal("120.50")
    with pytest.raises(FormatError) as e:
        explicit.decode(b"0120.505" + b"00007")
    assert e.value.field == "a" and "3 decimal places" in e.value.message


def test_blank_means_absent_and_missing_encodes_blank():
    codec = fixed.build(REQ)
    v = codec.encode({"txn_code": "BQ01"})
    assert v == b"BQ01" + b" " * 61
    back = codec.decode(v)
    assert back["amount"] is None and back["value_date"] is None and back["trace_no"] == ""


def test_ebcdic_encoding():
    codec = fixed.build(FormatDecl("X", "fixed", {"encoding": "cp037"}, (F("s", "string", 3), F("n", "integer", 3))))
    data = codec.encode({"s": "AB", "n": 12})
    assert data == "AB 012".encode("cp037") and data[0] == 0xC1
    assert codec.decode(data) == {"s": "AB", "n": 12}
    cp1047 = fixed.build(FormatDecl("X", "fixed", {"encoding": "cp1047"}, (F("s", "string", 2),)))
    assert cp1047.decode("[]".encode("cp1047")) == {"s": "[]"}


@pytest.mark.parametrize(
    "data, offset, field, words",
    [
        (RECORD[:-1], 64, "value_date", "64 bytes, the layout is 65"),
        (RECORD + b"X", 65, None, "66 bytes"),
        (RECORD.replace(b"000000012050", b"0000000120x0"), 42 + 10, "amount", "decimal digits"),
        (RECORD.replace(b"20240131", b"20241331"), 57, "value_date", "not a date"),
        (RECORD[:10] + b"\xe9" + RECORD[11:], 10, "trace_no", "not valid ascii"),
    ],
)
def test_decode_errors_name_offset_and_field(data, offset, field, words):
    with pytest.raises(FormatError) as e:
        fixed.build(REQ).decode(data)
    assert e.value.offset == offset
    assert e.value.field == field
    assert words in str(e.value)


@pytest.mark.parametrize(
    "values, field, words",
    [
        ({"trace_no": "X" * 13}, "trace_no", "13 characters, the field holds 12"),
        ({"amount": Decimal("1.005")}, "amount", "more than 2 decimal places"),
        ({"amount": 1.5}, "amount", "never float"),
        ({"amount": Decimal("10000000000.00")}, "amount", "field holds 12"),
        ({"nope": "1"}, "nope", "no field 'nope'"),
        ({"account": "é"}, "account", "cannot be written in ascii"),
        ({"value_date": "2024-01-01"}, "value_date", "expected a date"),
    ],
)
def test_encode_errors_name_field(values, field, words):
    with pytest.raises(FormatError) as e:
        fixed.build(REQ).encode(values)
    assert e.value.field == field
    assert words in str(e.value)


def test_a_text_for_a_date_field_says_to_read_it_with_parse_date():
    # a JSON due date ("2024-01-01") copied into a date field: `bsp check` cannot see it (JSON has no
    # types), so the run-time error (the deal's reason) says how the route reads text as a date
    with pytest.raises(FormatError) as e:
        fixed.build(REQ).encode({"value_date": "2024-01-01"})
    assert e.value.hint and "parse_date(" in e.value.hint and "%Y%m%d" in e.value.hint
    assert "parse_date(" in str(e.value)


def test_check_reports_every_problem_with_position():
    p = Pos("x.route", 3, 5)
    bad = FormatDecl("X", "fixed", {"encoding": "utf-8"}, (
        F("a", "string", None, pos=p),
        F("b", "decimal", 4, 4, pos=p),
        F("c", "date", 6, pattern="%Y%m%d", pos=p),
        F("c", "money", 3, pos=p),
        F("e", "string", 2, classification="secretive", pos=p),
    ))
    errors = fixed.check(bad)
    text = "\n".join(str(e) for e in errors)
    assert all(isinstance(e, SpecError) for e in errors)
    assert "x.route:3:5: field 'a': a fixed-width field needs a positive width; none is given" in text
    assert "scale 4 leaves no integer digits" in text
    assert "gives 8 characters" in text
    assert "declared twice" in text and "unknown type 'money'" in text
    assert "unknown classification 'secretive'" in text
    assert "multi-byte" in text
    with pytest.raises(SpecError):
        fixed.build(bad)
    assert fixed.check(REQ) == []


@pytest.mark.parametrize("pattern, hint", [("YYYYMMDD", "%Y%m%d"), ("DD/MM/YY", "%d/%m/%y"), ("12345678", "%Y%m%d")])
def test_a_date_pattern_without_date_directives_is_refused_with_the_strftime_spelling(pattern, hint):
    decl = FormatDecl("X", "fixed", {}, (F("d", "date", 8, pattern=pattern, pos=Pos("x.route", 2, 5)),))
    (err,) = fixed.check(decl)
    assert str(err).startswith(f"x.route:2:5: field 'd': date pattern {pattern!r} has no date directive")
    assert err.hint == f"patterns are strftime codes: write {hint!r}"
    assert fixed.COMPONENT.fields(REQ) == [f.name for f in REQ_FIELDS]


# ------------------------------------------------------------------ properties

@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_random_bytes_only_format_error(data):
    codec = fixed.build(REQ)
    try:
        codec.decode(data)
    except FormatError as e:
        assert e.offset is not None


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 64), st.integers(0, 255))
def test_mutated_record_only_format_error(pos, byte):
    data = bytearray(RECORD)
    data[pos] = byte
    try:
        v = fixed.build(REQ).decode(bytes(data))
    except FormatError as e:
        assert e.offset is not None and e.field is not None
    else:
        if any(isinstance(x, str) and any(ord(c) < 32 or ord(c) == 127 for c in x) for x in v.values()):
            with pytest.raises(FormatError, match="control character"):    # read as sent, never written on
                fixed.build(REQ).encode(v)
        else:
            assert fixed.build(REQ).decode(fixed.build(REQ).encode(v)) == v


_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries({
        "txn_code": st.text(alphabet="ABQP019", max_size=4),
        "trace_no": _text,
        "account": st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(str.rstrip),
        "amount": st.decimals(min_value=Decimal("-999999999.99"), max_value=Decimal("9999999999.99"), places=2),
        "value_date": st.dates(min_value=dt.date(1000, 1, 1)),
    })
)
def test_roundtrip_values(values):
    codec = fixed.build(REQ)
    data = codec.encode(values)
    assert len(data) == codec.length
    back = codec.decode(data)
    for k, v in values.items():
        assert back[k] == v


def test_a_year_before_1000_keeps_four_digits_and_reads_back():
    """The C library's %Y writes year 24 as "24"; an 8-wide YYYYMMDD field needs "0024" (found by
    test_mutated_record_only_format_error: a record whose year reads 0024)."""
    from formats.fixed import format_date
    assert format_date(dt.date(24, 1, 31), "%Y%m%d") == "00240131"
    data = bytearray(RECORD)
    data[57] = ord("0")                          # the value date's first digit: 2024 -> 0024
    v = fixed.build(REQ).decode(bytes(data))
    assert v["value_date"].year == 24
    assert fixed.build(REQ).encode(v) == bytes(data)
    from formats import csv_codec
    c = csv_codec.build(FormatDecl("C", "csv", {"header": False}, (F("d", "date"),)))
    assert c.encode({"d": dt.date(24, 1, 31)}) == b"0024-01-31" and c.decode(b"0024-01-31") == {"d": dt.date(24, 1, 31)}


@pytest.mark.parametrize("text, at", [("AB\nR9        999999", 2), ("AB\rX", 2), ("\x00", 0), ("A\x1bB", 1), ("A\x7f", 1)])
def test_a_control_character_is_never_written_into_a_record(text, at):
    # a partner's reference "AB\n" + a whole record, written by a file write channel (append, one record a
    # line), was a second, forged record in the file the bank sends on
    codec = fixed.FixedCodec([F("ref", "string", 24), F("amt", "string", 6)])
    with pytest.raises(FormatError) as e:
        codec.encode({"ref": text, "amt": "1"})
    assert (e.value.field, e.value.offset) == ("ref", at)
    assert f"control character 0x{ord(text[at]):02x} at character {at}" in str(e.value)
    assert codec.encode({"ref": "AB X", "amt": "1"}) == \
        b"AB X                    1     "
