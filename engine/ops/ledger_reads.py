"""Ledger reads from inside the process that holds the ledger open for writing.

``engine.ledger_query`` opens the file read-only, which DuckDB refuses inside
the process that writes it ("different configuration").  A plain connection
to the same path joins the writer's database instance instead, and reads
committed data from its own worker thread without blocking the writer.
``read_in_process`` opens that connection and hands it to a
``engine.ledger_query`` function (``query_deals``, ``query_dead_letters``,
``get_deal``) as ``con=``, so filters and conversions live in one place.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import trio

from engine.ledger_store import LedgerError

_READERS = trio.CapacityLimiter(2)
T = TypeVar("T")


def _with_connection(query: Callable[..., T], path: Path, kwargs: dict[str, Any]) -> T:
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise LedgerError(f"{path}: cannot open the ledger for reading: {exc}") from exc
    try:
        return query(path, con=con, **kwargs)
    finally:
        con.close()


async def read_in_process(query: Callable[..., T], path: Path, **kwargs: Any) -> T:
    """``query(path, con=<connection joining the writer>, **kwargs)`` run in a worker thread."""
    return await trio.to_thread.run_sync(_with_connection, query, path, kwargs, limiter=_READERS)
