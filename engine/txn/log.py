"""The transaction log: what a crash must not forget, written before any side effect.

One append-only file next to the ledger (``<ledger>.txn``).  Each write is one
record holding a batch of entries (one ``fdatasync`` per batch: group commit)::

    length  4 bytes big-endian   payload size
    crc     4 bytes big-endian   zlib.crc32 of the payload
    payload                      orjson list of entries

Entries (``t``):
    a       a deal accepted by a *light* route (only plain calls as side effects: no key,
            compensation or ``on restart``), before its first call, one compact entry per
            exchange and nothing per step: id, r (route), c (channel), at, raw, s (the first
            call's name), v (ISO 8583: the request values as sent, which a reversal copies).
            Its ledger row is its end; ``recorded`` marks drop it.  When the ledger cannot take the row
            (a full disk) an ``end`` follows (``engine.txn.late_record``), from which a restart writes it
    begin   a deal accepted by a transactional route, before its first call:
            id, route, channel, key, at, raw (the request as received); a route with plugin steps with
            side effects: effects (their names; each gets a ``running`` mark before it runs, so
            recovery may take a missing mark as "never started"); a route whose deal names a ``match``: m (its
            digest, ``engine.txn.fingerprint``: kept in the fingerprint of a deal resolved on restart)
    step    a participant's progress: id, step, phase (a call: sending | done | failed |
            compensating | compensated | compensation_failed | reversing; a plugin step with side
            effects: running | done | failed | compensated | compensation_failed), reply (done: the
            decoded reply, when JSON-able), values (sending, ISO 8583 calls: the request values, which
            a reversal copies).  ``sending`` and ``compensating`` are durable before the call or its
            compensation leaves (recovery never sends one of them again without its outcome);
            ``reversing`` comes with the ``rev`` entry of a reversal stored and forwarded; the others
            are lazy (they ride with the next write)
    end     the deal's final answer, written before its ledger row: id, key, status,
            code, reason, reply (the reply bytes), deal (type/ref/amount/currency/party); fp (the fingerprint of
            amount, currency and party, and the digest of the deal's ``match``, ``engine.txn.fingerprint``:
            kept with the key); held (a failed
            deal that keeps its key: why, for its duplicates, ``engine.txn.keyhold``).  A failed deal
            whose key is free (nothing of it stays at a counterpart) has no key here
    recorded  ids / keys whose ledger rows are committed (written lazily, with the next record)
    horizon   ``before``: keys of deals finished before this time (epoch seconds) were dropped
            from the key store (retention); a key not found here is then looked up in the ledger
    moved   recorded answers were moved to the answers files (``engine.txn.answers``): an open that finds
            none there (the files lost) looks unknown keys up in the ledger, as past a horizon
    rev     an ISO 8583 reversal queued for store and forward (``engine.txn.saf``), durable before
            the deal's answer leaves: id, step (the call's name), r (route), c (channel the deal
            came in on), at, values (the original request as sent, sealed like ``values``); a
            compacted one also carries n (attempts made) and ack (the acknowledgement)
    revtry  id, step, n: attempt n is about to be sent (durable first: after a restart the next
            one is a repeat, 0401 / 0421)
    revack  id, step, n, mti, detail, at, response_code, approved: the host acknowledged (the 0430 and its
            DE 39); never sent again
    revrec  id, step: the acknowledgement is on the deal in the ledger; the reversal is dropped

The file is made ahead, filled with zeros up to its size (``segment_bytes``, 8 MiB
by default): a write is a ``pwrite`` into blocks that already exist, so its
``fdatasync`` has no file size or block allocation to record (the journal's trick,
``engine.journal``).  A zero length ends the log.  A record cut short or failing
its CRC also ends it (a torn write at the moment of a crash, never acknowledged).
When the next record does not fit, on open, and at the first write ``COMPACT_AFTER`` (5 min) after
the last compaction (so that finished deals' requests do not stay for days at low traffic), the log
is compacted into a new
zero-filled file (written aside, fsync'ed, renamed over).  That file is made ahead
(``<ledger>.txn.spare``, by a thread started when the log is half full), so a
compaction on the engine's path writes only what it keeps (~2 ms, not the ~7 ms of
8 MiB of zeros); a spare left by an earlier run is removed on open (it may hold a
compaction's body cut short), and without a spare one is made on the spot.
Finished deals keep only
their ``end`` (the idempotency key store; once its ledger row is recorded, only what answers a
repeat: ``_answer_only``, which the next compaction moves out of the log and out of memory into the
answers files, ``engine.txn.answers``, durable before the log without it is put in place) for
``retention`` seconds after they finished
(``fin``, stamped by the manager; an end without one, from an older bsp, is stamped when
read); an ``end`` whose ledger row is not recorded yet is always kept.  Unfinished ones keep everything, light deals
whose rows are recorded nothing.  Raw and reply bytes, the ISO 8583 request values
(``v``, ``values``) and a step's decoded ``reply`` are encrypted with the ledger's
field keyring when there is one (they hold the PAN, track data, names): values as
``{"$sealed": "enc:v1:..."}`` (``TxnManager.seal_values``).
"""
from __future__ import annotations

