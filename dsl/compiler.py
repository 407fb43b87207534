"""Expression trees -> Python closures ``f(scope) -> value``.

No source text is ever ``eval``-ed or ``exec``-ed: each IR node becomes a
small closure over its children's closures.  A route can only call
``dsl.functions.FUNCTIONS``; reading ``a.b`` only reads the key ``"b"`` of a
dict (never ``getattr``), so an expression cannot reach Python objects.

Semantics:
- a missing name, dict key or list index reads as null (None);
- numbers are ``int`` / ``Decimal`` (never float); ``/`` gives a Decimal;
- ``+`` with a string on either side concatenates (Decimals rendered plainly,
  null as "");
- ``and`` / ``or`` / ``not`` / ``if`` treat null, false, 0 and "" as false;
- ``x in table`` tests the table's keys, ``x in [..]`` the list, ``x in "..."`` a substring.
Every run-time failure raises ``EvalError`` carrying the position of the
failing sub-expression; one on a value of the received message that has the
wrong shape raises its ``InputError`` (the sender's error, ``dsl.inbound``),
decided when the node fails, from what was known when it was compiled.
"""
from __future__ import annotations

import contextvars
import json
import re
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal, DivisionByZero, Inexact, InvalidOperation
from typing import Any, Callable, Iterator, Mapping, Sequence

from dsl import ir
from dsl.types import plain_number_hint, show
from dsl import inbound
from dsl import money as _money
from dsl import timestamps as _ts
from dsl.money import EXACT as _EXACT, QUOTIENT as _QUOTIENT
from dsl.eval_error import EvalError, InputError
from dsl.functions import FUNCTIONS, FunctionError
from dsl.tables import Table

__all__ = ["EvalError", "compile_expr", "compile_assigns", "probing", "Scope", "Evaluator"]

Scope = Mapping[str, Any]
Evaluator = Callable[[Scope], Any]


# Coverage probes (``bsp test``): closures compiled inside ``with probing(fn):`` call ``fn(key)``
# for each branch they take (``then:FILE:LINE:COL`` / ``else:...`` of an ``if``).  Read once at
# compile time: closures compiled without a probe are the plain ones, at no cost.
_PROBE: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("bsp_probe", default=None)


@contextmanager
def probing(probe: Callable[[str], None]) -> Iterator[None]:
    token = _PROBE.set(probe)
    try:
        yield
    finally:
        _PROBE.reset(token)


def compile_expr(expr: ir.Expr) -> Evaluator:
    fn = _COMPILERS.get(type(expr))
    if fn is None:
        raise TypeError(f"not an expression node: {type(expr).__name__}")
    return fn(expr)


# ------------------------------------------------------------------ helpers

def _tname(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, Decimal):
        return "a decimal"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, Table):
        return "a table"
    if isinstance(v, Mapping):
        return "a record"
    if isinstance(v, datetime):
        return "a timestamp"
    if isinstance(v, date):
        return "a date"
    if isinstance(v, (bytes, bytearray)):
        return "bytes"
    return "a value"


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")
    return str(v)


def _shown_number(v: Any) -> str:
    """A number for a message: a hostile 5,000-digit one is not quoted whole."""
    text = str(v)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-12:]} ({len(text)} characters)"


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, Decimal)) and not isinstance(v, bool)


def truthy(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if _is_num(v):
        return v != 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) > 0
    return True


def _show(e: ir.Expr) -> str:
    """A short rendering of an expression for messages (``msg.amount``, ``"0"``): the checker's, so that a
    run-time error words an expression as ``bsp check`` does."""
    return show(e)


# ------------------------------------------------------------------ nodes

def _lit(e: ir.Lit) -> Evaluator:
    value = e.value
    if isinstance(value, float):  # never: the parser makes Decimals, but guard the contract
        value = Decimal(str(value))
    if e.type == "duration":      # 2h: seconds that know they are a duration (a timestamp moves by one only)
        value = _ts.duration(value)
    return lambda scope: value


def _name(e: ir.Name) -> Evaluator:
    name = e.name

    def run(scope: Scope) -> Any:
        return scope.get(name)
    return run


