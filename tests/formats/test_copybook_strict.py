"""Copybook records refused instead of guessed: unknown and missing keys on encode, RDW records
cut inside a field, spanned (VBS) RDW segments, bytes over 0x7F read as ascii."""
from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from formats.batchfile import split_records
from formats.copybook import CopybookCodec, CopybookOptions
from formats.errors import FormatError

PAY = """\
       01  PAY-REC.
           05  REC-TYPE        PIC X(2).
           05  ACCT-NO         PIC X(10).
           05  AMOUNT          PIC S9(9)V99 COMP-3.
           05  FEE             PIC S9(11)V99 COMP-3.
           05  COUNT-X         PIC 9(4) COMP.
           05  CCY             PIC X(3).
"""

VALUES = {"REC_TYPE": "PY", "ACCT_NO": "1234567890", "AMOUNT": Decimal("999.99"), "FEE": Decimal("15.00"),
          "COUNT_X": 3, "CCY": "EUR"}


def pay(record: str = "fixed", **kw) -> CopybookCodec:
    return CopybookCodec.from_text(PAY, CopybookOptions(**kw), path="PAY.cpy", record=record)


# ------------------------------------------------------------ encode: unknown and missing keys

@pytest.mark.parametrize("opts", [{}, {"missing_numbers": "error"}])
def test_a_misspelt_key_is_refused_with_did_you_mean_and_the_field_list(opts) -> None:
    c = pay(**opts)
    values = dict(VALUES)
    values["AMOUNTT"] = values.pop("AMOUNT")
    with pytest.raises(FormatError) as ei:
        c.encode(values)
    e = ei.value
    assert e.field == "AMOUNTT" and "no field 'AMOUNTT'" in e.message and "did you mean 'AMOUNT'" in e.message
    assert e.hint == "fields are: REC_TYPE, ACCT_NO, AMOUNT, FEE, COUNT_X, CCY"


def test_unknown_keys_in_groups_tables_and_segment_layouts_are_refused() -> None:
    cb = ("       01  R.\n           05  SEG  PIC X.\n           05  G.\n               10  A  PIC 9(3) COMP-3.\n"
          "           05  T OCCURS 2.\n               10  B  PIC X(2).\n"
          "           05  C REDEFINES T.\n               10  D  PIC X(4).\n")
    fast = CopybookCodec.from_text(cb)
    ref = CopybookCodec.from_text(cb, CopybookOptions(segment_field="SEG", segment_map={"X": "C"}))
    assert ref._encode_fast is None                      # the reference encoder's path
    for c in (fast, ref):
        with pytest.raises(FormatError) as ei:
            c.encode({"SEG": "X", "G": {"A": 1, "AA": 2}})
        assert ei.value.field == "G.AA" and "group G" in ei.value.message
        with pytest.raises(FormatError) as ei:
            c.encode({"SEG": "X", "G": {"A": 1}, "T": [{"B": "x"}, {"BB": "y"}]})
        # no offset: the key has no place in the record (it was T[1]'s start, read as "record byte 5"); the
        # field path names it, and bsp encode its column in the JSON line
        assert ei.value.field == "T[1].BB" and ei.value.offset is None
    assert fast.decode(fast.encode(fast.decode(fast.encode({"SEG": "X", "G": {"A": 5}}))))["G"] == {"A": 5}


def test_level_88_and_renames_keys_are_known() -> None:
    cb = ("       01  R.\n           05  K  PIC X(2).\n               88  IS-PAY VALUE 'PY'.\n"
          "           05  N  PIC 9(3) COMP-3.\n       66  ALIAS RENAMES N.\n")
    c = CopybookCodec.from_text(cb)
    v = c.decode(c.encode({"K": "PY", "N": 7}))
    assert v == {"K": "PY", "IS_PAY": True, "N": 7, "ALIAS": 7}
    assert c.encode(v) == c.encode({"IS_PAY": True, "ALIAS": 7})


