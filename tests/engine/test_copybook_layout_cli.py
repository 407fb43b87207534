"""``bsp copybook layout`` through the real command line: offsets and lengths equal cobrix's layout dumps
(the corpus's ``*_layout.txt``, upstream's output, never ours), OCCURS DEPENDING ON min/max agree with what
the codec reads and writes, REDEFINES are shown, errors name the place; and the example in
docs/formats-copybook.md is what the command prints."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.cli import app
from formats.copybook import CopybookCodec, CopybookOptions

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "formats"))
from cobrixkit import cobrix_layout  # noqa: E402
CB = (REPO / ".." / "shared" / "corpus" / "copybook").resolve()
needs_corpus = pytest.mark.skipif(not CB.is_dir(), reason=f"corpus not found at {CB}")


def bsp(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def layout_json(*args: Any) -> list[dict]:
    res = bsp("copybook", "layout", *args, "--json")
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


DUMPS = sorted((p.parent.parent.name, p.name) for p in CB.glob("*/expected/*_layout.txt")) if CB.is_dir() else []


@needs_corpus
def test_the_corpus_has_the_cobrix_layout_dumps() -> None:
    assert len(DUMPS) == 8, DUMPS       # test6, test7 and its four filler variants, test16, test19


@needs_corpus
@pytest.mark.parametrize("case,dump", DUMPS, ids=[d for _, d in DUMPS])
def test_offsets_and_lengths_equal_cobrix(case: str, dump: str) -> None:
    """Every item's level, start, end and length as cobrix prints them.  cobrix gives each member of a
    REDEFINES set the set's area (its largest member): that is our ``area``; ``length`` is the member's own."""
    want = cobrix_layout(CB / case / "expected" / dump)
    got = layout_json(CB / case / "copybook.cob")
    assert len(got) == len(want)
    for row, (level, name, start, end, length) in zip(got, want):
        area = row["area"] if row["area"] is not None else row["length"]
        assert (row["level"], row["position"], row["offset"] + area, area) == (level, start, end, length), \
            (row["name"], name)
        assert row["name"].replace("-", "_") == name or (row["name"] == "FILLER" and name.startswith("FILLER"))
        assert row["end"] == row["offset"] + row["length"] and row["position"] == row["offset"] + 1


@needs_corpus
def test_the_table_shows_cobrix_positions_and_redefines() -> None:
    res = bsp("copybook", "layout", CB / "cobrix_test16_fixed_len_segment_redefines" / "copybook.cob")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].endswith("copybook.cob: record ENTITY, 64 bytes")
    assert lines[2].split() == ["LEVEL/NAME", "PIC", "USAGE", "OFFSET", "POS", "END", "LENGTH", "OCCURS", "NOTES"]
    rows = {ln.split()[1]: ln for ln in lines[3:]}
    assert rows["COMPANY"].split()[2:] == ["1", "2", "59", "58", "redefined", "by", "PERSON,", "PO-BOX;", "set",
                                           "area", "63"]
    assert rows["PO-BOX"].split()[2:] == ["1", "2", "33", "32", "REDEFINES", "COMPANY;", "set", "area", "63"]
    assert rows["PHONE-NUM"].split()[2:] == ["X(11)", "DISPLAY", "53", "54", "64", "11"]
    assert rows["PO-BOX"].startswith("  05 PO-BOX") and rows["PO-NUMBER"].startswith("    10 PO-NUMBER")


@needs_corpus
def test_occurs_depending_on_gives_the_records_smallest_and_largest_length() -> None:
    """test1: OCCURS 80 DEPENDING ON NUMBER-OF-ACCTS (0 to 80 tables of 27 bytes) holding a REDEFINES.  The
    lengths printed are the ones the codec reads and writes: 2202 bytes at the maximum, and with
    --variable-occurs a record without accounts is the 42 bytes printed."""
    cpy = CB / "cobrix_test1_fixed_comp_comp3_redefines_odo" / "copybook.cob"
    rows = {r["name"]: r for r in layout_json(cpy)}
    assert (rows["RECORD"]["length"], rows["RECORD"]["min_length"]) == (2202, 42)
    table = rows["ACCOUNT-DETAIL"]
    assert (table["occurs"], table["depending_on"], table["element_length"], table["offset"], table["length"]) \
        == ("0 TO 80", "NUMBER-OF-ACCTS", 27, 42, 2160)
    assert (rows["ACCOUNT-TYPE-X"]["redefines"], rows["ACCOUNT-TYPE-X"]["offset"], rows["ACCOUNT-TYPE-X"]["usage"]) \
        == ("ACCOUNT-TYPE-N", 66, "DISPLAY")
    assert (rows["COMPANY-ID-NUM"]["usage"], rows["COMPANY-ID-NUM"]["length"]) == ("COMP-3", 3)
    assert rows["ID"]["usage"] == "COMP" and rows["ID"]["pic"] == "S9(4)"
    assert rows["ACCOUNT-NUMBER"]["key"] == "METADATA.ACCOUNT.ACCOUNT_DETAIL[].ACCOUNT_NUMBER"

    fixed = bsp("copybook", "layout", cpy).stdout.splitlines()[0]
    assert fixed.endswith("record RECORD, 2202 bytes (OCCURS DEPENDING ON tables take their maximum; with "
                          "--variable-occurs 42 to 2202 bytes)")
    variable = bsp("copybook", "layout", cpy, "--variable-occurs").stdout.splitlines()[0]
    assert variable.endswith("record RECORD, 42 to 2202 bytes (variable: OCCURS DEPENDING ON tables take count x "
                             "element bytes)")

    codec = CopybookCodec.from_file(cpy, CopybookOptions(variable_occurs=True))
    empty = codec.encode({"ID": 1, "COMPANY": {"SHORT_NAME": "A", "COMPANY_ID_NUM": 1},
                          "METADATA": {"CLIENTID": "C", "REGISTRATION_NUM": "R", "ACCOUNT": {"ACCOUNT_DETAIL": []}}})
    assert len(empty) == 42
    assert codec.decode(empty)["METADATA"]["NUMBER_OF_ACCTS"] == 0


@needs_corpus
def test_nested_occurs_depending_on_and_its_offsets() -> None:
    """test21: a table of 0-2 groups, each with a counter and a table of 0-3 bytes: 1 to 9 bytes."""
    cpy = CB / "cobrix_test21_nested_occurs_depending_on" / "copybook.cob"
    rows = {r["name"]: r for r in layout_json(cpy, "--variable-occurs")}
    assert [(n, rows[n]["offset"], rows[n]["length"], rows[n]["min_length"], rows[n]["occurs"])
            for n in ("RECORD", "COUNT", "GROUP", "INNER-COUNT", "INNER-GROUP", "FIELD")] == [
        ("RECORD", 0, 9, 1, None), ("COUNT", 0, 1, 1, None), ("GROUP", 1, 8, 0, "0 TO 2"),
        ("INNER-COUNT", 1, 1, 1, None), ("INNER-GROUP", 2, 3, 0, "0 TO 3"), ("FIELD", 2, 1, 1, None)]
    codec = CopybookCodec.from_file(cpy, CopybookOptions(encoding="ascii", variable_occurs=True, collapse_root=False))
    assert codec.decode(b"0") == {"RECORD": {"COUNT": 0, "GROUP": []}}      # the 1-byte record printed


def test_sign_usage_on_a_group_national_renames_and_names(tmp_path: Path) -> None:
    cpy = tmp_path / "REC.cpy"
    cpy.write_text("       01  REC.\n"
                   "           05  AMT        PIC S9(5)V99 SIGN LEADING SEPARATE.\n"
                   "           05  CNT        PIC 9(4) COMP-5.\n"
                   "           05  GRP        USAGE COMP-3.\n"
                   "               10  P1     PIC S9(7)V99.\n"
                   "           05  NAT        PIC N(4).\n"
                   "           05  FILLER     PIC X(2).\n"
                   "       66  BOTH RENAMES AMT THRU CNT.\n")
    rows = {r["name"]: r for r in layout_json(cpy, "--names", "lower")}
    assert (rows["AMT"]["sign"], rows["AMT"]["length"]) == ("LEADING SEPARATE", 8)     # 7 digits + the sign
    assert (rows["CNT"]["usage"], rows["CNT"]["offset"], rows["CNT"]["length"]) == ("COMP-5", 8, 2)
    assert (rows["P1"]["usage"], rows["P1"]["length"], rows["P1"]["key"]) == ("COMP-3", 5, "grp.p1")
    assert (rows["NAT"]["usage"], rows["NAT"]["length"]) == ("NATIONAL", 8)
    assert (rows["FILLER"]["key"], rows["FILLER"]["offset"]) == (None, 23)       # not in decoded values
    assert (rows["BOTH"]["level"], rows["BOTH"]["offset"], rows["BOTH"]["length"], rows["BOTH"]["renames"]) \
        == (66, 0, 10, "AMT THRU CNT")
    assert rows["REC"]["length"] == CopybookCodec.from_file(cpy).size == 25


def test_errors_name_the_file_and_place(tmp_path: Path) -> None:
    missing = bsp("copybook", "layout", tmp_path / "NOPE.cpy")
    assert missing.exit_code == 2
    assert f"bsp copybook layout: error: {tmp_path / 'NOPE.cpy'}: no such file" in missing.output
    bad = tmp_path / "BAD.cpy"
    bad.write_text("       01  REC.\n           05  A  PIC Q(3).\n")
    res = bsp("copybook", "layout", bad)
    assert res.exit_code == 2
    assert f"bsp copybook layout: error: {bad.resolve()}:2:23: PIC Q(3): unexpected symbol 'Q'" in res.output
    assert "hint: a PIC holds" in res.output
    assert bsp("copybook", "layout").exit_code == 2


def test_a_route_files_copybook_format(tmp_path: Path) -> None:
    """--route/--name: the format's own options apply (here names lower)."""
    (tmp_path / "REQ.cpy").write_text("       01  REQ.\n           05  TXN-CODE PIC X(4).\n"
                                      "           05  AMOUNT PIC S9(13)V99 COMP-3.\n")
    (tmp_path / "f.route").write_text('format Req = copybook "REQ.cpy" encoding cp037 names lower\n')
    rows = layout_json("--route", tmp_path / "f.route", "--name", "Req")
    assert [(r["key"], r["offset"], r["length"]) for r in rows] == [(None, 0, 12), ("txn_code", 0, 4),
                                                                     ("amount", 4, 8)]