import logging
import mmap
import os
import sqlite3
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from engine.durable import ZeroFillError, fsync_dir, make_zeroed, unwrite, write_at
from engine.faultlog import os_reason, storage_fix
from engine.txn.answers import Answers, answers_dir
from engine.txn.kept import Kept, kept

logger = logging.getLogger("bsp.txn")
HEADER = struct.Struct(">II")
MAGIC = b"BSPTXN01"
SEGMENT_BYTES = 8 << 20
KEY_RETENTION = 35 * 86400          # seconds a finished deal's key is answered from the log (docs/transactions.md)
MIN_KEY_RETENTION = 3600            # shorter would let a key go before its row is loaded into DuckDB
COMPACT_RETRY = 1.0                 # seconds: after a compaction failed (a full disk), the next waits this long
# seconds: a write this long after the last compaction compacts (also when the file is not full), so the
# requests of finished deals (raw bytes: PAN, track data, PIN block; sealed with a keyring) do not stay in
# the file for days at low traffic (PCI DSS 3.3.1; docs/security.md#sensitive-authentication-data)
COMPACT_AFTER = 300.0
CHUNK = 4096                        # entries per record of a compacted log (a restart reads one record at a time)
MOVE_CHUNK = 65536                  # answers moved to the answers files per write + fdatasync + commit


def parse_retention(text: str) -> float | None:
    """``35d``, ``12h``, ``90m``, ``7200s`` as seconds (at least an hour), or ``forever`` (None: keys are
    kept for good).  Raises ValueError with the reason."""
    t = str(text).strip().lower()
    if t == "forever":
        return None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        seconds = float(t[:-1]) * units[t[-1]]
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"{text!r}: expected a duration such as 35d, 12h, 90m, or forever") from None
    if seconds < MIN_KEY_RETENTION:
        raise ValueError(f"{text!r}: the key retention must be at least 1h (a deal's row must reach the "
                         f"ledger before its key leaves the log)")
    return seconds


class TxnLogError(RuntimeError):
    """The transaction log cannot be read or written; names the file and the byte offset."""


def log_path(ledger_path: str | Path) -> Path:
    return Path(str(ledger_path) + ".txn")


@dataclass
class Pending:
    """A deal the log saw begin and not end: what recovery works from."""

    begin: dict[str, Any]
    phases: dict[str, str] = field(default_factory=dict)        # step -> last phase
    replies: dict[str, Any] = field(default_factory=dict)       # step -> decoded reply
    values: dict[str, Any] = field(default_factory=dict)        # step -> request values (ISO 8583)

    @property
    def id(self) -> str:
        return self.begin["id"]

    @property
    def light(self) -> bool:
        """Accepted by a light route: its ledger row, if one was committed, is its end."""
        return bool(self.begin.get("light"))


def _light_pending(e: dict[str, Any]) -> Pending:
    """A light route's ``a`` entry as a deal in flight: its first call may have left."""
    begin = {"t": "begin", "id": e["id"], "route": e.get("r"), "channel": e.get("c"), "key": None,
             "at": e.get("at"), "raw": e.get("raw"), "light": True}
    p = Pending(begin)
    step = e.get("s")
    if step is not None:
        p.phases[step] = "sending"
        if e.get("v") is not None:
            p.values[step] = e["v"]
    return p


