"""Copybook parser, layout, number codecs, records and the format component."""
from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest

from dsl.ir import FormatDecl
from formats.copybook import CopybookCodec, CopybookOptions
from formats.copybook import component
from formats.copybook.numbers import float_to_ibm, ibm_to_float
from formats.errors import FormatError, SpecError

PAYMENT = """\
000100 01  PAYMENT.                                                     PAY00010
000200     05  TXN-CODE          PIC X(4).                              PAY00020
000300         88  IS-PAYMENT    VALUE 'BP01' 'BP02'.
000400         88  IS-ENQUIRY    VALUE 'BQ01'.
000500*    a comment line, ignored
000600     05  AMOUNT            PIC S9(7)V99 COMP-3.
000700     05  FEE               PIC S9(3)V99 SIGN LEADING SEPARATE.
000800     05  COUNT-X           PIC 9(2).
000900     05  ITEMS OCCURS 0 TO 5 TIMES DEPENDING ON COUNT-X.
001000         10  ITEM-ID       PIC X(3).
001100         10  ITEM-AMT      PIC S9(5)V99 COMP SYNC.
001200     05  RATE              COMP-2.
001300     05  RAW-DATE          PIC 9(8).
001400     05  DATE-PARTS REDEFINES RAW-DATE.
001500         10  YYYY          PIC 9(4).
001600         10  MMDD          PIC 9(4).
001700     05  FILLER            PIC X(2) VALUE SPACES.
001800 66  WHOLE-DATE RENAMES RAW-DATE.
"""


def codec(**kw) -> CopybookCodec:
    record = kw.pop("record", "fixed")
    return CopybookCodec.from_text(PAYMENT, CopybookOptions(**kw), path="PAYMENT.cpy", record=record)


def sample() -> dict:
    return {"TXN_CODE": "BP01", "AMOUNT": Decimal("1234.50"), "FEE": Decimal("-1.25"),
            "ITEMS": [{"ITEM_ID": "A1", "ITEM_AMT": Decimal("10.00")}, {"ITEM_ID": "B2", "ITEM_AMT": Decimal("-0.01")}],
            "RATE": 0.5, "RAW_DATE": 20261130}


def test_layout_sizes_follow_the_copybook() -> None:
    c = codec()
    # 4 + 5 (COMP-3 9 digits) + 6 (5 digits + separate sign) + 2 + 5 * (3 + 4) + 8 + 8 + 2
    assert c.size == 4 + 5 + 6 + 2 + 35 + 8 + 8 + 2


def test_decode_encode_round_trip_with_conditions_redefines_and_odo() -> None:
    c = codec()
    raw = c.encode(sample())
    v = c.decode(raw)
    assert v["AMOUNT"] == Decimal("1234.50") and str(v["AMOUNT"]) == "1234.50"
    assert v["FEE"] == Decimal("-1.25")
    assert v["COUNT_X"] == 2 and [i["ITEM_ID"] for i in v["ITEMS"]] == ["A1", "B2"]
    assert v["ITEMS"][1]["ITEM_AMT"] == Decimal("-0.01")
    assert v["IS_PAYMENT"] is True and v["IS_ENQUIRY"] is False
    assert v["DATE_PARTS"] == {"YYYY": 2026, "MMDD": 1130}
    assert v["RATE"] == 0.5
    assert c.encode(v) == raw


def test_packed_and_zoned_bytes_are_exact() -> None:
    c = codec()
    raw = c.encode(sample())
    assert raw[4:9] == bytes.fromhex("000123450c")
    assert raw[9:15] == b"\x60" + "00125".encode("cp037")          # '-' then digits
    raw2 = bytearray(raw)
    raw2[4:9] = bytes.fromhex("000123450d")
    assert c.decode(bytes(raw2))["AMOUNT"] == Decimal("-1234.50")


def test_bad_packed_sign_names_field_and_offset() -> None:
    c = codec()
    raw = bytearray(c.encode(sample()))
    raw[8] = 0x17                                  # sign nibble 7
    with pytest.raises(FormatError) as ei:
        c.decode(bytes(raw))
    assert ei.value.field == "AMOUNT" and ei.value.offset == 8     # the byte holding the sign nibble
    assert "sign nibble '7'" in ei.value.message and "expected C, F, A or E (+) or D, B (-)" in ei.value.message


def test_odo_count_above_maximum_is_an_error_not_a_huge_list() -> None:
    c = codec()
    raw = bytearray(c.encode(sample()))
    raw[15:17] = "09".encode("cp037")
    with pytest.raises(FormatError) as ei:
        c.decode(bytes(raw))
    assert "outside OCCURS 0 TO 5" in ei.value.message and ei.value.field == "ITEMS[]"


def test_wrong_record_length_is_reported() -> None:
    with pytest.raises(FormatError) as ei:
        codec().decode(b"\x40" * 10)
    assert "describes 70" in ei.value.message