def _attr(e: ir.Attr) -> Evaluator:
    base = compile_expr(e.base)
    key = e.name
    pos = e.pos
    sent = inbound.path_of(e.base)          # not None: the base is read from the request

    def of(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, Table):
            raise EvalError(f"{_show(e.base)} is a table: read a row with {_show(e.base)}[KEY].{key}", pos)
        if isinstance(v, Mapping):
            return v.get(key)
        if sent is not None:
            raise inbound.error(sent, f"an object (with field {key!r})", v, pos)
        raise EvalError(f"cannot read field {key!r} of {_tname(v)} ({_show(e.base)})", pos)

    # a dict (the usual case) is a C-level check and one dict.get; Mapping is an ABC check
    if type(e.base) is ir.Name:             # msg.ref: the root read straight from the scope
        root = e.base.name

        def field(scope: Scope) -> Any:
            v = scope.get(root)
            return v.get(key) if isinstance(v, dict) else of(v)
        return field

    def run(scope: Scope) -> Any:
        v = base(scope)
        return v.get(key) if isinstance(v, dict) else of(v)
    return run


def _index_at(e: ir.Index) -> Evaluator:
    """``table[key at day]``: the row of an effective-dated table in force on ``day`` (``Table.at``)."""
    assert e.at is not None
    base, idx, day = compile_expr(e.base), compile_expr(e.index), compile_expr(e.at)
    pos = e.pos

    def run(scope: Scope) -> Any:
        v = base(scope)
        if not isinstance(v, Table):
            raise EvalError(f"`{_show(e.base)}[KEY at DATE]` reads a row of an effective-dated table; "
                            f"{_show(e.base)} is {_tname(v)}", pos)
        try:
            return v.at(idx(scope), day(scope))
        except EvalError as err:
            raise EvalError(err.message, pos) from None
    return run


def _index(e: ir.Index) -> Evaluator:
    if e.at is not None:
        return _index_at(e)
    base = compile_expr(e.base)
    idx = compile_expr(e.index)
    pos = e.pos
    sent, sent_key = inbound.path_of(e.base), inbound.path_of(e.index)     # read from the request?

    def of(v: Any, k: Any) -> Any:
        if isinstance(v, Table):
            try:
                return v[k]
            except EvalError as err:
                raise EvalError(err.message, pos) from None
        if v is None:
            return None
        if isinstance(v, (list, tuple)):
            if not _is_num(k) or k != int(k):
                if sent_key is not None:
                    raise inbound.error(sent_key, "a whole number (a list index)", k, pos)
                if sent is not None and isinstance(k, str):
                    raise inbound.error(sent, f"an object (with field {k!r})", v, pos)
                raise EvalError(f"a list index must be a whole number, got {_tname(k)} in {_show(e)}", pos)
            i = int(k)
            return v[i] if -len(v) <= i < len(v) else None
        if isinstance(v, Mapping):
            return v.get(_text(k))
        if sent is not None:
            raise inbound.error(sent, "a list" if _is_num(k) else "an object", v, pos)
        raise EvalError(f"cannot index {_tname(v)} ({_show(e.base)})", pos)

    if type(e.index) is ir.Lit and e.index.type == "string":
        # msg["11"]: a literal key reads a dict with one dict.get; anything else (a table, a list,
        # null) takes the general path, so results and errors are the same
        lit = e.index.value
        if type(e.base) is ir.Name:
            root = e.base.name

            def named(scope: Scope) -> Any:
                v = scope.get(root)
                return v.get(lit) if isinstance(v, dict) else of(v, lit)
            return named

        def keyed(scope: Scope) -> Any:
            v = base(scope)
            return v.get(lit) if isinstance(v, dict) else of(v, lit)
        return keyed

    def run(scope: Scope) -> Any:
        v = base(scope)
        return of(v, idx(scope))
    return run


