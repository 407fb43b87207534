"""A minimal XLSX (Office Open XML SpreadsheetML) writer: one sheet per table.

Neither openpyxl nor xlsxwriter is a dependency, and a workbook of plain
tables needs little: a zip holding ``[Content_Types].xml``, the package and
workbook relationships, ``xl/workbook.xml``, ``xl/styles.xml`` and one
``xl/worksheets/sheetN.xml`` per table.  Strings are inline (``t="inlineStr"``),
so there is no shared-string table.

* numbers (int, money, rate, ms) are number cells; money is written as the
  exact decimal text of the ``Decimal`` (``<v>12345678901234.5600</v>``), with a
  number format of its currency's decimals.  (Excel itself holds numbers as
  doubles: past 15 significant digits it shows them rounded; the file is exact.)
* dates are date serials (days since 1899-12-30) with a date format;
* timestamps are ISO 8601 text (UTC), so no time zone is lost;
* row 1 is the bold header, frozen.
"""
from __future__ import annotations

import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator
from xml.sax.saxutils import escape

from engine.ledger_query import minor_units
from engine.reports.model import stamp, Column, Report, ReportError, Table

_EPOCH = date(1899, 12, 30)

# cellXfs indexes in styles.xml
_HEADER, _DATE, _INT, _PERCENT, _MS = 1, 2, 3, 4, 5
_MONEY = {0: 6, 1: 7, 2: 7, 3: 8, 4: 9}

_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<numFmts count="6"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/><numFmt numFmtId="165" formatCode="#,##0.0"/>
<numFmt numFmtId="166" formatCode="#,##0"/><numFmt numFmtId="167" formatCode="#,##0.00"/>
<numFmt numFmtId="168" formatCode="#,##0.000"/><numFmt numFmtId="169" formatCode="#,##0.0000"/></numFmts>
<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font><font><b/><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="10">
<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="3" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="10" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="167" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="168" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="169" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
</cellXfs>
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>
</styleSheet>
"""

_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_RNS = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def col_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    s = ""
    index += 1
    while index:
        index, r = divmod(index - 1, 26)
        s = chr(65 + r) + s
    return s


def _text_cell(ref: str, text: str, style: int = 0) -> str:
    s = f' s="{style}"' if style else ""
    # XML 1.0 cannot hold most control characters, surrogates, U+FFFE or U+FFFF: drop them rather than write a
    # file Excel refuses to open
    clean = "".join(ch for ch in text if ch in "\t\n\r" or (0x20 <= ord(ch) < 0xD800)
                    or (0xE000 <= ord(ch) < 0xFFFE) or ord(ch) > 0xFFFF)
    return f'<c r="{ref}" t="inlineStr"{s}><is><t xml:space="preserve">{escape(clean)}</t></is></c>'


def _cell(ref: str, col: Column, value: Any, row: dict[str, Any]) -> str:
    if value is None:
        return ""
    kind = col.kind
    if kind == "money":
        amount = Decimal(value)
        needed = max(-amount.normalize().as_tuple().exponent, 0) if amount else 0
        places = min(max(needed, minor_units(row.get(col.currency) if col.currency else None)), 4)
        style = _MONEY.get(places, _MONEY[4])
        return f'<c r="{ref}" s="{style}"><v>{amount:f}</v></c>'
    if kind == "rate":
        return f'<c r="{ref}" s="{_PERCENT}"><v>{Decimal(value):f}</v></c>'
    if kind == "int":
        return f'<c r="{ref}" s="{_INT}"><v>{int(value)}</v></c>'
    if kind == "ms":
        return f'<c r="{ref}" s="{_MS}"><v>{value!r}</v></c>'
    if kind == "date" and isinstance(value, date):
        d = value.date() if isinstance(value, datetime) else value
        return f'<c r="{ref}" s="{_DATE}"><v>{(d - _EPOCH).days}</v></c>'
    if kind == "timestamp" and isinstance(value, datetime):
        return _text_cell(ref, stamp(value))
    return _text_cell(ref, str(value))


MAX_SHEET_ROWS = 1_048_576     # Excel's rows per sheet, the header's included


def sheet_xml(table: Table) -> str:
    return "\n".join(sheet_parts(table))


def sheet_parts(table: Table) -> Iterator[str]:
    """The sheet's XML, a row at a time (joined by line feeds): written to the zip as it comes, so a
    200,000-row form is never one string in memory."""
    names = [c.name for c in table.columns]
    width = len(table.columns)
    last = f"{col_letter(width - 1)}{len(table.rows) + 1}"
    yield from [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {_NS} {_RNS}>',
                f'<dimension ref="A1:{last}"/>',
                '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
                'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>',
                '<cols>' + "".join(f'<col min="{i + 1}" max="{i + 1}" width="{max(10, min(40, len(c.label) + 4))}" '
                                   f'customWidth="1"/>' for i, c in enumerate(table.columns)) + '</cols>',
                "<sheetData>",
                '<row r="1">' + "".join(_text_cell(f"{col_letter(i)}1", c.label, _HEADER)
                                        for i, c in enumerate(table.columns)) + "</row>"]
    for r, row in enumerate(table.rows, start=2):
        byname = dict(zip(names, row))
        cells = "".join(_cell(f"{col_letter(i)}{r}", c, v, byname) for i, (c, v) in enumerate(zip(table.columns, row)))
        yield f'<row r="{r}">{cells}</row>'
    yield "</sheetData></worksheet>"


def _sheet_name(name: str, used: set[str]) -> str:
    base = "".join(ch for ch in name if ch not in '[]:*?/\\')[:31] or "sheet"
    n, i = base, 2
    while n.lower() in used:
        n = f"{base[:28]}_{i}"
        i += 1
    used.add(n.lower())
    return n


def write_xlsx(report: Report, out: Path) -> list[Path]:
    for t in report.tables:         # Excel would refuse the workbook or drop rows: said before anything is written
        if len(t.rows) + 1 > MAX_SHEET_ROWS:
            raise ReportError(f"--format xlsx: table {t.name} has {len(t.rows):,} rows; a spreadsheet sheet holds "
                              f"{MAX_SHEET_ROWS - 1:,} below its header. Write it as --format csv or parquet, or "
                              f"take a shorter period")
    used: set[str] = set()
    names = [_sheet_name(t.name, used) for t in report.tables]
    n = len(report.tables)
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        + "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
                  f'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                  for i in range(1, n + 1))
        + '</Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    workbook = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook {_NS} {_RNS}><sheets>'
                + "".join(f'<sheet name="{escape(nm)}" sheetId="{i}" r:id="rId{i}"/>'
                          for i, nm in enumerate(names, start=1))
                + "</sheets></workbook>")
    wb_rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
               + "".join(f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                         for i in range(1, n + 1))
               + f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/></Relationships>')
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr("_rels/.rels", rels)
        z.writestr("xl/workbook.xml", workbook)
        z.writestr("xl/_rels/workbook.xml.rels", wb_rels)
        z.writestr("xl/styles.xml", _STYLES)
        for i, table in enumerate(report.tables, start=1):
            with z.open(f"xl/worksheets/sheet{i}.xml", "w", force_zip64=True) as sheet:
                batch: list[str] = []
                for part in sheet_parts(table):
                    batch.append(part)
                    if len(batch) == 2000:
                        sheet.write(("\n".join(batch) + "\n").encode("utf-8"))
                        batch = []
                sheet.write("\n".join(batch).encode("utf-8"))
    return [out]


__all__ = ["MAX_SHEET_ROWS", "col_letter", "sheet_parts", "sheet_xml", "write_xlsx"]
