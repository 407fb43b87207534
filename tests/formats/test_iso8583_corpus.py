"""ISO 8583 conformance against /work/shared/corpus/iso8583 (see each case's SOURCE.txt)."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from formats.errors import FormatError
from formats.iso8583 import Iso8583Codec, codec_for
from formats.iso8583.moov import load_moov_spec

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "iso8583"
JMETER = CORPUS / "jmeter_iso8583_jpos_traces"
REVERSAL = CORPUS / "moov_io_reversal_0400"
MOOV = CORPUS / "moov_io_messages_no_expected"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"conformance corpus not found at {CORPUS.resolve()} "
                                "(CI has <repo>/../shared/corpus; clone it beside the repo to run these)")


_FIELD = re.compile(r'<field id="(\d+)" value="([^"]*)"(?: type="(\w+)")?/>')
_TLV = re.compile(r'<([0-9A-F]+)><field id="\d+" value="([^"]*)"(?: type="(\w+)")?/></\1>')


def _jpos_expected(path: Path) -> dict:
    """jPOS <isomsg> dumps use EMV tags as element names (<9F02>), which is not XML: read by pattern."""
    text = path.read_text()
    out: dict = {}
    head, _, rest = text.partition('<isomsg id="43">')
    sub43, _, rest = rest.partition("</isomsg>")
    sub55, _, tail = rest.partition('<isomsg id="55">')[2].partition("</isomsg>")
    for part in (head, tail):
        for fid, value, _kind in _FIELD.findall(part):
            out[fid] = value
    out["43"] = {fid: value for fid, value, _ in _FIELD.findall(sub43)}
    out["55"] = {tag: (value, kind or None) for tag, value, kind in _TLV.findall(sub55)}
    return out


# The jPOS demo messages carry neither DE 3 (processing code) nor DE 4 (amount; it travels in EMV 9F02
# only), which ISO 8583:1987 makes mandatory in 0100/0110.  jPOS's packager applies no message rules;
# the same lenient reading is ours with validate = false.  Strict decoding says what is missing.

@pytest.mark.parametrize("name", ["sample1_request_0100", "sample1_response_0110", "sample2_request_0100",
                                  "sample2_response_0110"])
def test_jmeter_messages_break_the_1987_message_rules(name: str) -> None:
    raw = (JMETER / "input" / f"{name}.bin").read_bytes()
    with pytest.raises(FormatError) as info:
        codec_for("iso8583_1987_ascii").decode(raw)
    mti = name[-4:]
    assert info.value.field == "3" and info.value.offset == 4
    assert info.value.message.startswith(f"MTI {mti} (Authorization ")
    assert "mandatory field 3 (Processing code) is missing (rule: mandatory)" in info.value.message


@pytest.mark.parametrize("name", ["sample1_response_0110", "sample2_response_0110"])
def test_jmeter_responses_decode_like_jpos(name: str) -> None:
    codec = codec_for("iso8583_1987_ascii").lenient()   # the demo packager is plain ISO 8583:1987 ASCII
    raw = (JMETER / "input" / f"{name}.bin").read_bytes()
    got = codec.decode(raw)
    want = _jpos_expected(JMETER / "expected" / f"{name}.isomsg.xml")
    assert got["t"] == want.pop("0")
    subs43 = want.pop("43")
    assert got["43"] == {"name": subs43["1"], "city": subs43["2"], "country": subs43["3"]}
    tlv = want.pop("55")
    assert list(got["55"]) == list(tlv)          # same tags, same order
    for tag, (value, kind) in tlv.items():
        if kind == "binary" or tag in ("5A", "9A"):
            assert got["55"][tag] == value, tag
        else:  # jPOS renders EMV numeric (n) tags as numbers: "000000001000" -> "1000"
            assert int(got["55"][tag]) == int(value), tag
    for key, value in want.items():
        assert got[key] == value, key
    assert set(got) == {"t", "43", "55", *want}
    assert codec.encode(got) == raw


@pytest.mark.parametrize("name", ["sample1_request_0100", "sample2_request_0100"])
def test_jmeter_requests_encode_from_pre_pack_values(name: str) -> None:
    """The request dumps are the values handed to jPOS before packing (unpadded subfields,
    EMV 5F2A given as '0554 ' and packed as 3 bytes): encoding the same values gives the same bytes."""
    codec = codec_for("iso8583_1987_ascii").lenient()
    raw = (JMETER / "input" / f"{name}.bin").read_bytes()
    want = _jpos_expected(JMETER / "expected" / f"{name}.isomsg.xml")
    values: dict = {"t": want.pop("0")}
    s43 = want.pop("43")
    values["43"] = {"name": s43["1"], "city": s43["2"], "country": s43["3"]}
    tlv = want.pop("55")
    decoded = codec.decode(raw)
    values["55"] = {}
    for tag, (value, kind) in tlv.items():
        if kind == "binary" or tag in ("5A", "9A"):
            values["55"][tag] = value
        elif tag == "5F2A":   # the source's quirk: packed as 3 bytes 00 05 54
            values["55"][tag] = "000554"
        else:
            values["55"][tag] = value
    values.update(want)
    assert values["55"] == decoded["55"]
    assert codec.encode(values) == raw
    assert codec.decode(codec.encode(values)) == decoded


@pytest.fixture(scope="module")
def moov_codec() -> Iso8583Codec:
    return Iso8583Codec(load_moov_spec(REVERSAL / "spec" / "specification_ver_1987.json"))


def test_moov_reversal_matches_json_and_xml(moov_codec: Iso8583Codec) -> None:
    raw = (REVERSAL / "input" / "iso_reversal_message.dat").read_bytes()
    got = moov_codec.decode(raw)
    want = json.loads((REVERSAL / "expected" / "iso_reversal_message.json").read_text())
    assert got["t"] == want["mti"]
    elements = dict(want["elements"])
    secondary = elements.pop("1")
    assert {k: v for k, v in got.items() if k != "t"} == elements
    # the bitmaps: every present field's bit, and nothing else
    bits = want["bitmap"] + secondary
    assert {str(i + 1) for i, b in enumerate(bits) if b == "1"} - {"1"} == set(elements)
    xml = ET.parse(REVERSAL / "expected" / "iso_reversal_message.xml").getroot()
    assert xml.findtext("MTI") == got["t"]
    for el in xml.find("DataElements"):
        if el.get("Number") != "1":
            assert got[el.get("Number")] == (el.text or "")
    assert moov_codec.encode(got) == raw


WELL_FORMED = [
    "financial_transaction_message", "financial_transaction_message_response", "network_management_message",
    "network_management_message_response", "iso_reversal_message_response", "iso_reversal_repeat_message",
    "iso_reversal_repeat_message_response", "iso_reversal_message_advice",
    "network_management_message_with_track", "message_with_indicate_numeric",
]

# per-field encodings the data files need but do not state (SOURCE.txt): our reading of each
VARIANTS = {
    "message_with_character_ebcdic_encoding": ({42: {"data_encoding": "ebcdic"}}, {"42": "ABCDEFGHIJKLMNO"}),
    "message_with_hex_rbcd": ({48: {"length_encoding": "bcd"}}, {"48": "00000000"}),
    "message_with_hex_bcd": ({48: {"length_encoding": "bcd", "length_pad": "right"}}, {"48": "00000000"}),
    "message_with_number_bcd_encoding": ({n: {"data_encoding": "bcd"} for n in (7, 11, 12)},
                                         {"7": "0420090613", "11": "900001", "12": "090613"}),
    # moov v0 "HEX" lengths: as many hex digits as the max needs (n..11 -> 1 digit): "B" = 11 digits follow
    "message_with_hex_length": ({32: {"length_encoding": "hex"}}, {"32": "00000000000"}),
}

# name -> (field, byte offset, the error message)
NEGATIVE = {
    "error_message": ("55", 182, "length prefix says 30, but only 21 bytes are left"),
    "message_with_error_indicate_numeric": ("28", 66, "'F0000000' is not C/D followed by digits (type x+n)"),
    "network_management_message_with_error_track": (
        "35", 68, "'I' is not allowed in track 2 data (0-9, '=', A-F, :;<>?)"),
    "attributes_data_elements": ("t", 0, r"""MTI '{\n\t"' is not 4 digits (ascii)"""),   # a JSON spec, not a message
    "iso_reversal_message_error_date": ("13", 97, "'9099' is not a valid MMDD: month 90 is outside 01-12"),
    "iso_reversal_message_advice_missing_field": (
        "32", 4, "MTI 0420 (Reversal advice): mandatory field 32 (Acquiring institution identification code) "
                 "is missing (rule: mandatory)"),
    "iso_reversal_message_advice_unexpected_field": (
        "13", 4, "MTI 0420 (Reversal advice): unexpected field 13 (Local transaction date (MMDD)) (also 14); "
                 "a 0420 carries only fields 2, 3, 4, 7, 11, 12, 25, 32 (rule: closed)"),
}
# what the lenient reader (validate = false) reads from the negatives that are well-formed on the wire
LENIENT = {"iso_reversal_message_error_date": {"13": "9099"},
           "iso_reversal_message_advice_missing_field": {"25": "33"},
           "iso_reversal_message_advice_unexpected_field": {"13": "0909", "14": "0809"}}


def test_corpus_case_lists_cover_every_file() -> None:
    names = {p.stem for p in (MOOV / "input").glob("*.dat")}
    assert len(names) == 22
    assert names == set(WELL_FORMED) | set(VARIANTS) | set(NEGATIVE)


@pytest.mark.parametrize("name", WELL_FORMED)
def test_moov_messages_decode_and_round_trip(name: str, moov_codec: Iso8583Codec) -> None:
    raw = (MOOV / "input" / f"{name}.dat").read_bytes()
    values = moov_codec.decode(raw)
    assert values["t"].isdigit()
    assert moov_codec.encode(values) == raw
    assert moov_codec.decode(moov_codec.encode(dict(values) | {})) == values


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_moov_encoding_variants(name: str) -> None:
    patch, expected = VARIANTS[name]
    codec = Iso8583Codec(load_moov_spec(MOOV / "spec" / "specification_ver_1987.json", fields=patch))
    raw = (MOOV / "input" / f"{name}.dat").read_bytes()
    values = codec.decode(raw)
    for key, value in expected.items():
        assert values[key] == value
    assert codec.encode(values) == raw          # incl. the all-zero secondary bitmap these carry


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_moov_negative_messages_are_rejected_with_place(name: str, moov_codec: Iso8583Codec) -> None:
    field, offset, message = NEGATIVE[name]
    raw = (MOOV / "input" / f"{name}.dat").read_bytes()
    with pytest.raises(FormatError) as info:
        moov_codec.decode(raw)
    assert info.value.field == field
    assert info.value.offset == offset
    assert info.value.message == message
    assert str(info.value).startswith(f"byte {offset}, field {field}: ")
    with pytest.raises(FormatError) as again:     # the encoder refuses the same content
        moov_codec.encode(moov_codec.lenient().decode(raw)) if name in LENIENT else moov_codec.decode(raw)
    assert again.value.field == field


@pytest.mark.parametrize("name", sorted(LENIENT))
def test_lenient_reader_reads_rule_breaking_messages(name: str, moov_codec: Iso8583Codec) -> None:
    lenient = moov_codec.lenient()
    assert lenient.validate is False and moov_codec.validate is True
    raw = (MOOV / "input" / f"{name}.dat").read_bytes()
    values = lenient.decode(raw)
    for key, value in LENIENT[name].items():
        assert values[key] == value
    assert lenient.encode(values) == raw


def test_moov_rules_can_be_left_out() -> None:
    codec = Iso8583Codec(load_moov_spec(MOOV / "spec" / "specification_ver_1987.json", rules=False))
    raw = (MOOV / "input" / "iso_reversal_message_advice_missing_field.dat").read_bytes()
    assert "32" not in codec.decode(raw)          # no rules: only the date/class checks remain
    with pytest.raises(FormatError, match="month 90"):
        codec.decode((MOOV / "input" / "iso_reversal_message_error_date.dat").read_bytes())


@pytest.mark.parametrize("name", ["message_with_indicate_numeric", "network_management_message_with_track"])
def test_secondary_bitmap_always_reencodes_plain_dicts(name: str) -> None:
    """These samples carry an all-zero secondary bitmap: `secondary_bitmap: always` writes one for a plain dict."""
    raw = (MOOV / "input" / f"{name}.dat").read_bytes()
    spec = MOOV / "spec" / "specification_ver_1987.json"
    always = Iso8583Codec(load_moov_spec(spec, secondary_bitmap="always"))
    auto = Iso8583Codec(load_moov_spec(spec))
    values = dict(auto.decode(raw))
    assert always.encode(values) == raw
    if "70" not in values:
        assert auto.encode(values) != raw and len(auto.encode(values)) == len(raw) - 16


def test_both_moov_specs_agree(moov_codec: Iso8583Codec) -> None:
    plain = Iso8583Codec(load_moov_spec(MOOV / "spec" / "specification_without_encoding_ver_1987.json"))
    raw = (REVERSAL / "input" / "iso_reversal_message.dat").read_bytes()
    assert plain.decode(raw) == moov_codec.decode(raw)
