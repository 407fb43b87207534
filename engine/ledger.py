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

import logging
import math
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

import trio

from engine import fieldcrypt
from engine.audit import load_audit_key
from engine.audit import sha256_hex
from engine.defaults import DEFAULT_LEDGER   # kept light for the command line
from engine.deal import DeadLetter, DealError, DealRecord, to_json
from engine.deal_line import deal_line
from engine.faultlog import RESUMES, FaultLog, os_reason, storage_fix
from engine.ledger_store import DealRows, LedgerError, LedgerStore, amount_problem, storage_failure

_log = logging.getLogger("bsp.ledger")
_DEFAULT = object()   # "read the key from the environment"


__all__ = ["open_ledger", "Ledger", "LedgerStats", "LedgerError", "DEFAULT_LEDGER"]


@dataclass
class LedgerStats:
    batches: int = 0            # transactions committed (deal batches)
    rows: int = 0               # deal rows committed
    failed_rows: int = 0        # rows whose commit raised LedgerError
    max_batch: int = 0          # largest batch written
    last_commit_ms: float = 0.0  # wall time of the last batch (Arrow build + insert + commit)
    total_commit_ms: float = 0.0
    story_batches: int = 0      # transactions of stories appended to deals already stored (append_story)
    stories: int = 0            # stories written by them

    @property
    def avg_commit_ms(self) -> float:
        return self.total_commit_ms / self.batches if self.batches else 0.0

    @property
    def avg_batch(self) -> float:
        return self.rows / self.batches if self.batches else 0.0


class _Waiter:
    __slots__ = ("row", "deal", "done", "error")

    def __init__(self, row: dict[str, Any], deal: DealRows | None = None) -> None:
        self.row = row            # the deals row, or the dead_letters row when ``deal`` is None
        self.deal = deal
        self.done = trio.Event()
        self.error: BaseException | None = None

    def describe(self) -> str:
        r = self.row
        if self.deal is None:
            return f"dead letter {r['id']} (channel {r['channel']})"
        return f"deal {r['deal_id']} (type {r['deal_type']}, reference {r['reference']!r})"


STORY_BATCH = 2000     # most stories (append_story) in one transaction


class _Story:
    __slots__ = ("args", "done", "result")

    def __init__(self, deal_id: str, rows: tuple[list[dict[str, Any]], list[dict[str, Any]]],
                 unless: str | None) -> None:
        self.args = (deal_id, rows[0], rows[1], unless)
        self.done = False
        self.result: bool | BaseException = False