def _unary(e: ir.Unary) -> Evaluator:
    operand = compile_expr(e.operand)
    pos = e.pos
    if e.op == "not":
        return lambda scope: not truthy(operand(scope))
    sent = inbound.path_of(e.operand)

    def neg(scope: Scope) -> Any:
        v = operand(scope)
        if not _is_num(v):
            if sent is not None:
                raise inbound.error(sent, "a number", v, pos)
            raise EvalError(f"cannot negate {_tname(v)} ({_show(e.operand)})", pos)
        r = _money.negate(v) if isinstance(v, Decimal) else -v     # exact; -0.00 is 0.00
        return _ts.duration(r) if isinstance(v, _ts.Duration) else r
    return neg


def _number_sent_as_text(a: Any, b: Any, e: ir.Binary) -> None:
    """``msg.amount + 1.50`` where the sender wrote ``"amount": "12"``: joined, that is ``"121.50"``, a
    figure ten times too large that a call's decimal field would read as money.  Text read straight from
    the request beside a number is taken for a number sent as text (the sender's error, InputError);
    a join on purpose starts with a string of the route's own (``"" + msg.prefix + msg.seq``), which is
    not a request path and is joined as before."""
    lp, rp = _sent(e)
    path, text, other = (lp, a, e.right) if isinstance(a, str) else (rp, b, e.left)
    if path is not None:
        raise InputError(f"{path or 'the request'}: expected a number, got {inbound.got(text)} (`+` beside "
                         f"{_show(other)} would join them as text, not add them; to join on purpose, start "
                         f"with a string: \"\" + ...)", e.pos, path=path)


def _arith(op: str, a: Any, b: Any, e: ir.Binary) -> Any:
    if op == "+" and (isinstance(a, str) or isinstance(b, str)):
        if isinstance(a, (Mapping, list, tuple)) or isinstance(b, (Mapping, list, tuple)):
            # never Python's rendering ("{'x': 1}") joined in: the sender's when it read the request
            v, path, side = (a, _sent(e)[0], e.left) if isinstance(a, (Mapping, list, tuple)) else \
                (b, _sent(e)[1], e.right)
            if path is not None:
                raise inbound.error(path, "text", v, e.pos)
            raise EvalError(f"cannot join text with {_tname(v)} ({_show(side)})", e.pos)
        if _is_num(a) or _is_num(b):
            _number_sent_as_text(a, b, e)
        return _text(a) + _text(b)
    if isinstance(a, datetime) or isinstance(b, datetime):
        timed = _timed(op, a, b, e)
        if timed is not None:
            return timed
    elif isinstance(a, date) or isinstance(b, date):
        dated = _dated(op, a, b, e)
        if dated is not None:
            return dated
    if not (_is_num(a) and _is_num(b)):
        raise inbound.arith(a, b, op, e, *_sent(e)) or EvalError(f"cannot apply {op} to {_tname(a)} ({_show(e.left)}) and {_tname(b)} ({_show(e.right)})",
                        e.pos)
    whole = isinstance(a, int) and isinstance(b, int)     # int with int: Python's exact int arithmetic
    try:
        # Decimal: exact, never the thread's context (28 digits, silently rounded): dsl/money.py
        if op == "+":
            if whole:
                return a + b
            r = _EXACT.add(a, b)
        elif op == "-":
            if whole:
                return a - b
            r = _EXACT.subtract(a, b)
        elif op == "*":
            if whole:
                return a * b
            r = _EXACT.multiply(a, b)
        elif op == "/":
            r = _QUOTIENT.divide(a, b)
        else:
            r = None
        if r is not None:
            r = r if r or not r.is_signed() else r.copy_abs()       # -0.00 is 0.00
            return _ts.duration(r) if _durable(op, a, b) else r
        if op == "%":
            if whole:
                if b == 0:
                    raise ZeroDivisionError
                return a % b
            return _money.remainder(a, b)
    except (ZeroDivisionError, DivisionByZero):
        raise EvalError(f"division by zero ({_show(e.right)} is 0)", e.pos) from None
    except (_money.TooLong, Inexact):
        raise EvalError(f"{_show(e)}: the exact result needs more than {_money.MAX_DIGITS:,} digits; money is "
                        f"never rounded silently (check the operands' sizes)", e.pos) from None
    except InvalidOperation:
        raise EvalError(f"invalid arithmetic: {_shown_number(a)} {op} {_shown_number(b)}", e.pos) from None
    raise AssertionError(op)


