"""Write-ahead journal in front of the DuckDB ledger: a deal is durable in ~0.2 ms.

    async with open_journaled_ledger("var/bsp.duckdb") as ledger:     # sync="journal"
        errors = await ledger.commit_many(records)   # returns once the deals are fdatasync'ed

A DuckDB transaction costs about a millisecond here whatever its size, too much
to sit between a request and its reply.  So deals are first appended to an
append-only journal file (one record per group commit, one ``fdatasync`` per
record), the replies are released, and a loader moves the journal into DuckDB
behind, in large transactions (every ``load_wait`` seconds or ``load_rows``
rows, whichever comes first).  Each load records the journal position it has
reached (table ``journal_state``) in the same transaction as the rows, so at
start-up any journal tail not yet in DuckDB is loaded exactly once; nothing
acknowledged is lost, even on ``kill -9``.  A load DuckDB refuses (a bad deal)
is loaded deal by deal, each deal's transaction recording the position past it
(``journal_state.done``: deals past the offset), so a stop in the middle of
that loads no deal twice either.  Leaving the ``async with`` (``bsp
run`` on SIGTERM) loads everything and removes the journal files.

File layout: ``<ledger>.journal/NNNNNNNNNNNN.wal`` segments, each starting with
the 8-byte magic ``BSPJRNL1``, then records::

    length  4 bytes big-endian   payload size
    crc     4 bytes big-endian   zlib.crc32 of the payload
    payload length bytes         one batch of deals, either
                                 NDJSON deal lines, one JSON object a line (``Ledger.deal_line``:
                                 exactly the deals columns, classified fields already masked or
                                 encrypted; deals without steps or events), or
                                 orjson ``[[row, steps, events], ...]`` (the other deals)

The first payload byte tells them apart (``{`` or ``[``).  Lines go to DuckDB as
they were journaled: the loader hands a run of them to pyarrow's JSON reader
(``ledger_store.lines_to_arrow``), which builds the Arrow table without the GIL.

Segments are made ahead of use, filled with zeros (an ``fdatasync`` then has
no size or block allocation to record); a zero length ends the log.  A record
cut short or failing its CRC also ends it (a torn write at the moment of a
crash: it was never acknowledged).  Segments rotate at ``segment_bytes`` and
are deleted once loaded; recovery loads every segment and deletes them all.

Sync modes (``sync=``): ``journal`` (the default above); ``duckdb`` (strict:
no journal, the reply waits for the DuckDB commit; ``open_ledger`` itself);
``none`` (not durable: rows go straight to the loader and the reply does not
wait; for measurements and throw-away environments).
"""
from __future__ import annotations

import base64
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import orjson
import trio

from engine import filemodes
from engine.deal import DealError, DealRecord
from engine.deal_line import deal_line
from engine.durable import ZeroFillError, fsync_dir, make_zeroed, unwrite, write_at
from engine.faultlog import RESUMES, FaultLog, os_reason, storage_fix
from engine.ledger import Ledger, flush_alarms, open_ledger
from engine.ledger_store import DealRows, LedgerError, line_to_row, split_lines, storage_failure

log = logging.getLogger("bsp.journal")

MAGIC = b"BSPJRNL1"
HEADER = struct.Struct(">II")
SYNC_MODES = ("journal", "duckdb", "none")
JOURNAL_NAME = "main"
LOAD_RETRY_MIN, LOAD_RETRY_MAX = 0.5, 10.0     # seconds between loads while DuckDB cannot write
ROTATE_RETRY = 1.0        # seconds between attempts to make the next segment after one failed
INLINE_MAX_MS = 1.0       # a write + fdatasync slower than this: the next one goes to a worker thread

__all__ = ["open_journaled_ledger", "open_ledger_sync", "JournaledLedger", "JournalStats", "SYNC_MODES",
           "journal_dir", "read_segment", "encode_batch", "decode_batch", "encode_lines", "decode_record",
           "JournalError", "unloaded"]


class JournalError(LedgerError):
    """The journal could not be written or read; names the file and the byte offset."""


class LoadStalled(JournalError):
    """DuckDB cannot write (a full disk, a file size limit): journaled deals wait in the journal."""


def journal_dir(ledger_path: str | Path) -> Path:
    return Path(str(ledger_path) + ".journal")


# ------------------------------------------------------------------ record format

def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot journal a {type(value).__name__}")


def _dead_out(dead: dict[str, Any]) -> dict[str, Any]:
    """A deal's dead letter as journaled: its raw bytes (encrypted or not) in base64."""
    return {**dead, "raw": base64.b64encode(dead["raw"]).decode("ascii")}


def _dead_in(dead: dict[str, Any]) -> dict[str, Any]:
    dead["raw"] = base64.b64decode(dead["raw"])
    dead["at"] = datetime.fromisoformat(dead["at"])
    return dead


def encode_batch(deals: list[DealRows]) -> bytes:
    """One journal record (header + payload) holding ``deals``: ``[row, steps, events]`` each, and a
    fourth item for a deal with a dead letter (``DealRows.dead``), loaded in the deal's transaction."""
    payload = orjson.dumps([(d.row, d.steps, d.events) if d.dead is None else
                            (d.row, d.steps, d.events, _dead_out(d.dead)) for d in deals], default=_default)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def encode_lines(lines: bytes) -> bytes:
    """One journal record (header + payload) holding NDJSON deal lines (``Ledger.deal_line``)."""
    return HEADER.pack(len(lines), zlib.crc32(lines)) + lines