def test_ascii_overpunch_and_trim_options() -> None:
    cb = "       01 R.\n          05 N PIC S9(3).\n          05 T PIC X(5).\n"
    c = CopybookCodec.from_text(cb, CopybookOptions(encoding="ascii", trim="both"))
    assert c.decode(b"12J  ab ") == {"N": -121, "T": "ab"}
    assert c.decode(b"12{ab   ") == {"N": 120, "T": "ab"}
    none = CopybookCodec.from_text(cb, CopybookOptions(encoding="ascii", trim="none"))
    assert none.decode(b"12J  ab ")["T"] == "  ab "


@pytest.mark.parametrize("x", [0.0, 1.0, -118.625, 0.15625, 3.0503932576762e9, 1e-20])
def test_ibm_float_round_trip(x: float) -> None:
    assert ibm_to_float(float_to_ibm(x, 8)) == pytest.approx(x, rel=1e-15)
    assert ibm_to_float(bytes.fromhex("C276A000")) == -118.625      # IBM's own example


def test_rdw_big_and_little_endian_files() -> None:
    c = codec(record="rdw")
    rec = c.encode(sample())
    data = c.frame(rec) * 3
    assert [n for n, _o, v in c.iter_records(io.BytesIO(data))] == [1, 2, 3]
    le = codec(record="rdw_le")
    assert le.frame(rec)[:4] == b"\0\0" + (len(rec) + 4).to_bytes(2, "little")
    assert all(isinstance(v, dict) for _n, _o, v in le.iter_records(le.frame(rec) * 2))


def test_iter_records_reports_a_bad_record_and_goes_on() -> None:
    c = codec()
    good = c.encode(sample())
    bad = bytearray(good)
    bad[8] = 0x17
    out = list(c.iter_records(good + bytes(bad) + good))
    assert isinstance(out[0][2], dict) and isinstance(out[2][2], dict)
    err = out[1][2]
    assert isinstance(err, FormatError) and err.record == 2 and err.offset == len(good) + 8
    assert "record 2, byte 78, field AMOUNT" in str(err)      # the byte holding the bad sign nibble
    with pytest.raises(FormatError):
        list(c.iter_records(good + bytes(bad), strict=True))


def test_torn_rdw_is_a_framing_error() -> None:
    c = codec(record="rdw")
    out = list(c.iter_records(b"\x00\x02\0\0abc"))
    assert isinstance(out[-1][2], FormatError) and "RDW" in out[-1][2].message


@pytest.mark.parametrize("text,where,words", [
    ("       01 A.\n          05 B PIC X(3) FOO.\n", (2, 25), "unexpected 'FOO'"),
    ("       01 A.\n          05 B PIC Q(3).\n", (2, 20), "unexpected symbol 'Q'"),
    ("       01 A.\n          05 B PIC X(3) COMP-3.\n", (2, 20), "alphanumeric"),
    ("       01 A.\n          05 B PIC X(3).\n          05 C REDEFINES Z PIC X.\n", (3, 11), "REDEFINES Z"),
    ("       01 A.\n          05 N PIC X.\n          05 T OCCURS 3 DEPENDING ON M PIC X.\n", (3, 11), "M"),
    ("       01 A.\n          05 B PIC X(3)\n", (2, 24), "missing period: the entry `05 B PIC X(3)`"),
    ("       01 A.\n          05 G.\n          05 C PIC X.\n", (2, 11), "neither a PIC"),
])
def test_bad_copybooks_raise_spec_error_with_position(text: str, where: tuple[int, int], words: str) -> None:
    with pytest.raises(SpecError) as ei:
        CopybookCodec.from_text(text, path="BAD.cpy")
    e = ei.value
    assert (e.path, e.line, e.col) == ("BAD.cpy", *where), str(e)
    assert words in str(e)


def test_component_builds_checks_and_lists_fields(tmp_path: Path) -> None:
    cpy = tmp_path / "PAYMENT.cpy"
    cpy.write_text(PAYMENT)
    decl = FormatDecl("Pay", "copybook", {"path": str(cpy), "encoding": "cp1047", "record": "fixed"})
    assert component.COMPONENT.name == "copybook" and component.COMPONENT.positional == "path"
    c = component.build(decl)
    assert c.name == "Pay" and c.decode(c.encode(sample()))["TXN_CODE"] == "BP01"
    assert component.check(decl) == []
    assert component.fields(decl)[:3] == ["TXN_CODE", "AMOUNT", "FEE"]
    bad = tmp_path / "BAD.cpy"
    bad.write_text("       01 A.\n          05 B PIC X(3) FOO.\n")
    errs = component.check(FormatDecl("Bad", "copybook", {"path": str(bad)}))
    assert len(errs) == 1 and (errs[0].path, errs[0].line, errs[0].col) == (str(bad), 2, 25)


def test_every_documented_encoding_decodes() -> None:
    cb = "       01 R.\n          05 T PIC X(4).\n          05 N PIC 9(2).\n"
    for page in component.ENCODINGS:
        c = CopybookCodec.from_text(cb, CopybookOptions(encoding=page))
        assert c.decode(c.encode({"T": "AB", "N": 7})) == {"T": "AB", "N": 7}, page
