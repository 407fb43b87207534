"""The transaction log: what a crash must not forget, written before any side effect.

One append-only file next to the ledger (``<ledger>.txn``).  Each write is one
record holding a batch of entries (one ``fdatasync`` per batch: group commit)::

    length  4 bytes big-endian   payload size
    crc     4 bytes big-endian   zlib.crc32 of the payload
    payload                      orjson list of entries

Entries (``t``):
    begin   a deal accepted by a transactional route, before its first call:
            id, route, channel, key, at, raw (the request as received)
    step    a participant's progress: id, step, phase (sending | done | failed |
            compensating | compensated), reply (done: the decoded reply, when JSON-able),
            values (sending, ISO 8583 calls: the request values, which a reversal copies)
    end     the deal's final answer, written before its ledger row: id, key, status,
            code, reason, reply (the reply bytes), deal (type/ref/amount/currency/party)
    recorded  ids / keys whose ledger rows are committed (written lazily, with the next record)

A record cut short or failing its CRC ends the log (a torn write at the
moment of a crash, never acknowledged) and is cut away on open.  On open the
log is compacted: finished deals keep only their ``end`` (the idempotency
key store), unfinished ones everything.  Raw and reply bytes are encrypted
with the ledger's field keyring when there is one (they may hold a PAN).
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

HEADER = struct.Struct(">II")
MAGIC = b"BSPTXN01"


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


def _default(value: Any) -> Any:
    from decimal import Decimal
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    raise TypeError(f"cannot log a {type(value).__name__}")


def read(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every entry of the log and the offset where its good part ends."""
    data = path.read_bytes()
    if not data:
        return [], 0
    if not data.startswith(MAGIC):
        raise TxnLogError(f"{path}: byte 0: not a bsp transaction log (expected {MAGIC!r}); "
                          f"move it aside if it is not one")
    entries: list[dict[str, Any]] = []
    pos = len(MAGIC)
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        start = pos + HEADER.size
        payload = data[start:start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break                                  # torn tail: never acknowledged
        entries.extend(orjson.loads(payload))
        pos = start + length
    return entries, pos


class TxnLog:
    """The open log.  ``append`` is blocking (call it on a worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: dict[str, Pending] = {}
        self.ends: dict[str, dict[str, Any]] = {}          # key -> end entry
        self.unrecorded: dict[str, dict[str, Any]] = {}    # id -> end entry whose ledger row may be missing
        self.writes = 0
        entries: list[dict[str, Any]] = []
        if path.exists():
            entries, _ = read(path)
        for e in entries:
            self._apply(e)
        self._compact()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def _apply(self, e: dict[str, Any]) -> None:
        t = e.get("t")
        if t == "begin":
            self.pending[e["id"]] = Pending(e)
        elif t == "step":
            p = self.pending.get(e["id"])
            if p is not None:
                p.phases[e["step"]] = e["phase"]
                if e.get("reply") is not None:
                    p.replies[e["step"]] = e["reply"]
                if e.get("values") is not None:
                    p.values[e["step"]] = e["values"]
        elif t == "end":
            self.pending.pop(e["id"], None)
            if not e.get("recorded"):
                self.unrecorded[e["id"]] = e
            if e.get("key") is not None:
                self.ends[e["key"]] = e
        elif t == "recorded":                    # the end's ledger row is committed
            for key in e.get("keys", ()):
                end = self.ends.get(key)
                if end is not None:
                    end["recorded"] = True
            for i in e.get("ids", ()):
                self.unrecorded.pop(i, None)

    def _compact(self) -> None:
        keep: list[dict[str, Any]] = list(self.ends.values())
        keep += [e for e in self.unrecorded.values() if e.get("key") is None]
        for p in self.pending.values():
            keep.append(p.begin)
            keep.extend({"t": "step", "id": p.id, "step": s, "phase": ph, "reply": p.replies.get(s),
                         "values": p.values.get(s)} for s, ph in p.phases.items())
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            if keep:
                f.write(_frame(keep))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Write ``entries`` as one record and fdatasync it (blocking)."""
        if not entries:
            return
        data = _frame(entries)
        try:
            os.write(self._fd, data)
            os.fdatasync(self._fd)
        except OSError as exc:
            raise TxnLogError(f"{self.path}: cannot append {len(data)} bytes: {exc}") from exc
        self.writes += 1
        for e in entries:
            self._apply(e)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _frame(entries: list[dict[str, Any]]) -> bytes:
    payload = orjson.dumps(entries, default=_default, option=orjson.OPT_NON_STR_KEYS)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
