"""The answers files: the key store's recorded answers, out of the transaction log and out of memory.

A keyed deal's ``end`` whose ledger row is committed keeps, for the key retention (35 days by default), only
what answers a repeat (``log._answer_only``: id, key, status, code, reply, fin, held, kind, fp).  Held in the
log, every one of them was in the engine's memory (~715 bytes a key with 300-byte replies) and written again
by every compaction (every 5 minutes): at 1M keyed deals a day for 35 days, ~25 GB of memory and tens of GB
rewritten.  So a compaction moves them here (``TxnLog._compact_now``) and the log keeps only what arrived since:

    <ledger>.txn.answers/
        YYYY-MM-DD.ans2     one file per UTC day of the deals' finishing time (``fin``), append-only and never
                            rewritten: the retention removes whole files once every answer in them is past it
        index.sqlite        key digest -> (day, offset), with fin and the id's digest: read through SQLite's
                            B-tree (its page cache, a few MB, not a Python object a key)

A file is records, each one answer::

    length  4 bytes big-endian   payload size
    crc     4 bytes big-endian   zlib.crc32 of the payload
    payload                      the answer (below)

The payload's first byte says its form.  ``{`` (the old form, files written before 2026-11-28): orjson of the
entry as the log wrote it (``Kept.entry()``: the reply in hex, or ``{"k": token}``).  ``\x01`` (the raw form,
written since): the reply's bytes as they are, not in hex (~300 bytes less a key with 300-byte replies)::

    form    1 byte       1
    kind    1 byte       0: no reply here (none, or one of another shape: in the JSON as the log wrote it)
                         1: the reply's bytes (the log's lower-case hex of them)
                         2: a reply sealed with a field keyring, as ``KID:`` and the bytes of the token's base64
                            (``kept.Sealed``; the log's ``{"k": "enc:v1:KID:BASE64"}``)
    length  4 bytes big-endian   the reply's size
    reply   length bytes
    rest                         orjson of the entry without its reply (with it for kind 0)

Both forms read back as the same entry, character for character (``_decode``).  The raw form goes into files
named ``YYYY-MM-DD.ans2``; ``YYYY-MM-DD.ans`` files (the old form, written by the bsp of 2026-11-27) are read,
indexed and expired as before, and never appended to again.  So an older bsp, which cannot read the raw form,
never finds it in a file it reads (it would take it for a torn tail and cut it off): it ignores ``.ans2``
files (and cannot answer their keys), and the new bsp, back again, indexes them again.  In the index a file is
its day number (``.ans``) or its day number plus ``RAW_FILE`` (``.ans2``).

Order of a move (``add``): the records are appended to their day files and ``fdatasync``'ed, then the index
rows are committed, then (the caller) the new log without those entries is written and renamed into place.
A crash before the rename leaves the entries in the log as well: read again on the next open, they are moved
again, and an answer already in the files under the same key and id is not written twice.  A crash during
the append leaves a torn tail: on open each file is read past what the index holds of it; records whose CRC
holds are indexed (their entries are still in the log, or were moved), the first that does not ends the file
and is cut off.  The index is only a cache of the files: when it is missing or unreadable it is made again
from them (``_reconcile``: one transaction, one sync at the end, its progress logged).  What a look-up returns
is the entry read back through ``log._answer_only``: the same ``Kept`` (or dict) as the log's, so a repeat gets
the original answer byte for byte.

Sealed replies stay sealed: the file holds the token the log held (``{"k": "enc:v1:KID:..."}``; in the raw form
its key id and the bytes its base64 stands for), and a few
offsets per key id and day are noted (``sealed``) for the keyring check on open (``engine.txn.keycheck``).
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
from datetime import datetime, timezone
from hashlib import blake2b
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from engine.durable import fsync_dir
from engine.filemodes import create_private, private_dir
from engine.txn.kept import Kept, Sealed, _pack, _reply

logger = logging.getLogger("bsp.txn")
HEADER = struct.Struct(">II")
PROGRESS_EVERY = 250_000    # answers: a rebuild of the index logs a line with its counts each time it indexed this many
RAW = 1                     # the payload's first byte in the raw form (the old form's is orjson's ``{``)
RAW_HEAD = struct.Struct(">BBI")    # form, kind, the reply's length
NO_REPLY, REPLY_BYTES, REPLY_SEALED = 0, 1, 2
RAW_FILE = 1 << 24          # a raw-form file's number in the index: its day plus this (never a day number itself)
DAY = 86400
SEALED_TRIES = 3            # offsets noted per key id and file for the keyring check (keycheck.TRIES)
READ_AHEAD = 1024           # bytes read at once for a look-up (most answers fit: one pread)
REBUILD_CHUNK = 16_384      # answers read and inserted at a time by a rebuild: its progress and its stop between
                            # (``rebuild``: an ``engine.txn.answers_rebuild.Rebuild``, engine/txn/keyopen.py)


def answers_dir(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".answers")


def digest(text: str) -> int:
    """A stable signed 64-bit digest (SQLite's INTEGER); a look-up checks the key it reads back."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _day_name(day: int) -> str:
    """The name of file ``day`` of the index: ``YYYY-MM-DD.ans2`` (raw form), ``YYYY-MM-DD.ans`` (old form)."""
    if day >= RAW_FILE:
        return datetime.fromtimestamp((day - RAW_FILE) * DAY, timezone.utc).strftime("%Y-%m-%d") + ".ans2"
    return datetime.fromtimestamp(day * DAY, timezone.utc).strftime("%Y-%m-%d") + ".ans"


def _day_of(name: str) -> int | None:
    """The file's number in the index (``_day_name``'s inverse), None for another file."""
    stem, dot, ext = name.rpartition(".")
    if not dot or ext not in ("ans", "ans2"):
        return None
    try:
        t = datetime.strptime(stem, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(t.timestamp()) // DAY + (RAW_FILE if ext == "ans2" else 0)


def _kid(reply: Any) -> str | None:
    if isinstance(reply, dict):
        token = reply.get("k")
        if isinstance(token, str) and token.startswith("enc:"):
            parts = token.split(":")
            if len(parts) > 2:
                return parts[2]
    return None


_INDEXES = ("CREATE INDEX IF NOT EXISTS a_h ON a(h)", "CREATE INDEX IF NOT EXISTS a_i ON a(i)",
            "CREATE INDEX IF NOT EXISTS a_fin ON a(fin)")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS a(h INTEGER NOT NULL, i INTEGER NOT NULL, fin REAL NOT NULL, day INTEGER NOT NULL,
                             off INTEGER NOT NULL);
""" + ";\n".join(_INDEXES) + """;
CREATE TABLE IF NOT EXISTS files(day INTEGER PRIMARY KEY, size INTEGER NOT NULL, last REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sealed(day INTEGER NOT NULL, kid TEXT NOT NULL, off INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value);
"""


def _encode(e: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The raw form's payload of answer ``e`` (a ``Kept`` or the entry as the log wrote it), and that entry."""
    d = e.entry() if type(e) is Kept else dict(e)
    reply = d.get("reply")
    kind, raw = NO_REPLY, b""
    if type(e) is Kept and type(e.reply) in (bytes, Sealed):     # as the key store holds it: no hex to undo
        raw = e.reply
        kind = REPLY_SEALED if type(raw) is Sealed else REPLY_BYTES
    elif isinstance(reply, str):
        try:
            b = bytes.fromhex(reply)
        except ValueError:
            b = None
        if b is not None and b.hex() == reply:          # lower-case hex only: it comes back the same
            kind, raw = REPLY_BYTES, b
    elif isinstance(reply, dict) and len(reply) == 1 and isinstance(reply.get("k"), str):
        packed = _pack(reply["k"])
        if type(packed) is Sealed:                      # (``_pack`` checked it comes back the same)
            kind, raw = REPLY_SEALED, packed
    rest = d
    if kind != NO_REPLY:
        rest = dict(d)
        del rest["reply"]
    return RAW_HEAD.pack(RAW, kind, len(raw)) + raw + orjson.dumps(rest, default=_default), d


def _raw_head(body: bytes | memoryview) -> tuple[int, int]:
    """The reply's kind and where the entry's JSON starts in a raw-form payload; ``ValueError`` when it is not one."""
    if len(body) < RAW_HEAD.size or body[0] != RAW:
        raise ValueError(f"unknown answer form {bytes(body[:1])!r}")
    _, kind, n = RAW_HEAD.unpack_from(body)
    end = RAW_HEAD.size + n
    if len(body) < end or kind > REPLY_SEALED:
        raise ValueError("the reply runs past the record")
    return kind, end


def _decode(body: bytes | memoryview) -> dict[str, Any]:
    """The entry of a record's payload, in either form (module docstring); ``ValueError`` when it is neither."""
    if body[:1] == b"{":
        return orjson.loads(body)
    kind, end = _raw_head(body)
    e = orjson.loads(body[end:])
    if kind == REPLY_BYTES:
        e["reply"] = bytes(body[RAW_HEAD.size:end]).hex()
    elif kind == REPLY_SEALED:
        e["reply"] = _reply(Sealed(body[RAW_HEAD.size:end]))
    return e


def _scan_fields(body: bytes | memoryview) -> tuple[str, str, float, str | None]:
    """Key, deal id, finishing time and sealing key id of a record's payload (an index rebuild): in the raw form
    only the JSON after the reply is read."""
    if body[:1] == b"{":
        e = orjson.loads(body)
        kid = _kid(e.get("reply"))
    else:
        kind, end = _raw_head(body)
        e = orjson.loads(body[end:])
        kid = _kid(e.get("reply"))
        if kind == REPLY_SEALED:
            kid = bytes(body[RAW_HEAD.size:end]).partition(b":")[0].decode("ascii")
    return e["key"], str(e.get("id")), float(e.get("fin") or 0.0), kid


class AnswersError(OSError):
    """The answers files cannot be written or read (names the file)."""


class Answers:
    """``<ledger>.txn.answers/``: the recorded answers a compaction moved out of the log (module docstring).

    ``add`` and ``expire`` run where compactions run (a worker thread, or the opening thread); ``get`` and
    ``by_id`` where the key store is read (the event loop's thread): each side has its own SQLite connection
    (WAL: a reader never waits for a compaction's commit)."""

    def __init__(self, path: Path, *, sync: bool = True, rebuild: Any = None) -> None:
        self.path = path
        self.sync = sync
        self.rebuild = rebuild          # progress and stop of a rebuild (the engine's worker thread), or None
        private_dir(path)                       # owner-only, as the log (deal keys, reply bytes)
        self.index = path / "index.sqlite"
        create_private(self.index)              # SQLite makes its -wal and -shm with the database's mode
        self.count = 0                  # answers the index holds
        self.horizon: float | None = None
        self.bytes_written = 0          # by add(): what the moves wrote (bench/bench_key_memory.py)
        self._local = threading.local()
        self._fd_maps: list[dict[int, int]] = []    # each reading thread's descriptors of day files
        self._w: sqlite3.Connection | None = None
        try:
            try:
                self._w = self._connect()
                self._reconcile()
            except sqlite3.DatabaseError:           # the index is a cache of the files: made again from them
                if rebuild is not None:
                    rebuild.check()                 # (an interrupted statement: stopped, not damaged)
                if self._w is not None:
                    self._w.close()
                    self._w = None
                self._drop_index()
                create_private(self.index)
                self._w = self._connect()
                self._reconcile()
        except BaseException:                       # (stopped, or a file that cannot be read): nothing left open
            if rebuild is not None:
                rebuild.attach(None)
            if self._w is not None:
                self._w.close()
            raise

    # ------------------------------------------------------------ the index
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.index, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL" if self.sync else "PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-4096")          # 4 MiB of pages, whatever the number of keys
        con.executescript(_SCHEMA)
        return con

    def _reader(self) -> sqlite3.Connection:
        local = self._local
        con = getattr(local, "con", None)
        if con is None or local.epoch != self._epoch:       # (``close`` closed them all: opened again)
            con = sqlite3.connect(self.index, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA cache_size=-4096")
            local.con, local.epoch = con, self._epoch
            self._readers.append(con)
        return con

    _epoch = 0

    _readers: list[sqlite3.Connection]

    def _drop_index(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.index) + suffix).unlink(missing_ok=True)

    def _reconcile(self) -> None:
        """Index what the files hold past what the index knows of them (a crash between a move's append and its
        commit, a lost index), cut torn tails off, forget files that are gone.

        A rebuild (the index holds nothing and the files do: ``index.sqlite`` lost or damaged) is one transaction
        with ``synchronous=OFF``, the B-tree indexes dropped and made again at the end (sorted once rather than
        grown row by row), then the one sync: ``synchronous`` back to ``FULL`` and a checkpoint (the WAL synced,
        then the database).  A crash before that sync leaves an index without the rebuild's commit (the WAL's
        checksums end it before), made again at the next open; no move runs before the open is done.  A rebuild
        logs its progress (``bsp.txn``, INFO): where it starts with the files' size, every ``PROGRESS_EVERY``
        answers, and when it is done."""
        self._readers = []
        con = self._w
        known = dict(con.execute("SELECT day, size FROM files").fetchall())
        on_disk = {}
        for p in self.path.iterdir():
            day = _day_of(p.name)
            if day is not None:
                on_disk[day] = p
        todo = []                               # (day, file, start, size) to read
        for day, p in sorted(on_disk.items()):
            start = known.get(day, 0)
            size = p.stat().st_size
            if start == size and day in known:
                continue
            todo.append((day, p, start, size))
        bulk = bool(todo) and not known and con.execute("SELECT 1 FROM a LIMIT 1").fetchone() is None
        total = sum(size - (start if start <= size else 0) for _, _, start, size in todo)
        began = time.monotonic()
        rb = self.rebuild
        if bulk:
            logger.info("%s: making the key store's index again from %d answers file(s), %.1f MB (index.sqlite "
                        "was missing or damaged); traffic that needs the key store waits for it", self.path,
                        len(todo), total / 1e6)
            if rb is not None:
                rb.files, rb.total, rb.running = len(todo), total, True
                rb.attach(con)
                rb.check()
            con.execute("PRAGMA synchronous=OFF")
            con.execute("PRAGMA wal_autocheckpoint=0")       # no checkpoint before the WAL is synced
        con.execute("BEGIN IMMEDIATE")
        try:
            for day in set(known) - set(on_disk):
                con.execute("DELETE FROM a WHERE day = ?", (day,))
                con.execute("DELETE FROM files WHERE day = ?", (day,))
                con.execute("DELETE FROM sealed WHERE day = ?", (day,))
            if bulk:
                for name in ("a_h", "a_i", "a_fin"):
                    con.execute(f"DROP INDEX IF EXISTS {name}")
            done = read = 0
            shown = PROGRESS_EVERY
            for day, p, start, size in todo:
                if start > size:                # the index knew more than the file holds: index it anew
                    con.execute("DELETE FROM a WHERE day = ?", (day,))
                    con.execute("DELETE FROM sealed WHERE day = ?", (day,))
                    start = 0
                end, last = start, 0.0
                chunk = REBUILD_CHUNK if bulk and rb is not None else PROGRESS_EVERY
                while True:                     # a chunk at a time: a day's file holds millions
                    rows, pos = self._scan(p, day, end, chunk)
                    if rows:
                        con.executemany("INSERT INTO a(h, i, fin, day, off) VALUES (?, ?, ?, ?, ?)",
                                        [r[:5] for r in rows])
                        self._note_sealed(con, day, [(r[4], r[5]) for r in rows])
                        last = max(last, max(r[2] for r in rows))
                    done += len(rows)
                    read += pos - end
                    end = pos
                    if bulk and done >= shown:
                        self._progress(done, read, total, began)
                        shown = (done // PROGRESS_EVERY + 1) * PROGRESS_EVERY
                    if bulk and rb is not None:
                        rb.chunk(done, read)    # (raises RebuildStopped when stopped: rolled back below)
                    if len(rows) < chunk:
                        break
                if end < size:                  # a torn tail: never relied on (the log still holds its entries)
                    with open(p, "r+b") as f:
                        f.truncate(end)
                        os.fsync(f.fileno())
                con.execute("INSERT INTO files(day, size, last) VALUES (?, ?, ?) ON CONFLICT(day) DO UPDATE "
                            "SET size = excluded.size, last = max(files.last, excluded.last)", (day, end, last))
            if bulk:
                if rb is not None:
                    rb.phase = "making the indexes"
                for sql in _INDEXES:
                    con.execute(sql)
                if rb is not None:
                    rb.check()
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:          # (an interrupted statement may have ended it already)
                con.execute("ROLLBACK")
            raise
        finally:
            if bulk:
                if rb is not None:
                    rb.attach(None)         # no interrupt past the commit: the sync below is the rebuild's end
                con.execute("PRAGMA synchronous=FULL" if self.sync else "PRAGMA synchronous=OFF")
        if bulk:
            if self.sync:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")      # the one sync: WAL, then the database
            con.execute("PRAGMA wal_autocheckpoint=1000")
            logger.info("%s: the key store's index is made again: %d answers from %d file(s) in %.1f s",
                        self.path, done, len(todo), time.monotonic() - began)
            if rb is not None:
                rb.answers, rb.read, rb.done = done, read, True
        self.count = con.execute("SELECT count(*) FROM a").fetchone()[0]
        row = con.execute("SELECT value FROM meta WHERE name = 'horizon'").fetchone()
        self.horizon = None if row is None else float(row[0])

    def _progress(self, done: int, read: int, total: int, began: float) -> None:
        logger.info("%s: making the key store's index again: %d answers indexed, %.1f of %.1f MB (%d%%), %.1f s",
                    self.path, done, read / 1e6, total / 1e6, read * 100 // max(1, total), time.monotonic() - began)

    def _scan(self, p: Path, day: int, start: int, most: int) -> tuple[list[tuple[Any, ...]], int]:
        """Rows ``(h, i, fin, day, off, kid)`` of the good records of ``p`` from ``start`` (at most ``most``), and
        where they end."""
        rows: list[tuple[Any, ...]] = []
        pos = start
        with open(p, "rb") as f:
            if os.fstat(f.fileno()).st_size <= start:
                return rows, start
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:     # not the whole file in memory
                unpack, crc32, fields, hs, add = HEADER.unpack_from, zlib.crc32, _scan_fields, digest, rows.append
                size, head = len(data), HEADER.size
                while pos + head <= size and len(rows) < most:
                    length, crc = unpack(data, pos)
                    body = data[pos + head:pos + head + length]
                    if length == 0 or len(body) < length or crc32(body) != crc:
                        break
                    try:
                        key, deal, fin, kid = fields(body)
                    except (ValueError, KeyError, TypeError, UnicodeDecodeError):     # (orjson's error is a ValueError)
                        break
                    add((hs(key), hs(deal), fin, day, pos, kid))
                    pos += head + length
        return rows, pos

    def _note_sealed(self, con: sqlite3.Connection, day: int, offs: list[tuple[int, str | None]]) -> None:
        have: dict[str, int] = {}
        for kid, n in con.execute("SELECT kid, count(*) FROM sealed WHERE day = ? GROUP BY kid", (day,)):
            have[kid] = n
        new = []
        for off, kid in offs:
            if kid is not None and have.get(kid, 0) < SEALED_TRIES:
                have[kid] = have.get(kid, 0) + 1
                new.append((day, kid, off))
        if new:
            con.executemany("INSERT INTO sealed(day, kid, off) VALUES (?, ?, ?)", new)

    # ------------------------------------------------------------ reading
    def _read(self, day: int, off: int) -> dict[str, Any] | None:
        """The entry at ``off`` of day file ``day`` (None: the file is gone, a retention removed it)."""
        fd = self._fd(day)
        if fd < 0:
            return None
        data = os.pread(fd, READ_AHEAD, off)
        if len(data) < HEADER.size:
            return None
        length, crc = HEADER.unpack_from(data)
        if len(data) < HEADER.size + length:
            data += os.pread(fd, HEADER.size + length - len(data), off + len(data))
        body = data[HEADER.size:HEADER.size + length]
        if len(body) < length or zlib.crc32(body) != crc:
            raise AnswersError(f"{self.path / _day_name(day)}: byte {off}: the answer there does not read back "
                               f"(CRC mismatch): the file was changed or damaged; restore it from a copy")
        try:
            return _decode(body)
        except ValueError as exc:
            raise AnswersError(f"{self.path / _day_name(day)}: byte {off}: the answer there does not read back "
                               f"({exc}): written by a newer bsp, or damaged; restore it from a copy") from exc

    def find(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The entries of those of ``keys`` held here: one query for them all (an admission batch), and a read
        of the file only for a digest found (a repeat, or one chance in ~2^64 / N of another key's)."""
        if not keys:
            return {}
        hs: dict[int, list[str]] = {}
        for k in keys:
            hs.setdefault(digest(k), []).append(k)
        out: dict[str, dict[str, Any]] = {}
        con = self._reader()
        found: list[tuple[int, int, int]] = []
        todo = list(hs)
        for i in range(0, len(todo), 500):
            chunk = todo[i:i + 500]
            found += con.execute(f"SELECT h, day, off FROM a WHERE h IN ({','.join('?' * len(chunk))}) "
                                 f"ORDER BY rowid DESC", chunk).fetchall()
        for h, day, off in found:
            e = self._read(day, off)
            if e is None:
                continue
            k = e.get("key")
            if k in hs[h] and k not in out:
                out[k] = e
        return out

    def _fd(self, day: int) -> int:
        """A descriptor of day file ``day`` open for reading, kept per thread (-1: the file is gone).  A thread
        closes only its own, when an expiry removed files since it last read (``_files_gen``)."""
        local = self._local
        fds = getattr(local, "fds", None)
        if fds is None or local.gen != self._files_gen:
            if fds is None:
                fds = local.fds = {}
                self._fd_maps.append(fds)           # closed by ``close`` whichever thread opened them
            for fd in list(fds.values()):
                os.close(fd)
            fds.clear()
            local.gen = self._files_gen
        fd = fds.get(day)
        if fd is None:
            try:
                fd = os.open(self.path / _day_name(day), os.O_RDONLY)
            except FileNotFoundError:
                return -1
            fds[day] = fd
        return fd

    _files_gen = 0

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry of ``key`` as the log wrote it, or None."""
        rows = self._reader().execute("SELECT day, off FROM a WHERE h = ? ORDER BY rowid DESC",
                                      (digest(key),)).fetchall()
        for day, off in rows:
            e = self._read(day, off)
            if e is not None and e.get("key") == key:
                return e
        return None

    def by_id(self, deal_id: str) -> dict[str, Any] | None:
        rows = self._reader().execute("SELECT day, off FROM a WHERE i = ? ORDER BY rowid DESC",
                                      (digest(str(deal_id)),)).fetchall()
        for day, off in rows:
            e = self._read(day, off)
            if e is not None and str(e.get("id")) == str(deal_id):
                return e
        return None

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every answer held, file by file (tests, the ``forever`` bench: reads them all)."""
        for day, off in self._reader().execute("SELECT day, off FROM a ORDER BY day, off").fetchall():
            e = self._read(day, off)
            if e is not None:
                yield e

    def sealed(self) -> Iterator[dict[str, Any]]:
        """A few answers sealed under each key id in each file (``engine.txn.keycheck``)."""
        for day, off in self._reader().execute("SELECT day, off FROM sealed ORDER BY day DESC, off").fetchall():
            e = self._read(day, off)
            if e is not None:
                yield e

    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if _day_of(p.name) is not None)

    # ------------------------------------------------------------ writing (where compactions run)
    def add(self, entries: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Append these recorded answers to their day files, ``fdatasync`` them, commit their index rows.
        Returns the entries held here now (written, or found here already under the same key and id): the
        caller drops them from the log.  Raises ``AnswersError`` with the files as they were."""
        con = self._w
        fresh = []
        here = []
        hs = [digest(e["key"]) for e in entries]
        found: set[int] = set()
        for i in range(0, len(hs), 500):
            chunk = hs[i:i + 500]
            found.update(r[0] for r in con.execute(
                f"SELECT DISTINCT h FROM a WHERE h IN ({','.join('?' * len(chunk))})", chunk))
        for e, h in zip(entries, hs):
            if h in found:
                old = self._lookup_w(e["key"], h)
                if old is not None and str(old.get("id")) == str(e.get("id")):
                    here.append(e)          # moved by a compaction the crash cut short: not twice
                    continue
            fresh.append((e, h))
        if not fresh:
            return here
        by_day: dict[int, list[tuple[bytes, Mapping[str, Any], int]]] = {}
        for e, h in fresh:
            body, d = _encode(e)                             # the raw form: the reply's bytes, not hex
            fin = float(d.get("fin") or 0.0)
            rec = HEADER.pack(len(body), zlib.crc32(body)) + body
            by_day.setdefault(int(fin // DAY) + RAW_FILE, []).append((rec, d, h))
        written: list[tuple[Path, int, bool]] = []      # (file, size before, new) to undo on failure
        rows: list[tuple[Any, ...]] = []
        sealed: dict[int, list[tuple[int, str | None]]] = {}
        try:
            new_file = False
            for day, recs in sorted(by_day.items()):
                p = self.path / _day_name(day)
                fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    size = os.fstat(fd).st_size
                    written.append((p, size, size == 0))
                    new_file |= size == 0
                    data = b"".join(r[0] for r in recs)
                    view, pos = memoryview(data), 0
                    while pos < len(data):
                        pos += os.pwrite(fd, view[pos:], size + pos)
                    if self.sync:
                        os.fdatasync(fd)
                finally:
                    os.close(fd)
                off = size
                for rec, e, h in recs:
                    rows.append((h, digest(str(e.get("id"))), float(e.get("fin") or 0.0), day, off))
                    sealed.setdefault(day, []).append((off, _kid(e.get("reply"))))
                    off += len(rec)
                self.bytes_written += len(data)
            if new_file and self.sync:
                fsync_dir(self.path)
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("INSERT INTO a(h, i, fin, day, off) VALUES (?, ?, ?, ?, ?)", rows)
                for day, offs in sealed.items():
                    self._note_sealed(con, day, offs)
                size_of = {p: None for p, _, _ in written}
                for day in by_day:
                    p = self.path / _day_name(day)
                    size_of[p] = p.stat().st_size
                    last = max(float(e.get("fin") or 0.0) for _, e, _ in by_day[day])
                    con.execute("INSERT INTO files(day, size, last) VALUES (?, ?, ?) ON CONFLICT(day) DO UPDATE "
                                "SET size = excluded.size, last = max(files.last, excluded.last)",
                                (day, size_of[p], last))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except (OSError, sqlite3.Error) as exc:
            for p, size, new in written:            # never leave records the index does not hold
                try:
                    if new:
                        p.unlink(missing_ok=True)
                    else:
                        os.truncate(p, size)
                except OSError:
                    pass                             # the next open cuts or indexes them (module docstring)
            name = getattr(exc, "filename", None) or self.path
            raise AnswersError(f"{name}: cannot write the key store's answers file: {exc}") from exc
        self.count += len(rows)
        return here + [e for e, _ in fresh]

    def _lookup_w(self, key: str, h: int) -> dict[str, Any] | None:
        for day, off in self._w.execute("SELECT day, off FROM a WHERE h = ? ORDER BY rowid DESC", (h,)).fetchall():
            e = self._read(day, off)
            if e is not None and e.get("key") == key:
                return e
        return None

    def expire(self, cutoff: float) -> int:
        """Forget the answers of deals finished before ``cutoff``; remove the files holding no later one.
        Returns how many were forgotten; the horizon (``TxnLog.horizon``) is kept here too, durably, before
        any file goes (a repeat of a key forgotten here is then looked up in the ledger)."""
        con = self._w
        row = con.execute("SELECT min(fin) FROM a").fetchone()
        if row[0] is None or row[0] >= cutoff:
            return 0
        con.execute("BEGIN IMMEDIATE")
        try:
            n = con.execute("DELETE FROM a WHERE fin < ?", (cutoff,)).rowcount
            gone = [d for (d,) in con.execute("SELECT day FROM files WHERE last < ?", (cutoff,))]
            for day in gone:
                con.execute("DELETE FROM files WHERE day = ?", (day,))
                con.execute("DELETE FROM sealed WHERE day = ?", (day,))
            self.horizon = max(self.horizon or 0.0, cutoff)
            con.execute("INSERT INTO meta(name, value) VALUES ('horizon', ?) ON CONFLICT(name) DO UPDATE "
                        "SET value = excluded.value", (self.horizon,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if gone:
            self._files_gen += 1                  # readers close what they hold of them at their next read
        for day in gone:
            (self.path / _day_name(day)).unlink(missing_ok=True)
        if gone and self.sync:
            fsync_dir(self.path)
        self.count -= n
        return n

    def close(self) -> None:
        for fds in self._fd_maps:
            for fd in list(fds.values()):
                try:
                    os.close(fd)
                except OSError:
                    pass
            fds.clear()
        self._epoch += 1
        for con in [c for c in (self._w, *self._readers) if c is not None]:
            try:
                con.close()
            except sqlite3.Error:
                pass
        self._readers = []


def _default(value: Any) -> Any:
    from engine.txn.log import _default as log_default
    return log_default(value)



def read_all(log_path: Path) -> list[dict[str, Any]]:
    """Every answer the answers files of the log at ``log_path`` hold, file by file, as written (good records
    only; without the index): what a look at the files shows (tests, tools)."""
    d = answers_dir(log_path)
    out: list[dict[str, Any]] = []
    if not d.is_dir():
        return out
    for p in sorted(d.iterdir()):
        if _day_of(p.name) is None:
            continue
        data = p.read_bytes()
        pos = 0
        while pos + HEADER.size <= len(data):
            length, crc = HEADER.unpack_from(data, pos)
            body = data[pos + HEADER.size:pos + HEADER.size + length]
            if length == 0 or len(body) < length or zlib.crc32(body) != crc:
                break
            out.append(_decode(body))
            pos += HEADER.size + length
    return out
