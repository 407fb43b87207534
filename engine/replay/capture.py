"""The capture file: every recorded frame, one row each, in a DuckDB file.

Schema (``FORMAT_VERSION`` 1; docs/testing.md shows queries):

    capture_info(key, value)        format_version, started_at, config_version, masked, channels
                                    (+ clear_reason, clear_by, clear_host: recorded in clear by choice)
    capture_sources(path, text, config_version)   the route files of each configuration version that ran
    frames(seq, recorded_at, t_ms, channel, role, direction, conn, exchange, call_seq, raw,
           correlation_key, deal_id, deal_status, error, masked, config_version, origin, names, peer, deal,
           clock, status)

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
from typing import Any, Iterable

import duckdb
import pyarrow as pa

from engine import filemodes
from engine.duckdb_open import open_problem
from engine.replay.dealrow import load as load_deal
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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
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
                cur = con.execute(f"SELECT {', '.join(cols)} FROM frames ORDER BY seq")
                frames = [Frame(*row) for row in cur.fetchall()]
            except duckdb.Error as exc:
                raise CaptureError(f"{self.path}: not a bsp capture of format version {FORMAT_VERSION} "
                                   f"(tables capture_info, frames): {exc}") from None
        finally:
            con.close()
        for f in frames:
            if f.raw is not None:
                f.raw = bytes(f.raw)
            if f.config_version is None:
                f.config_version = self.info.get("config_version") or None
            for column, load in (("names", load_names), ("peer", load_peer), ("origin", load_origin),
                                 ("deal", load_deal)):
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
        self.frames = frames
        self.exchanges: list[RecordedExchange] = []
        self.loose: list[RecordedCall] = []          # outbound calls made outside any exchange
        by_id: dict[int, RecordedExchange] = {}
        pending_calls: dict[tuple[int | None, str, int | None], RecordedCall] = {}
        for f in frames:
            if f.role == "inbound" and f.direction == "in":
                ex = RecordedExchange(f.exchange if f.exchange is not None else -f.seq, f, None, [])
                by_id[ex.exchange] = ex
                self.exchanges.append(ex)
            elif f.role == "inbound":
                ex = by_id.get(f.exchange) if f.exchange is not None else None
                if ex is not None:
                    ex.reply = f
            elif f.direction == "out":
                call = RecordedCall(f.channel, f.call_seq or 0, f, None)
                pending_calls[(f.exchange, f.channel, f.call_seq)] = call
                ex = by_id.get(f.exchange) if f.exchange is not None else None
                (ex.calls if ex is not None else self.loose).append(call)
            else:
                call = pending_calls.pop((f.exchange, f.channel, f.call_seq), None)
                if call is not None:
                    call.reply = f

        # frames are written when their exchange is answered: replay in arrival order
        self.exchanges.sort(key=lambda e: (e.request.t_ms, e.request.seq))

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
        if self.exchanges:
            return
        chans = json.loads(self.info.get("channels") or "[]")
        recorded = f" on channel(s) {', '.join(chans)}" if chans else ""
        raise CaptureError(f"{self.path}: the capture holds no exchange: no inbound request was recorded"
                           f"{recorded} ({len(self.frames)} frame(s) in all); record again while traffic "
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
        return sorted({f.channel for f in self.frames})
