"""XLSX (our own SpreadsheetML writer) and HTML exports, read back and checked."""
from __future__ import annotations

import re
import zipfile
from datetime import date, datetime, timezone
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from engine.reports import Bar, Chart, Column, Report, Table, write
from engine.reports.html import render
from engine.reports.xlsx import col_letter

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def sample() -> Report:
    cols = (Column("day", "date"), Column("name", "text"), Column("n", "int"),
            Column("amount", "money", currency="currency"), Column("currency", "text"),
            Column("rate", "rate"), Column("ms", "ms"), Column("at", "timestamp"))
    rows = [
        (date(2026, 3, 2), "A & <B>", 3, Decimal("12345678901234.5600"), "CNY", Decimal("0.975"), 12.5,
         datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)),
        (date(1900, 3, 1), "ctl\x01char", 0, Decimal("-7.125"), "KWD", None, 0.0, None),
    ]
    return Report("demo", "Demo <report>", {"ledger": "x.duckdb"},
                  [Table("main", "Main", cols, rows), Table("totals", "Totals", cols[:2], [(None, "t")])],
                  figures=[("deals", "3"), ("success rate", "97.50 %")],
                  charts=[Chart("Counts", [Bar("A", 3, "3"), Bar("B", 1, "1")]),
                          Chart("Money", [Bar("CNY", Decimal("12345678901234.56"), "12,345,678,901,234.56 CNY"),
                                          Bar("KWD", Decimal("-7.125"), "-7.125 KWD")])])


def cells(sheet: ET.Element) -> dict[str, ET.Element]:
    return {c.get("r"): c for c in sheet.iter(f"{{{NS['m']}}}c")}


def test_col_letters() -> None:
    assert [col_letter(i) for i in (0, 25, 26, 51, 52, 701, 702)] == ["A", "Z", "AA", "AZ", "BA", "ZZ", "AAA"]


def test_xlsx_parts_and_typed_cells(tmp_path: Path) -> None:
    (path,) = write(sample(), "xlsx", tmp_path / "r.xlsx")
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        names = set(z.namelist())
        assert {"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels",
                "xl/styles.xml", "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"} <= names
        parts = {n: ET.fromstring(z.read(n)) for n in names}   # every part is well-formed XML
    wb = parts["xl/workbook.xml"]
    assert [s.get("name") for s in wb.iter(f"{{{NS['m']}}}sheet")] == ["main", "totals"]
    rels = parts["xl/_rels/workbook.xml.rels"]
    targets = {r.get("Target") for r in rels}
    assert {"worksheets/sheet1.xml", "worksheets/sheet2.xml", "styles.xml"} <= targets
    c = cells(parts["xl/worksheets/sheet1.xml"])
    assert c["A1"].get("t") == "inlineStr" and c["A1"].findtext(".//m:t", namespaces=NS) == "day"
    assert c["A2"].findtext("m:v", namespaces=NS) == "46083"           # 2026-03-02 as a date serial
    assert c["A3"].findtext("m:v", namespaces=NS) == "61"              # 1900-03-01 (after Excel's 1900 bug)
    assert c["B2"].findtext(".//m:t", namespaces=NS) == "A & <B>"
    assert c["B3"].findtext(".//m:t", namespaces=NS) == "ctlchar"      # control char dropped, file stays valid
    assert c["C2"].findtext("m:v", namespaces=NS) == "3"
    assert c["D2"].get("t") is None and c["D2"].findtext("m:v", namespaces=NS) == "12345678901234.5600"
    assert c["D3"].findtext("m:v", namespaces=NS) == "-7.125"
    assert c["F2"].findtext("m:v", namespaces=NS) == "0.975"
    assert "F3" not in c                                               # None -> no cell
    assert c["H2"].findtext(".//m:t", namespaces=NS) == "2026-03-02T09:00:00+00:00"
    # styles: money cell formats carry the currency's decimals
    styles = parts["xl/styles.xml"]
    xfs = list(styles.find("m:cellXfs", NS))
    fmts = {f.get("numFmtId"): f.get("formatCode") for f in styles.iter(f"{{{NS['m']}}}numFmt")}
    assert fmts[xfs[int(c["D2"].get("s"))].get("numFmtId")] == "#,##0.00"
    assert fmts[xfs[int(c["D3"].get("s"))].get("numFmtId")] == "#,##0.000"
    assert len(xfs) == int(styles.find("m:cellXfs", NS).get("count"))
    dim = parts["xl/worksheets/sheet1.xml"].find("m:dimension", NS).get("ref")
    assert dim == "A1:H3"


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        for k in ("src", "href"):
            if a.get(k):
                self.srcs.append(a[k])


def test_html_self_contained_and_escaped() -> None:
    page = render(sample(), generated=datetime(2026, 3, 4, tzinfo=timezone.utc))
    p = _Collect()
    p.feed(page)
    assert "script" not in p.tags and "link" not in p.tags and p.srcs == []
    assert p.tags.count("svg") == 2 and p.tags.count("rect") == 4
    assert "Demo &lt;report&gt;" in page and "A &amp; &lt;B&gt;" in page
    assert '<dd data-figure="success rate">97.50 %</dd>' in page
    assert ">12,345,678,901,234.56<" in page and ">-7.125<" in page
    widths = [Decimal(w) for w in re.findall(r'<rect class="bar[^"]*" x="\d+" y="\d+" width="([\d.]+)"', page)]
    assert widths[:2] == [Decimal("330.0"), Decimal("110.0")]            # 3 : 1 on the same scale
    assert widths[3] == Decimal("0.0") and 'class="bar neg"' in page      # tiny negative, own colour
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx", "html"])
def test_every_format_writes_a_file(tmp_path: Path, fmt: str) -> None:
    paths = write(sample(), fmt, tmp_path / f"r.{fmt}")
    assert paths and all(p.stat().st_size > 0 for p in paths)
