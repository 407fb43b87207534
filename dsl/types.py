"""Static types of route expressions, for ``bsp check`` (E073, E074, E075, W004).

A type is a word: ``string``, ``integer``, ``decimal``, ``number`` (an integer
or a decimal, not known which), ``date``, ``timestamp``, ``bool``, ``list`` or
``null``; ``None`` means *unknown* and never yields a diagnostic.  Types come
from literals, from the typed fields of record formats (``fixed`` / ``csv``
field blocks), from the function library's results and from ``let`` names
bound to a typed value.  Anything else (JSON without a schema, table cells,
``coalesce``, ``env``, ``lookup`` ...) is unknown.

The rules follow the evaluator (``dsl.compiler``) and the record codecs
(``formats.fixed``, ``formats.csv_codec``), and only refuse what fails or can
never hold at run time:

* ``+`` with a string on either side joins text (``"fee " + 0.50``), so it is
  refused only when the string is a literal that reads as a number
  (``msg.amount + "1.00"`` gives "120.501.00"); ``- * / %`` and unary ``-``
  need numbers;
* ``< <= > >=`` need two numbers, two strings or two dates of the same kind; a timestamp with a zone and
  one without (a fixed-width or CSV field's time, a literal without ``Z``) are neither ordered, compared
  nor subtracted; ``TS + 2h`` / ``TS - 30m`` is a timestamp, ``TS - TS`` the seconds between, and a number
  literal without a unit beside a timestamp (``now() + 1``) is refused;
* ``==`` / ``!=`` / ``in [..]`` between a number and a string (or other
  different kinds) never hold (``1 == 1.0`` holds: numbers compare as numbers);
* a condition (``when``, ``validate``, ``expect``, ``if``, ``and`` / ``or`` /
  ``not``) of a known type other than bool is only a warning: the language
  defines its truth (``""`` and ``0`` are false), but it is rarely what was meant.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from dsl import ir
from dsl.calendars import RESULTS as CALENDAR_RESULTS
from dsl.statements import RESULTS as STATEMENT_RESULTS
from dsl.currency import RESULTS as CURRENCY_RESULTS
from dsl.functions import SIGNATURES

STRING, INTEGER, DECIMAL, NUMBER = "string", "integer", "decimal", "number"
DATE, TIMESTAMP, BOOL, LIST, NULL = "date", "timestamp", "bool", "list", "null"
# a duration (2h, ts - ts) is a number of seconds that knows it is one: a timestamp moves by it, never by a
# plain number (dsl.timestamps.Duration at run time)
DURATION = "duration"
NUMERIC = frozenset({INTEGER, DECIMAL, NUMBER, DURATION})
_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%f", "%p", "%X", "%c", "%T")
_ARTICLE = {INTEGER: "an integer", NULL: "null", LIST: "a list"}

# What each function of dsl.functions returns (None: depends on its arguments).
RESULTS: dict[str, str | None] = {
    "trim": STRING, "upper": STRING, "lower": STRING, "pad_left": STRING, "pad_right": STRING,
    "substr": STRING, "mask_pan": STRING, "iban_valid": BOOL, "is_digits": BOOL, "swift_x_valid": BOOL, "has_control": BOOL, "replace": STRING, "len": INTEGER, "now": TIMESTAMP,
    "today": DATE, "add_days": DATE, "days_between": INTEGER, "format_date": STRING,
    "parse_date": DATE, "parse_timestamp": TIMESTAMP, "local": TIMESTAMP, "is_date": BOOL, "matches": BOOL, "uuid": STRING, "round": DECIMAL, "abs": None, "number": NUMBER, "coalesce": None,
    "env": None, "lookup": None, "http_status": INTEGER, "http_header": STRING, "response_mti": STRING,
}
RESULTS.update(CALENDAR_RESULTS)      # is_business_day, value_date ... (dsl/calendars.py)
RESULTS.update(STATEMENT_RESULTS)     # find, statement_check (dsl/statements.py)
RESULTS.update(CURRENCY_RESULTS)      # minor_units, fits_currency, from_minor, to_minor (dsl/currency.py)

Report = Callable[[str, str, Any, "str | None"], None]   # (code, message, pos, help)


def desc(t: str) -> str:
    """'a decimal', 'an integer', 'a date' ..."""
    return _ARTICLE.get(t, f"a {t}")


def show(e: ir.Expr) -> str:
    """A short rendering of an expression for messages: ``msg.amount``, ``"0"``, ``round(...)``."""
    if isinstance(e, ir.Name):
        return e.name
    if isinstance(e, ir.Attr):
        return f"{show(e.base)}.{e.name}"
    if isinstance(e, ir.Index):
        at = f" at {show(e.at)}" if e.at is not None else ""
        return f"{show(e.base)}[{show(e.index)}{at}]"
    if isinstance(e, ir.Lit):
        if e.type == "string":
            text = e.value if len(e.value) <= 24 else e.value[:21] + "..."
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if e.type == "bool":
            return "true" if e.value else "false"
        if e.type == "timestamp":
            from dsl.timestamps import text
            return text(e.value)
        if e.type == "date":
            return e.value.isoformat()
        if e.type == "duration":        # as written (90m, 1h30m), else in its unit: never its seconds (5400)
            return e.text or ("-" + _duration_text(-e.value) if e.value < 0 else _duration_text(e.value))
        return "null" if e.type == "null" else str(e.value)
    if isinstance(e, ir.Call):
        return f"{e.func}(...)"
    if isinstance(e, ir.ListExpr):
        return "[...]"
    if isinstance(e, ir.Unary) and e.op == "-" and not e.text:
        return f"-{show(e.operand)}"
    if e.text:                          # a compound expression, by its source text (2h + msg.n)
        return e.text if len(e.text) <= 40 else e.text[:37].rstrip() + "..."
    return "the expression"


def plain_number_hint(num: ir.Expr, unit: str, say: str = "say its unit by multiplying") -> str:
    """How to say the unit of ``num``, a plain number beside a timestamp (unit ``s``) or a date (``d``):
    ``number(2h)`` is the seconds of the duration, a plain number: leave ``number()`` out."""
    if isinstance(num, ir.Call) and num.func == "number" and len(num.args) == 1:
        return (f"number() gives a plain number (of a duration, its seconds): to move by the duration write it "
                f"without number(), {show(num.args[0])}; to take a number as a count of {_UNIT_NAMES[unit]}, "
                f"{show(num)} * 1{unit}")
    shown = f"({show(num)})" if isinstance(num, (ir.Binary, ir.Cond)) else show(num)     # (a + b) * 1s
    return f"{say}: {shown} * 1{unit}"


_UNIT_NAMES = {"s": "seconds", "d": "days"}


def field_type(fd: Any) -> str | None:
    """The type a record field decodes to (a date with a time directive is a timestamp)."""
    t = getattr(fd, "type", None)
    if t == "date":
        pattern = getattr(fd, "pattern", None) or ""
        return TIMESTAMP if any(d in pattern for d in _TIME_DIRECTIVES) else DATE
    return t if t in (STRING, INTEGER, DECIMAL) else None


def lit_type(e: ir.Lit) -> str | None:
    return {"string": STRING, "int": INTEGER, "decimal": DECIMAL, "duration": DURATION,
            "bool": BOOL, "null": NULL, "timestamp": TIMESTAMP, "date": DATE}.get(e.type)


def as_number(text: str) -> Decimal | None:
    try:
        d = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() and text.strip() else None


def _numeric_lit(e: ir.Expr) -> bool:
    return isinstance(e, ir.Lit) and e.type == "string" and as_number(e.value) is not None


def _kind(t: str) -> str:
    """The class two values must share to be equal or ordered."""
    return NUMBER if t in NUMERIC else t


def _duration_text(seconds: Decimal) -> str:
    """A duration literal's seconds as it is written: 5400 -> 90m, 86400 -> 1d, 0.25 -> 250ms."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{(seconds * 1000).normalize():f}ms"


