"""Reports at scale.  XLSX: a table longer than a sheet can hold (1,048,576 rows with the header) is refused before a
file is written, naming the table and what to do (Excel would refuse the workbook or drop the rows past it),
and a sheet is streamed into the zip row by row, with the same bytes as the sheet's XML.  HTML: the page is
written as it is made, with the same bytes as ``render`` (a 201,472-line form took 0.84 GB as one string)."""
from __future__ import annotations

import re
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from engine.reports.model import Column, Report, ReportError, Table
from engine.reports.html import render, write_html
from engine.reports.xlsx import MAX_SHEET_ROWS, sheet_xml, write_xlsx

COLS = (Column("reference", "text"), Column("amount", "money", currency="currency"), Column("currency", "text"))


def _report(n: int) -> Report:
    rows = [("000123", Decimal("7.1250"), "KWD")] * n        # one tuple, n times: cheap at a million rows
    return Report(name="counterparty-statement", title="t", params={},
                  tables=[Table("statement", "Deals", COLS, rows), Table("totals", "Totals", COLS, [])])


def test_a_table_longer_than_a_sheet_is_refused_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "big.xlsx"
    with pytest.raises(ReportError) as exc:
        write_xlsx(_report(MAX_SHEET_ROWS), out)
    assert str(exc.value) == ("--format xlsx: table statement has 1,048,576 rows; a spreadsheet sheet holds "
                              "1,048,575 below its header. Write it as --format csv or parquet, or take a shorter "
                              "period")
    assert not out.exists()


def test_a_sheet_is_streamed_with_the_same_bytes(tmp_path: Path) -> None:
    rep = _report(5000)
    out = tmp_path / "ok.xlsx"
    write_xlsx(rep, out)
    with zipfile.ZipFile(out) as z:
        assert z.read("xl/worksheets/sheet1.xml").decode() == sheet_xml(rep.tables[0])
        assert z.read("xl/worksheets/sheet2.xml").decode() == sheet_xml(rep.tables[1])


def test_an_html_page_is_written_as_render_makes_it(tmp_path: Path) -> None:
    rep = _report(5000)
    out = tmp_path / "ok.html"
    write_html(rep, out)
    stamp = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
    page = out.read_text(encoding="utf-8")
    assert page.count('<td data-col="reference">000123</td>') == 5000
    assert stamp.sub("", page) == stamp.sub("", render(rep))
