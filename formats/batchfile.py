"""Splitting a batch file into its records, each with its byte offset.

Pure (no I/O): ``split_records(data, kind)`` -> ``[(byte offset, record), ...]``;
a file that cannot be split raises ``FormatError`` naming the record number
(1-based) and the byte offset where splitting stopped.  ``split_offsets`` is the
same as ``Records``: each record's place in ``data`` (24 bytes a record), each
record sliced from ``data`` when it is asked for, so a file of a million lines is
not held twice (a list of the records took ~160 bytes a record more than the
file itself).  ``file.watch`` uses it; so can anything else that takes whole files.

Kinds:

``lines``   one record per line (LF or CR LF); blank lines are skipped.
``csv``     one record per CSV row: like ``lines``, but a quoted field may hold
            line breaks (RFC 4180), so a row ends at the first line break outside
            quotes.  A quote opened and never closed is an error at its row.
            Both are text: a UTF-8 byte order mark at the start of the file (Excel
            writes one) is not part of the first record, whose offset stays its
            place in the file (3).  The other kinds are bytes: they keep it.
``fixed``   ``record_size`` bytes each; a short tail is an error.
``rdw``     IBM variable records: a 4-byte record descriptor word (length in
            bytes 0-1, big-endian, counting the RDW) before each record.  With
            ``rdw_includes_header=False`` the length counts only the record's data
            (some transfer tools and test files write it so); the wrong setting
            is told with a hint naming the right one.
``rdw_le``  the same with the word byte-reversed (length in bytes 2-3, low byte
            first), as some transfer tools write it.
``rje``     a SWIFT RJE file: FIN messages separated by ``$`` (``$`` is outside
            the FIN character set, so it never occurs inside a message).
``whole``   the file is one record.
``camt053`` an ISO 20022 bank-to-customer file (camt.053; camt.052 and camt.054 alike): each
            ``<Stmt>`` (``Rpt``, ``Ntfctn``) becomes a document of its own, the file's envelope
            and group header with that one statement (``formats.iso20022.statements_split``);
            its offset is the statement's start tag.

``ControlTotals`` checks a file's trailer (its record count, the total of an amount
field) against the data records, before any of them runs.
"""
from __future__ import annotations

import re
from array import array
from decimal import Decimal
from typing import Any, Iterator

from formats.copybook.records import split_rdw
from formats.errors import FormatError
from formats.exact import plain_decimal

__all__ = ["RECORD_KINDS", "ControlTotals", "Records", "split_offsets", "split_records"]

RECORD_KINDS = ("lines", "csv", "fixed", "rdw", "rdw_le", "rje", "whole", "camt053")


class Records:
    """A file's records as their places in its bytes: ``records[i]`` and iteration give ``(byte offset,
    record bytes)``, the bytes sliced from ``data`` then; a slice is ``Records`` too (the places of
    those records).  ``head``: bytes put before every record given (the header row and a line break
    of a ``header_row`` file: ``with_head``), not held once per record."""

    __slots__ = ("data", "starts", "begins", "ends", "head")

    def __init__(self, data: bytes, starts: array, begins: array, ends: array, head: bytes = b"") -> None:
        self.data = data
        self.starts = starts            # the record's offset as told (an RDW record's: its RDW's)
        self.begins = begins            # where its bytes begin in data
        self.ends = ends
        self.head = head

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return Records(self.data, self.starts[i], self.begins[i], self.ends[i], self.head)
        return self.starts[i], self.head + self.data[self.begins[i]:self.ends[i]]

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        data, head = self.data, self.head
        for s, b, e in zip(self.starts, self.begins, self.ends):
            yield s, head + data[b:e]

    def with_head(self, head: bytes) -> "Records":
        return Records(self.data, self.starts, self.begins, self.ends, head)


def _places() -> tuple[array, array, array]:
    return array("q"), array("q"), array("q")


def split_records(data: bytes, kind: str, record_size: int | None = None,
                  quote: bytes | str = b'"', rdw_includes_header: bool = True) -> list[tuple[int, bytes]]:
    """``data`` -> [(byte offset, record)]; ``FormatError`` (record, offset, hint) when it cannot be split."""
    return list(split_offsets(data, kind, record_size, quote, rdw_includes_header))


