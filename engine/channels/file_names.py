"""File names from a deal's values: the ``{field}`` of a ``file write`` name that each call gives.

A ``file write`` channel's ``name`` pattern holds the fields the channel fills itself (``{date}``,
``{time}``, ``{seq}``, ``{uuid}``) and any other ``{word}``: a value each call to the channel gives in
its ``name { word = EXPR }`` clause (``call w = remit_out as Pacs008 { ... } name { ref = msg.ref }``).
``bsp check`` makes every call give exactly those (E104, E105); the call step evaluates them for each
deal and hands them to the channel with the request (``request_many(..., names=[...])``), the capture
keeps them with the call (``frames.names``) and a replay compares them.

A value becomes one piece of one file name in ``dir``, never a path: ``bad_value`` refuses an empty
value, one holding ``/``, ``\\``, NUL or another control character, and ``.`` / ``..``;
``bad_name`` refuses the whole name when it is over 255 bytes (UTF-8) or starts with ``.`` (the
channel's temporary files are ``.NAME.HEX.tmp``; a hidden name is nothing a reader looks for).  Pure:
the call step (before anything is sent, so route tests and replays fail the same deal), and the
channel again (before anything is written), use the same checks.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from formats.classify import mask_value

BUILTIN = ("date", "time", "seq", "uuid")
APPEND_BUILTIN = ("date", "time")
MAX_NAME_BYTES = 255
FIELD = re.compile(r"\{([^{}]*)\}")
WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# what a builtin field is filled with when a name's length is checked before it is made
_WIDEST = {"date": "YYYYMMDD", "time": "HHMMSS", "seq": "000000", "uuid": "0" * 32}


class NameValues(dict):
    """``{field: text}``: the values one call gives for its file's name.  ``shown`` is the same with
    the classified ones masked (``{ref: "J***"}``), for every text that quotes them: the reason a
    deal fails with, the channel's log lines.  ``places``: where each value is written
    (``main.route:14:30``), for the reason."""

    __slots__ = ("shown", "places")

    def __init__(self, values: Mapping[str, str], shown: Mapping[str, str] | None = None,
                 places: Mapping[str, str] | None = None) -> None:
        super().__init__(values)
        self.shown = dict(shown) if shown is not None else dict(values)
        self.places = dict(places or {})


def call_fields(pattern: str, builtin: tuple[str, ...] = BUILTIN) -> list[str]:
    """The fields of ``pattern`` a call gives (every ``{word}`` that is not a builtin), in order."""
    out: list[str] = []
    for f in FIELD.findall(pattern):
        if f not in builtin and f not in out:
            out.append(f)
    return out


def text_of(value: Any) -> str | None:
    """A value as it goes into a file name: text as is, a number as written; None for null,
    true/false and anything else (lists, records), which name nothing."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int,)) or type(value).__name__ == "Decimal":
        return str(value)
    return None


def bad_value(value: str) -> str | None:
    """Why ``value`` cannot be a piece of a file name, or None."""
    if value == "":
        return "is empty"
    for ch, what in (("/", "'/'"), ("\\", "'\\'"), ("\x00", "NUL")):
        if ch in value:
            return f"contains {what}: a value names a file in dir, never a path"
    ctl = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if ctl is not None:
        return f"contains the control character 0x{ord(ctl):02x}"
    if value in (".", ".."):
        return f"is {value!r}: it names a directory, not a file"
    return None


def fill(pattern: str, values: Mapping[str, str], builtins: Mapping[str, str]) -> str:
    """``pattern`` with its fields replaced: builtins from ``builtins``, the rest from ``values``
    (a value is put in as it is: a ``{`` in it is not a field)."""
    return FIELD.sub(lambda m: str(builtins[m.group(1)] if m.group(1) in builtins else values[m.group(1)]),
                     pattern)


def bad_name(name: str) -> str | None:
    """Why the whole file name ``name`` cannot be written, or None."""
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long; a file name holds at most {MAX_NAME_BYTES}"
    if name.startswith("."):
        return "starts with '.': a hidden name, which no reader looks for (and the channel's temporary files use)"
    return None


def problem(pattern: str, values: Mapping[str, str], channel: str,
            builtins: Mapping[str, str] | None = None) -> tuple[str | None, str] | None:
    """``(field, reason)`` when ``values`` cannot name a file by ``pattern`` (field None: the
    whole name), or None.  The reason names the channel and quotes the value as ``values.shown``
    shows it (masked when classified).  ``builtins``: the channel's own fields as it fills them;
    without them (the call step, before sending) the widest they can be."""
    shown = getattr(values, "shown", values)
    for f in call_fields(pattern):
        if f not in values:
            return f, (f"channel {channel}: the file name {pattern!r} uses {{{f}}}, which the call did not "
                       f"give (add `name {{ {f} = ... }}` to the call)")
        why = bad_value(values[f])
        if why is not None:
            return f, f"channel {channel}: file name value {{{f}}} = {shown[f]!r} {why}; nothing was written"
    name = fill(pattern, values, builtins or _WIDEST)
    why = bad_name(name)
    if why is not None:
        made = fill(pattern, shown, builtins or _WIDEST)
        used = [f for f in call_fields(pattern)]
        return (used[0] if len(used) == 1 else None,
                f"channel {channel}: file name {made!r} (from {', '.join('{' + f + '}' for f in used)}) {why}; "
                f"nothing was written")
    return None


def shown_values(values: Mapping[str, str], tags: Mapping[str, str], known: Mapping[str, str]) -> dict[str, str]:
    """The values as texts show them: a field whose value ``bsp check`` found classified (``tags``,
    through functions such as ``upper``) masked whole; any other masked wherever it holds a
    classified value of the deal unchanged (``known``: ``{text: tag}``, ``Exchange.classified``)."""
    from formats.classify import mask_text
    out: dict[str, str] = {}
    for f, v in values.items():
        tag = tags.get(f) or known.get(v)
        out[f] = str(mask_value(v, tag)) if tag else mask_text(v, known) if known else v
    return out