def _durable(op: str, a: Any, b: Any) -> bool:
    """Whether ``a op b`` of numbers is a duration (types.py's rule): 2h + 30m, 2h * n, n * 2h, 2h / n."""
    da, db = isinstance(a, _ts.Duration), isinstance(b, _ts.Duration)
    return (op in ("+", "-") and da and db) or (op == "*" and da != db) or (op == "/" and da and not db)


def _not_duration(op: str, v: Any, side: ir.Expr, e: ir.Binary, what: str, unit: str) -> EvalError:
    """``now() + msg.n``: a plain number beside a timestamp (or a date) is not taken for seconds."""
    return EvalError(f"`{op}` beside {what} needs a duration: {_show(side)} is {_tname(v)} ({_shown_number(v)}), "
                     f"not a duration ({plain_number_hint(side, unit, 'say its unit')})", e.pos)


def _dated(op: str, a: Any, b: Any, e: ir.Binary) -> Any:
    """``d + 3d`` / ``3d + d`` / ``d - 1d``: a date (whole days only); None: not one of these."""
    try:
        if op in ("+", "-") and isinstance(a, date) and _is_num(b):
            if not isinstance(b, _ts.Duration):
                raise _not_duration(op, b, e.right, e, "a date", "d")
            return _ts.shift_date(a, b, 1 if op == "+" else -1)
        if op == "+" and _is_num(a) and isinstance(b, date):
            if not isinstance(a, _ts.Duration):
                raise _not_duration(op, a, e.left, e, "a date", "d")
            return _ts.shift_date(b, a, 1)
    except _ts.TimeError as exc:
        raise EvalError(str(exc), e.pos) from None
    return None


def _timed(op: str, a: Any, b: Any, e: ir.Binary) -> Any:
    """``ts + 2h`` / ``2h + ts`` / ``ts - 2h``: a timestamp; ``ts - ts``: the seconds between (a duration);
    None: not one of these (the caller says what cannot be applied)."""
    if op in ("+", "-") and isinstance(a, datetime) and _is_num(b) and not isinstance(b, _ts.Duration):
        raise _not_duration(op, b, e.right, e, "a timestamp", "s")
    if op == "+" and _is_num(a) and isinstance(b, datetime) and not isinstance(a, _ts.Duration):
        raise _not_duration(op, a, e.left, e, "a timestamp", "s")
    try:
        if op == "+" and isinstance(a, datetime) and _is_num(b):
            return _ts.shift(a, b, 1)
        if op == "+" and _is_num(a) and isinstance(b, datetime):
            return _ts.shift(b, a, 1)
        if op == "-" and isinstance(a, datetime) and _is_num(b):
            return _ts.shift(a, b, -1)
        if op == "-" and isinstance(a, datetime) and isinstance(b, datetime):
            return _ts.duration(_ts.between(a, b))
    except _ts.TimeError as exc:
        raise EvalError(str(exc), e.pos) from None
    return None


def _compare(op: str, a: Any, b: Any, e: ir.Binary) -> bool:
    if op == "==":
        return _eq(a, b)
    if op == "!=":
        return not _eq(a, b)
    ok = (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)) or \
         (isinstance(a, date) and isinstance(b, date) and type(a) is type(b))
    if not ok:
        raise inbound.compare(a, b, e, *_sent(e)) or EvalError(f"cannot compare {_tname(a)} ({_show(e.left)}) {op} {_tname(b)} ({_show(e.right)})",
                        e.pos)
    if isinstance(a, datetime) and _ts.aware(a) != _ts.aware(b):
        raise EvalError(str(_ts.mixed(a, b, "order")), e.pos)
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_num(a) and _is_num(b):
        return a == b
    if type(a) is not type(b) and not (isinstance(a, Mapping) and isinstance(b, Mapping)) \
            and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
        return False
    return a == b