def test_a_missing_binary_number_is_an_error_with_missing_numbers_error() -> None:
    c = pay(missing_numbers="error")
    for key, pic in (("AMOUNT", "PIC S9(9)V99 COMP-3"), ("COUNT_X", "PIC 9(4) COMP")):
        values = {k: v for k, v in VALUES.items() if k != key}
        with pytest.raises(FormatError) as ei:
            c.encode(values)
        assert ei.value.field == key and f"numeric field {key} ({pic}) is missing" in ei.value.message
    with pytest.raises(FormatError):
        c.encode({"REC_TYPE": "PY"})
    # null is a value (written as before); text may be left out
    assert c.decode(c.encode({**VALUES, "ACCT_NO": None, "CCY": None}))["ACCT_NO"] is None
    # the default keeps what reply bodies that leave the amount out rely on
    assert pay().decode(pay().encode({"REC_TYPE": "PY"}))["AMOUNT"] == Decimal("0.00")


def test_missing_numbers_spares_fillers_counters_redefines_and_88_fills() -> None:
    cb = ("       01  R.\n           05  FILLER  PIC S9(3) COMP-3.\n           05  CNT  PIC 9(2) COMP.\n"
          "           05  T OCCURS 0 TO 3 DEPENDING ON CNT.\n               10  AMT  PIC S9(5)V99 COMP-3.\n"
          "           05  RAW  PIC X(4).\n           05  NUM REDEFINES RAW PIC 9(8) COMP.\n"
          "           05  ST  PIC 9 COMP-3.\n               88  ST-OK VALUE 1.\n"
          "           05  ZONED  PIC 9(3).\n")
    c = CopybookCodec.from_text(cb, CopybookOptions(missing_numbers="error"))
    v = c.decode(c.encode({"T": [{"AMT": Decimal("1.50")}], "RAW": "ABCD", "ST_OK": True}))
    assert v["CNT"] == 1 and v["T"] == [{"AMT": Decimal("1.50")}] and v["ST"] == 1
    assert v["ZONED"] is None                  # DISPLAY left out: spaces, read back as null (no number made up)
    with pytest.raises(FormatError) as ei:
        c.encode({"T": [{}], "ST": 1})
    assert ei.value.field == "T[0].AMT"
    with pytest.raises(FormatError) as ei:
        c.encode({"T": []})
    assert ei.value.field == "ST"


# ------------------------------------------------------------ RDW records shorter than the copybook

def _rdw(rec: bytes) -> bytes:
    return struct.pack(">HH", len(rec) + 4, 0) + rec


def test_an_rdw_record_ending_inside_a_number_is_an_error_not_a_padded_value() -> None:
    c = pay("rdw")
    rec = c.encode(VALUES)
    assert len(rec) == 30
    ((no, off, err),) = list(c.iter_records(_rdw(rec[:26])))
    assert isinstance(err, FormatError) and no == 1 and err.field == "COUNT_X"
    assert "record is 26 bytes and ends inside COUNT_X (bytes 25-26 of the record)" in err.message
    assert err.offset == 4 + 25
    ((_n, _o, err),) = list(c.iter_records(_rdw(rec[:20])))
    assert err.field == "FEE" and "ends inside FEE (bytes 18-24 of the record)" in err.message
    assert "sign nibble" not in str(err)


def test_fields_wholly_past_an_rdw_record_end_are_null() -> None:
    c = pay("rdw")
    rec = c.encode(VALUES)
    got = [v for _n, _o, v in c.iter_records(_rdw(rec[:25]) + _rdw(rec[:27]) + _rdw(rec[:28]) + _rdw(rec))]
    assert got[0] == {**VALUES, "COUNT_X": None, "CCY": None}
    assert got[1] == {**VALUES, "CCY": None}
    assert got[2] == {**VALUES, "CCY": "E"}     # PIC X cut short keeps the characters present
    assert got[3] == VALUES


def test_a_cut_redefines_member_is_null_and_the_chosen_segment_is_strict() -> None:
    cb = ("       01  R.\n           05  SEG  PIC X.\n           05  A.\n               10  TXT  PIC X(4).\n"
          "           05  B REDEFINES A.\n               10  N  PIC 9(7) COMP.\n")
    c = CopybookCodec.from_text(cb, record="rdw")
    rec = b"\x40\xc1\xc2\xc3"                               # 3 of A's 4 bytes
    ((_n, _o, v),) = list(c.iter_records(_rdw(rec)))
    assert v == {"SEG": "", "A": {"TXT": "ABC"}, "B": {"N": None}}
    seg = CopybookCodec.from_text(cb, CopybookOptions(segment_field="SEG", segment_map={"B": "B"}), record="rdw")
    ((_n, _o, err),) = list(seg.iter_records(_rdw(b"\xc2\x00\x00\x01")))
    assert isinstance(err, FormatError) and "ends inside B.N (bytes 1-4 of the record)" in err.message