def is_lines(payload: bytes) -> bool:
    """Whether a record's payload is NDJSON deal lines (else ``decode_batch``'s list)."""
    return payload[:1] == b"{"


def decode_record(payload: bytes) -> list[DealRows]:
    """The deals of a record of either kind, as rows."""
    if is_lines(payload):
        return [DealRows(line_to_row(ln)) for ln in split_lines(payload)]
    return decode_batch(payload)


_ROW_TIMES = ("received_at", "finished_at")


def decode_batch(payload: bytes) -> list[DealRows]:
    """The deals of one record's payload, with datetimes and the Decimal amount restored."""
    out = []
    parse = datetime.fromisoformat
    for row, steps, events, *dead in orjson.loads(payload):
        for k in _ROW_TIMES:
            row[k] = parse(row[k])
        if row.get("amount") is not None:
            row["amount"] = Decimal(row["amount"])
        for s in steps:
            s["started_at"] = parse(s["started_at"])
        for e in events:
            e["at"] = parse(e["at"])
        out.append(DealRows(row, steps, events, _dead_in(dead[0]) if dead else None))
    return out


@dataclass
class Segment:
    number: int
    path: Path


def segments(directory: Path) -> list[Segment]:
    out = []
    for p in directory.glob("*.wal"):
        try:
            out.append(Segment(int(p.stem), p))
        except ValueError:
            continue
    return sorted(out, key=lambda s: s.number)


def read_segment(path: Path, start: int = 0) -> tuple[list[tuple[bytes, int]], int, str | None]:
    """Records of a segment from byte ``start`` (0: after the magic).

    Returns ``(records, good_end, problem)``: each record as (payload, end offset),
    the offset after the last good record, and why reading stopped early (a torn
    or corrupt record at ``good_end``) or None at a clean end.
    """
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            return [], 0, f"{path}: byte 0: segment header cut short (a crash while it was created)"
        raise JournalError(f"{path}: byte 0: not a bsp journal segment (expected {MAGIC!r}); "
                           f"move the file out of {path.parent}")
    pos = max(start, len(MAGIC))
    out: list[tuple[bytes, int]] = []
    n = len(data)
    while pos < n:
        if pos + HEADER.size > n:
            return out, pos, f"{path}: byte {pos}: record header cut short ({n - pos} of {HEADER.size} bytes)"
        length, crc = HEADER.unpack_from(data, pos)
        if length == 0:
            break          # the zeros a segment is made of: the end of the log
        body = pos + HEADER.size
        if body + length > n:
            return out, pos, f"{path}: byte {pos}: record of {length} bytes cut short ({n - body} present)"
        payload = data[body:body + length]
        if zlib.crc32(payload) != crc:
            return out, pos, f"{path}: byte {pos}: record CRC mismatch (stored {crc:08x})"
        pos = body + length
        out.append((payload, pos))
    return out, pos, None


_PAYLOAD_START = re.compile(rb"[{\[]")     # the first byte of either kind of payload


def record_after(path: Path, start: int) -> int | None:
    """The offset of the first well-formed record (a length that fits, a payload that starts as one
    and matches its CRC) after byte ``start`` of a segment, or None: past a bad record, a torn write
    leaves only zeros; a readable record after it means the bad one is damage."""
    data = path.read_bytes()
    n = len(data)
    for m in _PAYLOAD_START.finditer(data, start + HEADER.size + 1):
        h = m.start() - HEADER.size
        length, crc = HEADER.unpack_from(data, h)
        if 0 < length <= n - m.start() and zlib.crc32(data[m.start():m.start() + length]) == crc:
            return h
    return None


def _damage(segs: list[Segment], i: int, bad: int) -> str | None:
    """Why a bad record at byte ``bad`` of ``segs[i]`` cannot be a torn write (a crash mid-write leaves
    nothing after it), or None when it may be one."""
    later = record_after(segs[i].path, bad)
    if later is not None:
        return f"a readable record follows at byte {later}"
    for seg in segs[i + 1:]:
        try:
            records, _, _ = read_segment(seg.path)
        except JournalError:
            records = [(b"", 0)]
        if records:        # an empty one is the spare made ahead
            return f"a later segment holds records ({seg.path.name})"
    return None


# ------------------------------------------------------------------ the journaled ledger

@dataclass
class JournalStats:
    flushes: int = 0             # fdatasync'ed journal records (group commits)
    rows: int = 0                # deals journaled
    total_flush_ms: float = 0.0
    loads: int = 0               # DuckDB transactions of the loader
    loaded_rows: int = 0
    failed_rows: int = 0         # journaled deals DuckDB refused (kept in unloaded.jsonl)
    recovered_rows: int = 0      # loaded from a previous run's journal at start-up
    max_lag_rows: int = 0
    spares: int = 0              # segments the spare maker was asked to make ahead (once per segment)

    @property
    def avg_flush_ms(self) -> float:
        return self.total_flush_ms / self.flushes if self.flushes else 0.0

    @property
    def avg_batch(self) -> float:
        return self.rows / self.flushes if self.flushes else 0.0

    # The names of ``LedgerStats`` (the admin API's status reads these): a commit is a journal flush.
    @property
    def batches(self) -> int:
        return self.flushes

    @property
    def avg_commit_ms(self) -> float:
        return self.avg_flush_ms

    @property
    def total_commit_ms(self) -> float:
        return self.total_flush_ms


class _Group:
    __slots__ = ("lines", "rows", "done", "error")

    def __init__(self, lines: list[bytes], rows: list[DealRows]) -> None:
        self.lines = lines          # NDJSON deal lines
        self.rows = rows            # deals with steps, events or classified fields
        self.done = trio.Event()
        self.error: BaseException | None = None


