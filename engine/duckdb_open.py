"""Why DuckDB would not open a file, told apart by its message: another process holds the file's lock,
the file is damaged or cut short, or it is not a DuckDB file at all.

Matched on DuckDB's own wording, never on a bare word: a damaged file's message ("... does not match
stored checksum ... in block at location 12288") contains "lock" inside "block".
"""
from __future__ import annotations

_LOCKED = ("could not set lock", "conflicting lock")
_DAMAGED = ("corrupt database file", "could not read enough bytes", "checksum")
_NOT_DUCKDB = ("not a valid duckdb database file",)


def open_problem(exc: BaseException) -> str | None:
    """``locked``, ``damaged``, ``not_duckdb`` or None (another error) for DuckDB's error ``exc``."""
    text = str(exc).lower()
    if any(t in text for t in _LOCKED):
        return "locked"
    if any(t in text for t in _DAMAGED):
        return "damaged"
    if any(t in text for t in _NOT_DUCKDB):
        return "not_duckdb"
    return None
