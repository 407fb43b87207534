"""CSV: a message is one row; ``decode_batch`` reads a whole file.

Typed columns are declared inline like ``fixed`` (``FieldDecl`` with
``width=None``): ``string``, ``integer``, ``decimal`` / ``decimal(S)``
(explicit point, exactly S places when a scale is given), ``date`` with a
strftime pattern (default ``%Y-%m-%d``).  An empty cell decodes to ``""`` for
strings and ``None`` otherwise; ``None`` encodes as an empty cell.

* one row (``decode``/``encode``): columns in declared order, no header, no
  line terminator in the encoded bytes.  With ``header = true`` a message may
  also be two rows, the header first (what ``file watch`` with ``header_row``
  hands over): the declared fields are then matched by header name, as in a
  file.
* a file (``decode_batch``/``encode_batch``/``iter_batch``): with
  ``header = true`` (default) the first row names the columns; declared
  fields are matched by header name (order free, extra columns ignored, a
  missing declared column is an error).  Without declared fields every
  column is a string keyed by its header (or a list of strings when there is
  no header).  Errors carry ``record`` = data row number (1-based, header
  not counted) and ``offset`` = byte offset of the row.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import re
from decimal import Decimal
from typing import Any, Iterable, Iterator, Mapping

from formats.component import ComponentSpec, OptionSpec
from formats.errors import FormatError, SpecError
from formats.fixed import _TIME_DIRECTIVES, _pos_kw, check_encoding, check_fields, format_date, to_decimal

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)\Z", re.ASCII)     # 0-9 only: never ١٢٠.50
_INTEGER = re.compile(r"[+-]?\d+\Z", re.ASCII)

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _lines(text: str) -> Iterator[str]:
    """``text``'s lines with their endings (``\\r\\n``, ``\\r`` or ``\\n``), as ``io.StringIO(text, newline="")``
    gives them to ``csv.reader``, one at a time: a StringIO holds 4 bytes a character (a 64 MB line read as a
    CSV row took 700 MB of memory, and a 1 GB file watch file would have taken 11 GB)."""
    if "\n" not in text and "\r" not in text:
        return iter((text,) if text else ())           # one line (a message's row): the fast way
    return (m.group() for m in _LINE.finditer(text))


class CsvCodec:
    def __init__(self, fields: Iterable[Any] = (), *, delimiter: str = ",", quote: str = '"',
                 header: bool = True, encoding: str = "utf-8", name: str = "csv") -> None:
        self.name = name
        self.fields = tuple(fields)
        self.delimiter = delimiter
        self.quote = quote
        self.header = header
        self.encoding = encoding
        self._names = [f.name for f in self.fields]
        self._by_name = {f.name: f for f in self.fields}
        self._last_header: tuple[tuple[str, ...], list[Any]] | None = None
        self._fmt = dict(delimiter=delimiter, quotechar=quote or None,
                         quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
                         escapechar=None if quote else "\\", strict=True, lineterminator="\n")

    def field_names(self) -> list[str]:
        return list(self._names)

    # ------------------------------------------------------------ cells
    def _cell_in(self, fd: Any, text: str, *, record: int | None, offset: int | None) -> Any:
        ftype = fd.type
        if ftype == "string":
            return text
        if text == "":
            return None
        where = dict(field=fd.name, record=record, offset=offset)
        if ftype == "integer":
            if not _INTEGER.match(text):
                raise FormatError(f"expected an integer, found {text!r}", **where)
            return int(text)
        if ftype == "decimal":
            if not _NUMBER.match(text):
                raise FormatError(f"expected a decimal number like 120.50, found {text!r}", **where,
                                  hint="use '.' as the decimal point and no thousands separators")
            d = Decimal(text)
            if fd.scale is None:
                return d
            try:
                return to_decimal(d, scale=fd.scale, field=fd.name)
            except FormatError as exc:
                # the sender's value, not one a route computed: "round it first" is not the sender's fix
                raise FormatError(exc.message, **where,
                                  hint=f"the format declares {fd.name} decimal({fd.scale}): the sender must write "
                                       f"at most {fd.scale} decimal places, or declare more places in the "
                                       f"format (decimal({len(text.rpartition('.')[2])}))") from None
        pattern = fd.pattern or "%Y-%m-%d"
        try:
            value = _dt.datetime.strptime(text, pattern)
        except ValueError:
            raise FormatError(f"{text!r} is not a date in the form {pattern!r}", **where) from None
        return value if any(d in pattern for d in _TIME_DIRECTIVES) else value.date()

    def _cell_out(self, fd: Any, v: Any, record: int | None) -> str:
        if v is None:
            return ""
        ftype = fd.type
        where = dict(field=fd.name, record=record)
        if ftype == "string":
            if isinstance(v, bool) or not isinstance(v, (str, int, Decimal)):
                raise FormatError(f"expected text, got {type(v).__name__} {v!r}", **where)
            return v if isinstance(v, str) else str(v)
        if ftype == "integer":
            if isinstance(v, bool) or not isinstance(v, int):
                raise FormatError(f"expected an integer, got {type(v).__name__} {v!r}", **where)
            return str(v)
        if ftype == "decimal":
            if fd.scale is None:
                if isinstance(v, bool) or not isinstance(v, (Decimal, int)) or not Decimal(v).is_finite():
                    raise FormatError(f"expected a Decimal, got {type(v).__name__} {v!r}", **where,
                                      hint="money is decimal.Decimal, never float")
                return format(Decimal(v), "f")
            try:
                return format(to_decimal(v, scale=fd.scale, field=fd.name), "f")
            except FormatError as exc:
                raise FormatError(exc.message, **where, hint=exc.hint) from None
        if not isinstance(v, (_dt.date, _dt.datetime)):
            hint = ("a route reads a text as a date with parse_date(TEXT, PATTERN), e.g. "
                    "parse_date(x, \"%d.%m.%Y\") for a text x such as 01.12.2026" if isinstance(v, str) else None)
            raise FormatError(f"expected a date, got {type(v).__name__} {v!r}", **where, hint=hint)
        return format_date(v, fd.pattern or "%Y-%m-%d")

    # ------------------------------------------------------------ rows
    def _text(self, data: bytes) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise FormatError(f"expected bytes, got {type(data).__name__}")
        try:
            return bytes(data).decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise FormatError(f"byte 0x{bytes(data)[exc.start]:02x} is not valid {self.encoding}",
                              offset=exc.start, hint="check the option encoding") from None

    def _row_values(self, cells: list[str], columns: list[Any], *, record: int | None,
                    offset: int | None, positional: bool = False) -> Any:
        if positional and self.fields and len(cells) > len(self.fields):
            # no header: every column is a declared field, so an extra one means the row was split
            # wrongly (an unquoted delimiter in a value) - taking the first columns would cut a value
            raise FormatError(f"row has {len(cells)} columns, the format declares {len(self.fields)}",
                              record=record, offset=offset, field=self._names[-1],
                              hint="quote values that hold the delimiter; columns are: " + ", ".join(self._names))
        if not self.fields:
            if columns and isinstance(columns[0], str):
                if len(cells) != len(columns):
                    raise FormatError(f"row has {len(cells)} columns, the header has {len(columns)}",
                                      record=record, offset=offset)
                return dict(zip(columns, cells))
            return cells
        out: dict[str, Any] = {}
        for idx, fd in columns:
            if idx >= len(cells):
                raise FormatError(f"row has {len(cells)} columns, column {idx + 1} ({fd.name}) is missing",
                                  field=fd.name, record=record, offset=offset,
                                  hint=f"every row needs at least {max(i for i, _ in columns) + 1} columns")
            out[fd.name] = self._cell_in(fd, cells[idx], record=record, offset=offset)
        return out

    def decode(self, data: bytes) -> Any:
        """One row (no header, no trailing line break needed) -> dict of declared fields."""
        text = self._text(data)
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        rows = self._rows(text)
        if len(rows) == 2 and self.header:          # the header row, then the row
            try:
                columns = self._header_columns(rows[0])
            except FormatError as exc:
                if any(c.strip() in self._by_name for c in rows[0]):
                    raise                                   # a header, short of a column
                raise FormatError(f"expected one row, found 2, and the first is not a header naming the "
                                  f"columns: {exc.message}", field=exc.field, offset=0,
                                  hint=f"{exc.hint}; a csv message is one row, or the header row and one "
                                       f"row") from None
            at = len(text.split("\n", 1)[0].encode(self.encoding)) + 1 if "\n" in text else 0
            return self._row_values(rows[1], columns, record=None, offset=at)
        if len(rows) != 1:
            raise FormatError(f"expected one row, found {len(rows)}", offset=0,
                              hint="a csv message is one line (or, with header true, the header row and "
                                   "one row); use decode_batch for a file")
        cells = rows[0]
        if self.fields and len(cells) != len(self.fields):
            raise FormatError(f"row has {len(cells)} columns, the format declares {len(self.fields)}",
                              offset=0, field=self._names[min(len(cells), len(self._names) - 1)],
                              hint="columns are: " + ", ".join(self._names))
        return self._row_values(cells, list(enumerate(self.fields)), record=None, offset=0)

    def _rows(self, text: str) -> list[list[str]]:
        """The rows of a message; a CSV error's offset is the byte where the row it is in starts (with the
        header row before it, the second row's, not 0)."""
        reader = csv.reader(_lines(text), **self._fmt)
        rows: list[list[str]] = []
        while True:
            read = reader.line_num                   # lines read before this row
            try:
                rows.append(next(reader))
            except StopIteration:
                return rows
            except csv.Error as exc:
                at = sum(len(line.encode(self.encoding, errors="replace"))
                         for line, _ in zip(_lines(text), range(read)))
                raise FormatError(f"bad CSV: {exc}", offset=at) from None

    def encode(self, value: Any) -> bytes:
        """One row, no line terminator."""
        line = self._line(self._cells(value, None))
        return line.rstrip("\n").encode(self.encoding, errors="strict") if line else b""

    def _cells(self, value: Any, record: int | None) -> list[str]:
        if not self.fields:
            if isinstance(value, Mapping):
                return ["" if v is None else str(v) for v in value.values()]
            if isinstance(value, (list, tuple)):
                return ["" if v is None else str(v) for v in value]
            raise FormatError(f"expected a row, got {type(value).__name__}", record=record)
        if not isinstance(value, Mapping):
            raise FormatError(f"expected a row (mapping of field -> value), got {type(value).__name__}",
                              record=record)
        for k in value:
            if k not in self._by_name:
                raise FormatError(f"no column {k!r} in this format", field=str(k), record=record,
                                  hint="columns are: " + ", ".join(self._names))
        return [self._cell_out(fd, value.get(fd.name), record) for fd in self.fields]

    def _line(self, cells: list[str]) -> str:
        buf = io.StringIO()
        fmt = self._fmt
        cr = next((i for i, c in enumerate(cells) if "\r" in c), None)
        if cr is not None:
            # QUOTE_MINIMAL quotes a line feed (the line terminator), never a lone carriage return, which most
            # readers (Python's csv, spreadsheets) take for the end of the row: "AB\rX,999" was two rows
            if not self.quote:
                raise FormatError("the text holds a carriage return, which would end the row for most readers "
                                  "(the format has no quote character to enclose it)",
                                  field=self.fields[cr].name if cr < len(self.fields) else None,
                                  hint="refuse such a request first (not has_control(msg.x) else reject ...)")
            fmt = {**fmt, "quoting": csv.QUOTE_ALL}
        try:
            csv.writer(buf, **fmt).writerow(cells)
        except csv.Error as exc:
            raise FormatError(f"cannot write row: {exc}") from None
        return buf.getvalue()

    # ------------------------------------------------------------ files
    def iter_batch(self, data: bytes) -> Iterator[tuple[int, int, Any]]:
        """Yield ``(record, offset, values_or_FormatError)`` per data row, going on after a bad row.

        A malformed file structure (bad quoting, bad encoding, bad header) raises.
        """
        text = self._text(data)
        raw = bytes(data)
        line_starts = [0] + [m.end() for m in re.finditer(rb"\n", raw)]
        reader = csv.reader(_lines(text), **self._fmt)
        prev_line = 0
        columns: list[Any] = list(enumerate(self.fields))
        record = 0
        header_pending = self.header
        while True:
            offset = line_starts[prev_line] if prev_line < len(line_starts) else len(raw)
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FormatError(f"bad CSV on line {reader.line_num}: {exc}", record=record + 1,
                                  offset=offset, hint="check the quote characters") from None
            prev_line = reader.line_num
            if not cells:  # blank line
                continue
            if header_pending:
                columns = self._map_header(cells, offset)
                header_pending = False
                continue
            record += 1
            try:
                yield record, offset, self._row_values(cells, columns, record=record, offset=offset,
                                                       positional=not self.header)
            except FormatError as exc:
                yield record, offset, exc

    def _header_columns(self, cells: list[str]) -> list[Any]:
        """``_map_header`` for a message's header row, remembered (a file's rows share one)."""
        key = tuple(cells)
        cached = self._last_header
        if cached is not None and cached[0] == key:
            return cached[1]
        columns = self._map_header(cells, 0, None)
        self._last_header = (key, columns)
        return columns

    def _map_header(self, cells: list[str], offset: int, record: int | None = 0) -> list[Any]:
        if not self.fields:
            return cells
        index = {c.strip(): i for i, c in enumerate(cells)}
        missing = [fd.name for fd in self.fields if fd.name not in index]
        if missing:
            raise FormatError(f"header has no column {missing[0]!r}", field=missing[0], offset=offset,
                              record=record, hint="header columns are: " + ", ".join(cells))
        return [(index[fd.name], fd) for fd in self.fields]

    def decode_batch(self, data: bytes) -> list[Any]:
        """A whole file -> list of rows; the first bad row raises (with its record number)."""
        out = []
        for _rec, _off, value in self.iter_batch(data):
            if isinstance(value, FormatError):
                raise value
            out.append(value)
        return out

    def batch_columns(self, first: Any) -> list[Any] | int | None:
        """Without declared fields, a file's columns are the first row's: its keys (a dict), or its
        length (a list).  None with declared fields."""
        if self.fields:
            return None
        if isinstance(first, Mapping):
            return list(first)
        if isinstance(first, (list, tuple)):
            return len(first)
        raise FormatError(f"expected a row, got {type(first).__name__}", record=1)

    def batch_cells(self, value: Any, record: int, columns: list[Any] | int | None) -> list[str]:
        """One row of a file: with declared fields as ``_cells``; otherwise the cells in the order of
        ``columns`` (the first row's), a missing or extra column being an error naming the row."""
        if columns is None:
            return self._cells(value, record)
        if isinstance(columns, int):
            if not isinstance(value, (list, tuple)):
                raise FormatError(f"expected a list of cells like the first row, got {type(value).__name__}",
                                  record=record)
            if len(value) != columns:
                raise FormatError(f"row has {len(value)} columns, the first row has {columns}", record=record,
                                  hint="every row of a file has the same columns")
            return self._cells(value, record)
        if not isinstance(value, Mapping):
            raise FormatError(f"expected a row (mapping of column -> value) like the first row, got "
                              f"{type(value).__name__}", record=record)
        if len(value) != len(columns) or any(k not in value for k in columns):
            missing = [k for k in columns if k not in value]
            extra = [k for k in value if k not in columns]
            hint = "columns (from the first row) are: " + ", ".join(map(str, columns))
            if missing:
                raise FormatError(f"row has no column {missing[0]!r}", record=record, field=str(missing[0]),
                                  hint=hint)
            raise FormatError(f"row has a column {extra[0]!r} the first row does not have", record=record,
                              field=str(extra[0]), hint=hint)
        return ["" if value[k] is None else str(value[k]) for k in columns]

    def encode_batch(self, rows: Iterable[Any]) -> bytes:
        """A file: the header (declared fields, or the first row's keys) when ``header``, then every row.
        Without declared fields the first row fixes the columns: later rows are written in its
        order, and a row missing one of its keys or holding another is an error naming the row."""
        parts = []
        rows = list(rows)
        columns = self.batch_columns(rows[0]) if rows else None
        if self.header and self.fields:
            parts.append(self._line(self._names))
        elif self.header and isinstance(columns, list):
            parts.append(self._line([str(k) for k in columns]))
        for i, row in enumerate(rows, 1):
            parts.append(self._line(self.batch_cells(row, i, columns)))
        try:
            return "".join(parts).encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise FormatError(f"character cannot be written in {self.encoding}: {exc.reason}",
                              offset=exc.start) from None


