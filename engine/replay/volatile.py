"""Spot unexpected differences that look volatile and suggest the replay profile that ignores them.

A place (what, channel, field) looks volatile when every one of its unexpected
differences compares two values of a volatile shape: timestamps or dates (what
``now()`` / ``today()`` give, as datetime values or ISO-8601 / compact digit
text), UUIDs (``uuid()``), or the same kind of generated id (equal length,
letters and digits, differing) in a field whose name says it is an id or a
time (``*_id``, ``*ref*``, ``*time*``, ``*stamp*``, ``created`` ...).  A place
whose values are ordinary words or amounts never looks volatile: a wrong
mapping is not hidden behind a suggestion.

``suggest(diff)`` returns the suggestions; ``profile_yaml(suggestions)`` the
``ignore:`` block to paste into a replay profile (``--profile FILE``).  When one
glob fits every value of a place (``????-??-??T??:??:??Z``: each digit a ``?``;
else each run of digits a ``*``), the rule gives it as ``recorded`` and
``produced``: a time stamp whose layout a later change breaks, or that goes
missing, is then a difference again instead of ignored.

A field the candidate adds (a change that sends ``sent_at = now()`` or ``request_id = uuid()`` where the
recording has none) is suggested too when every produced value is of one volatile shape: its rule gives
``recorded: "<none>"`` and the produced values' glob, so it holds only while the recording lacks the field.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from engine.replay.diff import MISSING, DiffResult, Difference
from engine.replay.profile import as_text

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_DIGIT_TIME = re.compile(r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])([01]\d|2[0-3])?([0-5]\d){0,2}(\d{1,6})?$")
_HHMMSS = re.compile(r"^([01]\d|2[0-3]):?[0-5]\d:?[0-5]\d$")
_ID_NAME = re.compile(r"(^|[._\[])(id|uuid|guid|nonce|token|request_?id|message_?id|msg_?id|correlation_?id|"
                      r"[a-z]*_id|[a-z]*ref[a-z]*|trace[a-z_]*|stan)($|[.\]])", re.I)
_TIME_NAME = re.compile(r"(time|stamp|date|_at$|^at$|created|updated|sent|received|now)", re.I)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{6,}$")


@dataclass(frozen=True)
class Suggestion:
    what: str
    channel: str
    field: str
    kind: str                  # "timestamp", "uuid", "generated id"
    count: int
    example: Difference
    glob: str | None = None    # one glob every recorded and produced value of the place matches
    added: bool = False        # a field the candidate adds: recorded "<none>" everywhere, glob of the produced


def _glob(value: Any, kind: str, runs: bool) -> str:
    """``value``'s layout as a profile glob: digits (for a uuid or generated id, letters too) each a ``?``,
    or with ``runs`` each run of them a ``*``; other characters as they are (glob characters escaped)."""
    varies = str.isalnum if kind in ("uuid", "generated id") else str.isdigit
    out: list[str] = []
    for c in as_text(value):
        if varies(c):
            if not runs:
                out.append("?")
            elif not out or out[-1] != "*":
                out.append("*")
        else:
            out.append(f"[{c}]" if c in "[]*?" else c)
    return "".join(out)


def _place_glob(ds: list[Difference], kind: str) -> str | None:
    values = [v for d in ds for v in (d.recorded, d.produced) if v is not MISSING]
    for runs in (False, True):
        globs = {_glob(v, kind, runs) for v in values}
        if len(globs) == 1:
            return globs.pop()
    return None


def shape(value: Any, field: str) -> str | None:
    """The volatile kind of one value in ``field``, or None."""
    if isinstance(value, (datetime, date)):
        return "timestamp"
    if not isinstance(value, str):
        return None
    v = value.strip()
    if _UUID.match(v):
        return "uuid"
    if _ISO_TIME.match(v) or _DIGIT_TIME.match(v) and len(v) >= 12 or _HHMMSS.match(v) and _TIME_NAME.search(field):
        return "timestamp"
    leaf = re.split(r"[.\[]", field)[-1].rstrip("]")
    if _TOKEN.match(v) and (_ID_NAME.search(leaf) or _ID_NAME.search(field)) and any(c.isdigit() for c in v):
        return "generated id"
    return None


def _kind(d: Difference) -> str | None:
    if d.recorded is MISSING:                  # a field the candidate adds
        b = shape(d.produced, d.field)
        return None if b is None else f"added {b}"
    a, b = shape(d.recorded, d.field), shape(d.produced, d.field)
    if a is None or b is None:
        return None
    if a != b:
        return None
    if a == "generated id" and len(str(d.recorded)) != len(str(d.produced)):
        return None
    return a


def suggest(diff: DiffResult) -> list[Suggestion]:
    places: dict[tuple[str, str, str], list[Difference]] = {}
    for d in diff.unexpected:
        places.setdefault((d.what, d.channel, d.field), []).append(d)
    out = []
    for (what, channel, field), ds in places.items():
        kinds = {_kind(d) for d in ds}
        if len(kinds) == 1 and None not in kinds:
            kind = kinds.pop()
            added = kind.startswith("added ")
            kind = kind.removeprefix("added ")
            out.append(Suggestion(what, channel, field, kind, len(ds), ds[0], _place_glob(ds, kind), added))
    return sorted(out, key=lambda s: (-s.count, s.what, s.channel, s.field))


def profile_yaml(suggestions: list[Suggestion]) -> str:
    """The ``ignore:`` rules for a replay profile, one per volatile place, commented with why."""
    lines = ["ignore:"]
    for s in suggestions:
        lines += [f"  - channel: {_q(s.channel)}",
                  f"    what: {s.what}",
                  f"    field: {_q(s.field)}        # {s.kind}"
                  + (" in a field the candidate adds" if s.added else "")
                  + f": {s.count} difference(s), e.g. {_short(s.example.recorded)} -> {_short(s.example.produced)}"]
        if s.added:
            lines += [f"    recorded: {_q(MISSING)}"] + ([f"    produced: {_q(s.glob)}"] if s.glob is not None else [])
        elif s.glob is not None:
            lines += [f"    recorded: {_q(s.glob)}", f"    produced: {_q(s.glob)}"]
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _short(v: Any) -> str:
    t = v.isoformat() if isinstance(v, (date, datetime)) else str(v)
    return t if len(t) <= 40 else t[:37] + "..."