# what a recorded deal's ``end`` keeps in the key store: enough to answer a repeat (``TxnManager._duplicate``)
# and to expire it; the rest (route, channel, amount, party, ...) is in its ledger row
# ``kind``: a failed or rejected original's error kind, which a repeat over HTTP answers with again (its status)
# ``fp``: the fingerprint of the deal's amount, currency and party, and its match's digest
# (engine/txn/fingerprint.py): a repeat of the key whose own differs is refused (key_conflict), not answered
_ANSWER = ("t", "id", "key", "status", "code", "reply", "fin", "recorded", "held", "kind", "fp")


def _answer_only(end: Mapping[str, Any]) -> Mapping[str, Any]:
    """A recorded ``end`` as the key store keeps it: a ``Kept`` (engine/txn/kept.py), ~500 bytes a key
    (bench/bench_key_memory.py) where the whole entry, or a dict of these fields, cost over 1 KB."""
    k = kept(end)
    if k is not None:
        return k
    answer = {k: end[k] for k in _ANSWER if end.get(k) is not None}
    answer["recorded"] = True
    return answer


def _moves(e: Mapping[str, Any]) -> bool:
    """A key store entry a compaction moves to the answers files: a recorded deal's answer."""
    return type(e) is Kept or bool(e.get("recorded"))


class KeyStore(Mapping):
    """``TxnLog.ends``: deal key -> its ``end``; the entries the log holds (``hot``: ends not recorded yet, and
    recorded answers since the last compaction) and those a compaction moved to the answers files
    (``engine.txn.answers``), read back as the same ``Kept`` (or dict).  Setting and removing touch ``hot``
    only; a look-up tries ``hot`` first, then the files (only when they hold answers)."""

    __slots__ = ("hot", "cold", "overlap", "_memo", "_gen")

    MEMO = 8192            # look-ups remembered (a batch's keys, looked up two or three times at admission)

    def __init__(self, cold: Answers | None) -> None:
        self.hot: dict[str, Mapping[str, Any]] = {}
        self.cold = cold
        self.overlap = 0       # keys in both (moved, not dropped from ``hot`` yet: a compaction cut short)
        self._memo: dict[str, tuple[int, Mapping[str, Any] | None]] = {}
        self._gen = 0          # moved on every change of ``cold``: a look-up made across one is not remembered

    def get(self, key: str, default: Any = None) -> Any:      # type: ignore[override]
        v = self.hot.get(key)
        if v is not None:
            return v
        cold = self.cold
        if cold is None or not cold.count:
            return default
        gen = self._gen
        m = self._memo.get(key)
        if m is not None and m[0] == gen:
            v = m[1]
        else:
            e = cold.get(key)
            v = None if e is None else _answer_only(e)
            self._remember({key: v}, gen)
        return default if v is None else v

    def prefetch(self, keys: Any) -> None:
        """Look ``keys`` up in the answers files at once (one query; an admission batch's keys), so that the
        look-ups that follow (``get``, ``in``) are answered from memory."""
        cold = self.cold
        if cold is None or not cold.count:
            return
        gen, memo, hot = self._gen, self._memo, self.hot
        todo = []
        for k in set(keys):
            if k is not None and k not in hot:
                m = memo.get(k)
                if m is None or m[0] != gen:
                    todo.append(k)
        if todo:
            found = cold.find(todo)
            self._remember({k: (None if (e := found.get(k)) is None else _answer_only(e)) for k in todo}, gen)

    def _remember(self, got: dict[str, Any], gen: int) -> None:
        """Look-ups made at generation ``gen``: worth nothing once a compaction moved answers (``changed``), which
        it says before it drops them from ``hot`` (so a key is never missed in both)."""
        memo = self._memo
        if len(memo) + len(got) > self.MEMO:
            memo = self._memo = {}
        for k, v in got.items():
            memo[k] = (gen, v)

    def changed(self) -> None:
        """``cold`` changed (a move committed, before its keys leave ``hot``; an expiry)."""
        self._gen += 1
        self._memo = {}

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None        # type: ignore[arg-type]

    def __setitem__(self, key: str, value: Mapping[str, Any]) -> None:
        self.hot[key] = value

    def __delitem__(self, key: str) -> None:
        del self.hot[key]

    def pop(self, key: str, *default: Any) -> Any:
        return self.hot.pop(key, *default)

    def __iter__(self) -> Iterator[str]:
        hot = list(self.hot)
        yield from hot
        if self.cold is not None and self.cold.count:
            held = set(hot)
            for e in self.cold.entries():
                if e["key"] not in held:
                    held.add(e["key"])
                    yield e["key"]

    def items(self) -> Iterator[tuple[str, Mapping[str, Any]]]:     # type: ignore[override]
        hot = list(self.hot.items())
        yield from hot
        if self.cold is not None and self.cold.count:
            held = {k for k, _ in hot}
            for e in self.cold.entries():
                if e["key"] not in held:
                    held.add(e["key"])
                    yield e["key"], _answer_only(e)

    def values(self) -> Iterator[Mapping[str, Any]]:             # type: ignore[override]
        for _, v in self.items():
            yield v

    def __len__(self) -> int:
        return len(self.hot) + (self.cold.count - self.overlap if self.cold is not None else 0)

    def by_id(self, deal_id: str) -> Mapping[str, Any] | None:
        """The end of deal ``deal_id`` (a scan of ``hot``, one indexed look-up in the files)."""
        for e in list(self.hot.values()):
            if e.get("id") == deal_id:
                return e
        if self.cold is not None and self.cold.count:
            e = self.cold.by_id(deal_id)
            if e is not None:
                return _answer_only(e)
        return None

    def sealed_sample(self) -> Iterator[Mapping[str, Any]]:
        """``hot`` and a few answers per key id and file of ``cold`` (the keyring check on open)."""
        yield from list(self.hot.values())
        if self.cold is not None and self.cold.count:
            yield from self.cold.sealed()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None         # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"KeyStore({len(self.hot)} in the log, {len(self) - len(self.hot)} in the answers files)"