def _contains(a: Any, b: Any, e: ir.Binary) -> bool:
    if isinstance(b, Table):
        return a in b
    if isinstance(b, (list, tuple)):
        return any(_eq(a, x) for x in b)
    if isinstance(b, Mapping):
        return _text(a) in b
    if isinstance(b, str):
        return _text(a) in b
    if b is None:
        return False
    sent = inbound.path_of(e.right)
    if sent is not None:
        raise inbound.error(sent, "a list or text", b, e.pos)
    raise EvalError(f"`in` needs a list, a table or a string on its right, got {_tname(b)} ({_show(e.right)})",
                    e.pos)


def _sent(e: ir.Binary) -> tuple[str | None, str | None]:
    """The request paths of ``e``'s operands (a failing node only: never on the success path)."""
    return inbound.path_of(e.left), inbound.path_of(e.right)


def _binary(e: ir.Binary) -> Evaluator:
    left = compile_expr(e.left)
    right = compile_expr(e.right)
    op = e.op
    if op == "and":
        return lambda scope: truthy(left(scope)) and truthy(right(scope))
    if op == "or":
        return lambda scope: truthy(left(scope)) or truthy(right(scope))
    if op in ("+", "-", "*", "/", "%"):
        return lambda scope: _arith(op, left(scope), right(scope), e)
    if op in ("==", "!=", "<", "<=", ">", ">="):
        return lambda scope: _compare(op, left(scope), right(scope), e)
    if op == "in":
        return lambda scope: _contains(left(scope), right(scope), e)
    if op == "not_in":
        return lambda scope: not _contains(left(scope), right(scope), e)
    raise ValueError(f"unknown operator {op!r}")


def _cond(e: ir.Cond) -> Evaluator:
    test, then, other = compile_expr(e.test), compile_expr(e.then), compile_expr(e.otherwise)
    probe = _PROBE.get()
    if probe is None:
        return lambda scope: then(scope) if truthy(test(scope)) else other(scope)
    # compiled under ``probing`` (bsp test coverage): report which arm ran
    k_then, k_else = f"then:{e.pos}", f"else:{e.pos}"

    def probed(scope: Scope) -> Any:
        if truthy(test(scope)):
            probe(k_then)
            return then(scope)
        probe(k_else)
        return other(scope)
    return probed


def _call(e: ir.Call) -> Evaluator:
    fn = FUNCTIONS.get(e.func)
    pos = e.pos
    if fn is None:
        raise EvalError(f"unknown function {e.func!r}", pos)
    args = tuple(compile_expr(a) for a in e.args)
    # number(msg.amount), round(msg.amount, 2), matches(msg.ref, "..."): a reader of the request's value, its
    # other arguments literals (checked by `bsp check`): failing, it is the sender's value that cannot be read
    reads = e.func in inbound.READERS or e.func in inbound.BOUNDED
    sent = inbound.path_of(e.args[0]) if reads and e.args and all(type(a) is ir.Lit for a in e.args[1:]) else None
    # trim(msg.beneficiary.name): the sender's object or list where text is read
    as_text = inbound.path_of(e.args[0]) if e.func in inbound.TEXT_READERS and e.args else None

    def run(scope: Scope) -> Any:
        values = [a(scope) for a in args]
        try:
            return fn(*values)
        except EvalError as err:
            raise EvalError(err.message, pos) from None
        except FunctionError as err:
            if sent is not None:
                raise inbound.InputError(f"{sent or 'the request'}: {err}", pos, path=sent) from None
            if as_text is not None and isinstance(values[0], (Mapping, list, tuple)):
                raise inbound.error(as_text, "text", values[0], pos) from None
            raise EvalError(str(err), pos) from None
        except (TypeError, ValueError, ArithmeticError) as err:
            raise EvalError(f"{e.func}(): {err}", pos) from None
    return run


def _list(e: ir.ListExpr) -> Evaluator:
    items = tuple(compile_expr(x) for x in e.items)
    return lambda scope: [f(scope) for f in items]


_COMPILERS: dict[type, Callable[[Any], Evaluator]] = {
    ir.Lit: _lit, ir.Name: _name, ir.Attr: _attr, ir.Index: _index, ir.Unary: _unary,
    ir.Binary: _binary, ir.Cond: _cond, ir.Call: _call, ir.ListExpr: _list,
}


