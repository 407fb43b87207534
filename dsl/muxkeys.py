"""Compile-time check of MUX key fields (E066).

A ``tcp connect`` channel that matches replies by key (``match = iso8583``:
MTI class + DE 11 + DE 41, or ``match = ["reference"]``) can only match a
request that carries those fields.  When a route calls such a channel with a
format whose fields are known, the request body must set every key field;
otherwise the checker reports E066 at the call.  A key the checker cannot see
(a format without a field list, a value that is null at run time) stays a
run-time error of the MUX (``engine/channels/mux.py``), never a silent timeout.
"""
from __future__ import annotations

from typing import Any

from dsl import ast as A
from dsl.options import literal_of

ISO_KEYS = ("t", "11", "41")
ISO_NETWORK_KEYS = ("t", "11")          # 08xx network management: MTI class + DE 11
_NAMES = {"t": "t (the MTI)", "11": "\"11\" (STAN)", "41": "\"41\" (terminal id)"}


def _match_option(chan: Any) -> tuple[Any, Any] | None:
    """(value, position) of the channel's ``match`` option as written, or None."""
    for o in getattr(chan, "options", ()):
        if o.key.name == "match":
            lit = literal_of(o.value)
            return (lit[0] if lit is not None else None), o.key.pos
    return None


def _sets(assigns: tuple[A.AssignAst, ...], key: tuple[str, ...]) -> bool:
    """Does the body set ``key`` (a dotted path), itself or a record around it or inside it?"""
    for a in assigns:
        parts = tuple(str(p) for p in a.parts)
        n = min(len(parts), len(key))
        if parts[:n] == key[:n]:
            v = a.value
            if isinstance(v, A.Lit) and (v.type == "null" or v.value == ""):
                continue                  # set to nothing: the MUX would refuse it
            return True
    return False


def _literal_mti(assigns: tuple[A.AssignAst, ...]) -> str | None:
    for a in assigns:
        if tuple(a.parts) == ("t",) and isinstance(a.value, A.Lit) and isinstance(a.value.value, str):
            return a.value.value
    return None


def _fifo_iso_check(checker: Any, call: A.CallStep, fmt: str | None) -> None:
    entry = checker.decls.get(call.channel.name)
    fdecl = checker.decls.get(fmt) if fmt is not None else None
    if (entry is None or entry[0] != "channel" or getattr(entry[1], "kind_name", None) != "tcp.connect"
            or fdecl is None or fdecl[0] != "format" or fdecl[1].kind.name != "iso8583"
            or _match_option(entry[1]) is not None):
        return
    checker.warn(
        "W007", f"ISO 8583 call `{call.name.name}` goes to channel `{call.channel.name}`, which pairs answers "
        f"with requests in the order they were sent: a host that answers out of order, or twice, gives deals "
        f"each other's answers", call.channel.pos,
        f"set `match = iso8583` on channel `{call.channel.name}`: each answer is then paired by its MTI "
        "class, STAN (DE 11) and terminal (DE 41) (docs/channels.md)")


def mux_key_check(checker: Any, call: A.CallStep, fmt: str | None) -> None:
    """Report E066 when ``call`` goes to a matched channel and its body misses a key field; W007 when an
    ISO 8583 call goes to a channel that pairs answers in order."""
    _fifo_iso_check(checker, call, fmt)
    if fmt is None or checker.res.format_fields.get(fmt) is None:
        return                            # the format does not show its fields: checked at run time
    entry = checker.decls.get(call.channel.name)
    if entry is None or entry[0] != "channel" or getattr(entry[1], "kind_name", None) != "tcp.connect":
        return
    found = _match_option(entry[1])
    if found is None:
        return
    value, where = found
    if value == "iso8583":
        mti = _literal_mti(call.assigns)
        keys = ISO_NETWORK_KEYS if mti is not None and mti.startswith("08") else ISO_KEYS
        how = "MTI class + DE 11 + DE 41" if keys == ISO_KEYS else "MTI class + DE 11 (network management)"
    elif isinstance(value, tuple) and value and all(isinstance(v, str) and v for v in value):
        keys = value
        how = "by field" + ("s " if len(value) > 1 else " ") + ", ".join(value)
    else:
        return                            # a bad match option is reported by the channel kind
    missing = [k for k in keys if not _sets(call.assigns, tuple(k.split(".")))]
    if not missing:
        return
    shown = ", ".join(_NAMES.get(k, f"`{k}`") if value == "iso8583" else f"`{k}`" for k in missing)
    first = missing[0]
    target = f'"{first}"' if first.isdigit() else first
    source = f'msg["{first}"]' if first.isdigit() else f"msg.{first}"
    checker.error(
        "E066",
        f"call `{call.name.name}` sends a request without the key field{'s' if len(missing) > 1 else ''} "
        f"{shown} that channel `{call.channel.name}` matches replies by",
        call.pos,
        f"channel `{call.channel.name}` has `match` at {where} ({how}): set every key field in the request, "
        f"e.g. `{target} = {source}`; a request without them could never be matched to its reply")
