"""CSV and Parquet files of a report's tables.

One file per table: the main table goes to the path asked for, every other
table next to it as ``<stem>.<table>.<ext>`` (``daily.csv`` + ``daily.totals.csv``).

CSV (stdlib ``csv``, UTF-8, header row of column names): money is the exact
decimal text with a ``.`` (``1234.50``, no thousands separator), rates are
ratios (``0.975``), dates ISO, timestamps ISO 8601 UTC.

Parquet goes through DuckDB ``COPY ... TO (FORMAT parquet)``: the rows are
handed over as an Arrow table with typed columns (money ``decimal128(38,4)``),
so the file's amounts are exact DECIMALs.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import duckdb
import pyarrow as pa

from engine.reports.model import Column, Report, Table

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


def _csv_value(col: Column, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if col.kind == "ms":
        return f"{value:.3f}"
    return str(value) if not hasattr(value, "isoformat") else value.isoformat()


def write_csv_table(table: Table, out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow([c.name for c in table.columns])
    for row in table.rows:
        w.writerow([_csv_value(c, v) for c, v in zip(table.columns, row)])


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
            values = [None if v is None else Decimal(v).quantize(_SCALE[col.kind]) for v in values]
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
