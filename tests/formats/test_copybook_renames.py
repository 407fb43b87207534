"""Level 66 RENAMES: decoded alias values, encode merge rules, bad RENAMES entries."""
from __future__ import annotations

from decimal import Decimal

import pytest

from formats.copybook import CopybookCodec, CopybookOptions
from formats.errors import FormatError, SpecError

CB = """\
       01  ACCT.
           05  BANK            PIC X(4).
           05  BRANCH-GRP.
               10  BRANCH      PIC 9(3).
               10  FILLER      PIC X.
               10  LIMIT       PIC S9(5)V99 COMP-3.
           05  HOLDER          PIC X(10).
           05  DATES.
               10  OPENED      PIC 9(8).
               10  CLOSED      PIC 9(8).
       66  ROUTING         RENAMES BANK THRU BRANCH.
       66  CREDIT          RENAMES LIMIT.
       66  BRANCH-ALL      RENAMES BRANCH-GRP.
       66  LIFETIME        RENAMES OPENED THROUGH CLOSED.
       66  SAME            RENAMES HOLDER THRU HOLDER.
"""


def codec(**kw) -> CopybookCodec:
    return CopybookCodec.from_text(CB, CopybookOptions(**kw), path="ACCT.cpy")


def base() -> dict:
    return {"BANK": "DEUT", "BRANCH_GRP": {"BRANCH": 42, "LIMIT": Decimal("-12.50")}, "HOLDER": "ACME",
            "DATES": {"OPENED": 20200101, "CLOSED": 20251231}}


def test_renames_values_are_group_views_or_the_single_field() -> None:
    c = codec()
    v = c.decode(c.encode(base()))
    assert v["ROUTING"] == {"BANK": "DEUT", "BRANCH": 42}                    # A THRU B: covered fields
    assert v["CREDIT"] == Decimal("-12.50") and str(v["CREDIT"]) == "-12.50"  # one elementary item: its value
    assert v["BRANCH_ALL"] == {"BRANCH": 42, "LIMIT": Decimal("-12.50")}     # a group: its fields, FILLER dropped
    assert v["LIFETIME"] == {"OPENED": 20200101, "CLOSED": 20251231}
    assert v["SAME"] == "ACME"
    assert list(v)[-5:] == ["ROUTING", "CREDIT", "BRANCH_ALL", "LIFETIME", "SAME"]


def test_renames_span_covers_fields_by_bytes_and_keeps_kept_fillers() -> None:
    c = codec(drop_value_fillers=False)
    layout = c.layout
    r = next(x for x in layout.renames if x.name == "ROUTING")
    assert (r.start, r.end) == (0, 7)
    assert c.decode(c.encode(base()))["BRANCH_ALL"] == {"BRANCH": 42, "FILLER_P1": None, "LIMIT": Decimal("-12.50")}


def test_encode_from_renames_only_fills_the_renamed_fields() -> None:
    c = codec()
    values = {"ROUTING": {"BANK": "COBA", "BRANCH": 7}, "CREDIT": Decimal("3.00"), "HOLDER": "X",
              "LIFETIME": {"OPENED": 20240229}}
    raw = c.encode(values)
    v = c.decode(raw)
    assert (v["BANK"], v["BRANCH_GRP"]["BRANCH"], v["BRANCH_GRP"]["LIMIT"]) == ("COBA", 7, Decimal("3.00"))
    assert v["DATES"]["OPENED"] == 20240229 and v["DATES"]["CLOSED"] is None
    assert values == {"ROUTING": {"BANK": "COBA", "BRANCH": 7}, "CREDIT": Decimal("3.00"), "HOLDER": "X",
                      "LIFETIME": {"OPENED": 20240229}}, "the caller's dict must not change"
    assert raw == c.encode({"BANK": "COBA", "BRANCH_GRP": {"BRANCH": 7, "LIMIT": 3}, "HOLDER": "X",
                            "DATES": {"OPENED": 20240229}})


