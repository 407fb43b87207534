"""W012: a route on a ``file watch`` channel whose deal has no key.

``file watch`` notes in its index how far each file ran, after each batch's deals are stored; a crash
(SIGKILL, a power cut) in the instant between the two runs that batch again at the restart (about one
crash in 25 with batches of 1,000: docs/channels.md#file-watch).  A deal ``key`` on the record's own
reference answers such a repeated record from the ledger (status duplicate); without one each is a deal
twice: a payment paid twice.  The checker warns at the route, once per route.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from dsl import ast as A
from dsl.dealtypes import deals_in
from dsl.fileend import end_route

Warn = Callable[..., None]     # (code, message, pos, help)


def unkeyed_file_routes(routes: Iterable[A.RouteAst], decls: dict[str, tuple[str, Any]], warn: Warn) -> None:
    for r in routes:
        recv = next((s for s in r.body if isinstance(s, A.Receive)), None)
        if recv is None:
            continue
        decl = decls.get(recv.channel.name)
        if decl is None or decl[0] != "channel" or decl[1].kind_name != "file.watch":
            continue
        if end_route(r) is not None:      # the end-of-file message: one per file, its own once (dsl.fileend)
            continue
        deals = list(deals_in(r.body))
        if any(a.parts == ("key",) for d in deals for a in d.assigns):
            continue
        what = f"its deal `{deals[0].type.name}` has no `key`" if deals else "it records its deals without a `key`"
        warn("W012", f"route `{r.name.name}` receives from file watch channel `{recv.channel.name}` and {what}: a "
                     f"crash in the middle of a file runs the batch it was in again at the restart (up to the "
                     f"channel's `batch` records, 1,000 unless set), each then a deal twice",
             (deals[0].pos if deals else r.name.pos),
             "give the deal a key on the record's own reference (e.g. `key = msg.ref`, or the sender's id and "
             "the reference): a repeated record is then answered from the ledger (status duplicate)")