# ------------------------------------------------------------------ component

def _opts(decl: Any) -> Mapping[str, Any]:
    return getattr(decl, "options", None) or {}


def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    opts = _opts(decl)
    errors: list[SpecError] = []
    fields_ = getattr(decl, "fields", ()) or ()
    if fields_:
        errors += check_fields(fields_, kind="csv", decl=decl)
    for name, default in (("delimiter", ","), ("quote", '"')):
        v = opts.get(name, default)
        if not isinstance(v, str) or len(v) > 1 or (name == "delimiter" and len(v) != 1):
            errors.append(SpecError(f"option {name} must be one character, got {v!r}", **_pos_kw(decl),
                                    hint='e.g. delimiter = ";"'))
    if not isinstance(opts.get("header", True), bool):
        errors.append(SpecError("option header must be true or false", **_pos_kw(decl)))
    enc = opts.get("encoding", "utf-8")
    if str(enc).lower().replace("-", "").replace("_", "") not in ("utf8", "utf8sig"):
        errors += check_encoding(enc, decl)
    return errors


def build(decl: Any) -> CsvCodec:
    errors = check(decl)
    if errors:
        raise errors[0]
    opts = _opts(decl)
    return CsvCodec(getattr(decl, "fields", ()) or (), delimiter=opts.get("delimiter", ","),
                    quote=opts.get("quote", '"'), header=opts.get("header", True),
                    encoding=opts.get("encoding", "utf-8"), name=getattr(decl, "name", "csv"))


def fields(decl: Any, base_dir: Any = None) -> list[str] | None:
    fs = getattr(decl, "fields", ()) or ()
    return [f.name for f in fs] if fs else None


COMPONENT = ComponentSpec(
    category="format",
    name="csv",
    doc=("CSV rows. A message is one row (columns in declared order), or with header true the header row "
         "and one row (columns by name: file watch's header_row); files are read with a header that "
         "maps columns to declared fields. Typed columns: string, integer, decimal(S) with an explicit "
         "point, date(\"%Y-%m-%d\"). An empty cell means absent."),
    options=(
        OptionSpec("delimiter", "string", "column separator, one character", default=","),
        OptionSpec("quote", "string", 'quote character ("" for none)', default='"'),
        OptionSpec("header", "bool", "files start with a header row naming the columns", default=True),
        OptionSpec("encoding", "string", "text encoding of the file", default="utf-8"),
    ),
    build=build,
    check=check,
    fields=fields,
    examples=('format Payments = csv delimiter ";" {\n    ref string\n    amount decimal(2)\n'
              '    value_date date("%Y-%m-%d")\n}',),
    accepts_fields=True,
)
