"""ISO 8583 validation: field contents (classes, date formats, track 2), per-MTI message rules,
the validate switch, and the bitmap / length-prefix options (tertiary, always, hex)."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsl.ir import FormatDecl
from formats.errors import FormatError, SpecError
from formats.iso8583 import Iso8583Codec, codec_for, load_spec
from formats.iso8583.component import COMPONENT
from formats.iso8583.content import date_check, track2_check
from formats.iso8583.spec import parse_spec_text

ASCII = "iso8583_1987_ascii"
BASE_0200 = {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001050", "7": "0209130746",
             "11": "000042", "49": "554"}


def _spec(text: str) -> Iso8583Codec:
    spec, errors = parse_spec_text(text)
    assert not errors, errors
    assert spec is not None
    return Iso8583Codec(spec)


# ------------------------------------------------------------------ dates and times

@pytest.mark.parametrize("fmt, good, bad, index, text", [
    ("MMDDhhmmss", "0229235959", "1301000000", 0, "month 13 is outside 01-12"),
    ("MMDDhhmmss", "0101000000", "0101240000", 4, "hour 24 is outside 00-23"),
    ("hhmmss", "000000", "126000", 2, "minute 60 is outside 00-59"),
    ("hhmmss", "235959", "235960", 4, "second 60 is outside 00-59"),
    ("MMDD", "1231", "0230", 2, "month 02 has no day 30"),
    ("MMDD", "0430", "0431", 2, "month 04 has no day 31"),
    ("MMDD", "0101", "0000", 0, "month 00 is outside 01-12"),
    ("YYMM", "2512", "2513", 2, "month 13 is outside 01-12"),
    ("YYMMDD", "240229", "250229", 4, "month 02 has no day 29"),
    ("CCYYMMDD", "20000229", "19000229", 6, "month 02 has no day 29"),
])
def test_date_formats(fmt: str, good: str, bad: str, index: int, text: str) -> None:
    check = date_check(fmt)
    assert check(good) is None
    got = check(bad)
    assert got is not None and got[0] == index and text in got[1] and fmt in got[1]


def test_bad_date_is_rejected_on_decode_with_offset_and_on_encode() -> None:
    codec = codec_for(ASCII)
    good = codec.encode(BASE_0200 | {"13": "0209"})
    assert codec.decode(good)["13"] == "0209"
    bad = good.replace(b"0209130746", b"1309130746")          # DE 7 month 13
    with pytest.raises(FormatError) as info:
        codec.decode(bad)
    assert info.value.field == "7" and info.value.offset == bad.index(b"1309130746")
    assert info.value.message == "'1309130746' is not a valid MMDDhhmmss: month 13 is outside 01-12"
    assert codec.lenient().decode(bad)["7"] == "1309130746"
    with pytest.raises(FormatError) as info:
        codec.encode(BASE_0200 | {"12": "250000"})
    assert info.value.field == "12" and "hour 25" in info.value.message
    with pytest.raises(FormatError, match="not a valid YYMM"):
        codec_for("iso8583_1987_bcd").encode(BASE_0200 | {"14": "2500"})


def test_bcd_date_offset_is_the_byte_holding_the_bad_digits() -> None:
    codec = codec_for("iso8583_1987_bcd")
    raw = codec.encode(BASE_0200 | {"12": "221530"})
    bad = raw.replace(bytes.fromhex("221530"), bytes.fromhex("229930"))
    with pytest.raises(FormatError) as info:
        codec.decode(bad)
    assert info.value.field == "12" and info.value.offset == bad.index(bytes.fromhex("229930")) + 1
    assert "minute 99" in info.value.message


# ------------------------------------------------------------------ character classes

def test_character_classes() -> None:
    codec = codec_for(ASCII)
    assert codec.decode(codec.encode(BASE_0200 | {"37": "ABC 123", "41": "T-1/#&"}))["41"] == "T-1/#&  "
    with pytest.raises(FormatError) as info:
        codec.encode(BASE_0200 | {"37": "AB^12"})                 # an: letters, digits, spaces
    assert info.value.field == "37" and info.value.message == \
        "'^' is not allowed in a type an field (letters, digits and spaces only)"
    raw = codec.lenient().encode(BASE_0200 | {"41": "T\x01"})
    with pytest.raises(FormatError) as info:
        codec.decode(raw)
    assert info.value.field == "41" and info.value.offset == raw.index(b"T\x01") + 1
    assert "not a printable character (type ans)" in info.value.message
    assert codec.lenient().decode(raw)["41"] == "T\x01      "
    tiny = _spec("name: t\nfields:\n  3: {type: a, length: 3}\n  4: {type: ns, length: 3}\n"
                 "  5: {type: as, length: 3}\n")
    assert tiny.decode(tiny.encode({"t": "0100", "3": "AB", "4": "1-2", "5": "A-B"}))["3"] == "AB "
    for key, value in (("3", "A1"), ("4", "1A"), ("5", "A1")):
        with pytest.raises(FormatError) as info:
            tiny.encode({"t": "0100", key: value})
        assert info.value.field == key


# ------------------------------------------------------------------ track 2

@pytest.mark.parametrize("track, index, text", [
    ("4111111111111111=2512101", None, None),
    ("4111111111111111D25121011234", None, None),
    ("4111111111111111=", 17, "YYMM"),
    ("=2512101", 0, "card number"),
    ("41111111111111111111=2512101", 19, "at most 19"),
    ("4111111111111111=2513101", 19, "month 13"),
    ("4111111111111111=25121", 21, "service code"),
    ("4111111111111111=2512101:", 24, "discretionary"),
    ("4111111111111111", 16, "separator"),
])
def test_track2_structure(track: str, index: int | None, text: str | None) -> None:
    got = track2_check(track)
    if index is None:
        assert got is None
    else:
        assert got is not None and got[0] == index and text in got[1]


def test_track2_on_the_wire() -> None:
    for spec in (ASCII, "iso8583_1987_bcd"):
        codec = codec_for(spec)
        values = BASE_0200 | {"35": "4111111111111111=25121010000000"}
        assert codec.decode(codec.encode(values))["35"] == values["35"]
        with pytest.raises(FormatError) as info:
            codec.encode(BASE_0200 | {"35": "4111=25"})
        assert info.value.field == "35" and "YYMM" in info.value.message
    ascii_codec = codec_for(ASCII)
    raw = ascii_codec.lenient().encode(BASE_0200 | {"35": "4111111111111111=2599101"})
    with pytest.raises(FormatError) as info:
        ascii_codec.decode(raw)
    # DE 35 is classified pan/secret: the position is named, the expiry date is not echoed
    assert info.value.offset == raw.index(b"4111111111111111=") + 19
    assert "expiry date (positions 18-21) has a month outside 01-12" in info.value.message
    assert "99" not in info.value.message and "4111" not in info.value.message


# ------------------------------------------------------------------ message rules

@pytest.mark.parametrize("values, field, message", [
    ({"t": "0400"} | {k: v for k, v in BASE_0200.items() if k != "t"}, "90",
     "MTI 0400 (Reversal request): mandatory field 90 (Original data elements) is missing (rule: mandatory)"),
    ({k: v for k, v in BASE_0200.items() if k != "2"}, "2",
     "MTI 0200 (Financial transaction request): field 2 (Primary account number (PAN)) is missing; it is "
     "required when none of fields 35, 45 are present (rule: conditional)"),
    (BASE_0200 | {"t": "0110", "39": "00"}, "38",
     "MTI 0110 (Authorization response): field 38 (Authorization identification response) is missing; it is "
     "required when field 39 is '00' (rule: conditional)"),
    (BASE_0200 | {"t": "0210", "39": "00", "52": "0123456789ABCDEF"}, "52",
     "MTI 0210 (Financial transaction response): field 52 (Personal identification number data) must not be "
     "present (rule: forbidden)"),
])
def test_message_rules_name_mti_field_and_rule(values: dict, field: str, message: str) -> None:
    codec = codec_for(ASCII)
    with pytest.raises(FormatError) as info:
        codec.encode(values)
    assert info.value.field == field and info.value.message == message and info.value.hint
    raw = codec.lenient().encode(values)
    with pytest.raises(FormatError) as info:
        codec.decode(raw)
    assert info.value.field == field and info.value.message == message and info.value.offset == 4
    assert codec.lenient().decode(raw) == values


def test_message_rules_pass_when_satisfied() -> None:
    codec = codec_for(ASCII)
    track_only = {k: v for k, v in BASE_0200.items() if k != "2"} | {"35": "4111111111111111=2512101"}
    assert codec.decode(codec.encode(track_only)) == track_only             # 2 unless 35
    declined = BASE_0200 | {"t": "0110", "39": "05"}
    assert codec.decode(codec.encode(declined)) == declined                 # 38 only when 39 = 00
    echo = {"t": "0800", "7": "0209130746", "11": "000001", "70": "301"}
    assert codec.decode(codec.encode(echo)) == echo
    odd = {"t": "0600", "11": "000001"}                                      # no rules for 0600
    assert codec.decode(codec.encode(odd)) == odd


def test_closed_rule_and_present_condition() -> None:
    codec = _spec("""name: t