def split_offsets(data: bytes, kind: str, record_size: int | None = None,
                  quote: bytes | str = b'"', rdw_includes_header: bool = True) -> Records:
    """``split_records`` as ``Records``: the records' places in ``data``, not copies of them."""
    if kind == "whole":
        starts, begins, ends = _places()
        if data:
            starts.append(0), begins.append(0), ends.append(len(data))
        return Records(data, starts, begins, ends)
    if kind == "lines":
        return _lines(data)
    if kind == "csv":
        q = quote.encode("ascii") if isinstance(quote, str) else quote
        return _csv_rows(data, q) if q else _lines(data)
    if kind == "fixed":
        return _fixed(data, record_size)
    if kind in ("rdw", "rdw_le"):
        return _rdw(data, little=kind == "rdw_le", includes_header=rdw_includes_header)
    if kind == "rje":
        return _rje(data)
    if kind == "camt053":
        from formats.iso20022.statements_split import split_statements
        return split_statements(data) if data.strip() else []
    raise ValueError(f"unknown record kind {kind!r}; expected one of {', '.join(RECORD_KINDS)}")


UTF8_BOM = b"\xef\xbb\xbf"


# a line and its end, as bytes.splitlines splits (LF, CR LF, a lone CR); the last may have none
_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\r|\n|\Z)")
_BLANK = re.compile(rb"[ \t\x0b\x0c\r\n]*")


def _lines(data: bytes) -> Records:
    starts, _, ends = _places()
    pos = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0        # text: the mark is not the first line's
    blank = _BLANK.match
    for m in _LINE.finditer(data, pos):
        s, e = m.span(1)
        if blank(data, s, e).end() < e:          # a line of spaces only is blank
            starts.append(s)
            ends.append(e)
    return Records(data, starts, starts, ends)


def _csv_rows(data: bytes, quote: bytes) -> Records:
    """Rows end at a line feed with an even number of quote characters before it in the row
    (an escaped quote is doubled, so it keeps the count even)."""
    starts, _, ends = _places()
    blank = _BLANK.match
    start = pos = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0     # text: the mark is not the first row's
    quotes = 0
    end = len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        stop = end if nl < 0 else nl + 1
        quotes += data.count(quote, pos, stop)
        pos = stop
        if quotes % 2 == 0:
            stop = pos
            while stop > start and data[stop - 1] in b"\r\n":
                stop -= 1
            if blank(data, start, stop).end() < stop:
                starts.append(start)
                ends.append(stop)
            start, quotes = pos, 0
    if start < end:
        raise FormatError(f"a quoted field opened in this row is not closed before the end of the file "
                          f"({end - start} byte(s) from the row's start)", offset=start, record=len(starts) + 1,
                          hint="check the channel's quote option against the file, or the file is truncated")
    return Records(data, starts, starts, ends)


def _fixed(data: bytes, record_size: int | None) -> list[tuple[int, bytes]]:
    if not isinstance(record_size, int) or record_size <= 0:
        raise ValueError("record kind fixed needs a positive record_size")
    if len(data) % record_size:
        n = len(data) // record_size
        raise FormatError(f"file of {len(data)} bytes is not a whole number of {record_size}-byte records "
                          f"({len(data) % record_size} byte(s) left over)",
                          offset=n * record_size, record=n + 1,
                          hint="check record_size against the record layout, or the file is truncated")
    starts = array("q", range(0, len(data), record_size))
    return Records(data, starts, starts, array("q", range(record_size, len(data) + 1, record_size)))


def _rdw(data: bytes, little: bool, includes_header: bool = True) -> Records:
    starts, begins, ends = _places()
    try:
        for offset, record in split_rdw(data, little=little, includes_header=includes_header,
                                        max_record=0xFFFF, setting="channel"):
            starts.append(offset - 4)                   # the record's offset is its RDW's
            begins.append(offset)
            ends.append(offset + len(record))
    except FormatError as exc:
        other = "rdw" if little else "rdw_le"
        hint = exc.hint if exc.hint and "rdw_includes_header" in exc.hint else (
            f"the file is truncated, or its records are not RDW-prefixed that way "
            f"(download in binary with RDW; or try record = \"{other}\")")
        raise FormatError(exc.message, offset=exc.offset, record=len(starts) + 1, hint=hint) from None
    return Records(data, starts, begins, ends)


