"""The capture file: every recorded frame, one row each, in a DuckDB file.

Schema (``FORMAT_VERSION`` 1; docs/testing.md shows queries):

    capture_info(key, value)        format_version, started_at, config_version, masked, channels
                                    (+ clear_reason, clear_by, clear_host: recorded in clear by choice)
    capture_sources(path, text, config_version)   the route files of each configuration version that ran
    frames(seq, recorded_at, t_ms, channel, role, direction, conn, exchange, call_seq, raw,
           correlation_key, deal_id, deal_status, error, masked, config_version, origin, names, peer, deal,
           clock, status, http, dead_letters)

``config_version`` (of frames and capture_sources) was added within format version 1: a capture
written before it reads back with the version of ``capture_info`` on every frame.  A reload while
recording adds the new version's sources; each frame names the version that served its exchange.

``origin`` (also added within format version 1) is, on the request row of an exchange a ``file watch``
channel fed, where the record came from: a JSON object of ``engine.channels.file_origin.RecordOrigin``'s
fields (``name``, ``line``, ``record``, ``offset``, ``records``, ...), given back to the route as
``file.*`` on replay; NULL on every other row.  A capture written before it replays with ``file.*``
null, as it did then.

``names`` (also added within format version 1) is, on the request row of a call to a ``file write``
channel whose name takes values from the deal (``name { ref = msg.ref }``), those values: a JSON
object ``{"ref": "R1"}`` (masked like the request when the capture is); NULL on every other row. A
replay compares them with the candidate's (``call CHANNEL #N``, field ``file name {ref}``).

``peer`` (also added within format version 1) is, on the request row of an inbound exchange whose channel
knows its peer (tcp listen, http listen), who sent it: a JSON object ``{"cn": ..., "san": [...], "address":
...}`` (``engine.replay.peer``), given back to the route as ``peer.*`` on replay; NULL on every other row. A
capture written before it replays with ``peer.*`` null.

``deal`` (also added within format version 1) is, on the request row of an exchange that recorded a deal,
its type, route, reference, amount, currency, party and response code: a JSON object
(``engine.replay.dealrow``, masked like the request when the capture is); a replay compares them with the
candidate's deal.  NULL on every other row; a capture written before it compares the deal's status only.

``clock`` (also added within format version 1) is, on the request row of an exchange whose routes read
the clock (``now()``, ``today()``), the instants they read, in order: a JSON list of ISO 8601 texts
(``engine.replay.clock``).  A replay gives them back in that order, then the exchange's ``recorded_at``
(the time it was received), so a time stamp the route computes is the recorded one.  NULL on every other
row; a capture written before it replays with ``recorded_at`` alone.

``status`` (also added within format version 1) is, on the request row of an exchange an ``http listen``
channel answered, the HTTP status it answered with (200, 422, ...): a replay compares the candidate's with
it (reply field ``(status)``).  NULL on every other row; a capture written before it compares bodies only.

``http`` (also added within format version 1) is, on the request row of an exchange an ``http listen``
channel received, its request line and headers (``method``, ``path``, ``params``, ``query``, ``headers``: a
JSON object, ``engine.replay.httpline``; Authorization, Cookie and the channel's ``secret_headers`` written
``***`` whatever the masking), given back to the route as ``http.*`` on replay.  NULL on every other row; a
capture written before it replays with ``http.*`` null, and the report says so.

``dead_letters`` (also added within format version 1) is, on every request row, the dead letters its
exchange wrote (a JSON list of ``{"route", "kind", "code", "reason"}``, ``[]`` for none,
``engine.replay.deadrow``); a replay compares the candidate's with them (``dead letter CHANNEL``).  A capture
written before it does not compare dead letters.

``role`` is ``inbound`` (a channel bsp listens on) or ``outbound`` (a channel bsp
calls); ``direction`` is ``in`` (bytes bsp received) or ``out`` (bytes bsp
sent).  ``exchange`` ties an inbound request, its reply and every outbound call
it caused; ``call_seq`` numbers those calls.  ``correlation_key`` is the deal
reference.  ``raw`` is the frame's payload (framing removed), masked when the
capture was recorded with masking; NULL when a frame could not be masked safely.

The writer owns its DuckDB connection on one thread and inserts Arrow batches;
taps hand it rows without blocking the event loop.  The queue is bounded:
frames that do not fit are counted in ``dropped`` (and reported), never waited for.
"""
from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import duckdb
import pyarrow as pa