fields:
  11: {type: n, length: 6}
  39: {type: an, length: 2}
  52: {type: b, length: 8}
  53: {type: n, length: 16}
messages:
  "0800":
    mandatory: [11]
    optional: [39, 52]
    conditional:
      - {field: 53, when: {52: present}}
    closed: true
""")
    ok = {"t": "0800", "11": "000001", "52": "00" * 8, "53": "0" * 16}
    assert codec.decode(codec.encode(ok)) == ok
    with pytest.raises(FormatError, match="required when field 52 is present"):
        codec.encode({"t": "0800", "11": "000001", "52": "00" * 8})
    spec, _ = parse_spec_text("name: t\nfields:\n  11: {type: n, length: 6}\n  12: {type: n, length: 6}\n"
                              "messages:\n  '0800': {mandatory: [11], closed: true}\n")
    assert spec is not None
    with pytest.raises(FormatError) as info:
        Iso8583Codec(spec).encode({"t": "0800", "11": "000001", "12": "000000"})
    assert info.value.field == "12" and "(rule: closed)" in info.value.message


BAD_RULE_SPECS = [
    ("fields:\n  7: {type: n, length: 10, format: MMDDhh}\n", 3, "has 6 digits, the field is 10 long"),
    ("fields:\n  7: {type: n, length: 10, format: MMDDxx}\n", 3, "unknown format"),
    ("fields:\n  7: {type: an, length: 4, format: MMDD}\n", 3, "needs type n"),
    ("fields:\n  7: {type: n, length: 4, format: track2}\n", 3, "track2 needs type z"),
    ("fields:\n  7: {type: n, length: 4}\nmessages:\n  200: {mandatory: [7]}\n", 5, "not a 4-digit MTI"),
    ("fields:\n  7: {type: n, length: 4}\nmessages:\n  '0200': {mandatory: [8]}\n", 5, "field 8 is not defined"),
    ("fields:\n  7: {type: n, length: 4}\nmessages:\n  '0200': {mandatory: [7], forbidden: [7]}\n", 5,
     "both mandatory and forbidden"),
    ("fields:\n  7: {type: n, length: 4}\nmessages:\n  '0200':\n    conditional:\n      - {field: 7}\n", 7,
     "needs 'when' or 'unless'"),
    ("fields:\n  7: {type: n, length: 4}\nmessages:\n  '0200': {must: [7]}\n", 5, "unknown key 'must'"),
    ("fields:\n  7: {type: n, length: 4}\nsecondary_bitmap: sometimes\n", 4, "auto or always"),
    ("fields:\n  65: {type: n, length: 4}\ntertiary_bitmap: true\n", 3, "tertiary bitmap"),
]


@pytest.mark.parametrize("body, line, message", BAD_RULE_SPECS)
def test_bad_formats_and_rules_report_line(body: str, line: int, message: str, tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text("name: net\n" + body)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in info.value.message
    assert info.value.line == line and str(info.value).startswith(f"{path}:{line}:")


# ------------------------------------------------------------------ bitmaps and length prefixes

TERTIARY = """name: t3
tertiary_bitmap: true
fields:
  3: {type: n, length: 6}
  70: {type: n, length: 3}
  130: {type: ans, length: LL, max: 20}
  192: {type: n, length: 2}
