"""Splitting a batch file into its records, each with its byte offset.

Pure (no I/O): ``split_records(data, kind)`` -> ``[(byte offset, record), ...]``;
a file that cannot be split raises ``FormatError`` naming the record number
(1-based) and the byte offset where splitting stopped.  ``file.watch`` uses it;
so can anything else that takes whole files.

Kinds:

``lines``   one record per line (LF or CR LF); blank lines are skipped.
``csv``     one record per CSV row: like ``lines``, but a quoted field may hold
            line breaks (RFC 4180), so a row ends at the first line break outside
            quotes.  A quote opened and never closed is an error at its row.
``fixed``   ``record_size`` bytes each; a short tail is an error.
``rdw``     IBM variable records: a 4-byte record descriptor word (length in
            bytes 0-1, big-endian, counting the RDW) before each record.
``rdw_le``  the same with the word byte-reversed (length in bytes 2-3, low byte
            first), as some transfer tools write it.
``rje``     a SWIFT RJE file: FIN messages separated by ``$`` (``$`` is outside
            the FIN character set, so it never occurs inside a message).
``whole``   the file is one record.
"""
from __future__ import annotations

from formats.copybook.records import split_rdw
from formats.errors import FormatError

__all__ = ["RECORD_KINDS", "split_records"]

RECORD_KINDS = ("lines", "csv", "fixed", "rdw", "rdw_le", "rje", "whole")


def split_records(data: bytes, kind: str, record_size: int | None = None,
                  quote: bytes | str = b'"') -> list[tuple[int, bytes]]:
    """``data`` -> [(byte offset, record)]; ``FormatError`` (record, offset, hint) when it cannot be split."""
    if kind == "whole":
        return [(0, data)] if data else []
    if kind == "lines":
        return _lines(data)
    if kind == "csv":
        q = quote.encode("ascii") if isinstance(quote, str) else quote
        return _csv_rows(data, q) if q else _lines(data)
    if kind == "fixed":
        return _fixed(data, record_size)
    if kind in ("rdw", "rdw_le"):
        return _rdw(data, little=kind == "rdw_le")
    if kind == "rje":
        return _rje(data)
    raise ValueError(f"unknown record kind {kind!r}; expected one of {', '.join(RECORD_KINDS)}")


def _lines(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    for line in data.splitlines(keepends=True):
        body = line.rstrip(b"\r\n")
        if body.strip():
            out.append((pos, body))
        pos += len(line)
    return out


def _csv_rows(data: bytes, quote: bytes) -> list[tuple[int, bytes]]:
    """Rows end at a line feed with an even number of quote characters before it in the row
    (an escaped quote is doubled, so it keeps the count even)."""
    out: list[tuple[int, bytes]] = []
    start = pos = 0
    quotes = 0
    end = len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        stop = end if nl < 0 else nl + 1
        quotes += data.count(quote, pos, stop)
        pos = stop
        if quotes % 2 == 0:
            body = data[start:pos].rstrip(b"\r\n")
            if body.strip():
                out.append((start, body))
            start, quotes = pos, 0
    if start < end:
        raise FormatError(f"a quoted field opened in this row is not closed before the end of the file "
                          f"({end - start} byte(s) from the row's start)", offset=start, record=len(out) + 1,
                          hint="check the channel's quote option against the file, or the file is truncated")
    return out


def _fixed(data: bytes, record_size: int | None) -> list[tuple[int, bytes]]:
    if not isinstance(record_size, int) or record_size <= 0:
        raise ValueError("record kind fixed needs a positive record_size")
    if len(data) % record_size:
        n = len(data) // record_size
        raise FormatError(f"file of {len(data)} bytes is not a whole number of {record_size}-byte records "
                          f"({len(data) % record_size} byte(s) left over)",
                          offset=n * record_size, record=n + 1,
                          hint="check record_size against the record layout, or the file is truncated")
    return [(i, data[i:i + record_size]) for i in range(0, len(data), record_size)]


def _rdw(data: bytes, little: bool) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    try:
        for offset, record in split_rdw(data, little=little, max_record=0xFFFF):
            out.append((offset - 4, record))          # the record's offset is its RDW's
    except FormatError as exc:
        other = "rdw" if little else "rdw_le"
        raise FormatError(exc.message, offset=exc.offset, record=len(out) + 1,
                          hint=f"the file is truncated, or its records are not RDW-prefixed that way "
                               f"(download in binary with RDW; or try record = \"{other}\")") from None
    return out


def _rje(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    for part in data.split(b"$"):
        stripped = part.lstrip(b"\r\n")
        body = stripped.rstrip(b"\r\n")
        if body.strip():
            out.append((pos + len(part) - len(stripped), body))
        pos += len(part) + 1
    return out
