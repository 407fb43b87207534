"""The deal ledger: group commit of deal rows into one DuckDB file.

    async with open_ledger("var/bsp.duckdb") as ledger:
        await ledger.commit(record)      # returns once the row is committed
        ledger.stats                     # LedgerStats

One writer task owns the DuckDB connection; it runs every database call on a
worker thread through ``trio.to_thread.run_sync`` with a ``CapacityLimiter(1)``,
so the connection is never used by two threads at once.  ``commit`` puts the
record on a bounded memory channel (backpressure: it waits when
``max_pending`` records are already queued) and waits for its batch.

Group commit: while one batch is being written, new records pile up in the
channel; the writer then takes everything waiting (up to ``max_batch``),
writes it as one Arrow table in one transaction, and releases every waiter of
that batch.  ``max_wait`` is how long the writer lingers for more records
after the first one arrives when fewer than ``max_batch`` are waiting; it
lingers only under load (the previous batch held more than one row), so a
lone commit on a quiet ledger is not delayed.

A failed batch is retried row by row, so one bad row (say a duplicate
deal_id) fails only its own ``commit`` with ``LedgerError``.  Leaving the
``async with`` normally writes everything still queued, then checkpoints and
closes the file.  On cancellation, records not yet committed are dropped:
their ``commit`` calls never returned, so nobody was told they were stored.
"""
from __future__ import annotations

import math
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import trio

from engine.deal import DealError, DealRecord, to_json
from engine.ledger_store import LedgerError, LedgerStore, amount_problem

DEFAULT_LEDGER = Path("var/bsp.duckdb")

__all__ = ["open_ledger", "Ledger", "LedgerStats", "LedgerError", "DEFAULT_LEDGER"]


@dataclass
class LedgerStats:
    batches: int = 0            # transactions committed (deal batches)
    rows: int = 0               # deal rows committed
    failed_rows: int = 0        # rows whose commit raised LedgerError
    max_batch: int = 0          # largest batch written
    last_commit_ms: float = 0.0  # wall time of the last batch (Arrow build + insert + commit)
    total_commit_ms: float = 0.0

    @property
    def avg_commit_ms(self) -> float:
        return self.total_commit_ms / self.batches if self.batches else 0.0

    @property
    def avg_batch(self) -> float:
        return self.rows / self.batches if self.batches else 0.0


class _Waiter:
    __slots__ = ("row", "done", "error")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.done = trio.Event()
        self.error: BaseException | None = None