def _rje(data: bytes) -> Records:
    starts, _, ends = _places()
    pos = 0
    for part in data.split(b"$"):
        stripped = part.lstrip(b"\r\n")
        body = stripped.rstrip(b"\r\n")
        if body.strip():
            at = pos + len(part) - len(stripped)
            starts.append(at)
            ends.append(at + len(body))
        pos += len(part) + 1
    return Records(data, starts, starts, ends)


# ------------------------------------------------------------------ control totals

class ControlTotals:
    """A batch file's trailer checked against its data records before any of them runs: the
    number of records (``count_field`` of the trailer) and the sum of one field of every record
    (``sum_field``, read with ``sum_codec``; ``total_field`` of the trailer).  Money is summed as
    ``Decimal``, exactly.  ``role = "header"``: the same totals carried by the file's batch header
    record instead (a payroll file's first line), and said so."""

    def __init__(self, trailer_codec: Any, *, count_field: str | None = None, total_field: str | None = None,
                 sum_field: str | None = None, sum_codec: Any = None, role: str = "trailer") -> None:
        if count_field is None and total_field is None:
            raise ValueError("a trailer check needs a count field, a total field or both")
        if (total_field is None) != (sum_field is None) or (total_field is not None and sum_codec is None):
            raise ValueError("a total needs the trailer's total field, the records' field and their format")
        self.trailer_codec = trailer_codec
        self.count_field, self.total_field = count_field, total_field
        self.sum_field, self.sum_codec = sum_field, sum_codec
        self.role = role                 # "trailer", or "header": a batch header record carrying the totals

    def check(self, trailer: tuple[int, bytes], trailer_number: int, records: Any,
              first: int) -> str | None:
        """None when the trailer agrees with ``records`` (numbered from ``first``), else the problem,
        naming the record and byte offset it concerns."""
        at, raw = trailer
        where = f"record {trailer_number}, byte offset {at}"
        try:
            values = self.trailer_codec.decode(raw)
        except FormatError as exc:
            return f"{where}: the {self.role} cannot be read: {exc}"
        said, holds = [], []
        if self.count_field is not None:
            want = _field(values, self.count_field)
            if isinstance(want, str) and want.strip().isdigit():
                want = int(want)
            if not isinstance(want, int) or isinstance(want, bool):
                return f"{where}: the {self.role}'s {self.count_field} is {want!r}, not a number of records"
            said.append(f"{want} record(s)")
            holds.append(f"{len(records)} record(s)")
            count_ok = want == len(records)
        else:
            count_ok = True
        total_ok = True
        if self.total_field is not None:
            want_total = _decimal(_field(values, self.total_field))
            if want_total is None:
                return (f"{where}: the {self.role}'s {self.total_field} is {_field(values, self.total_field)!r}, "
                        f"not an amount")
            total = Decimal(0)
            for n, (offset, rec) in enumerate(records, first):
                try:
                    amount = _decimal(_field(self.sum_codec.decode(rec), self.sum_field))
                except FormatError as exc:
                    return f"record {n}, byte offset {offset}: cannot read its {self.sum_field} for the total: {exc}"
                if amount is None:
                    return f"record {n}, byte offset {offset}: its {self.sum_field} is not an amount"
                total += amount
            said.append(f"{self.total_field} {want_total}")
            holds.append(f"{self.sum_field} totalling {total}")
            total_ok = total == want_total
        if count_ok and total_ok:
            return None
        return (f"{where}: the control totals do not match: the {self.role} says {' and '.join(said)}; the file "
                f"holds {' with '.join(holds)}; no record was run")


def _field(values: Any, name: str) -> Any:
    """``values[name]``, following dots (``totals.amount``); None when missing."""
    for part in name.split("."):
        if not isinstance(values, dict):
            return None
        values = values.get(part)
    return values


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, str):
        return plain_decimal(value)      # never 1_000, 1e3 or ١٢٠.50
    return None
