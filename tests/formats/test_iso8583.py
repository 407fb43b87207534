"""ISO 8583: spec loading errors, field kinds, classification, MUX key, component."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dsl.ir import FormatDecl
from formats.errors import FormatError, SpecError
from formats.iso8583 import Iso8583Codec, builtin_specs, codec_for, from_decimal, load_spec, mux_key, to_decimal
from formats.iso8583.component import COMPONENT
from formats.iso8583.spec import parse_spec_text

SAMPLE = {
    "t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001050", "7": "0209130746", "11": "000042",
    "35": "4111111111111111=2512101", "41": "TERM0001", "43": {"name": "SHOP", "city": "TOWN", "country": "NZ"},
    "49": "554", "52": "0123456789ABCDEF", "55": {"9F02": "000000001050", "5F2A": "0554"}, "70": "301",
}


@pytest.mark.parametrize("spec", ["iso8583_1987_ascii", "iso8583_1987_bcd"])
def test_builtin_specs_round_trip(spec: str) -> None:
    codec = codec_for(spec)
    raw = codec.encode(SAMPLE)
    got = codec.decode(raw)
    assert got["43"] == {"name": "SHOP".ljust(25), "city": "TOWN".ljust(13), "country": "NZ"}
    assert got["55"] == SAMPLE["55"]
    assert {k: v for k, v in got.items() if k != "43"} == {k: v for k, v in SAMPLE.items() if k != "43"}
    assert codec.encode(got) == raw
    assert got.classification == {"2": ("pan",), "35": ("pan", "secret"), "52": ("secret",)}


def test_builtin_names() -> None:
    assert {"iso8583_1987_ascii", "iso8583_1987_bcd"} <= set(builtin_specs())


def test_bcd_wire_layout() -> None:
    codec = codec_for("iso8583_1987_bcd").lenient()     # an 0800 without DE 7/70: layout only
    raw = codec.encode({"t": "0800", "11": "000042", "2": "41111"})
    # MTI 2 bytes BCD, 8-byte bitmap, DE2 LL BCD prefix 05 + 3 bytes (left pad 0), DE11 3 bytes
    assert raw == bytes.fromhex("0800") + bytes.fromhex("4020000000000000") + bytes.fromhex("05041111") + \
        bytes.fromhex("000042")


def test_amount_helpers() -> None:
    assert to_decimal("000000001050", 2) == Decimal("10.50")
    assert from_decimal(Decimal("10.50")) == "000000001050"
    with pytest.raises(FormatError, match="decimal places"):
        from_decimal(Decimal("10.505"))


def test_int_allowed_for_numeric_and_padded() -> None:
    codec = codec_for("iso8583_1987_ascii").lenient()
    assert codec.decode(codec.encode({"t": "0200", "4": 1050}))["4"] == "000000001050"


@pytest.mark.parametrize("values, field, text", [
    ({"t": "0200", "4": "12a"}, "4", "not a digit"),
    ({"t": "0200", "2": "1" * 20}, "2", "at most 19"),
    ({"t": "0200", "41": "123456789"}, "41", "at most 8"),
    ({"t": "0200", "52": "XYZ"}, "52", "not hex"),
    ({"t": "0200", "52": "0011"}, "52", "exactly 8"),
    ({"t": "0200", "999": "1"}, "999", "no field"),
    ({"t": "02000"}, "t", "4 digits"),
    ({"t": "0200", "55": {"9F2": "00"}}, "55.9F2", "not hex"),
    ({"t": "0200", "43": {"street": "x"}}, "43.street", "unknown subfield"),
])
def test_encode_errors_name_the_field(values: dict, field: str, text: str) -> None:
    with pytest.raises(FormatError) as info:
        codec_for("iso8583_1987_ascii").encode(values)
    assert info.value.field == field
    assert text in str(info.value)


def test_decode_errors_name_field_and_offset() -> None:
    codec = codec_for("iso8583_1987_ascii").lenient()    # wire-structure errors; content checks: test_iso8583_rules
    raw = codec.encode({"t": "0200", "3": "000000", "35": "4111=25"})
    bad = raw.replace(b"4111=25", b"4111X25")
    with pytest.raises(FormatError) as info:
        codec.decode(bad)
    assert info.value.field == "35"
    assert info.value.offset == bad.index(b"X")
    with pytest.raises(FormatError, match="left over"):
        codec.decode(raw + b"9")
    with pytest.raises(FormatError) as info:
        codec.decode(raw[:-2])
    assert info.value.field == "35" and "bytes are left" in info.value.message
    with pytest.raises(FormatError, match="primary bitmap"):
        codec.decode(b"0200ZZ")
    with pytest.raises(FormatError) as info:
        codec.decode(b"0200" + b"0000000000000004")   # bit 62 set ... wait: last nibble 4 => bit 62
    assert info.value.field == "62"


def test_bit_without_field_in_spec() -> None:
    spec, errors = parse_spec_text("name: tiny\nfields:\n  3: {type: n, length: 6}\n")
    assert not errors and spec is not None
    with pytest.raises(FormatError) as info:
        Iso8583Codec(spec).decode(b"0200" + b"6000000000000000" + b"000000" + b"00")
    assert info.value.field == "bitmap" and "no field 2" in info.value.message


def test_tlv_errors() -> None:
    codec = codec_for("iso8583_1987_ascii").lenient()
    raw = codec.encode({"t": "0100", "55": {"9F02": "000000001000"}})
    broken = raw[:-1] + b"\x00"
    broken = broken.replace(b"\x9f\x02\x06", b"\x9f\x02\x09")
    with pytest.raises(FormatError) as info:
        codec.decode(broken)
    assert info.value.field == "55.9F02"
    assert info.value.offset == broken.index(b"\x9f\x02") + 3


# ------------------------------------------------------------------ spec errors

BAD_SPECS = [
    ("name: x\nfields:\n  2: {type: q, length: 2}\n", 3, "type must be one of"),
    ("name: x\nfields:\n  2: {type: n, length: LL}\n", 3, "needs 'max'"),
    ("name: x\nfields:\n  2: {type: n, length: LL, max: 100}\n", 3, "does not fit"),
    ("name: x\nfields:\n  1: {type: b, length: 8}\n", 3, "secondary bitmap"),
    ("name: x\nfields:\n  2: {type: n, length: 2}\n  2: {type: n, length: 3}\n", 4, "duplicate key"),
    ("name: x\nmti: morse\nfields:\n  2: {type: n, length: 2}\n", 2, "mti must be one of"),
    ("name: x\nfields:\n  43:\n    type: ans\n    length: 40\n    subfields: [{name: a, length: 10}]\n", 6,
     "add up to 10"),
    ("name: x\nfields:\n  2: {type: n, length: 2, classification: secretive}\n", 3, "unknown classification"),
    ("name: x\nfields:\n  2: {type: b, length: 2, data_encoding: bcd}\n", 3, "cannot use data_encoding"),
    ("name: x\nfields:\n  2: {type: n, length: 2\n", 4, "not valid YAML"),
    ("name: x\ncolour: red\nfields:\n  2: {type: n, length: 2}\n", 2, "unknown key"),
]


@pytest.mark.parametrize("text, line, message", BAD_SPECS)
def test_bad_spec_reports_line_and_column(text: str, line: int, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in info.value.message
    assert info.value.path == str(path)
    assert info.value.line == line
    assert info.value.col is not None and info.value.col >= 1
    assert str(info.value).startswith(f"{path}:{line}:")


def test_check_collects_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nfields:\n  2: {type: q, length: 2}\n  3: {type: n, length: LL}\n")
    decl = FormatDecl("Auth", "iso8583", {"spec": str(path)})
    errors = COMPONENT.check(decl)
    assert [e.line for e in errors] == [3, 4]


# ------------------------------------------------------------------ MUX key

def test_mux_key_pairs_request_and_reply() -> None:
    req = {"t": "0200", "11": "000042", "41": "TERM0001"}
    rsp = {"t": "0210", "11": "000042", "41": "TERM0001", "39": "00"}
    assert mux_key(req) == mux_key(rsp) == ("020", "000042", "TERM0001")
    assert mux_key({"t": "0400", "11": "1", "41": "T"}) != mux_key({"t": "0200", "11": "1", "41": "T"})


def test_mux_key_missing_field_is_named() -> None:
    with pytest.raises(FormatError) as info:
        mux_key({"t": "0200", "11": "000042"})
    assert info.value.field == "41"
    assert "DE 41" in info.value.message and "0200" in info.value.message


# ------------------------------------------------------------------ component

def test_component_builds_from_path_and_builtin_name(tmp_path: Path) -> None:
    assert COMPONENT.name == "iso8583" and COMPONENT.category == "format" and COMPONENT.positional == "spec"
    by_name = COMPONENT.build(FormatDecl("Auth", "iso8583", {"spec": str(tmp_path / "iso8583_1987_bcd")}))
    assert by_name.name == "Auth" and by_name.spec.name == "iso8583_1987_bcd"
    own = tmp_path / "net.yaml"
    own.write_text("name: net\nfields:\n  11: {type: n, length: 6}\n  41: {type: ans, length: 8}\n")
    codec = COMPONENT.build(FormatDecl("Net", "iso8583", {"spec": str(own)}))
    raw = codec.encode({"t": "0800", "11": "7", "41": "T1"})
    assert raw == b"0800" + b"0020000000800000" + b"000007" + b"T1      "
    assert COMPONENT.fields(FormatDecl("Net", "iso8583", {"spec": str(own)})) == ["t", "11", "41"]
    missing = COMPONENT.check(FormatDecl("Net", "iso8583", {"spec": str(tmp_path / "nope.yaml")}))
    assert missing and "no ISO 8583 spec" in missing[0].message