def test_encode_with_both_views_agreeing_is_fine_and_decode_encode_is_exact() -> None:
    c = codec()
    raw = c.encode(base())
    v = c.decode(raw)
    assert c.encode(v) == raw
    both = base() | {"CREDIT": Decimal("-12.5"), "SAME": "ACME  ", "ROUTING": {"BANK": "DEUT"}}
    assert c.encode(both) == raw


@pytest.mark.parametrize("extra,field,words", [
    ({"CREDIT": Decimal("1.00")}, "CREDIT", "RENAMES CREDIT is Decimal('1.00') but BRANCH_GRP.LIMIT is"),
    ({"ROUTING": {"BRANCH": 9}}, "ROUTING.BRANCH", "RENAMES ROUTING.BRANCH is 9 but BRANCH_GRP.BRANCH is 42"),
    ({"ROUTING": {"HOLDER": "Z"}}, "ROUTING.HOLDER", "RENAMES ROUTING has no field HOLDER; it covers BANK, BRANCH"),
    ({"ROUTING": "DEUT042"}, "ROUTING", "covers several fields, so its value is a dict"),
])
def test_disagreeing_renames_name_both_fields(extra: dict, field: str, words: str) -> None:
    with pytest.raises(FormatError) as ei:
        codec().encode(base() | extra)
    assert ei.value.field == field and words in str(ei.value), str(ei.value)


@pytest.mark.parametrize("line66,words", [
    ("66 R RENAMES NOPE.", "RENAMES names NOPE, which is not declared in record A"),
    ("66 R RENAMES C THRU B.", "C THRU B: B must come after C"),
    ("66 R RENAMES G THRU B.", "G THRU B: B is part of G"),
    ("66 R RENAMES T.", "T has OCCURS"),
    ("66 R RENAMES A.", "a level 01 item cannot be renamed"),
    ("66 C RENAMES D.", "the record already has an item named C"),
    ("66 R RENAMES G THRU D.", "two items named X"),
])
def test_bad_renames_are_spec_errors_at_the_66_entry(line66: str, words: str) -> None:
    text = ("       01 A.\n          05 G.\n             10 B PIC X.\n             10 X PIC X.\n"
            "          05 C PIC X.\n          05 H.\n             10 X PIC X.\n          05 D PIC X.\n"
            "          05 T PIC X OCCURS 2.\n" f"       {line66}\n")
    with pytest.raises(SpecError) as ei:
        CopybookCodec.from_text(text, path="R.cpy")
    assert (ei.value.path, ei.value.line, ei.value.col) == ("R.cpy", 10, 8), str(ei.value)
    assert words in str(ei.value), str(ei.value)


def test_renames_with_several_records_sits_in_its_own_record() -> None:
    text = ("       01 A.\n          05 X PIC X(2).\n       66 AX RENAMES X.\n"
            "       01 B.\n          05 Y PIC X(2).\n       66 BY RENAMES Y.\n")
    c = CopybookCodec.from_text(text, CopybookOptions(encoding="ascii"))
    v = c.decode(b"ab")
    assert v == {"A": {"X": "ab", "AX": "ab"}, "B": {"Y": "ab", "BY": "ab"}}
    assert c.encode({"A": {"AX": "cd"}}) == b"cd"


def test_renames_over_an_unchosen_segment_member_leaves_it_out() -> None:
    text = ("       01 S.\n          05 KIND PIC X.\n          05 P.\n             10 NAME PIC X(4).\n"
            "          05 C REDEFINES P.\n             10 CODE PIC 9(4).\n       66 BODY RENAMES P.\n"
            "       66 EVERY RENAMES KIND THRU C.\n")
    c = CopybookCodec.from_text(text, CopybookOptions(encoding="ascii", segment_field="KIND",
                                                     segment_map={"P": "P", "C": "C"}))
    assert c.decode(b"Pjoe ") == {"KIND": "P", "P": {"NAME": "joe"}, "BODY": {"NAME": "joe"},
                                  "EVERY": {"KIND": "P", "NAME": "joe"}}
    assert c.decode(b"C0012")["EVERY"] == {"KIND": "C", "CODE": 12}
