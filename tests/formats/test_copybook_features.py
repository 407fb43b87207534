"""Binary byte order, national (PIC N) items, continued literals."""
from __future__ import annotations

from decimal import Decimal

import pytest

from formats.copybook import CopybookCodec, CopybookOptions
from formats.errors import FormatError, SpecError

BIN = """\
       01  B.
           05  HALF        PIC S9(4) COMP.
           05  FULL        PIC 9(9) BINARY.
           05  AMT         PIC S9(7)V99 COMP-4.
           05  NAT         PIC S9(4) COMP-5.
           05  BIG         PIC 9(18) COMP-5.
"""


def bin_codec(order: str) -> CopybookCodec:
    return CopybookCodec.from_text(BIN, CopybookOptions(encoding="ascii", binary_order=order))


VALUES = {"HALF": -2, "FULL": 305419896, "AMT": Decimal("-1.50"), "NAT": 30000, "BIG": 2 ** 63 + 5}


@pytest.mark.parametrize("order,expected", [
    ("big", "fffe" "12345678" "ffffff6a" "7530" "8000000000000005"),
    ("little", "feff" "78563412" "6affffff" "3075" "0500000000000080"),
    ("native_little", "fffe" "12345678" "ffffff6a" "3075" "0500000000000080"),
])
def test_binary_order_sets_the_bytes_of_each_binary_kind(order: str, expected: str) -> None:
    c = bin_codec(order)
    raw = c.encode(VALUES)
    assert raw.hex() == expected
    assert c.decode(raw) == VALUES
    assert c.decode(bytes.fromhex(expected)) == VALUES


def test_digit_limit_still_applies_to_little_endian_comp() -> None:
    c = bin_codec("little")
    raw = bytearray(c.encode(VALUES))
    raw[0:2] = (12345).to_bytes(2, "little", signed=True)      # > 4 digits for S9(4) COMP
    with pytest.raises(FormatError) as ei:
        c.decode(bytes(raw))
    assert ei.value.field == "HALF" and ei.value.offset == 0 and "exceeds PIC S9(4)" in ei.value.message
    raw[0:2] = (9999).to_bytes(2, "big", signed=True)          # read little-endian: 3879 fits, no error
    assert c.decode(bytes(raw))["HALF"] == int.from_bytes((9999).to_bytes(2, "big"), "little", signed=True)


def test_unknown_binary_order_is_refused() -> None:
    with pytest.raises(ValueError, match="binary_order='middle': expected one of big, little, native_little"):
        CopybookOptions(binary_order="middle")


NAT = """\
       01  N.
           05  CODE        PIC X(2).
           05  NAME        PIC N(4) USAGE NATIONAL.
               88  IS-ZURICH VALUE N'Zür'.
           05  CITY        PIC N(3).
"""


def test_pic_n_is_utf16be_text_trimmed_like_pic_x() -> None:
    c = CopybookCodec.from_text(NAT, CopybookOptions(encoding="cp037"))
    assert c.size == 2 + 8 + 6
    raw = c.encode({"CODE": "CH", "NAME": "Zür", "CITY": "東京"})
    assert raw[2:10] == "Zür ".encode("utf-16-be") and raw[10:16] == "東京 ".encode("utf-16-be")
    assert c.decode(raw) == {"CODE": "CH", "NAME": "Zür", "IS_ZURICH": True, "CITY": "東京"}
    assert c.encode(c.decode(raw)) == raw
    assert c.decode(raw[:2] + bytes(14)) == {"CODE": "CH", "NAME": None, "IS_ZURICH": False, "CITY": None}


def test_bad_utf16_and_too_long_national_values_name_field_and_offset() -> None:
    c = CopybookCodec.from_text(NAT, CopybookOptions(encoding="cp037"))
    raw = bytearray(c.encode({"CODE": "CH", "NAME": "ab"}))
    raw[12:14] = b"\xdc\x00"                  # a lone low surrogate in CITY
    with pytest.raises(FormatError) as ei:
        c.decode(bytes(raw))
    assert (ei.value.field, ei.value.offset) == ("CITY", 12) and "UTF-16BE" in ei.value.message
    with pytest.raises(FormatError) as ei:
        c.encode({"NAME": "abcde"})
    assert ei.value.field == "NAME" and "5 UTF-16 code units do not fit PIC N(4)" in str(ei.value)


