"""The end-of-file message of a ``file watch`` channel (``end_message = true``): which routes take it, and
the checks of ``bsp check``.

A channel with ``end_message = true`` delivers, once a file has been wholly run (every record's deal
final) or refused as a whole, ONE more message to its routes: the file's summary (``file.end`` true,
``file.status``, ``file.reason``, ``file.committed`` ...: ``engine.channels.file_end``).  It is offered only
to the routes whose ``when`` reads ``file.end`` (``receive from payroll_in when file.end``), so a route
reading the file's records as a CSV format never sees it; for a record ``file.end`` is false.

Checks: E146 a channel with ``end_message = true`` none of whose routes takes the message (it would be
recorded as UNROUTED); E147 a route taking it with ``as FORMAT`` of a format that cannot read its JSON
summary; W029 a route reading ``file.end`` on a channel without ``end_message = true`` (never true).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from dsl import ast as A
from dsl.ir import Attr, Name

Report = Callable[..., None]     # (code, message, pos, help)

# what a route reads under ``file`` in the end message, besides a record's fields (engine.channels.file_end)
END_FIELDS = ("end", "status", "reason", "committed", "rejected", "failed", "duplicate", "archived", "trailer")


def reads_file_end(expr: Any) -> bool:
    """Whether the expression ``expr`` (a route's ``when``) reads ``file.end``."""
    if expr is None:
        return False
    if isinstance(expr, Attr) and expr.name == "end" and isinstance(expr.base, Name) and expr.base.name == "file":
        return True
    if dataclasses.is_dataclass(expr):
        for f in dataclasses.fields(expr):
            v = getattr(expr, f.name)
            items = v if isinstance(v, (list, tuple)) else (v,)
            if any(dataclasses.is_dataclass(i) and reads_file_end(i) for i in items):
                return True
    return False


def end_route(route: A.RouteAst) -> A.Receive | None:
    """The route's ``receive`` when its ``when`` reads ``file.end`` (the route takes end messages), else None."""
    recv = next((s for s in route.body if isinstance(s, A.Receive)), None)
    return recv if recv is not None and reads_file_end(recv.when) else None


def _is_on(value: Any) -> bool:
    return value is True


def check_end_messages(routes: Iterable[A.RouteAst], decls: dict[str, tuple[str, Any]], channels: dict[str, Any],
                       formats: dict[str, Any], error: Report, warn: Report) -> None:
    """``channels``, ``formats``: the checker's resolved declarations (their options and kinds)."""
    routes = list(routes)
    taken: set[str] = set()
    for r in routes:
        recv = end_route(r)
        if recv is None:
            continue
        chan = recv.channel.name
        decl = decls.get(chan)
        if decl is None or decl[0] != "channel":
            continue
        taken.add(chan)
        ast = decl[1]
        if ast.kind_name != "file.watch":
            continue
        if not _is_on(_option(channels, chan, "end_message")):
            warn("W029", f"route `{r.name.name}` takes the end-of-file message of channel `{chan}` (its `when` "
                         f"reads file.end), but the channel sends none: file.end is never true, the route never runs",
                 recv.when.pos if getattr(recv.when, "pos", None) is not None else recv.pos,
                 f"give channel `{chan}` the option `end_message = true` (docs/channels.md#the-end-of-file-message)")
        if recv.format is not None:
            fmt = formats.get(recv.format.name)
            kind = getattr(fmt, "kind", None)
            if kind is not None and kind != "json":
                error("E147", f"route `{r.name.name}` takes the end-of-file message of channel `{chan}` as format "
                              f"`{recv.format.name}` ({kind}): the message is the file's summary in JSON, not a "
                              f"record, so a {kind} format cannot read it and the route never runs",
                      recv.format.pos,
                      f"drop `as {recv.format.name}` and read the summary as file.name, file.status, file.reason, "
                      f"file.records, file.committed, file.rejected, file.failed, file.duplicate")
    for name, (cat, ast) in decls.items():
        if cat != "channel" or ast.kind_name != "file.watch" or not _is_on(_option(channels, name, "end_message")):
            continue
        if name not in taken:
            error("E146", f"channel `{name}` has `end_message = true` but none of its routes takes the end-of-file "
                          f"message: each file's would be recorded as UNROUTED",
                  ast.name.pos,
                  f"add a route `receive from {name} when file.end` (it reads file.name, file.status, file.reason, "
                  f"file.committed ...), or drop end_message")


def _option(channels: dict[str, Any], name: str, key: str) -> Any:
    decl = channels.get(name)
    return (getattr(decl, "options", None) or {}).get(key) if decl is not None else None