class Ledger:
    """Handle returned by ``open_ledger``; do not construct directly."""

    def __init__(self, store: LedgerStore, *, max_batch: int, max_wait: float, max_pending: int,
                 keyring: fieldcrypt.Keyring | None = None) -> None:
        self.path = store.path
        self.keyring = keyring
        self._sealed = False          # a value was sealed with ``keyring`` (``sealing``)
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
        self.alarm = FaultLog(_log, "ledger")
        self._stories: list[_Story] = []          # append_story calls waiting for the next transaction
        self._story_busy: trio.Event | None = None   # set when the transaction being written is over

    # ------------------------------------------------------------ public API

    async def commit(self, record: DealRecord) -> None:
        """Store ``record``; return once its row is committed in DuckDB.

        Raises ``DealError`` (a ValueError naming the field) at once for a record
        that cannot be stored, and ``LedgerError`` when its batch failed.
        """
        rows = self.prepare(record)
        await self._submit(_Waiter(rows.row, rows))

    def prepare(self, record: DealRecord, *, validate: bool = True) -> DealRows:
        """The rows ``commit`` stores for ``record``; raises ``DealError`` naming the field.

        ``validate=False`` skips ``record.validate()`` for records whose field
        types the caller guarantees (the runtime builds them); amount range and
        JSON rendering are still checked.
        """
        if validate:
            record.validate()
        if record.amount is not None:
            problem = amount_problem(record.amount)
            if problem:
                raise DealError(f"deal {record.deal_id}: field amount: {problem}")
        try:
            return self._deal_rows(record)
        except TypeError as exc:
            raise DealError(f"deal {record.deal_id}: field request/response: {exc}") from exc

    @staticmethod
    def has_line(record: DealRecord) -> bool:
        """Whether ``record`` can travel as one NDJSON deal line (``deal_line``): no steps,
        events or dead letter (those need rows of their own: ``prepare``)."""
        return not (record.steps or record.events or record.dead_letter is not None)

    @staticmethod
    def deal_line(record: DealRecord, *, validate: bool = True, keyring: Any = None) -> bytes:
        """The deals row of ``record`` as one line of NDJSON (``ledger_store.lines_to_arrow`` reads
        it; ``engine.deal_line`` builds it, classified fields masked or encrypted with
        ``keyring``); only for records with ``has_line``.  Raises ``DealError`` naming the
        field, like ``prepare``."""
        return deal_line(record, validate=validate, keyring=keyring)

    async def commit_many(self, records: list[DealRecord], *,
                          validate: bool = True) -> list[BaseException | None]:
        """Store many records with one wait (no task per record).

        Returns, per record, None once its row is committed, or the error that
        kept it out (``DealError`` for a bad record, ``LedgerError`` for a failed
        batch).  Raises ``LedgerError`` only when the ledger is closed.
        """
        results: list[BaseException | None] = [None] * len(records)
        waiters: list[tuple[int, _Waiter]] = []
        for i, record in enumerate(records):
            try:
                rows = self.prepare(record, validate=validate)
            except DealError as exc:
                results[i] = exc
                continue
            waiters.append((i, _Waiter(rows.row, rows)))
        await self.submit_rows([w for _, w in waiters])
        for i, w in waiters:
            results[i] = w.error
        return results

    async def submit_rows(self, waiters: list["_Waiter"]) -> None:
        """Queue waiters (backpressure only when the queue is full) and wait for all of them."""
        if self._closed:
            raise LedgerError(f"{self.path}: the ledger is closed; commit() was called after its `async with` ended")
        send = self._send
        try:
            for w in waiters:
                try:
                    send.send_nowait(w)
                except trio.WouldBlock:
                    await send.send(w)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise LedgerError(f"{self.path}: the ledger is closed") from None
        for w in waiters:
            if not w.done.is_set():
                await w.done.wait()

    async def load(self, deals: list[DealRows], mark: tuple[str, int, int] | tuple[str, int, int, int] | None = None,
                   lines: bytes = b"") -> None:
        """Write already-prepared deal rows and NDJSON deal lines (``deal_line``) in one
        transaction (the journal's loader), recording ``mark`` = (journal, segment, offset[, done]) in
        the same transaction.  Raises on failure."""
        await self._run(lambda: self._store.write(deals, (), mark=mark, lines=lines))

    async def known_deal_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` already have a committed deal row."""
        return await self._run(self._store.known_deal_ids, list(ids))

    async def answers_in_rows(self, ids: list[str]) -> dict[str, str]:
        """The replies these deals' rows hold byte for byte (``LedgerStore.answers_in_rows``)."""
        return await self._run(self._store.answers_in_rows, list(ids))

    async def reversals_due(self, ids: list[str]) -> dict[str, dict[str, int]]:
        """ISO 8583 reversals queued on these deals and not acknowledged on them (``LedgerStore``)."""
        return await self._run(self._store.reversals_due, list(ids))

    async def joined_to(self, deal_id: str, call: str) -> list[dict[str, Any]]:
        """The deals whose advice joined this deal's queued reversal of ``call`` (``LedgerStore``)."""
        return await self._run(self._store.joined_to, deal_id, call)

    async def joins_to(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """``joined_to`` of the queued reversals of all these deals, in one query (``LedgerStore``)."""
        return await self._run(self._store.joins_to, list(ids))

    async def resolutions(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The operator's resolution of these deals, and their reversals it cancelled (``LedgerStore``)."""
        return await self._run(self._store.resolutions, list(ids))

    async def deals_by_key(self, keys: list[str], digests: Any = None) -> dict[str, dict[str, Any]]:
        """The deal each deal key (``route|value``) was first used by, when the ledger has it (``digests``:
        how its fingerprint's party digest is made, ``engine.txn.fingerprint.Digests``)."""
        return await self._run(self._store.deals_by_key, list(keys), digests)

    async def counted_totals(self, since: str) -> list[tuple[Any, ...]]:
        """The ``counted`` events of ``limit`` totals (engine/totals.py): daily ones of ``since`` or later."""
        return await self._run(self._store.counted_totals, since)

    async def statement_links(self) -> list[tuple[Any, ...]]:
        """The ``statement link`` events of ``continuity`` steps (engine/statement_chains.py)."""
        return await self._run(self._store.statement_links)

    async def append_story(self, deal_id: str, steps: list[Any], events: list[Any],
                           unless: str | None = None) -> bool:
        """Add trace lines (``DealStep``) and events (``DealEvent``) to a deal already committed, after
        its own (``LedgerStore.append_stories``; the audit chain continues).  Returns whether it wrote;
        raises ``LedgerError`` when the deal has no row or the write failed.  Group-committed with the
        other stories asked for meanwhile (``append_stories``)."""
        (result,) = await self.append_stories([(deal_id, steps, events, unless)])
        if isinstance(result, BaseException):
            raise result
        return result

    async def append_stories(self, stories: list[tuple[str, list[Any], list[Any], str | None]]
                             ) -> list[bool | BaseException]:
        """Many ``append_story``, ``(deal_id, steps, events, unless)`` each; returns, per story, whether it
        wrote or the ``LedgerError`` that kept it out.  Returns once every one is committed.

        Group commit, like the transaction log's: the stories asked for while one transaction is being
        written wait, and the first of them then writes all that are waiting (up to ``STORY_BATCH``)
        in the next transaction, one audit-chained insert per table.  A lone story on a quiet ledger is
        not delayed.  When a transaction fails its stories are written again one by one, so that a
        story that cannot be written fails alone."""
        if self._closed:
            raise LedgerError(f"{self.path}: the ledger is closed; append_story() was called after its "
                              f"`async with` ended")
        mine = [_Story(d, self._story_rows(steps, events), u) for d, steps, events, u in stories]
        self._stories.extend(mine)
        try:
            while not all(st.done for st in mine):
                busy = self._story_busy
                if busy is not None:
                    await busy.wait()
                    continue
                busy = self._story_busy = trio.Event()
                try:
                    await trio.lowlevel.checkpoint()        # the tasks ready now add theirs to this transaction
                    batch, self._stories = self._stories[:STORY_BATCH], self._stories[STORY_BATCH:]
                    if batch:
                        await self._run(self._write_stories, batch)
                        self.stats.story_batches += 1
                        self.stats.stories += sum(1 for st in batch if st.result is True)
                finally:
                    self._story_busy = None
                    busy.set()
        except BaseException:       # cancelled: what no transaction has taken yet is not written later
            left = {id(st) for st in mine if not st.done}
            if left:
                self._stories = [st for st in self._stories if id(st) not in left]
            raise
        return [st.result for st in mine]

    @staticmethod
    def _story_rows(steps: list[Any], events: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        srows = [{"step": s.name, "kind": s.kind, "vote": s.vote, "outcome": s.outcome,
                  "started_at": s.started_at, "duration_ms": float(s.duration_ms), "detail": to_json(s.detail)}
                 for s in steps]
        erows = [{"at": e.at, "to_state": e.to_state, "detail": to_json(e.detail)} for e in events]
        return srows, erows

    def _write_stories(self, batch: list["_Story"]) -> None:
        """Writer thread: the batch in one transaction; on failure story by story."""
        results = _each_alone(batch, lambda b: self._store.append_stories([st.args for st in b]),
                              lambda st: self._store.append_stories([st.args])[0])
        for st, r in zip(batch, results):
            if isinstance(r, BaseException) and not isinstance(r, LedgerError):
                err = LedgerError(f"{self.path}: the story of deal {st.args[0]} was not stored: {r}")
                err.__cause__ = r
                r = err
            st.result = r
            st.done = True

    async def journal_position(self, journal: str) -> tuple[int, int, int] | None:
        """The (segment, offset, done) recorded by the last ``load`` of ``journal``, or None."""
        return await self._run(self._store.journal_position, journal)

    async def dead_letter(self, letter: DeadLetter) -> None:
        """Store a dead letter; return once it is committed (group-committed like ``commit``).

        With a field keyring the raw bytes are stored encrypted (they may hold a
        PAN; the message could not be decoded, so its fields cannot be classified).
        """
        await self._submit(_Waiter(self._dead_row(letter)))

    def sealing(self) -> None:
        """Values are sealed with the field keyring for this ledger: the first time, the store records the
        current key's check value with its next write (``LedgerStore.sealing``, engine/field_key_checks.py)."""
        if not self._sealed and self.keyring is not None:
            self._sealed = True
            self._store.sealing(self.keyring)

    def _dead_row(self, letter: DeadLetter) -> dict[str, Any]:
        """The ``dead_letters`` row of ``letter`` (raw bytes encrypted with the keyring, if any)."""
        letter.validate()
        raw = bytes(letter.raw)
        kid = None
        if self.keyring is not None:
            self.sealing()
            token = self.keyring.encrypt(raw, f"dead|{letter.id}".encode())
            kid = self.keyring.current
            raw = token.encode()
        row = {
            "id": letter.id, "at": letter.at, "route": letter.route, "channel": letter.channel,
            "reason": letter.reason, "error_kind": letter.error_kind, "error_code": letter.error_code,
            "raw": raw, "raw_key": kid, "raw_sha256": sha256_hex(raw),
            "config_version": letter.config_version, "status": letter.status,
        }
        return row

    async def mark_dead_letters(self, ids: list[str], *, status: str, retried_at: datetime | None = None,
                                retry_outcome: str | None = None) -> int:
        """Change dead letters' status / retry outcome (on the writer's thread); returns rows changed."""
        return await self._run(lambda: self._store.update_dead_letters(
            ids, status=status, retried_at=retried_at, retry_outcome=retry_outcome))

    async def end_retry(self, letter_id: str, *, status: str, retried_at: datetime, outcome: str,
                        deal_id: str | None) -> str | None:
        """Record a retry's outcome, linked to the dead letter its deal left if any (``LedgerStore.end_retry``)."""
        return await self._run(lambda: self._store.end_retry(letter_id, status=status, retried_at=retried_at,
                                                             outcome=outcome, deal_id=deal_id))

    async def claim_dead_letter(self, letter_id: str, *, at: datetime, note: str, again: bool = False,
                                deal_id: str | None = None) -> tuple[bool, dict[str, Any] | None]:
        """Mark a dead letter ``retrying`` unless a retry has it (``LedgerStore.claim_dead_letter``), on the
        writer's thread: one claim at a time, so two retries of one letter cannot both run it."""
        return await self._run(lambda: self._store.claim_dead_letter(letter_id, at=at, note=note, again=again,
                                                                     deal_id=deal_id))

    async def record_reveal(self, ident: str, event: Mapping[str, Any]) -> datetime:
        """Append a ``revealed`` event (engine/reveal_log.py) on a deal's or dead letter's id, on the writer's
        thread: the audit chain continues; its time."""
        from engine.reveal_log import append

        return await self._run(lambda: append(self._store, ident, event))

    async def with_store(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """``fn(store, *args, **kw)`` on the writer's thread, with its ``LedgerStore`` (engine/four_eyes.py: a
        request or decision checked and recorded in one transaction, the audit chain continued)."""
        return await self._run(lambda: fn(self._store, *args, **kw))

    async def retrying_dead_letters(self, channel: str) -> list[dict[str, Any]]:
        """The letters of ``channel`` a retry has claimed (``LedgerStore.retrying_dead_letters``)."""
        return await self._run(self._store.retrying_dead_letters, channel)

    async def deal_ends(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Status and reason of these deals, those with a row (``LedgerStore.deal_ends``)."""
        return await self._run(self._store.deal_ends, list(ids))

    @property
    def audited(self) -> bool:
        """Whether records are chained with an audit key (docs/security.md)."""
        return self._store.audit_key is not None

    def _deal_rows(self, record: DealRecord) -> DealRows:
        row = record.to_row()
        ctx = record.deal_id
        for root, values, tags in (("request", record.request, record.request_tags),
                                   ("response", record.response, record.response_tags)):
            stored = fieldcrypt.protect_side(values, tags, self.keyring, context=ctx, root=root)
            if stored is not fieldcrypt.AS_IS:
                row[root] = to_json(stored)
                self.sealing()
        steps = [{"deal_id": ctx, "seq": i, "step": s.name, "kind": s.kind, "vote": s.vote,
                  "outcome": s.outcome, "started_at": s.started_at, "duration_ms": float(s.duration_ms),
                  "detail": to_json(s.detail)} for i, s in enumerate(record.steps, 1)]
        events = [{"deal_id": ctx, "seq": i, "at": e.at, "from_state": e.from_state, "to_state": e.to_state,
                   "detail": to_json(e.detail)} for i, e in enumerate(record.events, 1)]
        dead = None
        if record.dead_letter is not None:
            try:
                dead = self._dead_row(record.dead_letter)
            except DealError as exc:      # the deal is stored all the same; its row tells the story
                _log.error("dead letter for deal %s not stored: %s", ctx, exc)
        return DealRows(row, steps, events, dead)

    async def _submit(self, waiter: _Waiter) -> None:
        if self._closed:
            raise LedgerError(f"{self.path}: the ledger is closed; commit() was called after its `async with` ended")
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
        now = datetime.now(timezone.utc)      # {path: text}: stored as a manifest and each text once (schema 11)
        return await self._run(self._store.record_config, version, sources, now)

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

    def _write_all(self, items: list[_Waiter]) -> list[None]:
        self._store.write([w.deal for w in items if w.deal is not None],
                          [w.row for w in items if w.deal is None])
        return [None] * len(items)

    def _write(self, items: list[_Waiter]) -> tuple[list[BaseException | None], float]:
        """Writer thread: one transaction; on failure item by item.  Returns per-item errors and ms."""
        start = time.perf_counter()
        errors = _each_alone(items, self._write_all, lambda w: self._write_all([w])[0])
        return errors, (time.perf_counter() - start) * 1000.0

    async def _writer(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            self._last_batch = len(batch)
            errors, ms = await self._run(self._write, batch)
            ok = 0
            stalled: list[tuple[_Waiter, BaseException]] = []
            for waiter, err in zip(batch, errors):
                if err is not None:
                    waiter.error = LedgerError(f"{self.path}: {waiter.describe()} was not stored: {err}")
                    waiter.error.__cause__ = err
                    if storage_failure(err):      # reported once below, not again per deal or dead letter
                        waiter.error.logged = True     # type: ignore[attr-defined]
                        stalled.append((waiter, err))
                else:
                    ok += 1
                waiter.done.set()
            if stalled:
                first, err = stalled[0]
                more = f" and {len(stalled) - 1} other record(s)" if len(stalled) > 1 else ""
                why = ("a deal not stored is not acknowledged: no reply is sent"
                       if any(w.deal is not None for w, _ in stalled) else "the deals' rows tell what happened")
                self.alarm.failed("write", f"{self.path}: {first.describe()}{more} not stored ({why}): "
                                           f"{os_reason(err)}; {storage_fix(err)}; {RESUMES}")
            elif ok and self.alarm.failing("write"):
                self.alarm.recovered("write")
            s = self.stats
            s.failed_rows += len(batch) - ok
            if ok:
                s.batches += 1
                s.rows += ok
                s.max_batch = max(s.max_batch, len(batch))
                s.last_commit_ms = ms
                s.total_commit_ms += ms


def _each_alone(items: list[Any], whole: Any, one: Any) -> list[Any]:
    """Writer thread: ``whole(items)`` in one transaction, returning a result per item; when that fails
    (not for storage: a full disk fails every item alike), ``one(item)`` item by item, so that an item
    that cannot be written fails alone.  A failed item's result is its exception."""
    try:
        return whole(items)
    except Exception as exc:          # duckdb.Error, pyarrow errors
        if len(items) == 1 or storage_failure(exc):
            return [exc] * len(items)
    results: list[Any] = []
    for it in items:
        try:
            results.append(one(it))
        except Exception as err:
            results.append(err)
    return results


def flush_alarms(ledger: Any) -> None:
    """At the stop: the failures of ``ledger``'s and its transaction manager's storage counted since their
    last line (engine/faultlog.py ``flush``)."""
    ledger.alarm.flush()
    txn = sys.modules.get("engine.txn.manager")         # not imported: no manager (it imports this module)
    manager = txn.existing_manager(ledger) if txn is not None else None
    if manager is not None:
        manager.alarm.flush()


def storage_faults(ledger: Any) -> list[dict[str, Any]]:
    """The storage faults failing now (``FaultLog.open_faults``) of ``ledger`` (the journal's, or the
    DuckDB writer's), the DuckDB ledger it wraps and their transaction manager: what ``bsp status`` shows."""
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    txn = sys.modules.get("engine.txn.manager")
    for led in (ledger, getattr(ledger, "ledger", None)):
        if led is None or id(led) in seen:
            continue
        seen.add(id(led))
        alarm = getattr(led, "alarm", None)
        if isinstance(alarm, FaultLog):
            out += alarm.open_faults()
        manager = txn.existing_manager(led) if txn is not None else None
        if manager is not None:
            out += manager.alarm.open_faults()
    return out


def audit_state(ledger: Any) -> dict[str, Any] | None:
    """The audit chain as the writer of ``ledger`` (the journal's, or the DuckDB writer's) holds it:
    ``{"keyed": the records it writes are sealed with an audit key, "break_at_start": the `audit break` its
    open recorded, {seq, at, what}, or None}``; None when ``ledger`` has no store of its own (a test's stand-in)."""
    for led in (ledger, getattr(ledger, "ledger", None)):
        store = getattr(led, "_store", None)
        if store is not None and hasattr(store, "audit_key"):
            return {"keyed": store.audit_key is not None, "break_at_start": getattr(store, "audit_break", None)}
    return None


@asynccontextmanager
async def open_ledger(
    path: str | Path = DEFAULT_LEDGER,
    *,
    max_batch: int = 2048,
    max_wait: float = 0.002,
    max_pending: int | None = None,
    audit_key: Any = _DEFAULT,
    keyring: Any = _DEFAULT,
) -> AsyncIterator[Ledger]:
    """Open (creating if needed) the ledger file and start its writer task.

    ``max_batch``: most rows per transaction.  ``max_wait``: seconds the writer
    waits for more records after the first (0: write what is there).
    ``max_pending``: records queued before ``commit`` waits (default 4 x max_batch).
    ``audit_key`` (bytes, or None for no chaining) defaults to BSP_AUDIT_KEY(_FILE);
    ``keyring`` (``fieldcrypt.Keyring`` or None: mask only) to BSP_FIELD_KEYS(_FILE).
    See docs/security.md.
    """
    if audit_key is _DEFAULT:
        audit_key = load_audit_key()
    if keyring is _DEFAULT:
        keyring = fieldcrypt.load_keyring()
    if max_batch < 1:
        raise ValueError(f"open_ledger: max_batch must be >= 1, got {max_batch}")
    if not (max_wait >= 0 and math.isfinite(max_wait)):
        raise ValueError(f"open_ledger: max_wait must be a finite number of seconds >= 0, got {max_wait}")
    pending = 4 * max_batch if max_pending is None else max_pending
    if pending < 1:
        raise ValueError(f"open_ledger: max_pending must be >= 1, got {pending}")
    # the keyring's keys against the check values of the key ids the ledger sealed with (KeyMismatch)
    store = await trio.to_thread.run_sync(LedgerStore.open, Path(path), audit_key, keyring)
    ledger = Ledger(store, max_batch=max_batch, max_wait=max_wait, max_pending=pending, keyring=keyring)
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
        try:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(store.close, limiter=ledger._limiter)
        except LedgerError as close_error:
            if not isinstance(body_error, Exception):
                raise
            # the body's failure (a start-up that could not load the journal) is the news; not checkpointing
            # on close is its consequence: said after it (``bsp run`` prints notes), never instead of it
            body_error.add_note(str(close_error))
        finally:
            flush_alarms(ledger)        # storage faults counted since their last line (engine/faultlog.py)