"""


def test_tertiary_bitmap() -> None:
    codec = _spec(TERTIARY)
    values = {"t": "0800", "3": "000000", "70": "301", "130": "third", "192": "42"}
    raw = codec.encode(values)
    primary, secondary, tertiary = raw[4:20], raw[20:36], raw[36:52]
    assert primary == b"A000000000000000"            # bits 1 and 3
    assert secondary == b"8400000000000000"          # bit 65 (tertiary follows) and bit 70
    assert tertiary == b"4000000000000001"           # bits 130 and 192
    assert raw[52:] == b"000000" + b"301" + b"05third" + b"42"
    assert codec.decode(raw) == values
    two = {"t": "0800", "70": "301"}
    assert codec.encode(two) == b"0800" + b"8000000000000000" + b"0400000000000000" + b"301"
    assert codec.decode(codec.encode(two)) == two
    with pytest.raises(FormatError, match="ends inside the tertiary bitmap"):
        codec.decode(raw[:40])


def test_secondary_bitmap_modes() -> None:
    base = "name: s\n{}fields:\n  3: {{type: n, length: 6}}\n  70: {{type: n, length: 3}}\n"
    auto = _spec(base.format("secondary_bitmap: auto\n"))
    always = _spec(base.format("secondary_bitmap: always\n"))
    assert auto.spec.secondary_bitmap and not auto.spec.secondary_always and always.spec.secondary_always
    values = {"t": "0800", "3": "000000"}
    assert auto.encode(values) == b"0800" + b"2000000000000000" + b"000000"
    raw = always.encode(values)
    assert raw == b"0800" + b"A000000000000000" + b"0000000000000000" + b"000000"
    assert always.decode(raw) == values and always.encode(dict(always.decode(raw))) == raw
    assert auto.encode(auto.decode(raw)) == raw        # a decoded message remembers its all-zero bitmap


def test_hex_length_prefix() -> None:
    codec = _spec("name: h\nfields:\n  32: {type: n, length: LL, max: 11, length_encoding: hex}\n"
                  "  48: {type: ans, length: LLL, max: 999, length_encoding: hex}\n")
    raw = codec.encode({"t": "0800", "32": "12345678901", "48": "x" * 300})
    assert raw[20:32] == b"B12345678901"                # 1 hex digit: max 11 = "B"
    assert raw[32:35] == b"12C"                         # 3 hex digits: max 999 = "3E7"
    assert codec.decode(raw)["48"] == "x" * 300
    assert codec.decode(raw[:20] + b"b12345678901" + raw[32:])["32"] == "12345678901"   # lower case read
    with pytest.raises(FormatError) as info:
        codec.decode(raw[:20] + b"G" + raw[21:])
    assert info.value.field == "32" and info.value.offset == 20 and "not 1 hex digit" in info.value.message


# ------------------------------------------------------------------ component option

def test_component_validate_option(tmp_path: Path) -> None:
    assert COMPONENT.option("validate") is not None and COMPONENT.option("validate").default is True
    spec = str(tmp_path / "iso8583_1987_ascii")
    strict = COMPONENT.build(FormatDecl("Auth", "iso8583", {"spec": spec}))
    lenient = COMPONENT.build(FormatDecl("Any", "iso8583", {"spec": spec, "validate": False}))
    assert strict.validate and not lenient.validate and lenient.name == "Any"
    assert codec_for(ASCII, validate=False) is codec_for(ASCII, validate=False)
    assert not codec_for(ASCII, validate=False).validate and codec_for(ASCII).validate
    raw = lenient.encode({"t": "0200", "13": "9099"})
    assert lenient.decode(raw)["13"] == "9099"
    with pytest.raises(FormatError, match="month 90"):
        strict.decode(raw)
