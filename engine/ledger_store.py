"""The ledger's DuckDB side: schema, Arrow batches, the blocking connection.

Everything here is synchronous and runs on the ledger's writer thread
(``engine/ledger.py`` owns the scheduling).  One ``LedgerStore`` owns one
read-write DuckDB connection; nothing else may touch it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pyarrow as pa

SCHEMA_VERSION = 1

# Money column: DECIMAL(24,4).  20 digits before the point hold any bank
# amount (incl. high-nominal currencies such as IDR, VND, IRR summed over a
# day); 4 after it hold every ISO 4217 minor unit (CLF and UYW have 4; BHD,
# KWD, JOD, OMR, TND 3).  Amounts with more decimals are refused, never rounded.
AMOUNT_PRECISION = 24
AMOUNT_SCALE = 4
AMOUNT_MAX_INT_DIGITS = AMOUNT_PRECISION - AMOUNT_SCALE

DDL = f"""
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS deals (
    deal_id        VARCHAR PRIMARY KEY,
    deal_type      VARCHAR NOT NULL,
    route          VARCHAR NOT NULL,
    config_version VARCHAR NOT NULL,
    channel        VARCHAR NOT NULL,
    reference      VARCHAR,
    amount         DECIMAL({AMOUNT_PRECISION},{AMOUNT_SCALE}),
    currency       VARCHAR,
    party          VARCHAR,
    status         VARCHAR NOT NULL,
    response_code  VARCHAR,
    reason         VARCHAR,
    received_at    TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL,
    duration_ms    DOUBLE NOT NULL,
    request        JSON,
    response       JSON
);
CREATE INDEX IF NOT EXISTS deals_reference ON deals (reference);
CREATE INDEX IF NOT EXISTS deals_received_at ON deals (received_at);
CREATE TABLE IF NOT EXISTS config_versions (
    version   VARCHAR PRIMARY KEY,
    loaded_at TIMESTAMPTZ NOT NULL,
    sources   JSON
);
"""

COLUMNS: tuple[str, ...] = (
    "deal_id", "deal_type", "route", "config_version", "channel", "reference",
    "amount", "currency", "party", "status", "response_code", "reason",
    "received_at", "finished_at", "duration_ms", "request", "response",
)

_TS = pa.timestamp("us", tz="UTC")
ARROW_SCHEMA = pa.schema([
    ("deal_id", pa.string()),
    ("deal_type", pa.string()),
    ("route", pa.string()),
    ("config_version", pa.string()),
    ("channel", pa.string()),
    ("reference", pa.string()),
    ("amount", pa.decimal128(AMOUNT_PRECISION, AMOUNT_SCALE)),
    ("currency", pa.string()),
    ("party", pa.string()),
    ("status", pa.string()),
    ("response_code", pa.string()),
    ("reason", pa.string()),
    ("received_at", _TS),
    ("finished_at", _TS),
    ("duration_ms", pa.float64()),
    ("request", pa.string()),
    ("response", pa.string()),
])

_INSERT = f"INSERT INTO deals ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM _bsp_batch"


class LedgerError(RuntimeError):
    """The ledger could not open, store or read; the message says which file and why."""


_QUANTUM = Decimal(1).scaleb(-AMOUNT_SCALE)


def amount_problem(amount: Decimal) -> str | None:
    """Why ``amount`` does not fit the amount column, or None when it fits."""
    if amount != 0 and amount.adjusted() >= AMOUNT_MAX_INT_DIGITS:
        return (f"{amount} has more than {AMOUNT_MAX_INT_DIGITS} digits before the decimal point "
                f"(the ledger stores DECIMAL({AMOUNT_PRECISION},{AMOUNT_SCALE}))")
    exp = amount.as_tuple().exponent
    assert isinstance(exp, int)
    # trailing zeros beyond the scale are harmless: 1.50000 == 1.5000
    if exp < -AMOUNT_SCALE and amount != amount.quantize(_QUANTUM):
        return (f"{amount} has more than {AMOUNT_SCALE} decimal places; the ledger stores "
                f"DECIMAL({AMOUNT_PRECISION},{AMOUNT_SCALE}) and never rounds money (round it in the route)")
    return None


def rows_to_arrow(rows: Sequence[dict[str, Any]]) -> pa.Table:
    columns = []
    for name, typ in zip(ARROW_SCHEMA.names, ARROW_SCHEMA.types):
        values = [r[name] for r in rows]
        if name == "amount":
            # normalise trailing zeros beyond the scale (validated before), e.g. 1.50000
            values = [v if v is None or v.as_tuple().exponent >= -AMOUNT_SCALE  # type: ignore[operator]
                      else v.quantize(_QUANTUM) for v in values]
        columns.append(pa.array(values, type=typ))
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)


def _locked_message(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "lock" in text.lower():
        return (f"{path}: the ledger file is locked by another process (a running bsp engine holds "
                f"it; DuckDB allows one writer process per file). Stop that engine, or query a copy "
                f"of the file. DuckDB said: {text}")
    if "different configuration" in text:
        return (f"{path}: this process already has the ledger open for writing (open_ledger is "
                f"running); DuckDB cannot add a read-only connection to it. Read it after the "
                f"ledger is closed, or from a copy. DuckDB said: {text}")
    return f"{path}: cannot open the ledger: {text}"


def connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise LedgerError(_locked_message(path, exc)) from exc


class LedgerStore:
    """The one read-write connection to a ledger file.  Not thread-safe: one caller at a time."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self._con = con

    @classmethod
    def open(cls, path: str | Path) -> "LedgerStore":
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(path, read_only=False)
        try:
            con.execute("BEGIN TRANSACTION").fetchall()
            for stmt in DDL.split(";"):
                if stmt.strip():
                    con.execute(stmt).fetchall()
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
            found = row[0] if row else None
            if found is None:
                con.execute("INSERT INTO schema_version VALUES (?, ?)",
                            [SCHEMA_VERSION, datetime.now(timezone.utc)]).fetchall()
            elif found > SCHEMA_VERSION:
                raise LedgerError(
                    f"{path}: ledger schema version {found} is newer than this bsp understands "
                    f"({SCHEMA_VERSION}); upgrade bsp or use another ledger file")
            con.execute("COMMIT").fetchall()
        except BaseException:
            con.close()
            raise
        return cls(path, con)

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` in one transaction (DuckDB autocommit: one statement, one commit)."""
        table = rows_to_arrow(rows)
        self._con.register("_bsp_batch", table)
        try:
            self._con.execute(_INSERT).fetchall()
        finally:
            self._con.unregister("_bsp_batch")

    def insert_each(self, rows: Sequence[dict[str, Any]]) -> list[Exception | None]:
        """Insert rows one transaction each (after a batch failed), to find the culprit."""
        out: list[Exception | None] = []
        for row in rows:
            try:
                self.insert([row])
                out.append(None)
            except (duckdb.Error, pa.ArrowException) as exc:
                out.append(exc)
        return out

    def record_config(self, version: str, sources_json: str | None, loaded_at: datetime) -> bool:
        """Store a configuration version once (the first load is kept).  True when new."""
        res = self._con.execute(
            "INSERT INTO config_versions VALUES (?, ?, ?) ON CONFLICT (version) DO NOTHING",
            [version, loaded_at, sources_json]).fetchall()
        return bool(res and res[0][0])

    def close(self) -> None:
        try:
            self._con.execute("CHECKPOINT").fetchall()
        finally:
            self._con.close()
