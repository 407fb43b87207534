"""``bsp check`` of ``limit NAME { key = ..  max = ..  per = "day"  code = ".."  text = ".." }`` (E117-E121, W013).

The option names themselves (unknown, missing ``key`` / ``max``) are checked as any step kind's are
(E043, E044); here: what only a running total needs (docs/language.md#limit-a-running-total-with-a-cap).
"""
from __future__ import annotations

from typing import Any

from dsl import ast as A
from dsl.placement import placement
from dsl import ir

LITERALS = ("per", "code", "text")


def check_limit(chk: Any, s: A.PluginStep, r: A.RouteAst) -> None:
    name = s.name.name if s.name is not None else None
    if name is None:
        chk.error("E117", "`limit` needs a name: the total it counts into", s.kind.pos,
                  "write `limit investor_day { ... }`: routes that name one total count into it together")
        return
    where = f"`limit {name}`"
    at = placement(s, r)
    if at.in_on_error:
        chk.error("E118", f"{where} inside `on error`: a limit is checked before a deal is done, not after it "
                  f"failed", s.kind.pos, "move it into the route's steps, after the `deal` step")
        return
    deal = at.deal
    if deal is None:
        chk.error("E118", f"{where} comes before the route's `deal` step (or the route has none): it counts the "
                  f"deal's amount and currency", s.kind.pos,
                  "put the limit after `deal TYPE { ref = ...  amount = ...  currency = ... }`")
        return
    call = at.call
    if call is not None:
        chk.error("E119", f"{where} comes after call `{call.name.name}`: by then the money may have moved, and a "
                  f"deal the limit refuses would leave that call standing", s.kind.pos,
                  "put the limit before the route's first call (right after the `deal` step)")
    given = {str(a.parts[0]): a for a in s.assigns}
    for opt in LITERALS:
        a = given.get(opt)
        if a is None:
            continue
        v = a.value
        if not (isinstance(v, ir.Lit) and v.type == "string"):
            chk.error("E120", f"{where}: `{opt}` must be a quoted literal", v.pos,
                      'per = "day"; code = "61"; text = "daily limit exceeded": they are fixed when the file loads')
        elif opt == "per" and v.value != "day":
            chk.error("E120", f"{where}: per = \"{v.value}\": the only period is \"day\" (the business day of the "
                      f"deployment's business_day)", v.pos, 'write per = "day", or leave `per` out for a total '
                      'that runs on (an issue\'s quota)')
    m = given.get("max")
    if m is not None and isinstance(m.value, ir.Lit) and m.value.type not in ("int", "decimal"):
        chk.error("E120", f"{where}: max must be a number (a decimal or a table's column), got a "
                  f"{m.value.type}", m.value.pos, "write max = 1000000.00, or max = limits[msg.investor_id].daily")
    per = given.get("per")
    period = per.value.value if per is not None and isinstance(per.value, ir.Lit) else None
    seen = getattr(chk, "_limit_periods", None)
    if seen is None:
        seen = chk._limit_periods = {}
    first = seen.setdefault(name, (period, s.kind.pos))
    if first[0] != period:
        chk.error("E121", f"total `{name}` is counted {_per(period)} here and {_per(first[0])} at {first[1]}: "
                  f"routes that count into one total must agree on its period", s.kind.pos,
                  "give one of them another name, or the same `per`")
    if not any(a.parts[0] == "key" for a in deal.assigns):
        chk.warn("W013", f"{where}: deal `{deal.type.name}` has no `key`: a request sent again (after a "
                 f"time-out) is a new deal and counts a second time", s.kind.pos,
                 "give the deal a business key (`key = msg.ref`): a repeat is then answered as a duplicate and "
                 "its amount is counted once")


def _per(period: str | None) -> str:
    return f"per {period}" if period else "without a period (it runs on)"
