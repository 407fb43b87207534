"""Where a record of a batch file came from: what the route sees as ``file.*``, and a decoder's error
placed in the file.

``file watch`` hands the dispatcher a batch of records; each record's ``RecordOrigin`` goes with it
in ``conn.extra["origins"]`` (one per frame, in frame order).  The dispatcher adds ``origin.scope``
to the record's scope (``file.name``, ``file.line``, ``file.record``, ``file.offset``,
``file.records``, ``file.header``) and passes a decoder's ``FormatError`` through ``origin.relocate``, so a byte
offset counts from the file's start, not from the frame (which, with ``header_row``, is the header
row, a line break and the record), and the error names the file's line.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

# the names a route on a file watch channel reads under ``file`` (the checker knows them)
# (and those of the end-of-file message of a channel with end_message = true: engine.channels.file_end)
FILE_FIELDS = ("name", "line", "record", "offset", "records", "header")


def line_breaks(data: bytes) -> int:
    """Line breaks in ``data``, as ``bytes.splitlines`` counts them: ``\\n``, ``\\r\\n`` and a lone ``\\r``."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def place_text(origin: Any) -> str | None:
    """Where a record came from, for a deal's reason and its dead letter: ``file PAY.csv record 7 (line 7,
    byte offset 152)``, with the fields the origin has (a route test's ``file { ... }`` may give a few);
    None without a file name."""
    f = (getattr(origin, "scope", None) or {}).get("file") or {}
    if not f.get("name"):
        return None
    head = f"file {f['name']}" + (f" record {f['record']}" if f.get("record") is not None else "")
    more = [f"{k} {f[v]}" for k, v in (("line", "line"), ("byte offset", "offset")) if f.get(v) is not None]
    return head + (f" ({', '.join(more)})" if more else "")


@dataclass(frozen=True)
class RecordOrigin:
    name: str                    # the file's name
    record: int                  # the record's number in the file (1-based, headers counted)
    offset: int                  # the file byte offset of the record's first byte
    line: int | None             # the file line the record starts on (record = lines / csv), else None
    records: int                 # the file's records that are deals
    head: int = 0                # bytes before the record in the frame (the header row and its line break)
    head_offset: int = 0         # the file byte offset of the header row
    head_line: int | None = None  # the file line of the header row
    # the fields of the file's header record (``header = FORMAT``), or None: ``file.header.FIELD``
    header: Any = None

    @property
    def scope(self) -> dict[str, Any]:
        return {"file": {"name": self.name, "line": self.line, "record": self.record, "offset": self.offset,
                         "records": self.records, "header": self.header, "end": False}}

    def place(self, at: int, frame: bytes) -> tuple[int, int | None]:
        """(file byte offset, file line or None) of byte ``at`` of the record's frame."""
        if at < self.head:
            line = None if self.head_line is None else self.head_line + line_breaks(frame[:at])
            return self.head_offset + at, line
        k = at - self.head
        line = None if self.line is None else self.line + line_breaks(frame[self.head:at])
        return self.offset + k, line

    def relocate(self, exc: Any, frame: bytes) -> Any:
        """A copy of a decoder's ``FormatError`` whose offset is the file's (and which names the line);
        an error without an offset gets the record's line.  Anything else is returned as it is."""
        at = getattr(exc, "offset", None)
        if at is not None and not (isinstance(at, int) and 0 <= at <= len(frame)):
            return exc
        out = copy.copy(exc)
        if at is None:
            out.line = self.line
        else:
            out.offset, out.line = self.place(at, frame)
        return out
