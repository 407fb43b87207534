"""W009: one deal type recorded by routes of different files.

Reports, the ledger's queries and ``bsp deals`` group deals by their type (``deal PAYMENT { ... }``).  Two
routes of one file recording the same type are one service's one business taken from two inputs (an MT103
and a pacs.008 route recording REMITTANCE_CROSS_BORDER); the same type from routes of different files is
most often two services that picked the same word for different business, whose deals a report then adds
up as one.  The checker warns at each later place, naming the first.
"""
from __future__ import annotations

from typing import Callable, Iterable

from dsl import ast as A

Warn = Callable[..., None]     # (code, message, pos, help)


def deals_in(body) -> Iterable[A.Deal]:
    """The ``deal`` steps of a route's body, those of its ``on error`` blocks too."""
    for s in body:
        if isinstance(s, A.Deal):
            yield s
        elif isinstance(s, A.OnErrorBlock):
            yield from deals_in(s.body)


def shared_deal_types(routes: Iterable[A.RouteAst], warn: Warn) -> None:
    first: dict[str, tuple[A.RouteAst, A.Deal]] = {}     # type -> where it is first recorded
    warned: set[tuple[str, str]] = set()                  # (type, file): one warning per file
    for r in routes:
        for d in deals_in(r.body):
            name = d.type.name
            if name not in first:
                first[name] = (r, d)
                continue
            r0, d0 = first[name]
            file = d.type.pos.file
            if file == d0.type.pos.file or (name, file) in warned:
                continue
            warned.add((name, file))
            warn("W009", f"deal type `{name}` is recorded by route `{r.name.name}` here and by route "
                 f"`{r0.name.name}` at {d0.type.pos}, in another file: reports group deals by type, so both "
                 f"routes' deals count as one business", d.type.pos,
                 f"if they are different business, give each its own type (e.g. `{name}_"
                 f"{r.name.name.upper()}` here, `{name}_{r0.name.name.upper()}` at route `{r0.name.name}`), or "
                 f"rename only the one you are adding: the warning is told at the route in the later file, "
                 f"whichever was there first; if they are the same business, record it from routes of one file")