class _Load:
    """Deals waiting for the loader: NDJSON lines and prepared rows (in journal order: the lines, then the
    rows), the journal position they reach (``segment``, ``end``) and the one they start at (``start``: the
    first byte of their journal write or record; ``first``: how many deals past it were loaded before).
    ``end`` 0: not journaled (``sync="none"``)."""
    __slots__ = ("lines", "rows", "n", "segment", "end", "start", "first")

    def __init__(self, lines: bytes, rows: list[DealRows], n: int, segment: int, end: int, start: int = 0,
                 first: int = 0) -> None:
        self.lines, self.rows, self.n, self.segment, self.end = lines, rows, n, segment, end
        self.start, self.first = start, first

    def drop(self, k: int) -> None:
        """Leave out its first ``k`` deals (loaded before a stop)."""
        k = min(k, self.n)
        on_lines = min(k, self.lines.count(b"\n"))
        if on_lines:
            self.lines = self.lines.split(b"\n", on_lines)[on_lines]
        if k > on_lines:
            self.rows = self.rows[k - on_lines:]
        self.n -= k
        self.first += k

    def first_deal_id(self) -> str | None:
        if self.lines:
            return orjson.loads(self.lines[:self.lines.index(b"\n")])["deal_id"]
        return self.rows[0].row["deal_id"] if self.rows else None

    def one_by_one(self) -> list["_Deal"]:
        """Its deals, each with the journal position that recording it as loaded reaches."""
        deals = [DealRows(line_to_row(ln)) for ln in split_lines(self.lines)] + self.rows
        if not self.end:
            return [_Deal(d, None) for d in deals]
        last = len(deals) - 1
        return [_Deal(d, (JOURNAL_NAME, self.segment, self.end, 0) if k == last else
                      (JOURNAL_NAME, self.segment, self.start, self.first + k + 1)) for k, d in enumerate(deals)]


def _mark(items: list[_Load]) -> tuple[int, int] | None:
    """(segment, end) the last journaled one of ``items`` reaches, or None."""
    for it in reversed(items):
        if it.end:
            return it.segment, it.end
    return None


class _Deal:
    """A deal of a load DuckDB refused, loaded on its own: ``mark`` is recorded in the same transaction
    (journal, segment, offset, done), so a stop never loads it again; ``aside``: already set aside in
    ``unloaded.jsonl`` (only ``mark`` is left to record)."""
    __slots__ = ("deal", "mark", "aside")

    def __init__(self, deal: DealRows, mark: tuple[str, int, int, int] | None) -> None:
        self.deal, self.mark, self.aside = deal, mark, False


class _Sorting:
    """A load DuckDB refused for a bad deal, loaded one deal at a time: what is left, the position recorded last."""
    __slots__ = ("todo", "recorded")

    def __init__(self) -> None:
        self.todo: deque[_Deal] | None = None
        self.recorded: tuple[str, int, int, int] | None = None


RETRY_LOAD_WAIT = 30.0     # seconds a dead letter retry's outcome waits for its deal to be loaded into DuckDB


