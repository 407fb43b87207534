"""Copybook source as mainframe teams hand it over: tabs from a PC editor, COPY statements."""
from __future__ import annotations

from pathlib import Path

import pytest

from formats.copybook.codec import CopybookCodec
from formats.copybook.options import CopybookOptions
from formats.errors import SpecError

CASE = "cobrix_test7_fillers"


def _records(codec: CopybookCodec, data: bytes) -> list:
    return [v for _no, _off, v in codec.iter_records(data, strict=True)]


def test_a_copybook_indented_with_tabs_reads_as_with_spaces(corpus: Path) -> None:
    """A tab moves to the next multiple-of-8 column (GnuCOBOL's fixed format): `<TAB>01  RECORD.` has
    its level in column 9. Until 2026-11-27 a tab was one column, so the level fell into the
    sequence area (columns 1-6) and the copybook did not parse."""
    d = corpus / "copybook" / CASE
    text = (d / "copybook.cob").read_text()
    tabbed = "\n".join("\t" + line[8:] if line.startswith(" " * 8) and line[8:9] != " " else
                       "\t" + line[8:] if line.startswith(" " * 12) else line for line in text.splitlines())
    assert tabbed.count("\t") > 10
    data = (d / "input" / "TEST.FILLERS.DEC07.DATA.dat").read_bytes()
    plain = CopybookCodec.from_text(text, CopybookOptions())
    tabs = CopybookCodec.from_text(tabbed, CopybookOptions())
    assert tabs.size == plain.size == 60
    assert _records(tabs, data) == _records(plain, data)


def test_a_copy_statement_says_it_is_not_expanded(corpus: Path) -> None:
    text = (corpus / "copybook" / CASE / "copybook.cob").read_text()
    text = text.replace("            05  AMOUNT ", "            COPY AMTFLD.\n            05  AMOUNT ")
    with pytest.raises(SpecError) as err:
        CopybookCodec.from_text(text, CopybookOptions(), path="T7.cpy")
    assert "COPY statements are not expanded" in err.value.hint
    assert str(err.value).startswith("T7.cpy:")