# ------------------------------------------------------------------ message bodies

_PART = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\.|\[("(?:[^"\\]|\\.)*")\]')


def split_path(path: str) -> tuple[str | int, ...]:
    """``lines[0].amount`` -> ("lines", 0, "amount")."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PART.match(path, pos)
        if m is None:
            raise ValueError(f"bad field path {path!r} at {pos}")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        elif m.group(3) is not None:
            parts.append(json.loads(m.group(3)))
        pos = m.end()
    return tuple(parts)


def _put(root: dict, parts: Sequence[str | int], value: Any, path: str, pos: ir.Pos | None) -> None:
    node: Any = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = None if last else parts[i + 1]
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(part, int):
            if not isinstance(node, list):
                raise EvalError(f"{path}: cannot index a record with [{part}]", pos)
            while len(node) <= part:
                node.append(None)
            if last:
                node[part] = value
            else:
                if node[part] is None:
                    node[part] = empty
                node = node[part]
        else:
            if not isinstance(node, dict):
                raise EvalError(f"{path}: cannot set field {part!r} on a list", pos)
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = empty
                node = node[part]


def _copy_source(e: ir.Expr) -> tuple[str, str] | None:
    """``msg["11"]`` / ``msg.ref`` -> ("msg", "11") / ("msg", "ref"): a field copied from a scope root."""
    if type(e) is ir.Index and type(e.base) is ir.Name and type(e.index) is ir.Lit and e.index.type == "string" \
            and e.at is None:
        return e.base.name, e.index.value
    if type(e) is ir.Attr and type(e.base) is ir.Name:
        return e.base.name, e.name
    return None


def compile_assigns(assigns: Sequence[ir.Assign]) -> Callable[[Scope], dict]:
    """``{ a.b = x  lines[0].amount = y }`` -> f(scope) building the nested dict.

    A flat body (every path one name: ``ref = ...``, ``"11" = ...``) builds its dict
    directly; its field copies (``"11" = msg["11"]``, ``ref = msg.ref``) read each root
    once and take one ``dict.get`` each.  Nested paths go through ``_put``.
    """
    plan = [(split_path(a.path), compile_expr(a.value), a.path, a.pos) for a in assigns]
    if all(len(parts) == 1 and isinstance(parts[0], str) for parts, _, _, _ in plan):
        return _flat_assigns(assigns, plan)

    def run(scope: Scope) -> dict:
        out: dict = {}
        for parts, fn, path, pos in plan:
            _put(out, parts, fn(scope), path, pos)
        return out
    return run


def _flat_assigns(assigns: Sequence[ir.Assign], plan: list) -> Callable[[Scope], dict]:
    # (name, root or None, key, evaluator); a repeated name keeps its first place and its last value,
    # as _put does
    steps = []
    for a, (parts, fn, _, _) in zip(assigns, plan):
        src = _copy_source(a.value)
        steps.append((parts[0], src[0], src[1], fn) if src is not None else (parts[0], None, None, fn))
    roots = tuple(dict.fromkeys(r for _, r, _, _ in steps if r is not None))

    def general(scope: Scope) -> dict:
        out: dict = {}
        for name, _, _, fn in steps:
            out[name] = fn(scope)
        return out

    if not roots:
        return general
    if len(roots) == 1:
        only = roots[0]

        def one_root(scope: Scope) -> dict:
            src = scope.get(only)
            if not isinstance(src, dict):
                return general(scope)
            get = src.get
            out: dict = {}
            for name, root, key, fn in steps:
                out[name] = fn(scope) if root is None else get(key)
            return out
        return one_root

    def many_roots(scope: Scope) -> dict:
        srcs = {}
        for r in roots:
            v = scope.get(r)
            if not isinstance(v, dict):
                return general(scope)
            srcs[r] = v
        out: dict = {}
        for name, root, key, fn in steps:
            out[name] = fn(scope) if root is None else srcs[root].get(key)
        return out
    return many_roots
