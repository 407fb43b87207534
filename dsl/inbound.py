"""Whose error is an expression's failure: the sender's (a value of the received message has the wrong
shape) or the route's.

A route expression that fails at run time because a value the sender chose is not of the shape the
expression needs (text where the route reads a field of an object, a list indexed by a name, text compared
with a number, arithmetic on text, a field left out) is the sender's error: the compiler raises
``InputError`` (an ``EvalError``), which the engine answers as a rejected request, code 30
(docs/language.md#what-a-failure-is). Anything else stays ``EvalError``: the route's own failure
(``internal``, 96).

The rule is static and costs nothing when the expression succeeds: the compiler asks ``path_of`` once per
node while compiling, and only a node that fails looks at the answer. A value is the sender's when the
operand it came from is a path read from the request:

* ``msg`` and its fields and items (``msg.beneficiary.name``, ``msg.items[0]``, ``msg["11"]``): the
  decoded request;
* ``http.query.NAME``, ``http.params.NAME``, ``http.headers["name"]``: what an HTTP client sent.

A value the route built is the route's: a literal, a table cell, a ``let`` (even ``let b = msg.beneficiary``:
``b.name`` failing stays internal, read ``msg.beneficiary.name``), a call's answer (a counterpart's), a
function's result. When both sides of an operator are involved, the sender is blamed only when the value
that cannot be used is the sender's and the route's side is of a sound shape (comparing a text field with
a number literal is the sender's; comparing a JSON number with a table cell, which is always text, is the
route's).
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from dsl import ir
from dsl.eval_error import InputError
from dsl.types import show

ROOTS_HTTP = ("query", "params", "headers")   # http.query / http.params / http.headers: the client's
# functions that read a value as a number or a date: one failing on the sender's value is the sender's
READERS = frozenset({"number", "round", "abs", "parse_date"})
# functions that refuse a value too long to work on (matches: a text over 1,000 characters, never answered
# false): the sender's too when it is the request's (their result is a test, no value read from it)
BOUNDED = frozenset({"matches"})
# functions that read their first argument as text: an object or a list the sender put there is the sender's
# ("beneficiary.name: expected text, got an object", 30), never Python's rendering of it sent on
TEXT_READERS = frozenset({"trim", "upper", "lower", "substr", "pad_left", "pad_right", "replace"})
_TEXT_RESULTS = frozenset({"trim", "upper", "lower", "pad_left", "pad_right", "substr", "replace",
                           "format_date", "mask_pan", "uuid", "http_header"})


def path_of(e: ir.Expr) -> str | None:
    """The request path ``e`` reads (``beneficiary.name``; ``""`` for ``msg`` itself), or None when ``e`` is
    not a path read from the request."""
    if type(e) is ir.Name:
        return "" if e.name == "msg" else None
    if type(e) is ir.Attr:
        if type(e.base) is ir.Attr and type(e.base.base) is ir.Name and e.base.base.name == "http" \
                and e.base.name in ROOTS_HTTP:
            return f"http.{e.base.name}.{e.name}"
        base = path_of(e.base)
        if base is None:
            return None
        return f"{base}.{e.name}" if base else e.name
    if type(e) is ir.Index:
        if type(e.base) is ir.Attr and type(e.base.base) is ir.Name and e.base.base.name == "http" \
                and e.base.name in ROOTS_HTTP:
            return f"http.{e.base.name}[{show(e.index)}]"
        base = path_of(e.base)
        if base is None:
            return None
        if type(e.index) is ir.Lit and e.index.type == "string":     # msg["11"]: field 11
            return f"{base}.{e.index.value}" if base else str(e.index.value)
        return f"{base or 'msg'}[{show(e.index)}]"
    return None


def kind_of(v: Any) -> str:
    """The kind of ``v`` as a sender knows it from JSON: text, a number, an object ..."""
    if v is None:
        return "nothing (absent or null)"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, Decimal)):
        return "a number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, Mapping):
        return "an object"
    if isinstance(v, date):
        return "a date"
    return "a value"


def got(v: Any) -> str:
    """``text 'ACME'``, ``a number (5)``, ``boolean true``, ``a list``: what came, quoted when short."""
    if isinstance(v, str):
        shown = repr(v)
        if len(shown) > 40:
            shown = f"{shown[:16]}...' ({len(v)} characters)"
        return f"text {shown}"
    if isinstance(v, bool):
        return f"boolean {'true' if v else 'false'}"
    if isinstance(v, (int, Decimal)):
        text = format(v, "f") if isinstance(v, Decimal) else str(v)
        return f"a number ({text if len(text) <= 24 else text[:12] + '...'})"
    if isinstance(v, (list, tuple)):
        return f"a list of {len(v)}"
    return kind_of(v)


def error(path: str, expected: str, v: Any, pos: ir.Pos | None) -> InputError:
    """``beneficiary: expected an object, got text 'ACME'``."""
    return InputError(f"{path or 'the request'}: expected {expected}, got {got(v)}", pos, path=path)


def _sound(v: Any) -> str | None:
    """The kind a value can be compared as (``a number``, ``text``, ``a date``), or None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, Decimal)):
        return "a number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, date):
        return "a date"
    return None


def _route_text(e: ir.Expr) -> bool:
    """``e`` is text by the route's own writing (a literal, a text function's result), not a table cell."""
    return (type(e) is ir.Lit and e.type == "string") or (type(e) is ir.Call and e.func in _TEXT_RESULTS)


def compare(a: Any, b: Any, e: ir.Binary, lp: str | None, rp: str | None) -> InputError | None:
    """The sender's error when ``a op b`` cannot be compared, or None (the route's)."""
    if lp is None and rp is None:
        return None
    ka, kb = _sound(a), _sound(b)
    if lp is not None and rp is not None:                 # both from the request
        if ka is None:
            return error(lp, kb or "a number or text", a, e.pos)
        return error(rp, ka, b, e.pos)
    mine, other, path, other_expr = (a, b, lp, e.right) if lp is not None else (b, a, rp, e.left)
    k_mine, k_other = (ka, kb) if lp is not None else (kb, ka)
    if k_other is None:
        return None                         # the route's side cannot be compared either: the route's error
    if k_mine is None or k_other == "a number" or (k_other == "text" and _route_text(other_expr)):
        return error(path, k_other, mine, e.pos)
    return None                             # e.g. a JSON number against a table cell (text): the route's


def arith(a: Any, b: Any, op: str, e: ir.Binary, lp: str | None, rp: str | None) -> InputError | None:
    """The sender's error when ``a op b`` has an operand that is not a number, or None: every operand that
    is not a number must be the sender's."""
    bad = [(v, p) for v, p in ((a, lp), (b, rp)) if not (isinstance(v, (int, Decimal)) and not isinstance(v, bool))]
    if not bad or any(p is None for _, p in bad):
        return None
    v, p = bad[0]
    return error(p, "a number", v, e.pos)