def _arith_result(a: str, b: str, op: str) -> str:
    if DURATION in (a, b):        # 2h + 30m, 2h * n, 1d / 2: a duration; anything else with one a number
        if (op in ("+", "-") and a == b) or (op == "*" and a != b) or (op == "/" and a == DURATION != b):
            return DURATION
        return DECIMAL
    if op == "/" or DECIMAL in (a, b):
        return DECIMAL
    return INTEGER if a == b == INTEGER else NUMBER


class Typer:
    """Infers the type of an expression and reports what can never work.

    ``ref_type(expr)`` gives the type of a name or field read (``msg.amount``,
    a ``let``), or None."""

    def __init__(self, report: Report, ref_type: Callable[[ir.Expr], str | None],
                 ref_zone: Callable[[ir.Expr], bool | None] | None = None) -> None:
        self.report = report
        self.ref_type = ref_type
        self.ref_zone = ref_zone or (lambda e: None)

    def zone(self, e: ir.Expr) -> bool | None:
        """Whether a timestamp expression has a zone (True: ``now()``, ``...Z``, a field read with ``%z``),
        has none (False: a zone-less literal, a fixed-width or CSV field's time), or None: not known."""
        if isinstance(e, ir.Lit):
            return e.value.utcoffset() is not None if e.type == "timestamp" else None
        if isinstance(e, ir.Call):
            if e.func == "now":
                return True
            if e.func == "local":
                return False
            if e.func == "parse_timestamp" and len(e.args) == 2:
                fmt = e.args[1]
                return "%z" in fmt.value if isinstance(fmt, ir.Lit) and fmt.type == "string" else None
            return self.zone(e.args[0]) if e.func == "add_days" and e.args else None
        if isinstance(e, ir.Binary) and e.op in ("+", "-"):
            left = self.zone(e.left)
            return left if left is not None or e.op == "-" else self.zone(e.right)
        if isinstance(e, ir.Cond):
            a, b = self.zone(e.then), self.zone(e.otherwise)
            return a if a == b else None
        if isinstance(e, (ir.Name, ir.Attr)):
            return self.ref_zone(e)
        return None

    def _zones_differ(self, e: ir.Binary, what: str) -> bool:
        """E073 for two timestamps of which one has a zone and the other none (``msg.booked > ...Z`` where
        the field is a fixed-width time): never ordered nor subtracted at run time; True when reported."""
        za, zb = self.zone(e.left), self.zone(e.right)
        if za is None or zb is None or za == zb:
            return False
        z, n = (e.left, e.right) if za else (e.right, e.left)
        self.report("E073", f"cannot {what} a timestamp with a zone ({show(z)}) and one without ({show(n)})", e.pos,
                    "a time without a zone (a fixed-width or CSV field's, a literal without Z or an offset) is a "
                    "local time whose instant the value does not say: write both with a zone, or both without")
        return True

    def condition(self, e: ir.Expr) -> str | None:
        t = self.infer(e)
        self._truth(e, t)
        return t

    def _truth(self, e: ir.Expr, t: str | None) -> None:
        if t is None or t in (BOOL, NULL):
            return
        if t == STRING:
            hint = f'compare it: `{show(e)} != ""` (a string is false only when empty)'
        elif t in NUMERIC:
            hint = f"compare it: `{show(e)} != 0` (a number is false only when 0)"
        else:
            hint = f"compare it, e.g. `{show(e)} != null`"
        self.report("W004", f"{desc(t)} ({show(e)}) is used as a condition", e.pos, hint)

    def infer(self, e: ir.Expr) -> str | None:
        if isinstance(e, ir.Lit):
            return lit_type(e)
        if isinstance(e, (ir.Name, ir.Attr, ir.Index)):
            base: ir.Expr = e
            while isinstance(base, (ir.Attr, ir.Index)):     # rates[k at d].rate: the as-of date d
                if isinstance(base, ir.Index) and base.at is not None:
                    self._as_of(base.at)
                base = base.base
            return self.ref_type(e)
        if isinstance(e, ir.ListExpr):
            for x in e.items:
                self.infer(x)
            return LIST
        if isinstance(e, ir.Call):
            args = [self.infer(a) for a in e.args]
            sig = SIGNATURES.get(e.func)
            for i, (a, t) in enumerate(zip(e.args, args)):
                want = sig.types[i] if sig is not None and i < len(sig.types) else None
                if want == "date" and not isinstance(a, ir.Lit) and t not in (None, NULL, DATE, TIMESTAMP):
                    self.report("E072", f"{e.func}(): argument {i + 1} ({sig.params[i]}) must be a date, got "
                                f"{desc(t)} ({show(a)})", a.pos, "read text as a date with parse_date(text, pattern)"
                                if t == STRING else f"usage: {sig.usage(e.func)}")
                if want == "timestamp" and not isinstance(a, ir.Lit) and t not in (None, NULL, TIMESTAMP):
                    self.report("E072", f"{e.func}(): argument {i + 1} ({sig.params[i]}) must be a timestamp (a "
                                f"date and a time of day), got {desc(t)} ({show(a)})", a.pos,
                                "a cut-off needs the time: now(\"Europe/Berlin\") is the current one, a field "
                                "date(\"%Y%m%d%H%M%S\") carries one")
            if e.func == "abs" and args and args[0] in NUMERIC:
                return args[0]
            if e.func == "add_days" and args and args[0] == TIMESTAMP:
                return TIMESTAMP             # a timestamp moved by days keeps its time of day
            return RESULTS.get(e.func) if e.func != "abs" else NUMBER
        if isinstance(e, ir.Cond):
            self.condition(e.test)
            a, b = self.infer(e.then), self.infer(e.otherwise)
            if a == b or b == NULL:
                return a
            if a == NULL:
                return b
            if a in NUMERIC and b in NUMERIC:
                return DECIMAL if DECIMAL in (a, b) and NUMBER not in (a, b) else NUMBER
            return None
        if isinstance(e, ir.Unary):
            t = self.infer(e.operand)
            if e.op == "not":
                self._truth(e.operand, t)
                return BOOL
            if t is None or t in NUMERIC:
                return t
            if t != NULL:
                self.report("E073", f"cannot negate {desc(t)} ({show(e.operand)})", e.pos,
                            "`-` needs a number")
            return None
        if isinstance(e, ir.Binary):
            return self._binary(e)
        return None

    def _as_of(self, at: ir.Expr) -> None:
        """``T[KEY at DATE]``: DATE must be a date (or a timestamp: its date) when its type is known (E149)."""
        t = self.infer(at)
        if t in (None, NULL, DATE, TIMESTAMP):
            return
        self.report("E149", f"the as-of date ({show(at)}) must be a date, got {desc(t)}", at.pos,
                    "read text as a date with parse_date(text, pattern), e.g. "
                    "`T[KEY at parse_date(\"\" + msg.paid_on, \"%Y%m%d\")]`; today() is today's"
                    if t == STRING else "a date: today(), parse_date(text, pattern), add_days(d, n), a date field")

    def _binary(self, e: ir.Binary) -> str | None:
        op = e.op
        if op in ("and", "or"):
            self.condition(e.left)
            self.condition(e.right)
            return BOOL
        a, b = self.infer(e.left), self.infer(e.right)
        if op in ("in", "not_in"):
            self._in(e, a, b)
            return BOOL
        if a is None or b is None or NULL in (a, b):
            return None if op not in ("==", "!=", "<", "<=", ">", ">=") else BOOL
        sides = f"{desc(a)} ({show(e.left)}) and {desc(b)} ({show(e.right)})"
        if op == "+" and STRING in (a, b):
            if a != b:
                lit = e.right if b == STRING else e.left
                other = a if b == STRING else b
                if other in NUMERIC and _numeric_lit(lit):
                    self.report("E073", f"`+` joins {sides} as text, it does not add them", e.pos,
                                f"write {lit.value.strip()} without quotes to add it; to join text on "
                                f"purpose, start with a string: \"\" + ...")
                    return None
            return STRING
        if op in ("+", "-", "*", "/", "%"):
            if a in NUMERIC and b in NUMERIC:
                return _arith_result(a, b, op)
            if a == b == TIMESTAMP and op == "-" and self._zones_differ(e, "subtract"):
                return None
            if TIMESTAMP in (a, b) and op in ("+", "-"):
                timed = self._timed(e, a, b)
                if timed is not False:
                    return timed
            if DATE in (a, b) and TIMESTAMP not in (a, b) and op in ("+", "-"):
                dated = self._dated(e, a, b)
                if dated is not False:
                    return dated
            self.report("E073", f"cannot apply {op} to {sides}", e.pos,
                        "arithmetic needs a number on both sides" + (
                            "; a timestamp moves by a duration (ts + 2h, ts - 30m), ts - ts is the seconds between"
                            if TIMESTAMP in (a, b) and DATE not in (a, b) else
                            "; a date moves by a duration of whole days (d + 3d, d - 1d; add_days(d, n) by a number "
                            "n of days), days_between(a, b) counts the days from a to b" if DATE in (a, b) or TIMESTAMP in (a, b)
                            else "; `+` joins text when one side is a string" if op != "+" else ""))
            return None
        if a == b == TIMESTAMP and self._zones_differ(e, "order" if op not in ("==", "!=") else "compare"):
            return BOOL
        if op in ("==", "!="):
            if _kind(a) != _kind(b):
                holds = "never holds" if op == "==" else "always holds"
                self.report("E073", f"{desc(a)} ({show(e.left)}) {op} {desc(b)} ({show(e.right)}) {holds}: "
                            f"values of different types are never equal", e.pos, self._hint(e, a, b))
            return BOOL
        # < <= > >=
        if _kind(a) != _kind(b) or _kind(a) not in (NUMBER, STRING, DATE, TIMESTAMP):
            self.report("E073", f"cannot compare {desc(a)} ({show(e.left)}) {op} {desc(b)} ({show(e.right)})",
                        e.pos, self._hint(e, a, b) or "order compares two numbers, two strings or two dates")
        return BOOL

    def _timed(self, e: ir.Binary, a: str, b: str) -> str | None | bool:
        """``TS + 2h``, ``2h + TS``, ``TS - 30m``: a timestamp; ``TS - TS``: the seconds between (a decimal);
        a plain number literal beside a timestamp (``now() + 1``) is refused: write its unit.  False: not one
        of these (the caller reports E073)."""
        op = e.op
        if a == b == TIMESTAMP:
            return DURATION if op == "-" else False
        num = e.right if a == TIMESTAMP else e.left
        t = b if a == TIMESTAMP else a
        if t not in NUMERIC or (op == "-" and a != TIMESTAMP):
            return False
        if t == DURATION:
            return TIMESTAMP
        if isinstance(num, ir.Lit) and num.type in ("int", "decimal"):
            self.report("E073", f"`{op}` beside a timestamp takes a duration: {show(num)} has no unit", num.pos,
                        f"write the unit: {show(num)}s, {show(num)}m, {show(num)}h or {show(num)}d")
            return None
        # a number field, len(...), round(...): never taken for seconds (at run time neither: it fails there)
        self.report("E073", f"`{op}` beside a timestamp needs a duration: {show(num)} is {desc(t)}, not a duration",
                    e.pos, plain_number_hint(num, "s") + " (or 1m, 1h, 1d)")
        return None

    def _dated(self, e: ir.Binary, a: str, b: str) -> str | None | bool:
        """``D + 3d``, ``3d + D``, ``D - 1d``: a date (a duration literal of part of a day is refused); a
        number beside a date is refused (write its unit, or add_days).  False: not one of these."""
        op = e.op
        num = e.right if a == DATE else e.left
        t = b if a == DATE else a
        if t not in NUMERIC or (op == "-" and a != DATE):
            return False
        if t == DURATION:
            if isinstance(num, ir.Lit) and num.type == "duration" and num.value % 86400:
                self.report("E073", f"a date moves by whole days: {_duration_text(num.value)} is not", e.pos,
                            "write it in days (1d, 2d), or use a timestamp for a time of day")
                return None
            return DATE
        self.report("E073", f"`{op}` beside a date needs a duration of days: {show(num)} is {desc(t)}", e.pos,
                    (f"write the unit: {show(num)}d" if isinstance(num, ir.Lit) else plain_number_hint(num, "d", "say its unit"))
                    + " (or add_days(date, n) for a number n of days)")
        return None

    @staticmethod
    def _hint(e: ir.Binary, a: str, b: str) -> str | None:
        for side, other in ((e.right, a), (e.left, b)):
            if other in NUMERIC and _numeric_lit(side):
                return f"write {side.value.strip()} without quotes: it is compared with a number"
        return None

    def _in(self, e: ir.Binary, a: str | None, b: str | None) -> None:
        if b is not None and b not in (LIST, STRING, NULL):
            self.report("E073", f"`in` needs a list, a table or a string on its right, got {desc(b)} "
                        f"({show(e.right)})", e.pos, None)
            return
        if a is None or a == NULL or not isinstance(e.right, ir.ListExpr) or not e.right.items:
            return
        items = [self.ref_type(x) if not isinstance(x, ir.Lit) else lit_type(x) for x in e.right.items]
        if any(t is None or t == NULL or _kind(t) == _kind(a) for t in items):
            return
        kinds = sorted({_kind(t) for t in items})
        what = " and ".join(f"{k}s" if k != NUMBER else "numbers" for k in kinds)
        self.report("E073", f"{desc(a)} ({show(e.left)}) is never in a list of {what}: values of different "
                    f"types are never equal", e.pos,
                    "list values of the same type as the left side" if a not in NUMERIC else
                    "a number equals only numbers: write the list's values without quotes")

    # ------------------------------------------------------------ message bodies
    def assign(self, fd: Any, fmt: str, fixed_width: bool, e: ir.Expr, t: str | None, pos: Any) -> None:
        """A value set to a typed record field: refuse what the codec refuses (E074, E075)."""
        ftype = fd.type
        where = f"field `{fd.name}` of format `{fmt}`"
        spelled = _spell(fd)
        lit = e if isinstance(e, ir.Lit) else None
        if isinstance(e, ir.Unary) and e.op == "-" and isinstance(e.operand, ir.Lit) \
                and e.operand.type in ("int", "decimal"):
            lit = ir.Lit(-e.operand.value, e.operand.type, pos=e.pos)
        if t is None or t == NULL:
            return
        bad = None
        if ftype == STRING and t not in (STRING, INTEGER, DECIMAL, NUMBER, DURATION):
            bad = "text or a number"
        elif ftype in (DATE,) and t not in (DATE, TIMESTAMP):
            bad = "a date (parse_date(text, pattern) reads one)"
        elif ftype == INTEGER and (t not in NUMERIC or
                                   (lit is not None and lit.type == "decimal" and lit.value != int(lit.value))):
            bad = "a whole number"
        elif ftype == DECIMAL:
            if t == STRING:
                if lit is not None and as_number(lit.value) is None:
                    bad = "a number"
            elif t not in NUMERIC:
                bad = "a number"
        if bad is not None:
            self.report("E074", f"{where} is {spelled}: it cannot take {desc(t)} ({show(e)})", pos,
                        f"give it {bad}")
            return
        if lit is None:
            return
        if ftype == DECIMAL and fd.scale is not None and lit.type in ("int", "decimal", "string"):
            d = as_number(lit.value) if lit.type == "string" else Decimal(lit.value)
            if d is not None and d != d.quantize(Decimal(1).scaleb(-fd.scale)):
                self.report("E074", f"{where} is {spelled}: {show(e)} has more than {fd.scale} decimal places",
                            pos, f"round it to {fd.scale} places (the record never rounds silently)")
                return
        if fixed_width and fd.width is not None:
            self._width(fd, where, spelled, e, lit, pos)

    def _width(self, fd: Any, where: str, spelled: str, e: ir.Expr, lit: ir.Lit, pos: Any) -> None:
        if fd.type == STRING and lit.type in ("string", "int", "decimal"):
            n = len(lit.value if lit.type == "string" else str(lit.value))
            if n > fd.width:
                self.report("E075", f"{show(e)} is {n} characters, {where} holds {fd.width}", pos,
                            "shorten the value or widen the field")
        elif fd.type in (INTEGER, DECIMAL) and lit.type in ("int", "decimal"):
            d = Decimal(lit.value)
            digits = str(abs(d).scaleb(fd.scale or 0).to_integral_value()) if fd.type == DECIMAL \
                else str(abs(int(d)))
            n = len(digits) + (1 if d < 0 else 0)
            if n > fd.width:
                self.report("E075", f"{show(e)} needs {n} characters, {where} holds {fd.width}", pos,
                            "the value is too large for the declared width")


def _spell(fd: Any) -> str:
    """'a decimal(8, 2)', 'a string(40)', 'a date("%Y%m%d")'."""
    args: list[str] = []
    if fd.width is not None:
        args.append(str(fd.width))
    if fd.type == DECIMAL and fd.scale is not None:
        args.append(str(fd.scale))
    if fd.type == DATE and getattr(fd, "pattern", None):
        args.append(f'"{fd.pattern}"')
    return desc(fd.type) + (f"({', '.join(args)})" if args else "")


def body_fields(fields: Any) -> Mapping[str, Any]:
    """name -> FieldDecl of a record format (only the fields with a known type)."""
    return {f.name: f for f in fields or () if getattr(f, "type", None) in (STRING, INTEGER, DECIMAL, DATE)}