@pytest.mark.parametrize("clause,col,words", [
    ("PIC G(4)", 20, "DBCS items (PIC G, USAGE DISPLAY-1) are not supported"),
    ("PIC N(4) DISPLAY-1", 20, "DBCS items"),
    ("PIC N(4) DISPLAY", 20, "PIC N(4) is national; USAGE DISPLAY needs another PIC"),
    ("PIC 9(4) NATIONAL", 20, "only PIC N national items are supported"),
    ("PIC NX(3)", 20, "cannot be mixed"),
])
def test_unsupported_national_and_dbcs_items_are_spec_errors(clause: str, col: int, words: str) -> None:
    with pytest.raises(SpecError) as ei:
        CopybookCodec.from_text(f"       01 R.\n          05 F {clause}.\n", path="N.cpy")
    assert (ei.value.line, ei.value.col) == (2, col) and words in str(ei.value), str(ei.value)
    assert ei.value.hint


def _fixed(code: str, indicator: str = " ") -> str:
    """A fixed-format line: sequence area, indicator, code cut at column 72, id area."""
    return f"000000{indicator}{code[:65]:<65}CONTINUE\n"


def test_literal_continued_across_lines_counts_the_spaces_up_to_column_72() -> None:
    first = "    05 MSG PIC X(70)."
    cond = "        88 LONG-MSG VALUE 'THE QUICK BROWN FOX JUMPS OVER"     # ends at column 64, literal open
    text = (_fixed(" 01 R.") + _fixed(first) + _fixed(cond)
            + _fixed("            'THE LAZY DOG'.", "-")
            + _fixed("        88 SHORT-MSG VALUE 'HI'.")
            + _fixed("    05 NUM PIC 9(5) VALUE 12", ) + _fixed("            345.", "-"))
    c = CopybookCodec.from_text(text, CopybookOptions(encoding="ascii"), path="C.cpy")
    msg = "THE QUICK BROWN FOX JUMPS OVER" + " " * 8 + "THE LAZY DOG"   # 8 blanks: columns 65-72
    assert c.layout.find("MSG").conditions[0] == ("LONG-MSG", [msg])
    assert c.layout.find("NUM").values == [12345]
    raw = c.encode({"MSG": msg, "NUM": 1})
    assert c.decode(raw)["LONG_MSG"] is True and c.decode(raw)["SHORT_MSG"] is False


def test_continuation_with_quotes_doubled_and_errors_after_the_join_point_at_the_first_line() -> None:
    text = (_fixed(" 01 R.") + _fixed("    05 F PIC X(60).")
            + _fixed("        88 Q VALUE 'IT''S A LONG LITERAL THAT GOES ON AND ON")
            + _fixed("            'AND ENDS'.", "-")
            + _fixed("    05 G PIC X(2) VALUE 'AB") + _fixed("            'C' BOGUS.", "-"))
    with pytest.raises(SpecError) as ei:
        CopybookCodec.from_text(text, path="C.cpy")
    assert ei.value.line == 5 and "BOGUS" in str(ei.value)
    ok = text.replace(" BOGUS.", ".      ")
    c = CopybookCodec.from_text(ok, path="C.cpy")
    assert c.layout.find("F").conditions[0][1][0].startswith("IT'S A LONG LITERAL")
    assert c.layout.find("F").conditions[0][1][0].endswith("ON AND ON" + " " * 5 + "AND ENDS")   # columns 68-72


def test_inline_comment_marker_inside_a_literal_is_text() -> None:
    text = "       01 R.\n          05 F PIC X(4).\n             88 ARROW VALUE '*>>*'. *> a comment\n"
    c = CopybookCodec.from_text(text, CopybookOptions(encoding="ascii"))
    assert c.decode(b"*>>*") == {"F": "*>>*", "ARROW": True}


def test_usage_and_sign_on_a_group_apply_to_the_items_it_holds() -> None:
    text = """\
       01  R.
           05  AMOUNTS     COMP-3.
               10  A1      PIC S9(5)V99.
               10  A2      PIC 9(3) DISPLAY.
               10  INNER.
                   15  A3  PIC S9(3).
           05  RATES       USAGE COMP-2.
               10  R1.
               10  R2.
           05  SIGNED      SIGN LEADING SEPARATE.
               10  S1      PIC S9(3).
               10  U1      PIC 9(3).
"""
    c = CopybookCodec.from_text(text, CopybookOptions(encoding="ascii"))
    sizes = {n.name: n.size for n in c.layout.roots[0].walk() if n.ftype is not None}
    assert sizes == {"A1": 4, "A2": 3, "A3": 2, "R1": 8, "R2": 8, "S1": 4, "U1": 3}
    values = {"AMOUNTS": {"A1": Decimal("-12.34"), "A2": 7, "INNER": {"A3": -5}}, "RATES": {"R1": 0.5, "R2": -2.0},
              "SIGNED": {"S1": -12, "U1": 3}}
    raw = c.encode(values)
    assert raw[:4] == bytes.fromhex("0001234d") and raw[7:9] == bytes.fromhex("005d")
    assert raw[-7:] == b"-012003"
    assert c.decode(raw) == values