from engine import filemodes
from engine.duckdb_open import open_problem
from engine.replay.dealrow import load as load_deal
from engine.replay.deadrow import load as load_dead
from engine.replay.httpline import load as load_http
from engine.replay.origin import load as load_origin, load_names
from engine.replay.peer import load as load_peer

FORMAT_VERSION = "1"

COLUMNS = (
    ("seq", pa.int64(), "BIGINT"),
    ("recorded_at", pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ"),
    ("t_ms", pa.float64(), "DOUBLE"),
    ("channel", pa.string(), "VARCHAR"),
    ("role", pa.string(), "VARCHAR"),
    ("direction", pa.string(), "VARCHAR"),
    ("conn", pa.string(), "VARCHAR"),
    ("exchange", pa.int64(), "BIGINT"),
    ("call_seq", pa.int32(), "INTEGER"),
    ("raw", pa.binary(), "BLOB"),
    ("correlation_key", pa.string(), "VARCHAR"),
    ("deal_id", pa.string(), "VARCHAR"),
    ("deal_status", pa.string(), "VARCHAR"),
    ("error", pa.string(), "VARCHAR"),
    ("masked", pa.string(), "VARCHAR"),
    ("config_version", pa.string(), "VARCHAR"),
    ("origin", pa.string(), "VARCHAR"),
    ("names", pa.string(), "VARCHAR"),
    ("peer", pa.string(), "VARCHAR"),
    ("deal", pa.string(), "VARCHAR"),
    ("clock", pa.string(), "VARCHAR"),
    ("status", pa.int32(), "INTEGER"),
    ("http", pa.string(), "VARCHAR"),
    ("dead_letters", pa.string(), "VARCHAR"),
)
NAMES = tuple(c[0] for c in COLUMNS)
_SCHEMA = pa.schema([(n, t) for n, t, _ in COLUMNS])

DDL = (
    "CREATE TABLE IF NOT EXISTS capture_info (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS capture_sources (path VARCHAR, text VARCHAR, config_version VARCHAR)",
    "CREATE TABLE IF NOT EXISTS frames (" + ", ".join(f"{n} {sql}" for n, _, sql in COLUMNS) + ")",
)


class CaptureError(ValueError):
    """A capture file that cannot be read or written; the message names the file."""


class CaptureWriter:
    """``add(row)`` from any task; a thread writes batches.  ``close()`` flushes and joins."""

    def __init__(self, path: str | Path, *, program: Any = None, masked: bool = False,
                 channels: Iterable[str] = (), max_queue: int = 200_000, batch: int = 2000,
                 clear: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            raise CaptureError(f"{self.path}: a capture file is already there; choose a new name "
                               f"(captures are never appended to)")
        self.rows = 0
        self.dropped = 0
        self._seq = 0
        self._batch = batch
        self._q: queue.Queue[Any] = queue.Queue(max_queue)
        # deal data: the file and its WAL (made again after each checkpoint) owner-only, whatever the umask
        filemodes.hold()
        try:
            self._con = duckdb.connect(str(self.path))
            for stmt in DDL:
                self._con.execute(stmt)
        except BaseException:
            if hasattr(self, "_con"):
                self._con.close()
            filemodes.release()
            raise
        info = {
            "format_version": FORMAT_VERSION,
            "started_at": datetime.now(timezone.utc).isoformat(),
            "config_version": getattr(program, "version", None) or "",
            "masked": "true" if masked else "false",
            "channels": json.dumps(sorted(channels)),
            **({} if masked else (clear or {})),    # recorded in clear by choice: why, who, where
        }
        self._con.execute("INSERT INTO capture_info SELECT unnest($1), unnest($2)",
                          [list(info), list(info.values())])
        self.config_version = info["config_version"]
        self._versions: set[str] = set()
        self.channels = set(channels)
        self._insert_sources(self.config_version, getattr(program, "sources", None) or {})
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write_loop, name="bsp-capture", daemon=True)
        self._thread.start()
        self._closed = False

    def _insert_sources(self, version: str, sources: dict[str, str]) -> None:
        self._versions.add(version)
        if sources:
            self._con.execute("INSERT INTO capture_sources SELECT unnest($1), unnest($2), $3",
                              [list(sources), list(sources.values()), version])

    def add_version(self, version: str, sources: dict[str, str]) -> None:
        """The sources of a configuration version a reload brought in (once per version)."""
        if version in self._versions:
            return
        try:
            self._q.put_nowait(("sources", version, dict(sources)))      # written in order with the frames
            self._versions.add(version)
        except queue.Full:              # the recorder is behind: tried again with the next exchange
            pass

    def add_channel(self, name: str) -> None:
        """A channel recorded from now on (one a reload added); ``capture_info.channels`` says so at close."""
        self.channels.add(name)

    def add(self, row: dict[str, Any]) -> None:
        self._seq += 1
        row["seq"] = self._seq
        try:
            self._q.put_nowait(row)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._q.put(None)
        self._thread.join()
        try:
            self._con.execute("INSERT OR REPLACE INTO capture_info VALUES ('dropped', ?)", [str(self.dropped)])
            self._con.execute("INSERT OR REPLACE INTO capture_info VALUES ('channels', ?)",
                              [json.dumps(sorted(self.channels))])
            self._con.execute("CHECKPOINT")
        finally:
            self._con.close()
            filemodes.release()
        if self._error is not None:
            raise CaptureError(f"{self.path}: writing frames failed: {self._error}") from self._error

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _write_loop(self) -> None:
        done = False
        while not done:
            first = self._q.get()
            if first is None:
                break
            rows = [first]
            while len(rows) < self._batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    done = True
                    break
                rows.append(nxt)
            extra = [r for r in rows if isinstance(r, tuple)]
            rows = [r for r in rows if not isinstance(r, tuple)]
            for _, version, sources in extra:
                if self._error is None:
                    try:
                        self._insert_sources(version, sources)
                    except Exception as exc:   # noqa: BLE001 - reported by close()
                        self._error = exc
            if not rows:
                continue
            if self._error is None:
                try:
                    batch = pa.Table.from_pylist([{n: r.get(n) for n in NAMES} for r in rows], schema=_SCHEMA)
                    self._con.from_arrow(batch).insert_into("frames")
                    self.rows += len(rows)
                except Exception as exc:   # noqa: BLE001 - reported by close()
                    self._error = exc


@dataclass
class Frame:
    seq: int
    recorded_at: Any
    t_ms: float
    channel: str
    role: str
    direction: str
    conn: str | None
    exchange: int | None
    call_seq: int | None
    raw: bytes | None
    correlation_key: str | None
    deal_id: str | None
    deal_status: str | None
    error: str | None
    masked: str | None
    config_version: str | None = None
    origin: str | None = None           # JSON: a file watch record's place (engine.replay.origin)
    names: str | None = None            # JSON: a file write call's name values (engine.replay.origin)
    peer: str | None = None             # JSON: who sent an inbound request, peer.* (engine.replay.peer)
    deal: str | None = None             # JSON: the exchange's deal fields (engine.replay.dealrow)
    clock: str | None = None            # JSON: the instants now()/today() read in the exchange (engine.replay.clock)
    status: int | None = None           # the HTTP status an http listen channel answered the request with
    http: str | None = None             # JSON: an http listen request's line and headers (engine.replay.httpline)
    dead_letters: str | None = None     # JSON: the dead letters the exchange wrote (engine.replay.deadrow)


@dataclass
class RecordedCall:
    channel: str
    seq: int
    request: Frame
    reply: Frame | None


@dataclass
class RecordedExchange:
    exchange: int
    request: Frame
    reply: Frame | None
    calls: list[RecordedCall]

    @property
    def key(self) -> str | None:
        return self.request.correlation_key

    @property
    def unreplayable(self) -> str | None:
        """Why this exchange cannot be replayed, or None: its request, or a counterpart's answer the
        replay would have to give, was recorded without its bytes (``raw`` NULL: ``--mask`` could not
        make it safe; ``masked`` says why).  A framing error's request has no bytes by design: it is
        replayed as that framing error."""
        req = self.request
        if req.raw is None and not (req.error or "").startswith("framing: "):
            return f"the request on {req.channel} was recorded without its bytes ({_why(req)})"
        for c in self.calls:
            rep = c.reply
            if rep is not None and rep.raw is None and not rep.error:
                return (f"the answer of {c.channel} to call #{c.seq} was recorded without its bytes "
                        f"({_why(rep)})")
        return None


def _why(frame: Frame) -> str:
    return frame.masked or "no reason recorded"


def tables_columns(con: Any, table: str) -> set[str]:
    return {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                      [table]).fetchall()}


