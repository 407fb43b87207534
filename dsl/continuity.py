"""``bsp check`` of ``continuity NAME { key = ..  statement = .. }`` (E127, E128).

The option names themselves (unknown, missing ``key`` / ``statement``) are checked as any step kind's are
(E043, E044); here: where the step may stand (docs/language.md#continuity-statements-that-follow-on).
"""
from __future__ import annotations

from typing import Any

from dsl import ast as A
from dsl.placement import placement


def check_continuity(chk: Any, s: A.PluginStep, r: A.RouteAst) -> None:
    name = s.name.name if s.name is not None else None
    if name is None:
        chk.error("E127", "`continuity` needs a name: the chain its accounts' statements follow", s.kind.pos,
                  "write `continuity statements { key = ...  statement = ... }`: routes that name one chain "
                  "check the same accounts' statements together (an MT940 route and a camt.053 route of one bank)")
        return
    where = f"`continuity {name}`"
    at = placement(s, r)
    if at.in_on_error:
        chk.error("E128", f"{where} inside `on error`: a statement is checked against its account's chain before "
                  f"it is posted, not after it failed", s.kind.pos,
                  "move it into the route's steps, after the `deal` step")
        return
    deal = at.deal
    if deal is None:
        chk.error("E128", f"{where} comes before the route's `deal` step (or the route has none): the chain moves "
                  f"on when the statement's deal commits, and a statement sent again is a duplicate of its deal, "
                  f"not a repeat in the chain", s.kind.pos,
                  "put it after `deal TYPE { ref = ...  key = ... }`")
        return
    call = at.call
    if call is not None:
        chk.error("E128", f"{where} comes after call `{call.name.name}`: the statement is posted by then, so a "
                  f"route that refuses a break (validate {{ {name}.ok else reject ... }}) could not", s.kind.pos,
                  "put it before the route's first call (right after the `deal` step)")
