"""A ``file watch`` record's place (``engine.channels.file_origin.RecordOrigin``) in a capture.

The tap stores it with the request row (``frames.origin``, a JSON object of the origin's fields); a replay
gives it back to the route as ``file.*`` (and a decoder's error is placed in the file as it was when
recorded); ``--to-tests`` writes it as the test's ``file { ... }`` clause.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from typing import Any

from engine.channels.file_origin import FILE_FIELDS, RecordOrigin

_FIELDS = {f.name: f for f in dataclasses.fields(RecordOrigin)}
_TEXT = {"name"}
_OPTIONAL = {"line", "head_line"}


def frame_origin(conn: Any) -> RecordOrigin | None:
    """The origin of the one frame dispatched on ``conn`` (a tap's per-frame ``ConnInfo``), or None."""
    extra = getattr(conn, "extra", None) or {}
    origins = extra.get("origins")
    if not origins:
        return None
    i = extra.get("batch_index", 0)
    o = origins[i] if 0 <= i < len(origins) else None
    return o if isinstance(o, RecordOrigin) else None


def dump(origin: RecordOrigin | None) -> str | None:
    if origin is None:
        return None
    data = dataclasses.asdict(origin)
    if data.get("header") is None:
        data.pop("header", None)
    else:                 # the header record's fields: amounts and dates kept as what they are
        data["header"] = _typed(data["header"])
    return json.dumps(data, sort_keys=True)


def _typed(value: Any) -> Any:
    """A header's values as JSON: a ``Decimal`` as ``{"$decimal": "1.50"}``, a date / datetime / time as
    ``{"$date": ...}`` / ``{"$datetime": ...}`` / ``{"$time": ...}`` (ISO 8601), bytes as ``{"$hex": ...}``."""
    if isinstance(value, dict):
        return {str(k): _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_typed(v) for v in value]
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, (bytes, bytearray)):
        return {"$hex": bytes(value).hex()}
    return value


_UNTYPED = {"$decimal": Decimal, "$datetime": dt.datetime.fromisoformat, "$date": dt.date.fromisoformat,
            "$time": dt.time.fromisoformat, "$hex": bytes.fromhex}


def _untyped(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (k, v), = value.items()
            if k in _UNTYPED and isinstance(v, str):
                return _UNTYPED[k](v)
        return {k: _untyped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untyped(v) for v in value]
    return value


def load(text: str | None) -> RecordOrigin | None:
    """The stored origin, or None (none stored).  ``ValueError`` saying what is wrong for a value that is
    not one (a capture edited by hand, or damaged)."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the record's file origin is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"the record's file origin is a JSON {type(data).__name__}, expected an object")
    kw: dict[str, Any] = {}
    for k, v in data.items():
        if k not in _FIELDS:
            continue                     # a later bsp's field: this one does not use it
        if k == "header":
            if v is not None and not isinstance(v, dict):
                raise ValueError(f"the record's file origin has header = {v!r:.60}, expected an object")
            try:
                kw[k] = _untyped(v)
            except (ValueError, ArithmeticError) as exc:
                raise ValueError(f"the record's file origin has a header value that cannot be read ({exc})") \
                    from None
            continue
        want = str if k in _TEXT else int
        if (v is None and k in _OPTIONAL) or (isinstance(v, want) and not isinstance(v, bool)):
            kw[k] = v
        else:
            raise ValueError(f"the record's file origin has {k} = {v!r:.60}, expected "
                             f"{'a text' if want is str else 'a whole number'}")
    missing = [k for k in ("name", "record", "offset", "line", "records") if k not in kw]
    if missing:
        raise ValueError(f"the record's file origin lacks {', '.join(missing)}")
    return RecordOrigin(**kw)


def scope_fields(origin: RecordOrigin) -> dict[str, Any]:
    """``file.*`` as the route reads them (the fields of a test's ``file { ... }`` clause)."""
    return {k: origin.scope["file"][k] for k in FILE_FIELDS}


def dump_names(names: dict[str, str] | None) -> str | None:
    """A call's file name values (``frames.names`` of its request row): a JSON object, or None."""
    return None if names is None else json.dumps(names, sort_keys=True)


def load_names(text: str | None) -> dict[str, str] | None:
    """The stored name values, or None; ``ValueError`` saying what is wrong for a value that is not one."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the call's file name values are not JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError("the call's file name values are not an object of texts")
    return data