def _default(value: Any) -> Any:
    from decimal import Decimal
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if type(value) is Kept:
        return value.entry()
    raise TypeError(f"cannot log a {type(value).__name__}")


def read(path: Path, apply: Callable[[dict[str, Any]], None] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every entry of the log and the offset where its good part ends.  ``apply``: called with each entry as its
    record is read, instead of returning them all (``TxnLog`` opening a log of millions of keys: one record's
    entries at a time in memory, not the whole file's; the file is mapped, not copied)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return [], 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _read(path, data, apply)


def _read(path: Path, data: Any, apply: Callable[[dict[str, Any]], None] | None) -> tuple[list[dict[str, Any]], int]:
    if data[:len(MAGIC)] != MAGIC:
        raise TxnLogError(f"{path}: byte 0: not a bsp transaction log (expected {MAGIC!r}); "
                          f"move it aside if it is not one")
    entries: list[dict[str, Any]] = []
    pos = len(MAGIC)
    view = memoryview(data)
    payload = None
    try:
        while pos + HEADER.size <= len(data):
            length, crc = HEADER.unpack_from(data, pos)
            if length == 0:
                break                                  # the zeros the file is made of: the end
            start = pos + HEADER.size
            payload = view[start:start + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                later = _record_after(data, pos)
                if later is not None:                  # a torn write leaves nothing after it: this is damage
                    raise TxnLogError(
                        f"{path}: byte {pos}: record {'cut short' if len(payload) < length else 'CRC mismatch'}, "
                        f"and a readable record follows at byte {later}, so this is damage, not a torn write: "
                        f"the deals in flight and the deal keys recorded after it cannot be read. Restore {path} "
                        f"from a copy and start again; or move it aside (mv {path} {path}.damaged) to start "
                        f"without it: deals it left in flight are then not resolved (settle them with the "
                        f"counterparts) and repeats of keys it held run again")
                break                                  # torn tail: never acknowledged
            batch = orjson.loads(payload)
            payload.release()
            if apply is None:
                entries.extend(batch)
            else:
                for e in batch:
                    apply(e)
            del batch
            pos = start + length
    finally:
        if payload is not None:
            payload.release()
        view.release()
    return entries, pos


def _record_after(data: bytes, bad: int) -> int | None:
    """The offset of the first well-formed record after a bad one at ``bad`` (its payload an orjson
    list, its length fitting, its CRC right), or None."""
    n = len(data)
    at = data.find(b"[", bad + HEADER.size + 1)
    while at != -1:
        h = at - HEADER.size
        length, crc = HEADER.unpack_from(data, h)
        if 0 < length <= n - at and zlib.crc32(data[at:at + length]) == crc:
            return h
        at = data.find(b"[", at + 1)
    return None


class TxnLog:
    """The open log.  ``append`` is blocking: ``TxnManager.write`` calls it on a worker thread, or
    on the event loop's thread when nothing else is ready to run and the record fits without a
    compaction (a ~0.1-0.2 ms write + ``fdatasync``)."""

    def __init__(self, path: Path, segment_bytes: int = SEGMENT_BYTES, *, sync: bool = True,
                 retention: float | None = KEY_RETENTION, clock: Any = time.time, answers: bool = True,
                 rebuild: Any = None) -> None:
        self.path = path
        self.segment_bytes = segment_bytes
        self.retention = retention    # seconds; None: keys are kept for good
        self.clock = clock            # () -> epoch seconds (tests advance it)
        self.horizon: float | None = None    # keys of deals finished before this were dropped
        self.dropped = 0                      # keys dropped by this object's compactions
        self.sync = sync              # False: the ledger is not durable (``--ledger-sync none``): no fdatasync
        self.pending: dict[str, Pending] = {}
        self.accepted: dict[str, dict[str, Any]] = {}      # id -> ``a`` entry of a light deal, until recorded
        # the answers files (engine/txn/answers.py): recorded answers a compaction moved out of the log and memory
        self.answers: Answers | None = None
        if answers:
            try:
                self.answers = Answers(answers_dir(path), sync=sync, rebuild=rebuild)
            except (OSError, sqlite3.Error) as exc:
                raise TxnLogError(f"{getattr(exc, 'filename', None) or answers_dir(path)}: cannot open the key "
                                  f"store's answers files: {exc}") from exc
        self.ends = KeyStore(self.answers)                # key -> end entry (a ``Kept`` once recorded)
        self.moved = 0                                     # answers moved to the answers files (this object)
        self.answers_moved = False                         # some ever were (the log's ``moved`` entry)
        self.unrecorded: dict[str, dict[str, Any]] = {}    # id -> end entry whose ledger row may be missing
        self.reversals: dict[str, dict[str, Any]] = {}     # "id|step" -> rev entry (n, ack), until revrec
        self.writes = 0
        self.compactions = 0
        self.compacted_bytes = 0       # what the compactions wrote into new log files (bench/bench_key_memory.py)
        self._fd = -1
        self._offset = self._size = 0
        self._spare = path.with_name(path.name + ".spare")
        self._spare_lock = threading.Lock()        # the spare maker thread and a compaction
        self._spare_thread: threading.Thread | None = None
        self._spare_asked = False                  # once per file: made when it is half full
        self._compact_failed: tuple[float, BaseException] | None = None   # (when, why) the last one failed
        self.monotonic = time.monotonic            # () -> seconds: the wait after a failed compaction (tests)
        self.compact_after: float | None = COMPACT_AFTER    # None: only when full (and on open)
        self._compacted_at = 0.0                   # monotonic time of the last compaction
        self._base = 0                             # the offset it left: what it kept ends there
        for leftover in (self._spare, path.with_name(path.name + ".spare.tmp")):
            leftover.unlink(missing_ok=True)        # may hold a compaction's body: never reuse it
        if path.exists():
            read(path, self._apply)                # record by record: a restart holds one record's entries
        if self.answers is not None and self.answers.horizon is not None:
            self.horizon = max(self.horizon or 0.0, self.answers.horizon)
        if self.answers_moved and self.answers is not None and not self.answers.count \
                and self.answers.horizon is None:
            # the log says answers were moved, and the answers files are gone (moved or deleted without the
            # log): their keys cannot be answered; a repeat of one is looked up in the ledger (refused 94,
            # never run again) rather than taken for a new key
            self.horizon = max(self.horizon or 0.0, self.clock())
            logger.error("%s: the transaction log moved deal keys' answers to %s, which holds none now (moved "
                         "or deleted): repeats of those keys are refused (duplicate, 94) from the ledger's deal "
                         "key index, not answered; put the answers files back beside the log to answer them",
                         path, self.answers.path)
        for i, e in self.accepted.items():          # light deals a crash left in flight
            self.pending[i] = _light_pending(e)
        self.accepted.clear()
        try:
            self._compact()
        except OSError as exc:
            raise TxnLogError(f"{exc.filename or path}: cannot write the transaction log: {os_reason(exc)}; "
                              f"{storage_fix(exc)}") from exc

    def _apply(self, e: dict[str, Any]) -> None:
        t = e.get("t")
        if t == "a":
            self.accepted[e["id"]] = e
        elif t == "begin":
            self.pending[e["id"]] = Pending(e)
        elif t == "step":
            p = self.pending.get(e["id"])
            if p is None and e["id"] in self.accepted:      # a light deal taken over (a reversal)
                p = self.pending[e["id"]] = _light_pending(self.accepted.pop(e["id"]))
            if p is not None:
                p.phases[e["step"]] = e["phase"]
                if e.get("reply") is not None:
                    p.replies[e["step"]] = e["reply"]
                if e.get("values") is not None:
                    p.values[e["step"]] = e["values"]
        elif t == "end":
            if e.get("key") is not None and e.get("fin") is None:
                e["fin"] = self.clock()          # an end from before retention: its time starts now
            self.pending.pop(e["id"], None)
            self.accepted.pop(e["id"], None)
            if not e.get("recorded"):
                self.unrecorded[e["id"]] = e
            elif e.get("key") is not None:
                e = _answer_only(e)              # recorded: only what answers a repeat (also an older bsp's)
            if e.get("key") is not None:
                self.ends[e["key"]] = e
        elif t == "rev":
            self.reversals[f"{e['id']}|{e['step']}"] = {"n": 0, "ack": None, **e}
        elif t in ("revtry", "revack", "revrec"):
            k = f"{e['id']}|{e['step']}"
            r = self.reversals.get(k)
            if r is None:
                pass
            elif t == "revtry":
                r["n"] = max(r["n"], e["n"])
            elif t == "revack":
                r["n"] = max(r["n"], e.get("n", 0))
                r["ack"] = {x: e.get(x) for x in ("mti", "detail", "at", "response_code", "approved")}
            else:
                del self.reversals[k]
        elif t == "horizon":
            self.horizon = max(self.horizon or 0.0, e["before"])
        elif t == "moved":                       # answers were moved to the answers files (engine.txn.answers)
            self.answers_moved = True
        elif t == "recorded":                    # the end's ledger row is committed
            ends = self.ends.hot                 # (one already in the answers files is recorded there)
            for key in e.get("keys", ()):
                end = ends.get(key)
                if end is not None:
                    ends[key] = _answer_only(end)
            accepted, unrecorded, pending = self.accepted, self.unrecorded, self.pending
            for i in e.get("ids", ()):
                if accepted.pop(i, None) is None:
                    unrecorded.pop(i, None)
                    p = pending.get(i)
                    if p is not None and p.light:        # a light deal found recorded on restart
                        del pending[i]

    def _expire(self) -> None:
        """Drop the keys of deals that finished more than ``retention`` seconds ago and whose ledger
        row is recorded (a deal in flight has no end here; an unrecorded end stays)."""
        if self.retention is None:
            return
        cutoff = self.clock() - self.retention
        hot = self.ends.hot
        old = [k for k, e in hot.items() if e.get("recorded") and e["fin"] < cutoff]
        for k in old:
            e = hot.pop(k)
            self.unrecorded.pop(e["id"], None)
        n = len(old)
        if self.answers is not None:
            try:
                gone = self.answers.expire(cutoff)     # horizon kept there (durably) before any file goes
            except (OSError, sqlite3.Error) as exc:
                raise TxnLogError(f"{self.answers.path}: cannot drop the answers past the key retention: "
                                  f"{exc}") from exc
            if gone:
                n += gone
                self.ends.changed()
        if n:
            self.dropped += n
            self.horizon = max(self.horizon or 0.0, cutoff)

    def _move(self) -> list[tuple[str, Mapping[str, Any]]]:
        """Move the recorded answers the log holds to the answers files, durably (``Answers.add``: written and
        fdatasync'ed, indexed); returns ``(key, entry)`` of those now held there, which the log being written
        leaves out (they stay in ``hot`` until it is in place)."""
        if self.answers is None:
            return []
        todo = [(k, e) for k, e in self.ends.hot.items() if _moves(e)]
        if not todo:
            return []
        held: list[Mapping[str, Any]] = []
        try:
            for i in range(0, len(todo), MOVE_CHUNK):        # an upgrade's first open: millions at once
                held += self.answers.add([e for _, e in todo[i:i + MOVE_CHUNK]])
        except (OSError, sqlite3.Error) as exc:
            raise TxnLogError(str(exc)) from exc
        ids = {id(e) for e in held}
        moved = [(k, e) for k, e in todo if id(e) in ids]
        if moved:
            self.answers_moved = True
        self.ends.overlap = len(moved)
        return moved

    def _keep(self, moved: list[tuple[str, Mapping[str, Any]]] = ()) -> list[dict[str, Any]]:      # type: ignore[assignment]
        gone = {k for k, _ in moved}
        keep: list[dict[str, Any]] = [e for k, e in self.ends.hot.items() if k not in gone]     # type: ignore[misc]
        if self.horizon is not None:
            keep.append({"t": "horizon", "before": self.horizon})
        if self.answers_moved:
            keep.append({"t": "moved"})
        keep += [e for e in self.unrecorded.values() if e.get("key") is None]
        for p in self.pending.values():
            keep.append(p.begin)
            keep.extend({"t": "step", "id": p.id, "step": s, "phase": ph, "reply": p.replies.get(s),
                         "values": p.values.get(s)} for s, ph in p.phases.items())
        keep += self.accepted.values()
        keep += self.reversals.values()            # queued reversals: n and ack ride in the entry
        return keep

    def _compact(self) -> None:
        """Write what is still needed into a new zero-filled file and put it in place (blocking).
        Raises (``OSError`` / ``TxnLogError``) only when the log file was not replaced: the old one
        stays in use, and a spare whose write failed part way is removed (never reused)."""
        self._refused()
        try:
            self._compact_now()
        except (OSError, TxnLogError) as exc:
            self._compact_failed = (self.monotonic(), exc)
            raise
        self._compact_failed = None

    def _refused(self) -> None:
        """Within ``COMPACT_RETRY`` of a failed compaction, raise its error again (a full disk: not a file of
        segment_bytes made per group commit).  Its traceback is the current one only: raised as it is, it
        grew by this call's frames each time and kept them (and the state copy of each ``append``) alive."""
        failed = self._compact_failed
        if failed is not None and self.monotonic() - failed[0] < COMPACT_RETRY:
            raise failed[1].with_traceback(None)

    def _compact_now(self) -> None:
        self._expire()
        moved = self._move()
        keep = self._keep(moved)
        # records of at most CHUNK entries: a restart reads (and holds) one at a time, not the whole key store
        head = b"".join([MAGIC] + [_frame(keep[i:i + CHUNK]) for i in range(0, len(keep), CHUNK)])
        del keep
        size = self.segment_bytes
        while len(head) * 2 - len(MAGIC) > size:       # room for as much again before the next compaction
            size *= 2
        with self._spare_lock:
            fd = -1
            if size == self.segment_bytes and self._spare.exists():
                tmp = self._spare                      # made ahead: zeros past the magic
                try:
                    fd = os.open(tmp, os.O_WRONLY)
                    write_at(fd, head, 0)
                except OSError as exc:
                    if fd >= 0:
                        os.close(fd)
                    tmp.unlink(missing_ok=True)        # its head may be half written: never reuse it
                    raise TxnLogError(f"{tmp}: byte 0: cannot write the transaction log's next file "
                                      f"({len(head)} bytes): {os_reason(exc)}; {storage_fix(exc)}") from exc
            else:
                tmp = self.path.with_name(self.path.name + ".tmp")
                _make_zeroed(tmp, head, size)
                fd = os.open(tmp, os.O_WRONLY)         # before the rename: once renamed, it is the log
            try:
                os.replace(tmp, self.path)
            except OSError:
                os.close(fd)
                raise
        fsync_dir(self.path.parent)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._offset, self._size = len(head), size
        self.compacted_bytes += len(head)
        self._base, self._compacted_at = self._offset, self.monotonic()
        self._spare_asked = False
        self.compactions += 1
        if moved:                                      # in the answers files, out of the log: out of memory
            self.ends.changed()                        # first: a look-up remembered before is not trusted now
            hot = self.ends.hot
            for k, e in moved:
                if hot.get(k) is e:
                    del hot[k]
            self.ends.overlap = 0
            self.moved += len(moved)

    def _state(self) -> tuple[Any, ...]:
        """The in-memory state, copied: what ``append`` puts back when a compaction fails."""
        return ({i: Pending(p.begin, dict(p.phases), dict(p.replies), dict(p.values))
                 for i, p in self.pending.items()},
                dict(self.accepted), dict(self.ends.hot), dict(self.unrecorded),
                {k: dict(r) for k, r in self.reversals.items()}, self.horizon, self.dropped)

    def _restore(self, state: tuple[Any, ...]) -> None:
        (self.pending, self.accepted, self.ends.hot, self.unrecorded, self.reversals, self.horizon,
         self.dropped) = state
        if self.answers is not None and self.answers.horizon is not None:     # what the files forgot stays so
            self.horizon = max(self.horizon or 0.0, self.answers.horizon)
        self.ends.changed()

    def append(self, entries: list[dict[str, Any]], data: bytes | None = None) -> None:
        """Write ``entries`` as one record and fdatasync it (blocking); ``data``: the record
        already framed (``frame(entries)``).  The in-memory state (keys, deals in flight) takes
        the entries only once they are durable: when the write (or the compaction they go
        into) fails, it is as it was, so a later compaction never writes what was refused."""
        if not entries:
            return
        if data is None:
            data = _frame(entries)
        try:
            if not self.fits(len(data)):
                self._refused()                        # before copying the state (the whole key store)
                before = self._state()
                for e in entries:                      # full: the entries go into the compacted file
                    self._apply(e)
                try:
                    self._compact()
                except BaseException:
                    self._restore(before)
                    raise
            else:
                try:
                    write_at(self._fd, data, self._offset, sync=self.sync)
                except OSError:
                    unwrite(self._fd, self._offset)
                    raise
                self._offset += len(data)
                for e in entries:
                    self._apply(e)
                if self._offset * 2 >= self._size and not self._spare_asked:
                    self._spare_asked = True
                    self._spare_thread = threading.Thread(target=self._make_spare, name="bsp-txn-spare",
                                                          daemon=True)
                    self._spare_thread.start()
        except OSError as exc:
            raise TxnLogError(f"{self.path}: cannot append {len(data)} bytes at byte {self._offset}: "
                              f"{os_reason(exc)}; {storage_fix(exc)}") from exc
        self.writes += 1

    def _make_spare(self) -> None:
        """Thread: the next compaction's file, zero-filled and in place before it is needed."""
        try:
            with self._spare_lock:
                if not self._spare.exists() and self._fd >= 0:
                    tmp = self._spare.with_name(self._spare.name + ".tmp")
                    _make_zeroed(tmp, MAGIC, self.segment_bytes)
                    os.replace(tmp, self._spare)
                    fsync_dir(self.path.parent)
        except (OSError, TxnLogError):
            pass            # no spare: the next compaction makes its file itself (and reports an error)

    def fits(self, size: int) -> bool:
        """Whether a record of ``size`` bytes goes in without a compaction (a slow rewrite): it fits, and the
        last compaction is less than ``compact_after`` seconds old or nothing was written since."""
        if self._offset + size + HEADER.size > self._size:
            return False
        age = self.compact_after
        return age is None or self._offset <= self._base or self.monotonic() - self._compacted_at < age

    @staticmethod
    def frame(entries: list[dict[str, Any]]) -> bytes:
        """``entries`` as one record (header + payload), as ``append`` writes it."""
        return _frame(entries)

    def close(self) -> None:
        t = self._spare_thread
        if t is not None:
            t.join()
        if self.answers is not None:
            self.answers.close()      # (stays set: a closed log's key store is not read again)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        # A log nobody closed (its ledger object was freed): give its descriptor back.  No spare
        # thread runs here: a running one holds this object.
        fd, self._fd = getattr(self, "_fd", -1), -1
        answers = getattr(self, "answers", None)
        if answers is not None:
            self.answers = None
            try:
                answers.close()
            except Exception:
                pass
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def _frame(entries: list[dict[str, Any]]) -> bytes:
    payload = orjson.dumps(entries, default=_default, option=orjson.OPT_NON_STR_KEYS)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _make_zeroed(path: Path, head: bytes, size: int) -> None:
    """``path``: ``head`` then zeros up to ``size`` bytes, fsync'ed (``engine.durable.make_zeroed``)."""
    try:
        make_zeroed(path, head, size)
    except ZeroFillError as exc:
        raise TxnLogError(f"{path}: byte {exc.done}: cannot make the transaction log's next file ({size} bytes): "
                          f"{os_reason(exc.cause)}; {storage_fix(exc.cause)}") from exc.cause