class Capture:
    """A capture file read back: exchanges in recording order, with their calls."""

    def __init__(self, path: str | Path, *, lazy: bool = False) -> None:
        """``lazy``: read the header and check the frames, but keep no frame in memory: ``chunks()`` reads the
        exchanges from the file a chunk at a time (``bsp replay``: memory bounded by the work in flight, not the
        capture's size); ``exchanges`` and ``frames`` stay empty."""
        self.path = Path(path)
        self.lazy = lazy
        if self.path.is_dir():
            raise CaptureError(f"{self.path}: is a directory, not a capture file; give the file "
                               f"`bsp run --record FILE` wrote (e.g. {self.path / 'capture.duckdb'})")
        if not self.path.is_file():
            raise CaptureError(f"{self.path}: no such capture file (record one with `bsp run --record FILE`)")
        try:
            con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            problem = open_problem(exc)
            if problem == "locked":
                raise CaptureError(f"{self.path}: locked by a running engine (it is still being recorded); stop "
                                   f"that `bsp run --record` (the capture is complete when it stops), or replay a "
                                   f"copy made after it stopped") from None
            if problem == "damaged":
                raise CaptureError(f"{self.path}: a damaged or truncated capture (DuckDB cannot read it: {exc}); "
                                   f"copy it again from where `bsp run --record` wrote it (a copy made while it "
                                   f"was still being recorded, or cut short, is not whole)") from None
            raise CaptureError(f"{self.path}: not a DuckDB file, so not a capture (a capture is made by "
                               f"`bsp run --record FILE`): {exc}") from None
        try:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            missing = [t for t in ("capture_info", "frames") if t not in tables]
            if not tables:
                raise CaptureError(f"{self.path}: a DuckDB file with no table at all, so no capture in it: a "
                                   f"`bsp run --record` that was killed (not stopped with Ctrl-C or SIGTERM) "
                                   f"leaves what it recorded in the write-ahead file {self.path.name}.wal beside "
                                   f"it; copy that file too (both, from where the engine wrote them), or replay "
                                   f"the capture where it was written")
            if missing:
                looks = " (it has a deals table: it looks like a ledger)" if "deals" in tables else ""
                raise CaptureError(f"{self.path}: a DuckDB file but not a capture (no {' and no '.join(missing)} "
                                   f"table){looks}; a capture is made by `bsp run --record FILE`")
            try:
                self.info = dict(con.execute("SELECT key, value FROM capture_info").fetchall())
                self._check_version()           # before reading frames: another version may lay them out otherwise
                self.sources = (dict(con.execute("SELECT path, text FROM capture_sources").fetchall())
                                if "capture_sources" in tables else {})
                have = tables_columns(con, "frames")
                if "config_version" in tables_columns(con, "capture_sources"):
                    first = self.info.get("config_version", "")
                    self.sources = dict(con.execute("SELECT path, text FROM capture_sources WHERE config_version "
                                                    "IS NOT DISTINCT FROM ?", [first]).fetchall())
                cols = [n if n in have else "NULL" for n in NAMES]      # a capture of before a column
                self._select = f"SELECT {', '.join(cols)} FROM frames"
                if lazy:
                    self._check_columns(con, have)
                    frames = []
                else:
                    cur = con.execute(f"{self._select} ORDER BY seq")
                    frames = [Frame(*row) for row in cur.fetchall()]
            except duckdb.Error as exc:
                raise CaptureError(f"{self.path}: not a bsp capture of format version {FORMAT_VERSION} "
                                   f"(tables capture_info, frames): {exc}") from None
        finally:
            con.close()
        for f in frames:
            self._prepare(f)
        self.frames = frames
        self.exchanges: list[RecordedExchange] = []
        self.loose: list[RecordedCall] = []          # outbound calls made outside any exchange
        if lazy:
            self._read_loose()
            return
        self._assemble(frames)

    _CHECKED = (("names", load_names), ("peer", load_peer), ("origin", load_origin), ("deal", load_deal),
                ("http", load_http), ("dead_letters", load_dead))

    def _prepare(self, f: Frame, check: bool = True) -> None:
        if f.raw is not None:
            f.raw = bytes(f.raw)
        if f.config_version is None:
            f.config_version = self.info.get("config_version") or None
        if not check:
            return
        for column, load in self._CHECKED:
            value = getattr(f, column)
            if value is None:
                continue
            try:
                load(value)
            except ValueError as exc:
                raise CaptureError(f"{self.path}: frame {f.seq} (channel {f.channel}), column frames.{column}: "
                                   f"{exc}; the capture was changed or damaged after `bsp run --record` wrote "
                                   f"it: replay a copy kept as it was written, or record the traffic again "
                                   f"(`bsp run --record`)") from None

    def _check_columns(self, con: Any, have: set[str]) -> None:
        """The lazy reader's check of the JSON columns, before anything is replayed (as the eager reader does
        it), a batch of rows at a time."""
        cols = [c for c, _ in self._CHECKED if c in have]
        if not cols:
            return
        cur = con.execute(f"SELECT seq, channel, {', '.join(cols)} FROM frames WHERE "
                          + " OR ".join(f"{c} IS NOT NULL" for c in cols) + " ORDER BY seq")
        loads = dict(self._CHECKED)
        while rows := cur.fetchmany(2000):
            for row in rows:
                for column, value in zip(cols, row[2:]):
                    if value is None:
                        continue
                    try:
                        loads[column](value)
                    except ValueError as exc:
                        raise CaptureError(f"{self.path}: frame {row[0]} (channel {row[1]}), column "
                                           f"frames.{column}: {exc}; the capture was changed or damaged after "
                                           f"`bsp run --record` wrote it: replay a copy kept as it was written, or "
                                           f"record the traffic again (`bsp run --record`)") from None

    # ------------------------------------------------------------ lazy reading (bsp replay)
    _REQUEST = "role = 'inbound' AND direction = 'in'"

    def _has(self, column: str) -> bool:
        return f" {column}," in self._select or f" {column} FROM" in self._select

    def _query(self, sql: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def _read_loose(self) -> None:
        """The outbound calls made outside any exchange (a store-and-forward repeat): few, kept in memory."""
        rows = self._query(f"{self._select} WHERE role = 'outbound' AND (exchange IS NULL OR exchange NOT IN "
                           f"(SELECT exchange FROM frames WHERE {self._REQUEST} AND exchange IS NOT NULL)) "
                           f"ORDER BY seq")
        frames = [Frame(*r) for r in rows]
        for f in frames:
            self._prepare(f, check=False)
        self._assemble(frames)

    def count(self) -> int:
        """The recorded exchanges (inbound requests)."""
        if not self.lazy:
            return len(self.exchanges)
        return self._query(f"SELECT count(*) FROM frames WHERE {self._REQUEST}")[0][0]

    def unreplayable_count(self) -> int:
        """How many exchanges ``RecordedExchange.unreplayable`` says cannot be fed."""
        if not self.lazy:
            return sum(1 for ex in self.exchanges if ex.unreplayable is not None)
        return self._query(
            "SELECT count(*) FROM frames r WHERE r.role = 'inbound' AND r.direction = 'in' AND "
            "((r.raw IS NULL AND NOT coalesce(r.error, '') LIKE 'framing: %') OR (r.exchange IS NOT NULL AND "
            "EXISTS (SELECT 1 FROM frames c WHERE c.exchange = r.exchange AND c.role = 'outbound' AND "
            "c.direction = 'in' AND c.raw IS NULL AND coalesce(c.error, '') = '')))")[0][0]

    def without_http(self, channels: set[str]) -> int:
        """The recorded requests on ``channels`` (http listen channels) stored without their request line and
        headers (``frames.http`` NULL: a capture of before the column): their route reads ``http.*`` null."""
        if not channels:
            return 0
        if not self.lazy:
            return sum(1 for ex in self.exchanges if ex.request.channel in channels and ex.request.http is None
                       and not (ex.request.error or "").startswith("framing: "))
        if not self._has("http"):
            return self._query(f"SELECT count(*) FROM frames WHERE {self._REQUEST} AND channel IN "
                               f"(SELECT unnest(?::VARCHAR[]))", [sorted(channels)])[0][0]
        return self._query(f"SELECT count(*) FROM frames WHERE {self._REQUEST} AND http IS NULL AND channel IN "
                           f"(SELECT unnest(?::VARCHAR[])) AND NOT coalesce(error, '') LIKE 'framing: %'",
                           [sorted(channels)])[0][0]

    def request_channels(self) -> set[str]:
        if not self.lazy:
            return {ex.request.channel for ex in self.exchanges}
        return {r[0] for r in self._query(f"SELECT DISTINCT channel FROM frames WHERE {self._REQUEST}")}

    def call_channels(self) -> set[str]:
        """The channels the recording called (inside an exchange or not)."""
        if not self.lazy:
            return {c.channel for ex in self.exchanges for c in ex.calls} | {c.channel for c in self.loose}
        return {r[0] for r in self._query("SELECT DISTINCT channel FROM frames WHERE role = 'outbound' AND "
                                          "direction = 'out'")}

    def first_request_channel(self) -> str:
        if not self.lazy:
            return self.exchanges[0].request.channel
        return self._query(f"SELECT channel FROM frames WHERE {self._REQUEST} ORDER BY t_ms, seq LIMIT 1")[0][0]

    def chunks(self, size: int = 500, start: int = 0, count: int | None = None) -> Iterator[list[RecordedExchange]]:
        """The exchanges in replay order (arrival: ``(request t_ms, seq)``), ``size`` at a time, from the
        ``start``-th (0 the first), at most ``count`` of them.  A lazy capture reads each chunk from the file
        (its requests, then the frames of those exchanges), so only one chunk is held at a time."""
        end = None if count is None else start + count
        if not self.lazy:
            sel = self.exchanges[start:end]
            for i in range(0, len(sel), size):
                yield sel[i:i + size]
            return
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            pos = start
            while end is None or pos < end:
                n = size if end is None else min(size, end - pos)
                # by position: a keyset on (t_ms, seq) would do as well, but OFFSET over the requests alone is
                # cheap next to replaying them, and exact whatever the times
                reqs = con.execute(f"{self._select} WHERE {self._REQUEST} ORDER BY t_ms, seq LIMIT ? OFFSET ?",
                                   [n, pos]).fetchall()
                if not reqs:
                    return
                pos += len(reqs)
                requests = [Frame(*r) for r in reqs]
                ids = [f.exchange for f in requests if f.exchange is not None]
                rest = [Frame(*r) for r in con.execute(
                    f"{self._select} WHERE exchange IN (SELECT unnest(?::BIGINT[])) AND NOT ({self._REQUEST}) "
                    f"ORDER BY seq", [ids]).fetchall()] if ids else []
                frames = sorted(requests + rest, key=lambda f: f.seq)
                for f in frames:
                    self._prepare(f, check=False)
                yield self._assemble(frames, keep=False)
                if len(reqs) < n:
                    return
        finally:
            con.close()

    def load(self, exchanges: set[int]) -> list[RecordedExchange]:
        """The recorded exchanges of these ids, in replay order (a few: ``session.recorded_rejects``)."""
        if not self.lazy:
            return [ex for ex in self.exchanges if ex.exchange in exchanges]
        out: list[RecordedExchange] = []
        for chunk in self.chunks(2000):
            out.extend(ex for ex in chunk if ex.exchange in exchanges)
        return out

    def request_keys(self, exchanges: set[int]) -> dict[int, str | None]:
        """Of these exchanges, those whose request was masked, with their correlation key."""
        if not self.lazy:
            return {ex.exchange: ex.key for ex in self.exchanges if ex.request.masked and ex.exchange in exchanges}
        if not exchanges or not self._has("masked"):
            return {}
        return dict(self._query(f"SELECT exchange, correlation_key FROM frames WHERE {self._REQUEST} AND masked IS "
                                f"NOT NULL AND exchange IN (SELECT unnest(?::BIGINT[]))", [sorted(exchanges)]))

    def _assemble(self, frames: list[Frame], keep: bool = True) -> list[RecordedExchange]:
        """Exchanges (and loose calls) from frames in ``seq`` order, sorted in arrival order; ``keep``: into
        ``self.exchanges`` / ``self.loose`` (else only returned, the lazy reader's chunk)."""
        exchanges: list[RecordedExchange] = []
        loose = self.loose if keep else []
        by_id: dict[int, RecordedExchange] = {}
        pending_calls: dict[tuple[int | None, str, int | None], RecordedCall] = {}
        for f in frames:
            if f.role == "inbound" and f.direction == "in":
                ex = RecordedExchange(f.exchange if f.exchange is not None else -f.seq, f, None, [])
                by_id[ex.exchange] = ex
                exchanges.append(ex)
            elif f.role == "inbound":
                ex = by_id.get(f.exchange) if f.exchange is not None else None
                if ex is not None:
                    ex.reply = f
            elif f.direction == "out":
                call = RecordedCall(f.channel, f.call_seq or 0, f, None)
                pending_calls[(f.exchange, f.channel, f.call_seq)] = call
                ex = by_id.get(f.exchange) if f.exchange is not None else None
                (ex.calls if ex is not None else loose).append(call)
            else:
                call = pending_calls.pop((f.exchange, f.channel, f.call_seq), None)
                if call is not None:
                    call.reply = f

        # frames are written when their exchange is answered: replay in arrival order
        exchanges.sort(key=lambda e: (e.request.t_ms, e.request.seq))
        if keep:
            self.exchanges = exchanges
        return exchanges

    def _check_version(self) -> None:
        version = self.info.get("format_version")
        if version == FORMAT_VERSION:
            return
        if version is None:
            raise CaptureError(f"{self.path}: capture_info has no format_version, so this is not a capture "
                               f"`bsp run --record` wrote (it writes format version {FORMAT_VERSION}); record one "
                               f"with `bsp run --record FILE`")
        newer = str(version).isdigit() and int(version) > int(FORMAT_VERSION)
        raise CaptureError(f"{self.path}: capture format version {version!r}, and this bsp reads version "
                           f"{FORMAT_VERSION}: " + ("it was recorded by a newer bsp; replay it with that bsp or "
                                                    "a newer one" if newer else
                                                    "record the traffic again with this bsp (`bsp run --record`)"))

    def require_exchanges(self) -> None:
        """A capture with no recorded request has nothing to replay or to write tests from."""
        if self.count():
            return
        chans = json.loads(self.info.get("channels") or "[]")
        recorded = f" on channel(s) {', '.join(chans)}" if chans else ""
        frames = self._query("SELECT count(*) FROM frames")[0][0] if self.lazy else len(self.frames)
        raise CaptureError(f"{self.path}: the capture holds no exchange: no inbound request was recorded"
                           f"{recorded} ({frames} frame(s) in all); record again while traffic "
                           f"comes in (`bsp run ... --record FILE`)")

    def completeness(self) -> list[str]:
        """What the capture may lack, told in the replay report: a recording that was not closed (the
        engine was killed: ``capture_info.dropped`` is written when it stops) misses the exchanges in
        flight then; frames the recorder dropped (it fell behind) leave replies or calls missing."""
        notes: list[str] = []
        dropped = self.info.get("dropped")
        if dropped is None:
            notes.append("the capture was not closed: the recording engine was killed or crashed (a "
                         "`bsp run --record` stopped with Ctrl-C or SIGTERM closes it), so the exchanges in flight "
                         "then, and the frames not yet written, are not in it")
        elif dropped.isdigit() and int(dropped) > 0:
            notes.append(f"{int(dropped)} frame(s) were dropped while recording (the recorder fell behind), so "
                         f"some recorded exchanges lack their reply or a call: such an exchange shows `(reply)` or "
                         f"`(call)` recorded \"<none>\" as a difference")
        return notes

    def versions(self) -> list[str]:
        """The configuration versions that served the recorded exchanges, in order of first use."""
        if self.lazy:
            default = self.info.get("config_version") or None
            if not self._has("config_version"):
                return [default] if default and self.count() else []
            rows = self._query(f"SELECT coalesce(config_version, ?) AS v, min(seq) AS s FROM frames WHERE "
                               f"{self._REQUEST} GROUP BY v ORDER BY s", [default])
            return [v for v, _ in rows if v]
        return list(dict.fromkeys(ex.request.config_version for ex in sorted(self.exchanges, key=lambda e: e.request.seq)
                                  if ex.request.config_version))

    @property
    def masked(self) -> bool:
        return self.info.get("masked") == "true"

    def clear_note(self) -> str | None:
        """What the header says of a capture recorded in clear: ``recorded in clear (--no-mask) by U on H:
        'reason'``; a capture of before the header kept the reason (or written by a library caller) says
        ``recorded in clear (no reason recorded)``; None when it is masked."""
        if self.masked:
            return None
        reason = self.info.get("clear_reason")
        if reason is None:
            return "recorded in clear (no reason recorded)"
        who = self.info.get("clear_by") or "?"
        host = self.info.get("clear_host") or "?"
        return f"recorded in clear (--no-mask) by {who} on {host}: {reason!r}"

    def channels(self) -> list[str]:
        if self.lazy:
            return sorted(r[0] for r in self._query("SELECT DISTINCT channel FROM frames"))
        return sorted({f.channel for f in self.frames})
