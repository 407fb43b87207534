"""Lookup tables read from CSV files: ``table billers = csv "billers.csv" key biller_id``.

``key in table`` tests for a row; ``table[key]`` is the row as a dict of
strings (a missing key raises ``EvalError`` naming the table and the key).
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

from dsl.eval_error import EvalError


class TableError(ValueError):
    """A bad table file; names the file and line."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        loc = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{loc}: {self.message}"


class Table:
    __slots__ = ("name", "key", "rows", "columns", "path")

    def __init__(self, name: str, key: str, rows: Mapping[str, dict[str, str]],
                 columns: tuple[str, ...] | None = None, path: str | None = None) -> None:
        self.name = name
        self.key = key
        self.rows = dict(rows)
        first = next(iter(self.rows.values()), None)
        self.columns = tuple(columns) if columns is not None else tuple(first or (key,))
        self.path = path

    def __contains__(self, key: Any) -> bool:
        return _key(key) in self.rows

    def __getitem__(self, key: Any) -> dict[str, str]:
        try:
            return self.rows[_key(key)]
        except KeyError:
            where = f" ({Path(self.path).name})" if self.path else ""
            raise EvalError(f"table {self.name}{where} has no row with {self.key} = {_key(key)!r}") from None

    def get(self, key: Any, default: Any = None) -> Any:
        return self.rows.get(_key(key), default)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"Table({self.name!r}, key={self.key!r}, {len(self.rows)} rows)"


def _key(key: Any) -> str:
    from decimal import Decimal
    if isinstance(key, Decimal):
        return format(key, "f")
    return "" if key is None else str(key)


def load_table(decl: Any, text: str | None = None) -> Table:
    """Read a ``dsl.ir.TableDecl`` (``.name .path .key``) from its CSV file, or from ``text``: the file's
    content as read before (``load_versioned``)."""
    path = str(decl.path)
    if text is not None:
        fh: Any = io.StringIO(text, newline="")
    else:
        try:
            fh = open(path, newline="", encoding="utf-8")
        except OSError as e:
            raise TableError(f"cannot open table {decl.name}: {e.strerror}", path=path) from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise TableError(f"table {decl.name}: the file is empty; the first line must name the columns",
                             path=path, line=1) from None
        except csv.Error as e:
            raise TableError(f"table {decl.name}: {e}", path=path, line=1) from None
        if decl.key not in header:
            raise TableError(f"table {decl.name}: key column {decl.key!r} is not in the header "
                             f"({', '.join(header)})", path=path, line=1)
        ki = header.index(decl.key)
        rows: dict[str, dict[str, str]] = {}
        first_line: dict[str, int] = {}
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise TableError(f"table {decl.name}: row has {len(row)} values, the header has "
                                     f"{len(header)} ({', '.join(header)})", path=path, line=line)
                k = row[ki]
                if k in rows:
                    raise TableError(f"table {decl.name}: key {k!r} appears twice (first on line "
                                     f"{first_line[k]})", path=path, line=line)
                rows[k] = dict(zip(header, row))
                first_line[k] = line
        except csv.Error as e:
            raise TableError(f"table {decl.name}: {e}", path=path, line=reader.line_num) from None
    return Table(decl.name, decl.key, rows, tuple(header), path)


_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_KEY_LEFT_OUT = "(a private key: not kept)"      # engine/ops/files.py PRIVATE_KEY_LEFT_OUT


def load_versioned(decl: Any, sources: Mapping[str, str]) -> Table:
    """The table as the configuration's version holds it: parsed from the text ``sources`` (a program's,
    ``engine.ops.files.with_referenced_files``) kept of its file when the version was computed, not read
    again, so that a file rewritten between the compile and the bind of a reload (a sanctions list a feed
    replaces, a rate table) cannot be the one the engine uses while the deals name a version whose sources
    hold another.  A file kept only as its digest (over 1 MB) is read and must still have that digest;
    otherwise it changed meanwhile and the bind is refused (reload again).  Not in ``sources``: read."""
    path = str(decl.path)
    text = sources.get(path)
    if text is None or _KEY_LEFT_OUT in text:
        return load_table(decl)
    digest = _DIGEST.fullmatch(text)
    if digest is None:
        return load_table(decl, text)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TableError(f"cannot open table {decl.name}: {e.strerror}", path=path) from None
    if hashlib.sha256(data).hexdigest() != digest.group(1):
        raise TableError(f"table {decl.name}: the file changed after the configuration was read (while it was "
                         f"being loaded); nothing of it is used: reload again", path=path)
    try:
        return load_table(decl, data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise TableError(f"table {decl.name}: not UTF-8 text (byte {e.start})", path=path) from None
