"""CSV and Parquet files of a report's tables.

One file per table: the main table goes to the path asked for, every other
table next to it as ``<stem>.<table>.<ext>`` (``daily.csv`` + ``daily.totals.csv``).

CSV (UTF-8, header row of column names, RFC 4180 quoting): money is the exact
decimal text with a ``.`` (``1234.50``, no thousands separator), rates are
ratios (``0.975``), dates ISO, timestamps ISO 8601 UTC.  A cell holding a
comma, a quote, a line feed *or a carriage return* is quoted (the stdlib
``csv`` writer of Python 3.11 leaves a lone CR bare when the line ends in
``\n``, which splits the row in every reader).  A text cell that begins with
``=``, ``+``, ``-``, ``@``, a tab or a CR gets a leading ``'`` (OWASP's rule
against CSV formula injection: a reference or reason that a counterparty wrote
is shown by a spreadsheet as text, never run as a formula).  Numbers, dates
and times are ours and are never prefixed.

Parquet goes through DuckDB ``COPY ... TO (FORMAT parquet)``: the rows are
handed over as an Arrow table with typed columns (money ``decimal128(38,4)``),
so the file's amounts are exact DECIMALs.
"""
from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import duckdb
import pyarrow as pa

from engine.reports.model import stamp, Column, Report, ReportError, Table

_ARROW = {
    "text": pa.string(), "int": pa.int64(), "money": pa.decimal128(38, 4), "rate": pa.decimal128(9, 6),
    "ms": pa.float64(), "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"),
}
_SCALE = {"money": Decimal("0.0001"), "rate": Decimal("0.000001")}


def side_paths(out: Path, report: Report) -> list[tuple[Table, Path]]:
    """Where each table goes: the main one at ``out``, the others beside it."""
    paths = [(report.main, out)]
    for t in report.tables[1:]:
        paths.append((t, out.with_name(f"{out.stem}.{t.name}{out.suffix}")))
    return paths


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_QUOTE_IF = (",", '"', "\n", "\r")


def _csv_value(col: Column, value: Any) -> str:
    if value is None:
        return ""
    if col.kind == "text":
        text = str(value)
        return "'" + text if text.startswith(FORMULA_START) else text
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return stamp(value)
    if col.kind == "ms":
        return f"{value:.3f}"
    return str(value) if not hasattr(value, "isoformat") else value.isoformat()


def csv_field(text: str) -> str:
    """``text`` as one RFC 4180 field: quoted (quotes doubled) when it holds a comma, quote, LF or CR."""
    if any(ch in text for ch in _QUOTE_IF):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_row(cells: list[str]) -> str:
    if len(cells) == 1 and cells[0] == "":
        return '""\n'           # a lone empty field, quoted so the line is not read as no field at all
    return ",".join(csv_field(c) for c in cells) + "\n"


def write_csv_table(table: Table, out: TextIO) -> None:
    out.write(_csv_row([c.name for c in table.columns]))
    for row in table.rows:
        out.write(_csv_row([_csv_value(c, v) for c, v in zip(table.columns, row)]))


def csv_text(table: Table) -> str:
    buf = io.StringIO()
    write_csv_table(table, buf)
    return buf.getvalue()


def write_csv(report: Report, out: Path) -> list[Path]:
    written = []
    for table, path in side_paths(out, report):
        with open(path, "w", encoding="utf-8", newline="") as f:
            write_csv_table(table, f)
        written.append(path)
    return written


def arrow_table(table: Table) -> pa.Table:
    arrays = []
    for i, col in enumerate(table.columns):
        values = [row[i] for row in table.rows]
        if col.kind in _SCALE:
            exact = values
            values = [None if v is None else Decimal(v).quantize(_SCALE[col.kind]) for v in values]
            for v, q in zip(exact, values):
                if v is not None and Decimal(v) != q:    # a Parquet DECIMAL(38,4) would round it: said, not done
                    raise ReportError(f"{table.name}: column {col.name}: {Decimal(v):f} has more decimal places "
                                      f"than Parquet's {-_SCALE[col.kind].as_tuple().exponent}; write it as "
                                      f"--format csv or xlsx")
        arrays.append(pa.array(values, type=_ARROW[col.kind]))
    return pa.Table.from_arrays(arrays, names=[c.name for c in table.columns])


def write_parquet(report: Report, out: Path) -> list[Path]:
    written = []
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        for table, path in side_paths(out, report):
            rows = arrow_table(table)   # noqa: F841  (read by DuckDB's replacement scan)
            con.register("report_rows", rows)
            target = str(path).replace("'", "''")
            con.execute(f"COPY (SELECT * FROM report_rows) TO '{target}' (FORMAT parquet)").fetchall()
            con.unregister("report_rows")
            written.append(path)
    finally:
        con.close()
    return written


__all__ = ["arrow_table", "csv_text", "side_paths", "write_csv", "write_csv_table", "write_parquet"]