class Ledger:
    """Handle returned by ``open_ledger``; do not construct directly."""

    def __init__(self, store: LedgerStore, *, max_batch: int, max_wait: float, max_pending: int) -> None:
        self.path = store.path
        self.stats = LedgerStats()
        self._store = store
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._limiter = trio.CapacityLimiter(1)
        # None on the channel is the close marker: it queues behind committers
        # already blocked by backpressure, so they are written too.
        self._send, self._recv = trio.open_memory_channel[_Waiter | None](max_pending)
        self._closed = False
        self._stopping = False
        self._last_batch = 0

    # ------------------------------------------------------------ public API

    async def commit(self, record: DealRecord) -> None:
        """Store ``record``; return once its row is committed in DuckDB.

        Raises ``DealError`` (a ValueError naming the field) at once for a record
        that cannot be stored, and ``LedgerError`` when its batch failed.
        """
        record.validate()
        if record.amount is not None:
            problem = amount_problem(record.amount)
            if problem:
                raise DealError(f"deal {record.deal_id}: field amount: {problem}")
        try:
            row = record.to_row()
        except TypeError as exc:
            raise DealError(f"deal {record.deal_id}: field request/response: {exc}") from exc
        if self._closed:
            raise LedgerError(f"{self.path}: the ledger is closed; commit() was called after its `async with` ended")
        waiter = _Waiter(row)
        try:
            await self._send.send(waiter)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise LedgerError(f"{self.path}: the ledger is closed") from None
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    async def record_config(self, version: str, sources: Any) -> bool:
        """Record a configuration version (e.g. ``Program.version``, ``Program.sources``).

        The first load of a version is kept; returns True when it was new.
        """
        text = to_json(sources)
        now = datetime.now(timezone.utc)
        return await self._run(self._store.record_config, version, text, now)

    @property
    def pending(self) -> int:
        """Records queued and not yet taken into a batch."""
        return self._recv.statistics().current_buffer_used

    # ------------------------------------------------------------ internals

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def _next_batch(self) -> list[_Waiter] | None:
        if self._stopping:
            return None
        try:
            first = await self._recv.receive()
        except trio.EndOfChannel:
            return None
        if first is None:
            self._stopping = True
            return None
        batch = [first]
        self._drain(batch)
        linger = self._max_wait > 0 and (len(batch) > 1 or self._last_batch > 1)
        if linger and len(batch) < self._max_batch and not self._stopping:
            with trio.move_on_after(self._max_wait):
                while len(batch) < self._max_batch and not self._stopping:
                    try:
                        item = await self._recv.receive()
                    except trio.EndOfChannel:
                        break
                    if item is None:
                        self._stopping = True
                        break
                    batch.append(item)
                    self._drain(batch)
        return batch

    def _drain(self, batch: list[_Waiter]) -> None:
        while len(batch) < self._max_batch and not self._stopping:
            try:
                item = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if item is None:
                self._stopping = True
                return
            batch.append(item)

    def _write(self, rows: list[dict[str, Any]]) -> tuple[list[BaseException | None], float]:
        """Writer thread: one transaction; on failure row by row.  Returns per-row errors and ms."""
        start = time.perf_counter()
        try:
            self._store.insert(rows)
            errors: list[BaseException | None] = [None] * len(rows)
        except Exception as exc:  # duckdb.Error, pyarrow errors
            if len(rows) == 1:
                errors = [exc]
            else:
                errors = list(self._store.insert_each(rows))
        return errors, (time.perf_counter() - start) * 1000.0

    async def _writer(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            rows = [w.row for w in batch]
            self._last_batch = len(batch)
            errors, ms = await self._run(self._write, rows)
            ok = 0
            for waiter, err in zip(batch, errors):
                if err is not None:
                    row = waiter.row
                    waiter.error = LedgerError(
                        f"{self.path}: deal {row['deal_id']} (type {row['deal_type']}, reference "
                        f"{row['reference']!r}) was not stored: {err}")
                    waiter.error.__cause__ = err
                else:
                    ok += 1
                waiter.done.set()
            s = self.stats
            s.failed_rows += len(batch) - ok
            if ok:
                s.batches += 1
                s.rows += ok
                s.max_batch = max(s.max_batch, len(batch))
                s.last_commit_ms = ms
                s.total_commit_ms += ms


@asynccontextmanager
async def open_ledger(
    path: str | Path = DEFAULT_LEDGER,
    *,
    max_batch: int = 2048,
    max_wait: float = 0.002,
    max_pending: int | None = None,
) -> AsyncIterator[Ledger]:
    """Open (creating if needed) the ledger file and start its writer task.

    ``max_batch``: most rows per transaction.  ``max_wait``: seconds the writer
    waits for more records after the first (0: write what is there).
    ``max_pending``: records queued before ``commit`` waits (default 4 x max_batch).
    """
    if max_batch < 1:
        raise ValueError(f"open_ledger: max_batch must be >= 1, got {max_batch}")
    if not (max_wait >= 0 and math.isfinite(max_wait)):
        raise ValueError(f"open_ledger: max_wait must be a finite number of seconds >= 0, got {max_wait}")
    pending = 4 * max_batch if max_pending is None else max_pending
    if pending < 1:
        raise ValueError(f"open_ledger: max_pending must be >= 1, got {pending}")
    store = await trio.to_thread.run_sync(LedgerStore.open, Path(path))
    ledger = Ledger(store, max_batch=max_batch, max_wait=max_wait, max_pending=pending)
    body_error: BaseException | None = None
    try:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ledger._writer)
                try:
                    yield ledger
                except BaseException as exc:
                    body_error = exc
                    raise
                else:
                    ledger._closed = True
                    await ledger._send.send(None)   # behind every queued and blocked commit
                finally:
                    ledger._closed = True
                    ledger._send.close()
        except BaseExceptionGroup as group:
            # Give the caller back its own exception rather than a group around it.
            if body_error is not None and len(group.exceptions) == 1 and group.exceptions[0] is body_error:
                raise body_error from None
            raise
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(store.close, limiter=ledger._limiter)
