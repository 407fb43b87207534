"""``bsp check``: a deal's amount computed with ``*`` or ``/`` and not rounded (W014).

A recorded amount has no more decimals than its currency (docs/money.md#the-ledger): the `deal` step refuses
100.5 JPY or 12.345 EUR (13).  A product or quotient (``msg.units * nav``, ``msg.amount / 3``, an FX
conversion) has more decimals than its inputs, so one recorded without ``round(...)`` is refused for some
input.  Seen through the route's ``let`` names defined before the deal; a sum or difference of rounded or
received amounts, a function's result (``number``, ``from_minor``, ``coalesce``) and ``x - x % step`` are not
flagged: their decimals are their inputs'.
"""
from __future__ import annotations

from typing import Any

from dsl import ast as A
from dsl import ir
from dsl.types import show

ROUNDING = frozenset({"round"})


def _text(e: Any) -> str:
    """An expression as written, for the message: ``msg.units * nav``."""
    if isinstance(e, ir.Binary):
        return f"{_text(e.left)} {e.op} {_text(e.right)}"
    if isinstance(e, ir.Unary) and e.op == "-":
        return f"-{_text(e.operand)}"
    if isinstance(e, ir.Call) and len(e.args) <= 3:
        return f"{e.func}({', '.join(_text(a) for a in e.args)})"
    return show(e)


def _unrounded(e: Any, lets: dict[str, ir.Expr], seen: frozenset[str] = frozenset()) -> ir.Expr | None:
    """The ``*`` or ``/`` that ``e`` records without rounding, or None."""
    if isinstance(e, ir.Binary):
        if e.op in ("*", "/"):
            return e
        if e.op in ("+", "-"):
            return _unrounded(e.left, lets, seen) or _unrounded(e.right, lets, seen)
        return None
    if isinstance(e, ir.Unary) and e.op == "-":
        return _unrounded(e.operand, lets, seen)
    if isinstance(e, ir.Cond):
        return _unrounded(e.then, lets, seen) or _unrounded(e.otherwise, lets, seen)
    if isinstance(e, ir.Call) and e.func == "abs" and e.args:
        return _unrounded(e.args[0], lets, seen)
    if isinstance(e, ir.Name) and e.name in lets and e.name not in seen:
        return _unrounded(lets[e.name], lets, seen | {e.name})
    return None


def check_deal_amount(chk: Any, deal: A.Deal, r: A.RouteAst) -> None:
    amount = next((a for a in deal.assigns if a.parts == ("amount",)), None)
    if amount is None:
        return
    lets: dict[str, ir.Expr] = {}
    for s in r.body:
        if s is deal:
            break
        if isinstance(s, A.Let):
            lets[s.name.name] = s.value
    found = _unrounded(amount.value, lets)
    if found is None:
        return
    chk.warn("W014", f"deal `{deal.type.name}`: amount `{_text(amount.value)}` is computed with `{found.op}` "
             f"(`{_text(found)}`) and not rounded: a recorded amount with more decimals than its currency has "
             f"(100.5 JPY, 12.345 EUR) is refused (13)", amount.value.pos,
             "round it where the business rule says so: `round(" + _text(found) + ", minor_units(ccy))` "
             "(half up), or cut it: `x - x % 0.01` (docs/money.md)")
