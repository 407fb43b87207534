"""Lookup tables read from CSV files: ``table billers = csv "billers.csv" key biller_id``.

``key in table`` tests for a row; ``table[key]`` is the row as a dict of
strings (a missing key raises ``EvalError`` naming the table and the key).

An effective-dated table (``... key insurer effective from valid_from``) holds several rows per key, one per
date (YYYY-MM-DD) from which it applies: ``table.at(key, day)`` is the row in force on ``day`` (the latest
row dated on or before it; a day before the key's first row raises ``EvalError`` naming the table, the key
and the day), and ``table[key]``, ``key in table`` and ``table.get(key)`` read the row in force today (the
date of ``dsl.clock.now()`` in the engine's local zone, as ``today()``).  ``rows`` holds each key's latest
row (its newest version); ``rows_on(day)`` the rows in force on ``day`` and ``since(day)`` the date from which
that set of rows holds (what a step that reads the whole table, a screening list, keys its work by).
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from bisect import bisect_right
from datetime import date, datetime
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
    __slots__ = ("name", "key", "rows", "columns", "path", "effective", "dated", "starts")

    def __init__(self, name: str, key: str, rows: Mapping[str, dict[str, str]],
                 columns: tuple[str, ...] | None = None, path: str | None = None, *,
                 effective: str | None = None,
                 dated: Mapping[str, list[tuple[date, dict[str, str]]]] | None = None) -> None:
        self.name = name
        self.key = key
        self.effective = effective
        # effective-dated: key -> (the days its rows apply from, ascending; the rows, in that order)
        self.dated: dict[str, tuple[tuple[date, ...], tuple[dict[str, str], ...]]] = {}
        self.starts: tuple[date, ...] = ()
        if effective is not None:
            for k, versions in (dated or {}).items():
                versions = sorted(versions, key=lambda v: v[0])
                self.dated[k] = (tuple(d for d, _ in versions), tuple(r for _, r in versions))
            rows = {k: rs[-1] for k, (_, rs) in self.dated.items()}
            # every date from which a row applies, ascending (``since``)
            self.starts = tuple(sorted({d for ds, _ in self.dated.values() for d in ds}))
        self.rows = dict(rows)
        first = next(iter(self.rows.values()), None)
        self.columns = tuple(columns) if columns is not None else tuple(first or (key,))
        self.path = path

    def _where(self) -> str:
        return f" ({Path(self.path).name})" if self.path else ""

    def _today(self, key: Any) -> dict[str, str] | None:
        """The row of ``key`` in force today (an effective-dated table), or None."""
        from dsl.functions import f_today
        return self._on(_key(key), f_today())

    def _on(self, key: str, day: date) -> dict[str, str] | None:
        found = self.dated.get(key)
        if found is None:
            return None
        days, rows = found
        i = bisect_right(days, day)
        return rows[i - 1] if i else None

    def rows_on(self, day: date) -> dict[str, dict[str, str]]:
        """Each key's row in force on ``day`` (keys with none yet left out); a table without effective dates:
        its rows."""
        if self.effective is None:
            return dict(self.rows)
        out = {}
        for k in self.dated:
            row = self._on(k, day)
            if row is not None:
                out[k] = row
        return out

    def since(self, day: date) -> date | None:
        """The latest date on or before ``day`` from which a row applies: ``rows_on`` gives the same rows for
        every day from it up to the next such date.  None: no row is in force on ``day`` (or no effective
        dates)."""
        if self.effective is None:
            return None
        i = bisect_right(self.starts, day)
        return self.starts[i - 1] if i else None

    def __contains__(self, key: Any) -> bool:
        if self.effective is not None:
            return self._today(key) is not None
        return _key(key) in self.rows

    def __getitem__(self, key: Any) -> dict[str, str]:
        if self.effective is not None:
            from dsl.functions import f_today
            return self.at(key, f_today())
        try:
            return self.rows[_key(key)]
        except KeyError:
            raise EvalError(f"table {self.name}{self._where()} has no row with {self.key} = {_key(key)!r}") from None

    def at(self, key: Any, day: Any) -> dict[str, str]:
        """The row of ``key`` in force on ``day`` (a date, or a timestamp's date): the latest dated on or
        before it.  No such key, a day before its first row, a table without effective dates, or ``day``
        not a date: ``EvalError``."""
        if self.effective is None:
            raise EvalError(f"table {self.name}{self._where()} has no effective dates: read its row with "
                            f"{self.name}[KEY], or declare it `key {self.key} effective from COLUMN`")
        if isinstance(day, datetime):
            day = day.date()
        if not isinstance(day, date):
            got = "null" if day is None else f"the string {day!r}" if isinstance(day, str) else type(day).__name__
            raise EvalError(f"table {self.name}{self._where()}: the as-of date for {self.key} = {_key(key)!r} "
                            f"must be a date, got {got} (read text as a date with parse_date(text, pattern))")
        k = _key(key)
        found = self.dated.get(k)
        if found is None:
            raise EvalError(f"table {self.name}{self._where()} has no row with {self.key} = {k!r}")
        row = self._on(k, day)
        if row is None:
            raise EvalError(f"table {self.name}{self._where()} has no row with {self.key} = {k!r} in force on "
                            f"{day.isoformat()}: its first applies from {found[0][0].isoformat()} "
                            f"({self.effective})")
        return row

    def get(self, key: Any, default: Any = None) -> Any:
        if self.effective is not None:
            row = self._today(key)
            return default if row is None else row
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
        effective = getattr(decl, "effective", None)
        if effective is not None and effective not in header:
            raise TableError(f"table {decl.name}: effective-date column {effective!r} is not in the header "
                             f"({', '.join(header)})", path=path, line=1)
        ei = header.index(effective) if effective is not None else None
        rows: dict[str, dict[str, str]] = {}
        first_line: dict[Any, int] = {}
        dated: dict[str, list[tuple[date, dict[str, str]]]] = {}
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise TableError(f"table {decl.name}: row has {len(row)} values, the header has "
                                     f"{len(header)} ({', '.join(header)})", path=path, line=line)
                k = row[ki]
                if ei is not None:
                    day = _day(row[ei], decl.name, effective, path, line)
                    if (k, day) in first_line:
                        raise TableError(f"table {decl.name}: key {k!r} has two rows in force from "
                                         f"{day.isoformat()} (first on line {first_line[k, day]}); one row per "
                                         f"{decl.key} and {effective}", path=path, line=line)
                    dated.setdefault(k, []).append((day, dict(zip(header, row))))
                    first_line[k, day] = line
                    continue
                if k in rows:
                    raise TableError(f"table {decl.name}: key {k!r} appears twice (first on line "
                                     f"{first_line[k]})", path=path, line=line)
                rows[k] = dict(zip(header, row))
                first_line[k] = line
        except csv.Error as e:
            raise TableError(f"table {decl.name}: {e}", path=path, line=reader.line_num) from None
    return Table(decl.name, decl.key, rows, tuple(header), path, effective=effective, dated=dated)


def _day(text: str, table: str, column: str, path: str, line: int) -> date:
    """A cell of the effective-date column: YYYY-MM-DD."""
    t = text.strip()
    try:
        if len(t) != 10:
            raise ValueError
        return date.fromisoformat(t)
    except ValueError:
        raise TableError(f"table {table}: {column} {text!r} is not a date: write it YYYY-MM-DD "
                         f"(e.g. 2026-01-01), the day from which the row applies", path=path, line=line) from None


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
