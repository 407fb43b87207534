"""Deal and dead-letter queries against the ledger the engine itself holds open.

``engine.ledger_query`` opens the file read-only, which DuckDB refuses inside
the process that writes it ("different configuration").  A plain connection
to the same path joins the writer's database instance instead, and reads
committed data from its own worker thread without blocking the writer.  The
filters, order and value conversions are those of ``query_deals`` /
``query_dead_letters`` (same columns, ``display_amount``, aware UTC times).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import trio

from engine.ledger_query import DEAD_LIST_COLUMNS, display_amount
from engine.ledger_store import COLUMNS, LedgerError

_READERS = trio.CapacityLimiter(2)


def _where(filters: list[tuple[str, str, Any]]) -> tuple[str, list[Any]]:
    parts, params = [], []
    for column, op, value in filters:
        if value is not None:
            parts.append(f"{column} {op} ?")
            params.append(value)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def _fetch(path: Path, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise LedgerError(f"{path}: cannot open the ledger for reading: {exc}") from exc
    try:
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    except duckdb.Error as exc:
        raise LedgerError(f"{path}: cannot read: {exc}") from exc
    finally:
        con.close()


async def read_deals(path: Path, *, deal_type: str | None = None, status: str | None = None,
                     reference: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where, params = _where([("deal_type", "=", deal_type), ("status", "=", status),
                            ("reference", "=", reference), ("received_at", ">=", since),
                            ("received_at", "<", until)])
    sql = (f"SELECT {', '.join(COLUMNS)} FROM deals{where} ORDER BY received_at DESC, deal_id DESC "
           f"LIMIT {int(limit)}")
    rows = await trio.to_thread.run_sync(_fetch, path, sql, params, limiter=_READERS)
    for d in rows:
        d["amount"] = display_amount(d["amount"], d["currency"])
        for k in ("received_at", "finished_at"):
            d[k] = d[k].astimezone(timezone.utc)
        for k in ("request", "response"):
            if d[k] is not None:
                d[k] = orjson.loads(d[k])
    return rows


async def read_dead_letters(path: Path, *, channel: str | None = None, route: str | None = None,
                            since: datetime | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where, params = _where([("channel", "=", channel), ("route", "=", route), ('"at"', ">=", since)])
    cols = ", ".join(f'"{c}"' for c in DEAD_LIST_COLUMNS)
    sql = f'SELECT {cols} FROM dead_letters{where} ORDER BY "at" DESC, id DESC LIMIT {int(limit)}'
    rows = await trio.to_thread.run_sync(_fetch, path, sql, params, limiter=_READERS)
    for r in rows:
        for k in ("at", "retried_at"):
            if r[k] is not None:
                r[k] = r[k].astimezone(timezone.utc)
    return rows