# ---------------------------------------------------------------- the example in docs/formats-copybook.md

def test_the_documented_example_is_what_the_command_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (REPO / "docs" / "formats-copybook.md").read_text(encoding="utf-8")
    m = re.search(r"^```\n\$ (bsp copybook layout [^\n]*)\n(.*?)^```", doc, re.M | re.S)
    assert m, "docs/formats-copybook.md has no `$ bsp copybook layout` example"
    monkeypatch.chdir(REPO)
    res = bsp(*m[1].split()[1:])
    assert res.exit_code == 0, res.output
    assert res.stdout == m[2], "the example in docs/formats-copybook.md is stale: paste the command's output"


def test_offsets_after_a_varying_table_are_marked_only_when_tables_vary(tmp_path: Path) -> None:
    cpy = tmp_path / "V.cpy"
    cpy.write_text("       01  V.\n           05  N      PIC 9.\n"
                   "           05  T      OCCURS 1 TO 5 DEPENDING ON N PIC X(3).\n"
                   "           05  AFTER  PIC X(2).\n")
    fixed = {r["name"]: r for r in layout_json(cpy)}
    varying = {r["name"]: r for r in layout_json(cpy, "--variable-occurs")}
    assert (fixed["AFTER"]["offset"], fixed["AFTER"]["offset_varies"], varying["AFTER"]["offset_varies"]) \
        == (16, False, True)
    assert (varying["V"]["min_length"], varying["V"]["length"], varying["T"]["occurs"]) == (6, 18, "1 TO 5")
    assert not varying["T"]["offset_varies"] and not varying["N"]["offset_varies"]
    text = bsp("copybook", "layout", cpy, "--variable-occurs").stdout
    assert "record V, 6 to 18 bytes" in text
    assert [ln for ln in text.splitlines() if "AFTER" in ln][0].endswith("offset at maximum counts")