# ------------------------------------------------------------ spanned RDW segments

@pytest.mark.parametrize("little", [False, True])
def test_spanned_vbs_segments_are_refused(little: bool) -> None:
    c = pay("rdw_le" if little else "rdw")
    rec = c.encode(VALUES)
    head = (lambda code: b"\0" + bytes([code]) + (34).to_bytes(2, "little")) if little else \
        (lambda code: struct.pack(">HBB", 34, code, 0))
    out = list(c.iter_records(head(1) + rec + head(2) + rec))
    assert len(out) == 1 and isinstance(out[0][2], FormatError)
    where = "bytes 0-1 are X'0001'" if little else "bytes 2-3 are X'0100'"
    assert f"RDW {where}: spanned record segments (RECFM=VBS) are not supported" in out[0][2].message
    with pytest.raises(FormatError) as ei:
        split_records(head(3) + rec, "rdw_le" if little else "rdw")
    assert "spanned" in ei.value.message


def test_other_reserved_rdw_bytes_are_refused() -> None:
    c = pay("rdw")
    rec = c.encode(VALUES)
    ((_n, _o, err),) = list(c.iter_records(struct.pack(">HBB", 34, 0, 7) + rec))
    assert "RDW bytes 2-3 are X'0007', expected X'0000' (reserved)" in err.message


# ------------------------------------------------------------ ascii is 7-bit

def test_ascii_refuses_bytes_over_7f_in_text_with_record_field_and_byte() -> None:
    ebcdic_rec = pay().encode(VALUES)          # cp037 bytes read as ascii
    c = pay(encoding="ascii")
    with pytest.raises(FormatError) as ei:
        c.decode(ebcdic_rec)
    assert ei.value.field == "REC_TYPE" and ei.value.offset == 0
    assert "byte 0xd7 is not valid ascii" in ei.value.message
    good = c.encode(VALUES)
    assert good[12:18] == bytes.fromhex("00000099999c")        # packed bytes over 0x7F are fine
    assert c.decode(good) == VALUES
    bad = bytearray(good)
    bad[28] = 0xFC
    out = list(pay(encoding="ascii").iter_records(bytes(good) + bytes(bad)))
    assert out[0][2] == VALUES
    err = out[1][2]
    assert isinstance(err, FormatError) and err.record == 2 and err.field == "CCY" and err.offset == 30 + 28
    assert "byte 0xfc is not valid ascii" in err.message
    with pytest.raises(FormatError) as ei:
        c.encode({**VALUES, "CCY": "EU\u00e9"})
    assert ei.value.field == "CCY" and "no code in ascii" in ei.value.message
    assert pay(encoding="latin-1").decode(pay(encoding="latin-1").encode({**VALUES, "CCY": "EU\u00e9"}))["CCY"] == "EU\u00e9"


# ------------------------------------------------------------ names and code pages

def test_segment_field_takes_the_cobol_name_or_the_output_name() -> None:
    cb = ("       01  R.\n           05  SEGMENT-ID  PIC X.\n           05  A  PIC X(2).\n"
          "           05  B REDEFINES A PIC 9(3) COMP-3.\n")
    for name in ("SEGMENT-ID", "SEGMENT_ID", "segment_id"):
        c = CopybookCodec.from_text(cb, CopybookOptions(segment_field=name, segment_map={"A": "A", "B": "B"}))
        assert c.decode(b"\xc2\x00\x12\x3c"[:1] + b"\x12\x3c") == {"SEGMENT_ID": "B", "B": 123}


def test_unknown_code_page_lists_utf8() -> None:
    with pytest.raises(ValueError) as ei:
        pay(encoding="cp999")
    assert "unknown code page 'cp999'" in str(ei.value) and str(ei.value).endswith("latin-1, utf-8")