class JournaledLedger:
    """The ``Ledger`` API with deals going through the journal (or, ``sync="none"``, not waited for).

    Everything but deals (dead letters, configuration versions, ...) goes to
    the DuckDB ledger directly and strictly.
    """

    def __init__(self, ledger: Ledger, directory: Path, *, sync: str, load_wait: float, load_rows: int,
                 max_lag_rows: int, segment_bytes: int) -> None:
        self.ledger = ledger
        self.path = ledger.path
        self.directory = directory
        self.sync = sync
        self.stats = JournalStats()
        self._load_wait = load_wait
        self._load_rows = load_rows
        self._max_lag = max_lag_rows
        self._segment_bytes = segment_bytes
        self._queue: list[_Group] = []
        self._flushing = False
        self._round_end = trio.Event()
        self._last_ms = 0.0           # the last write + fdatasync (``_write_soon``)
        self._to_load: deque[_Load] = deque()
        self._lag = 0
        self._queued_total = 0        # deals handed to the loader so far
        self._loaded_total = 0        # of which loaded (or kept aside as refused)
        self._urgent = 0              # wait_loaded() callers: load now, without lingering
        self._loaded_lot = trio.lowlevel.ParkingLot()
        self._wake_load = trio.Event()
        self._space = trio.lowlevel.ParkingLot()
        self._closed = False
        self._fd: int | None = None
        self._segment = 0
        self._offset = 0
        self._io = trio.CapacityLimiter(1)
        self._want_spare = trio.Event()
        self._spare_asked = -1        # the segment whose successor the spare maker was last asked for
        self._spare_scope = trio.CancelScope()
        self._making = threading.Lock()
        self._rotate_failed: tuple[float, JournalError] | None = None    # (when, why) the last rotation failed
        self.alarm = FaultLog(log, "journal")

    # ------------------------------------------------------------ Ledger API

    async def known_deal_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` have a deal row: everything acknowledged is loaded into DuckDB first."""
        await self.wait_loaded()
        return await self.ledger.known_deal_ids(ids)

    async def deal_ends(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        await self.wait_loaded()
        return await self.ledger.deal_ends(ids)

    async def answers_in_rows(self, ids: list[str]) -> dict[str, str]:
        await self.wait_loaded()
        return await self.ledger.answers_in_rows(ids)

    async def reversals_due(self, ids: list[str]) -> dict[str, dict[str, int]]:
        await self.wait_loaded()
        return await self.ledger.reversals_due(ids)

    async def joined_to(self, deal_id: str, call: str) -> list[dict[str, Any]]:
        await self.wait_loaded()
        return await self.ledger.joined_to(deal_id, call)

    async def joins_to(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        await self.wait_loaded()
        return await self.ledger.joins_to(ids)

    async def resolutions(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        await self.wait_loaded()
        return await self.ledger.resolutions(ids)

    async def append_story(self, deal_id: str, steps: list[Any], events: list[Any],
                           unless: str | None = None) -> bool:
        """``Ledger.append_story`` once the deal's own row (acknowledged through the journal) is in DuckDB."""
        await self.wait_loaded()
        return await self.ledger.append_story(deal_id, steps, events, unless)

    async def append_stories(self, stories: list[tuple[str, list[Any], list[Any], str | None]]
                             ) -> list[bool | BaseException]:
        """``Ledger.append_stories`` once the deals' own rows are in DuckDB."""
        await self.wait_loaded()
        return await self.ledger.append_stories(stories)

    async def end_retry(self, letter_id: str, **kw: Any) -> str | None:
        """``Ledger.end_retry`` once the retry's deal (and the dead letter it carried) is in DuckDB.  A loader
        that does not catch up within ``RETRY_LOAD_WAIT`` s is not waited for longer (the request that retries
        would hang): the outcome is recorded then, linked only if the deal's letter is in DuckDB already (else
        the letter goes back to ``new`` and the deal's letter, once loaded, waits too: said in the log)."""
        with trio.move_on_after(RETRY_LOAD_WAIT) as waited:
            await self.wait_loaded()
        linked = await self.ledger.end_retry(letter_id, **kw)
        if waited.cancelled_caught and linked is None and kw.get("deal_id") and kw.get("status") == "new":
            log.warning("dead letter %s: its retry's deal %s was not yet loaded into DuckDB after %gs (%d deal(s) "
                        "pending: the loader is behind, see above), so the letter is new again; if that deal left a "
                        "dead letter (bsp dead show %s), retry that one and purge this one", letter_id,
                        kw["deal_id"], RETRY_LOAD_WAIT, self.pending, kw["deal_id"])
        return linked

    def __getattr__(self, name: str) -> Any:      # dead_letter, record_config, audited, keyring, ...
        return getattr(self.ledger, name)

    async def commit(self, record: DealRecord) -> None:
        (err,) = await self.commit_many([record])
        if err is not None:
            raise err

    async def commit_many(self, records: list[DealRecord], *, validate: bool = True) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(records)
        lines: list[bytes] = []
        rows: list[DealRows] = []
        led = self.ledger
        has_line, prepare, keyring = led.has_line, led.prepare, led.keyring
        for i, record in enumerate(records):
            try:
                if has_line(record):
                    lines.append(deal_line(record, validate=validate, keyring=keyring))
                    if keyring is not None:
                        led.sealing()         # its check value recorded with a write (engine/field_key_checks.py)
                else:
                    rows.append(prepare(record, validate=validate))
            except DealError as exc:
                results[i] = exc
        if lines or rows:
            try:
                await self._append(lines, rows)
            except JournalError as exc:        # the write failed: every deal of it gets the error
                results = [exc if r is None else r for r in results]
        return results

    @property
    def pending(self) -> int:
        """Deals acknowledged (journaled) and not yet in DuckDB."""
        return self._lag

    async def wait_loaded(self) -> None:
        """Return once every deal acknowledged before this call is in DuckDB (read-your-writes
        for in-process readers such as the admin API; the loader does not linger meanwhile)."""
        target = self._queued_total
        if self._loaded_total >= target:
            return
        self._urgent += 1
        self._wake_load.set()
        try:
            while self._loaded_total < target:
                await self._loaded_lot.park()
        finally:
            self._urgent -= 1

    # ------------------------------------------------------------ append

    async def _append(self, lines: list[bytes], rows: list[DealRows]) -> None:
        if self._closed:
            raise LedgerError(f"{self.path}: the ledger is closed; commit() was called after its `async with` ended")
        while self._lag >= self._max_lag and not self._closed:
            await self._space.park()          # backpressure: DuckDB is behind by max_lag_rows
        n = len(lines) + len(rows)
        if self.sync == "none":
            self._to_load.append(_Load(b"".join(lines), rows, n, 0, 0))
            self._lag += n
            self._queued_total += n
            self._wake_load.set()
            return
        g = _Group(lines, rows)
        self._queue.append(g)
        # Group commit without a flusher task: a writer that finds no round in progress writes
        # everything queued (one record, one fdatasync); writers queued meanwhile wait for that
        # round to end, and the first of them still not written writes the next round.
        while not g.done.is_set():
            if self._flushing:
                await self._round_end.wait()
            else:
                await self._flush_round()
        if g.error is not None:
            raise g.error

    def _write(self, data: bytes) -> float:
        """Worker thread: write one record at the end of the log and fdatasync it; returns ms."""
        t = time.perf_counter()
        if self._offset + len(data) > self._segment_bytes and self._offset > len(MAGIC):
            failed = self._rotate_failed
            if failed is not None and time.monotonic() - failed[0] < ROTATE_RETRY:
                raise failed[1]          # a full disk: not a 16 MB attempt per group commit
            try:
                self._rotate()
            except JournalError as exc:
                self._rotate_failed = (time.monotonic(), exc)
                raise
            self._rotate_failed = None
        assert self._fd is not None
        try:
            write_at(self._fd, data, self._offset)
        except OSError:
            unwrite(self._fd, self._offset)
            raise
        return (time.perf_counter() - t) * 1000.0

    async def _write_soon(self, data: bytes) -> float:
        """``_write`` on this thread when nothing else is ready to run and the disk has been quick
        (a worker thread's round trip costs ~75 us here, the fdatasync itself ~0.1-0.2 ms), else
        on a worker thread: a disk that stalls never holds the event loop twice in a row."""
        if (self._last_ms < INLINE_MAX_MS and self._io.borrowed_tokens == 0
                and self._offset + len(data) <= self._segment_bytes
                and trio.lowlevel.current_statistics().tasks_runnable == 0):
            ms = self._last_ms = self._write(data)
            return ms
        ms = self._last_ms = await trio.to_thread.run_sync(self._write, data, limiter=self._io)
        return ms

    def _rotate(self) -> None:
        """Worker thread: switch to the next segment (the spare made ahead, or a new one)."""
        number = self._segment + 1
        path = self.directory / f"{number:012d}.wal"
        self._make_segment(number)
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as exc:
            raise JournalError(f"{path}: byte 0: cannot open the next journal segment: {os_reason(exc)}; "
                               f"move away what is at that path") from exc
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._segment, self._offset = fd, number, len(MAGIC)

    def _make_segment(self, number: int) -> None:
        """Worker thread: create segment ``number`` filled with zeros (so that an fdatasync after a
        write has no file size or block allocation to record: ~0.3 ms instead of ~0.9 ms here)."""
        with self._making:          # the spare maker and a rotation may both want it
            path = self.directory / f"{number:012d}.wal"
            if not path.exists():
                self._make_segment_file(path)

    def _make_segment_file(self, path: Path) -> None:
        """Raises ``JournalError`` naming the file, the byte offset reached and the system's reason
        (a full disk: ENOSPC; a file size limit: EFBIG); the half-made file is removed."""
        tmp = path.with_suffix(".tmp")
        done = self._segment_bytes
        try:
            try:
                make_zeroed(tmp, MAGIC, self._segment_bytes)
            except ZeroFillError as exc:
                done = exc.done
                raise exc.cause from None
            os.rename(tmp, path)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise JournalError(f"{tmp}: byte {done}: cannot make the next journal segment "
                               f"({self._segment_bytes} bytes): {os_reason(exc)}; {storage_fix(exc)}") from exc
        fsync_dir(self.directory)

    async def _spare_maker(self) -> None:
        """Keep the next segment made in advance, off the flusher's path.  One that cannot be made (a full
        disk) is tried again every ``ROTATE_RETRY`` seconds until it is, traffic or not: the fault stays in
        ``bsp status`` (degraded) only while it lasts.  Before, it was tried once per segment, so the fault
        outlived the full disk until half of the next segment was written: with little traffic, for hours,
        and with none, for ever."""
        with self._spare_scope:
            while True:
                await self._want_spare.wait()
                self._want_spare = trio.Event()
                self.stats.spares += 1
                target = self._segment + 1
                while target > self._segment:      # a rotation meanwhile made it (or says why it could not)
                    try:
                        await trio.to_thread.run_sync(self._make_segment, target)
                    except JournalError as exc:
                        self.alarm.failed("spare", f"{exc}; the current segment still takes deals until it is full")
                        await trio.sleep(ROTATE_RETRY)
                        while target > self._segment and not self._room_for_a_segment():   # no 16 MB file written and removed each second
                            await trio.sleep(ROTATE_RETRY)        # on a full disk: DuckDB needs that room
                        continue
                    break
                self.alarm.recovered("spare")

    def _room_for_a_segment(self) -> bool:
        try:
            st = os.statvfs(self.directory)
        except OSError:
            return True                  # the attempt says why
        return st.f_bavail * st.f_frsize >= self._segment_bytes

    async def _flush_round(self) -> None:
        self._flushing = True
        # let the other tasks ready now queue their deals first: they join this round
        await trio.lowlevel.cancel_shielded_checkpoint()
        groups, self._queue = self._queue, []
        try:
            await self._flush_groups(groups)
        finally:
            self._flushing = False
            ended, self._round_end = self._round_end, trio.Event()
            ended.set()
            self._wake_load.set()       # the loader may be waiting for the last round at close

    async def _flush_groups(self, groups: list[_Group]) -> None:
        lines = b"".join([ln for g in groups for ln in g.lines])
        rows = [r for g in groups for r in g.rows]
        n = sum(len(g.lines) for g in groups) + len(rows)
        try:
            data = encode_lines(lines) if lines else b""
            if rows:
                data += encode_batch(rows)
            ms = await self._write_soon(data)
        except Exception as exc:     # OSError (disk full), JournalError (no next segment), TypeError
            reason = str(exc) if isinstance(exc, JournalError) else (
                f"{os_reason(exc)}; {storage_fix(exc)}" if isinstance(exc, OSError) else str(exc))
            err = JournalError(f"{self.directory / f'{self._segment:012d}.wal'}: byte {self._offset}: "
                               f"{n} deal(s) not journaled, so not acknowledged (no reply sent): {reason}")
            self.alarm.failed("write", f"{err}; {RESUMES}")
            err.logged = True        # type: ignore[attr-defined]  # reported here: not again per deal
            for g in groups:
                g.error = err
                g.done.set()
            return
        if self.alarm.failing("write"):
            self.alarm.recovered("write")
        start, self._offset = self._offset, self._offset + len(data)
        s = self.stats
        s.flushes += 1
        s.rows += n
        s.total_flush_ms += ms
        self._to_load.append(_Load(lines, rows, n, self._segment, self._offset, start))
        self._lag += n
        self._queued_total += n
        s.max_lag_rows = max(s.max_lag_rows, self._lag)
        self._wake_load.set()
        for g in groups:
            g.done.set()
        if self._offset * 2 >= self._segment_bytes and self._spare_asked != self._segment:
            self._spare_asked = self._segment       # once per segment: not a thread round trip per flush
            self._want_spare.set()

    # ------------------------------------------------------------ load into DuckDB

    async def _loader(self) -> None:
        while True:
            if not self._to_load:
                if self._closed and not self._flushing and not self._queue:
                    return
                await self._wake_load.wait()
                self._wake_load = trio.Event()
                continue
            if self._lag < self._load_rows and not self._closed and not self._urgent:
                with trio.move_on_after(self._load_wait):
                    while self._lag < self._load_rows and not self._closed and not self._urgent:
                        await self._wake_load.wait()
                        self._wake_load = trio.Event()
            items: list[_Load] = []
            taken = 0
            while self._to_load and taken < self._load_rows:
                item = self._to_load.popleft()
                items.append(item)
                taken += item.n
            mark = _mark(items)
            if not await self._load_until_done(items):
                return        # closing while DuckDB cannot write: the journal keeps them for the next start
            self._lag -= taken
            self._loaded_total += taken
            self._space.unpark_all()
            self._loaded_lot.unpark_all()
            if mark is not None:
                await trio.to_thread.run_sync(self._remove_loaded, mark[0], limiter=self._io)

    async def _load_until_done(self, items: list[_Load]) -> bool:
        """``_load``, again after a pause while DuckDB cannot write (a full disk): the deals are
        acknowledged and safe in the journal, so they wait there (commits wait once ``max_lag_rows``
        are behind).  False when closing while it still fails: the journal files are kept and the
        next start loads them."""
        pause = LOAD_RETRY_MIN
        sorting = _Sorting()          # a load refused for a bad deal goes on one by one where it stopped
        while True:
            try:
                await self._load(items, sorting)
            except LoadStalled as exc:
                self.alarm.failed("load", str(exc))
                if self._closed:
                    log.error("journal: stopping with %d acknowledged deal(s) not in DuckDB (%s); they stay "
                              "in %s and load at the next start once there is room", self._lag, exc.__cause__,
                              self.directory)
                    return False
                with trio.move_on_after(pause):
                    while not self._closed:
                        await self._wake_load.wait()
                        self._wake_load = trio.Event()
                pause = min(pause * 2, LOAD_RETRY_MAX)
                continue
            self.alarm.recovered("load")
            return True

    async def _load(self, items: list[_Load], sorting: "_Sorting | None" = None) -> None:
        """Load the deals of ``items`` and the journal position they reach in one transaction.  When
        DuckDB refuses one of them, they are loaded one at a time, each in a transaction recording the
        position past it (``_Deal.mark``: a stop or crash meanwhile never loads one twice), and the
        refused ones set aside in ``unloaded.jsonl`` as they come.  DuckDB that cannot write (a full
        disk), or an ``unloaded.jsonl`` that cannot be written, raises ``LoadStalled``: the deals stay
        in the journal and ``_load_until_done`` calls again with the same ``sorting``, which goes on
        from the deal it stopped at (none loaded twice, no good deal set aside)."""
        mark = _mark(items)
        m = (JOURNAL_NAME, *mark) if mark is not None else None
        n = sum(it.n for it in items)
        if sorting is None:
            sorting = _Sorting()
        if sorting.todo is None:
            batch = items[0].rows if len(items) == 1 else [r for it in items for r in it.rows]
            lines = b"".join([it.lines for it in items if it.lines])
            try:
                await self.ledger.load(batch, m, lines)
            except Exception as exc:
                if storage_failure(exc):     # DuckDB cannot write, not a bad deal: they stay in the journal
                    raise self._stalled(n, exc) from exc
                log.error("journal: a load of %d deal(s) failed (%s); loading them one by one", n, exc)
                sorting.todo = deque(d for it in items for d in it.one_by_one())
            else:
                self.stats.loads += 1
                self.stats.loaded_rows += n
                return
        todo = sorting.todo
        while todo:
            one = todo[0]
            if not one.aside:
                try:
                    await self.ledger.load([one.deal], one.mark)
                except Exception as exc:
                    if storage_failure(exc):     # the disk filled meanwhile: not this deal's fault
                        raise self._stalled(len(todo), exc) from exc
                    await self._set_aside(one.deal, exc)
                    one.aside = True
                else:
                    sorting.recorded = one.mark
                    todo.popleft()
                    continue
            if one.mark is not None:      # set aside: the position past it, so that a restart does not redo it
                try:
                    await self.ledger.load([], one.mark)
                except Exception as exc:
                    if storage_failure(exc):
                        raise self._stalled(len(todo) - 1, exc) from exc
                    raise
                sorting.recorded = one.mark
            todo.popleft()
        if m is not None and sorting.recorded != (*m, 0):     # the last deal's transaction may have recorded it
            try:
                await self.ledger.load([], m)
            except Exception as exc:
                if storage_failure(exc):
                    raise self._stalled(0, exc) from exc
                raise
        self.stats.loads += 1
        self.stats.loaded_rows += n

    async def _set_aside(self, deal: DealRows, exc: BaseException) -> None:
        try:
            await trio.to_thread.run_sync(self._keep_unloaded, [(deal, exc)])
        except OSError as err:
            where = self.directory / "unloaded.jsonl"
            raise LoadStalled(f"{where}: 1 acknowledged deal DuckDB refused ({deal.row.get('deal_id')}) cannot be "
                              f"set aside there: {os_reason(err)}; it is safe in {self.directory} and is set aside "
                              f"once that file can be written ({storage_fix(err)})") from err

    def _stalled(self, n: int, exc: BaseException) -> LoadStalled:
        return LoadStalled(f"{self.path}: {n} acknowledged deal(s) not loaded into DuckDB: {os_reason(exc)}; they "
                           f"are safe in {self.directory} and load once DuckDB can write again ({storage_fix(exc)}, "
                           f"or at the next start)")

    async def _set_aside_at_stop(self, item: _Load) -> bool:
        """Whether the first deal of ``item``, the first one past the journal position recorded, is the
        last deal in ``unloaded.jsonl``: set aside just before a stop or crash, which came before the
        position past it was recorded (``_load``).  It is not loaded again, nor set aside twice."""
        deal_id = item.first_deal_id()
        if deal_id is None or deal_id != await trio.to_thread.run_sync(self._last_set_aside):
            return False
        log.warning("journal: deal %s is set aside in %s already (a stop came before the journal position past "
                    "it was recorded): not loaded, not set aside again", deal_id, self.directory / "unloaded.jsonl")
        return True

    def _last_set_aside(self) -> str | None:
        """Worker thread: the deal id of the last line of ``unloaded.jsonl``, or None (no file, or a line
        cut short by a crash)."""
        try:
            with open(self.directory / "unloaded.jsonl", "rb") as f:
                pos = f.seek(0, os.SEEK_END)
                tail = b""
                while pos > 0:
                    step = min(1 << 16, pos)
                    pos -= step
                    f.seek(pos)
                    tail = f.read(step) + tail
                    if b"\n" in tail.rstrip(b"\n"):
                        break
            last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
            return orjson.loads(last)["row"]["deal_id"] if last else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _keep_unloaded(self, bad: list[tuple[DealRows, BaseException]]) -> None:
        """Worker thread: the deals DuckDB refused, appended to ``unloaded.jsonl`` and fsync'ed; on a
        failure the file is cut back to where it was (a retry writes them again) and OSError raised."""
        path = self.directory / "unloaded.jsonl"
        data = b"".join(orjson.dumps({"error": str(exc), "row": d.row, "steps": d.steps, "events": d.events,
                                      **({"dead_letter": _dead_out(d.dead)} if d.dead is not None else {})},
                                     default=_default) + b"\n" for d, exc in bad)
        with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, filemodes.FILE), "a+b") as f:
            start = f.seek(0, os.SEEK_END)
            if start and os.pread(f.fileno(), 1, start - 1) != b"\n":
                data = b"\n" + data           # after a line cut short by a crash: a line of its own
            try:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                try:
                    f.truncate(start)
                except OSError:
                    pass
                raise
        for d, exc in bad:
            log.error("journal: deal %s was acknowledged but DuckDB refused it: %s; kept in %s",
                      d.row.get("deal_id"), exc, path)
        self.stats.failed_rows += len(bad)

    def _remove_loaded(self, loaded_segment: int) -> None:
        """Worker thread: delete segments wholly loaded (older than the one loaded into)."""
        for seg in segments(self.directory):
            if seg.number < loaded_segment and seg.number != self._segment:
                seg.path.unlink(missing_ok=True)

    # ------------------------------------------------------------ start-up and shutdown

    async def recover(self) -> int:
        """Load every journaled deal not yet in DuckDB; start a new segment.  Returns rows loaded."""
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        filemodes.private_dir(self.directory)          # 0700: deal rows, whatever the umask
        pos = await self.ledger.journal_position(JOURNAL_NAME)
        done_seg, done_off, skip = pos if pos is not None else (0, 0, 0)
        for stale in self.directory.glob("*.tmp"):       # a spare segment being made at a crash
            stale.unlink(missing_ok=True)
        segs = await trio.to_thread.run_sync(segments, self.directory)
        try:
            loaded = await self._recover_segments(segs, done_seg, done_off, skip)
        except LoadStalled as exc:     # a full or read-only disk: start-up cannot go on, nothing is lost
            cause = exc.__cause__
            why = str(exc) if cause is None or isinstance(cause, OSError) else f"DuckDB cannot write: {os_reason(cause)}"
            raise LoadStalled(f"{self.path}: start-up stopped, nothing served: the acknowledged deals waiting in "
                              f"{self.directory} are loaded into DuckDB before the engine serves, and they cannot "
                              f"be now: {why}. They are safe there; {storage_fix(exc)}, then start again (they "
                              f"load first)") from cause
        self.stats.recovered_rows = loaded
        if loaded:
            log.warning("journal: recovered %d deal(s) from %s into %s", loaded, self.directory, self.path)
        last = max(segs[-1].number if segs else 0, done_seg)
        for seg in segs:       # all loaded now (a corrupt one was renamed aside above)
            seg.path.unlink(missing_ok=True)
        if self.sync == "journal":
            self._segment = last
            await trio.to_thread.run_sync(self._rotate, limiter=self._io)
        return loaded

    async def _recover_segments(self, segs: list[Any], done_seg: int, done_off: int, skip: int) -> int:
        """``recover``'s loading: every deal of ``segs`` past the recorded position; returns how many."""
        loaded = 0
        first = True
        for i, seg in enumerate(segs):
            if seg.number < done_seg:
                continue
            start = done_off if seg.number == done_seg else 0
            records, good_end, problem = await trio.to_thread.run_sync(read_segment, seg.path, start)
            damage = None
            if problem is not None:
                damage = await trio.to_thread.run_sync(_damage, segs, i, good_end)
                if damage is None:
                    log.warning("journal: %s; that record was never acknowledged: dropped", problem)
            items: list[_Load] = []
            count = 0
            for payload, end in records:
                begin = end - HEADER.size - len(payload)
                if is_lines(payload):
                    item = _Load(payload, [], payload.count(b"\n"), seg.number, end, begin)
                else:
                    more = decode_batch(payload)
                    item = _Load(b"", more, len(more), seg.number, end, begin)
                if skip:         # loaded one by one before a stop (journal_state.done)
                    taken = min(skip, item.n)
                    item.drop(taken)
                    skip -= taken
                if first and item.n:
                    first = False
                    if await self._set_aside_at_stop(item):
                        item.drop(1)
                items.append(item)
                count += item.n
                if count >= self._load_rows:
                    await self._load(items)
                    loaded += count
                    items, count = [], 0
            if items:
                await self._load(items)
                loaded += count
            if damage is not None:
                raise JournalError(
                    f"{problem}; {damage}, so this is damage, not a torn write: the acknowledged deals from "
                    f"byte {good_end} of this file on cannot be read and nothing after them was loaded "
                    f"({loaded} deal(s) before it are loaded into {self.path}). Restore {seg.path} from a "
                    f"copy and start again; or, to go on without the deals past byte {good_end} of it, move "
                    f"it aside (mv {seg.path} {seg.path}.damaged) and start again")
        return loaded

    def close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lag == 0 and not self._queue and self.directory.exists():
            for seg in segments(self.directory):    # all loaded (older ones) or empty (the spare)
                seg.path.unlink(missing_ok=True)


@asynccontextmanager
async def open_journaled_ledger(
    path: str | Path,
    *,
    sync: str = "journal",
    load_wait: float = 0.2,
    load_rows: int = 10_000,
    max_lag_rows: int = 100_000,
    segment_bytes: int = 16 << 20,
    **ledger_options: Any,
) -> AsyncIterator[JournaledLedger]:
    """The DuckDB ledger at ``path`` with a write-ahead journal in ``<path>.journal/``.

    ``load_wait`` / ``load_rows``: the loader's bound on DuckDB lag (seconds /
    rows per transaction).  ``max_lag_rows``: commits wait when this many
    acknowledged deals are not yet in DuckDB.  Other options go to ``open_ledger``.
    """
    if sync not in ("journal", "none"):
        raise ValueError(f"open_journaled_ledger: sync must be 'journal' or 'none', got {sync!r}")
    async with open_ledger(path, **ledger_options) as led:
        jl = JournaledLedger(led, journal_dir(path), sync=sync, load_wait=load_wait, load_rows=load_rows,
                             max_lag_rows=max_lag_rows, segment_bytes=segment_bytes)
        await jl.recover()
        try:
            async with trio.open_nursery() as nursery:
                if sync == "journal":
                    nursery.start_soon(jl._spare_maker)
                nursery.start_soon(jl._loader)
                try:
                    yield jl
                finally:
                    # Drain: no new commits; flush what is queued, load everything into DuckDB.
                    jl._closed = True
                    jl._wake_load.set()
                    jl._space.unpark_all()
                    jl._spare_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(jl.close_file, limiter=jl._io)
            flush_alarms(jl)            # the journal's (and its manager's) failures not yet written


@asynccontextmanager
async def open_ledger_sync(path: str | Path, sync: str = "journal", **options: Any) -> AsyncIterator[Any]:
    """``open_ledger`` for ``sync="duckdb"``, else ``open_journaled_ledger``: what ``bsp run`` uses."""
    if sync not in SYNC_MODES:
        raise ValueError(f"ledger sync must be one of {', '.join(SYNC_MODES)}, got {sync!r}")
    if sync == "duckdb":
        async with open_ledger(path, **options) as led:
            yield led
    else:
        async with open_journaled_ledger(path, sync=sync, **options) as led:
            yield led


def unloaded(directory: Path, position: tuple[int, int, int] | None) -> tuple[list[str], list[Path]]:
    """What a journal holds that its ledger has not loaded (a crash: the engine's next start loads it,
    ``JournaledLedger.recover``): ``(deal ids, segments holding them)``, from the ledger's ``journal_state``
    ``position`` (segment, offset, deals loaded past it), None for none.  Reads only; a torn tail ends a
    segment as recovery ends it.  ``JournalError`` for a file that is not a segment."""
    if not directory.is_dir():
        return [], []
    done_seg, done_off, skip = position if position is not None else (0, 0, 0)
    ids: list[str] = []
    where: list[Path] = []
    for seg in segments(directory):
        if seg.number < done_seg:
            continue
        records, _, _ = read_segment(seg.path, done_off if seg.number == done_seg else 0)
        found = [d.row["deal_id"] for payload, _ in records for d in decode_record(payload)]
        taken = min(skip, len(found))
        skip -= taken
        if found[taken:]:
            ids += found[taken:]
            where.append(seg.path)
    return ids, where


def iter_journal(directory: Path) -> Iterator[DealRows]:
    """Every deal in a journal directory (for tests and inspection)."""
    for seg in segments(directory):
        records, _, _ = read_segment(seg.path)
        for payload, _ in records:
            yield from decode_record(payload)
