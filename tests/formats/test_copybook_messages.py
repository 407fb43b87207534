"""Copybook messages a user meets: a too-long value says the picture's room once; a character the code
page cannot write names the field, its byte and the euro variant of the page; an OCCURS DEPENDING ON
a name that is no item suggests the closest; a missing period is told at the entry lacking it.
The cobrix test5 copybook of the corpus is the record."""
from __future__ import annotations

from pathlib import Path

import pytest

from formats.copybook.codec import CopybookCodec
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError, SpecError

CASE = "cobrix_test5_multisegment_rdw_ebcdic"


def _record(corpus: Path, encoding: str = "cp037") -> tuple[CopybookCodec, dict]:
    d = corpus / "copybook" / CASE
    codec = CopybookCodec.from_file(d / "copybook.cob", CopybookOptions(encoding=encoding))
    data = (d / "input" / "rdw_big_endian" / "COMP.DETAILS.FEB02.DATA.RDW.BE.dat").read_bytes()
    values = codec.decode(data[4:4 + codec.size])       # the first record: company 9377942526
    return codec, values


def test_a_value_too_long_says_the_pictures_room_once(corpus: Path) -> None:
    codec, values = _record(corpus)
    with pytest.raises(FormatError) as ei:
        codec.encode({**values, "COMPANY_ID": "93779425260"})
    assert ei.value.field == "COMPANY_ID" and ei.value.offset == 5
    assert ei.value.message == "11 bytes do not fit PIC X(10)"
    small = CopybookCodec.from_text("       01  R.\n           05  CCY  PIC XXX.\n           05  N  PIC X9X.\n")
    with pytest.raises(FormatError) as ei:
        small.encode({"CCY": "EURO", "N": "A1B"})
    assert ei.value.message == "4 bytes do not fit PIC XXX"


@pytest.mark.parametrize("page,euro", [("cp037", "cp1140"), ("cp273", "cp1141"), ("cp500", "cp1148")])
def test_a_character_the_page_lacks_names_the_field_its_byte_and_the_euro_variant(corpus: Path, page: str,
                                                                                  euro: str) -> None:
    codec, values = _record(corpus, page)
    values["STATIC_DETAILS"]["COMPANY_NAME"] = "Joan € Z"
    with pytest.raises(FormatError) as ei:
        codec.encode(values)
    e = ei.value
    assert e.field == "STATIC_DETAILS.COMPANY_NAME" and e.offset == 15 + 5, str(e)   # the € itself
    assert e.message == f"character '€' (U+20AC) has no code in {page}"
    assert f"set encoding {euro}" in e.hint
    # read and written in the euro page, it goes through
    euro_codec, _v = _record(corpus, euro)
    assert euro_codec.decode(euro_codec.encode(values))["STATIC_DETAILS"]["COMPANY_NAME"].startswith("Joan € Z")


def test_a_character_no_ebcdic_page_has_gets_no_euro_hint(corpus: Path) -> None:
    codec, values = _record(corpus)
    values["STATIC_DETAILS"]["ADDRESS"] = "10 Sandton ✓"
    with pytest.raises(FormatError) as ei:
        codec.encode(values)
    assert ei.value.offset == 30 + 11 and "cp1140" not in ei.value.hint and "replace the character" in ei.value.hint


def test_depending_on_a_misspelt_counter_says_did_you_mean() -> None:
    src = ("       01  REC.\n"
           "           05  NN-COUNT  PIC 9(2).\n"
           "           05  TBL OCCURS 1 TO 5 DEPENDING ON NN-CONT.\n"
           "               10  V  PIC X(3).\n")
    with pytest.raises(SpecError) as ei:
        CopybookCodec.from_text(src, path="D.cpy")
    assert str(ei.value) == "D.cpy:3:12: OCCURS DEPENDING ON NN-CONT: no such elementary item"
    assert ei.value.hint.startswith("did you mean NN-COUNT?")


@pytest.mark.parametrize("lines,line,col,entry", [
    (["01  REC.", "    05  ID     PIC X(3)", "    05  AMT    PIC 9(5)."], 2, 31, "05 ID PIC X(3)"),
    (["01  REC", "    05  ID     PIC X(3)."], 1, 15, "01 REC"),
    (["01  REC.", "    05  ID     PIC X(3)", "                   VALUE 'A'", "    05  AMT    PIC 9(5)."],
     3, 36, "05 ID PIC X(3) VALUE 'A'"),
])
def test_a_missing_period_is_told_at_the_entry_lacking_it(lines: list[str], line: int, col: int,
                                                          entry: str) -> None:
    src = "".join(f"       {x}\n" for x in lines)
    with pytest.raises(SpecError) as ei:
        CopybookCodec.from_text(src, path="P.cpy")
    e = ei.value
    assert (e.line, e.col) == (line, col), str(e)
    assert e.message.startswith(f"missing period: the entry `{entry}` does not end with one (the next entry, "
                                f"at line {line + 1}, is read as part of it)")
    assert e.hint == f"end the entry with a period: {entry}."
