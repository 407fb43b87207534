"""What a route's expressions tell of the request body it reads: a partial JSON Schema for a JSON format
without a schema of its own (``bsp docs openapi``).

A field is a path read from ``msg`` (``dsl.inbound.path_of``: ``msg.beneficiary.name``). Its type is
what the route's reading needs, never a guess: text where a text function reads it (``trim``,
``has_control``, ``iban_valid`` ...) or it is compared with text; a number where arithmetic, ``round``, an
order or an equality with a number reads it, or it is the deal's ``amount`` (the deal step refuses text
there, 13); an object where the route reads a field of it; a list where it is indexed by a number.
Anything else is left open (``{}``).

A field is *required* when leaving it out refuses the request: the route reads it unguarded in a
``validate`` rule (not under ``coalesce``, an ``if`` branch or the right side of ``and`` / ``or``), or it is
the deal's amount. Each field's description names the rules that read it (their code and text) and
whether it is in the deal key. The schema is marked partial (``x-bsp-partial``): fields the route does
not read are not listed, and are ignored when sent (``additionalProperties`` stays open).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from dsl import ir
from dsl.inbound import TEXT_READERS, path_of
from dsl.types import NUMERIC, STRING, Typer

# functions whose first argument is read as text
_TEXT_ARG = TEXT_READERS | {"has_control", "is_digits", "iban_valid", "swift_x_valid", "matches", "mask_pan",
                            "parse_date", "is_date"}
_NUMBER_ARG = frozenset({"round", "abs"})
_ORDER = ("<", "<=", ">", ">=")
_ARITH = ("-", "*", "/", "%")
_LOGIC = ("and", "or")


@dataclass
class FieldInfo:
    type: str | None = None              # "string", "number", "object", "array" or None (open)
    required: bool = False
    rules: list[str] = field(default_factory=list)     # "code 30: reference (claim_id) missing"
    notes: list[str] = field(default_factory=list)     # "in the deal key", "a key of table claim_products"


class FieldReads:
    """The request fields one route reads, by path (``beneficiary.name``), in the order first read."""

    def __init__(self) -> None:
        self.fields: dict[str, FieldInfo] = {}
        self._typer = Typer(lambda *a: None, lambda e: None)

    # ------------------------------------------------------------ collecting
    def _at(self, path: str) -> FieldInfo:
        info = self.fields.get(path)
        if info is None:
            info = self.fields[path] = FieldInfo()
        # every parent of a field read is an object
        parts = path.split(".")
        for i in range(1, len(parts)):
            parent = self.fields.setdefault(".".join(parts[:i]), FieldInfo())
            parent.type = "object"
        return info

    def _type(self, e: ir.Expr, t: str) -> None:
        p = path_of(e)
        if p and "[" not in p and not p.startswith("http."):
            info = self._at(p)
            if info.type is None:
                info.type = t

    def _known(self, e: ir.Expr) -> str | None:
        try:
            t = self._typer.infer(e)
        except Exception:          # the checker's inference on a plan it already accepted: never expected
            return None
        return "number" if t in NUMERIC else "string" if t == STRING else None

    def read(self, e: ir.Expr | None, *, guarded: bool, required: bool = False) -> None:
        """Walk ``e``: note each field it reads; ``required``: an unguarded read refuses a request without it."""
        if e is None:
            return
        p = path_of(e)
        if p is not None and p and "[" not in p and not p.startswith("http."):
            info = self._at(p)
            if required and not guarded:
                info.required = True
            if type(e) is ir.Attr and path_of(e.base):
                # the parent is read too (an object): required with its field
                return self.read(e.base, guarded=guarded, required=required)
            return
        t = type(e)
        if t is ir.Attr:
            self.read(e.base, guarded=guarded, required=required)
        elif t is ir.Index:
            if type(e.index) is ir.Lit and e.index.type == "int":
                self._type(e.base, "array")
            self.read(e.base, guarded=guarded, required=required)
            self.read(e.index, guarded=guarded, required=required)
            if e.at is not None:          # a table row as of a date (T[KEY at DATE])
                self.read(e.at, guarded=guarded, required=required)
        elif t is ir.Unary:
            self.read(e.operand, guarded=guarded, required=required)
        elif t is ir.Binary:
            self._binary(e)
            self.read(e.left, guarded=guarded, required=required)
            self.read(e.right, guarded=guarded or e.op in _LOGIC, required=required)
        elif t is ir.Cond:
            self.read(e.test, guarded=guarded, required=required)
            self.read(e.then, guarded=True)
            self.read(e.otherwise, guarded=True)
        elif t is ir.Call:
            if e.args and e.func in _TEXT_ARG:
                self._type(e.args[0], "string")
            if e.args and e.func in _NUMBER_ARG:
                self._type(e.args[0], "number")
            for a in e.args:
                self.read(a, guarded=guarded or e.func == "coalesce", required=required)
        elif t is ir.ListExpr:
            for item in e.items:
                self.read(item, guarded=guarded, required=required)

    def _binary(self, e: ir.Binary) -> None:
        if e.op in _ARITH:
            self._type(e.left, "number")
            self._type(e.right, "number")
        elif e.op in _ORDER or e.op in ("==", "!="):
            for mine, other in ((e.left, e.right), (e.right, e.left)):
                if path_of(mine) and not path_of(other):
                    known = self._known(other)
                    if known is not None:
                        self._type(mine, known)
        elif e.op in ("in", "not_in") and type(e.right) is ir.Name:
            p = path_of(e.left)
            if p and "[" not in p and not p.startswith("http."):
                note = f"a key of table `{e.right.name}`"
                info = self._at(p)
                if note not in info.notes:
                    info.notes.append(note)

    # ------------------------------------------------------------ a route
    def route(self, route: ir.Route) -> "FieldReads":
        self.read(route.when, guarded=False, required=True)
        for step in _steps(route.steps):
            self._step(step, guarded=False)
        for step in _steps(route.on_error):
            self._step(step, guarded=True)
        return self

    def _step(self, step: ir.Step, *, guarded: bool) -> None:
        o = step.options
        if step.kind == "validate":
            for rule in o.get("rules", ()):
                before = set(_reads(rule.cond))
                self.read(rule.cond, guarded=guarded, required=True)
                for p in sorted(before):
                    if p in self.fields:
                        text = f"code {rule.code}: {rule.text}"
                        if text not in self.fields[p].rules:
                            self.fields[p].rules.append(text)
            return
        if step.kind == "deal":
            for a in o.get("fields", ()):
                if a.path == "amount":
                    self._type(a.value, "number")
                    self.read(a.value, guarded=guarded, required=True)
                else:
                    self.read(a.value, guarded=guarded)
                if a.path == "key":
                    for p in _reads(a.value):
                        if p in self.fields and "in the deal key" not in self.fields[p].notes:
                            self.fields[p].notes.append("in the deal key")
            return
        for value in _exprs(o):
            self.read(value, guarded=guarded)
        comp = o.get("compensate")
        if isinstance(comp, ir.Step):
            self._step(comp, guarded=True)

    # ------------------------------------------------------------ schema
    def schema(self) -> dict[str, Any]:
        """The partial JSON Schema of the request object."""
        root: dict[str, Any] = {"type": "object"}
        for path in self.fields:
            if "." not in path:
                self._place(root, path, path)
        return root

    def _place(self, parent: dict[str, Any], name: str, path: str) -> None:
        info = self.fields[path]
        s: dict[str, Any] = {}
        if info.type == "object":
            s["type"] = "object"
            for child in self.fields:
                if child.startswith(path + ".") and "." not in child[len(path) + 1:]:
                    self._place(s, child[len(path) + 1:], child)
        elif info.type == "number":
            s["type"] = "number"
        elif info.type == "string":
            s["type"] = "string"
        elif info.type == "array":
            s["type"] = "array"
        said = []
        if info.notes:
            said.append("; ".join(info.notes).capitalize() + ".")
        if info.rules:
            said.append("Refused (422) when: " + "; ".join(info.rules) + ".")
        if said:
            s["description"] = " ".join(said)
        parent.setdefault("properties", {})[name] = s
        if info.required:
            parent.setdefault("required", []).append(name)


def _steps(steps: Any) -> Iterator[ir.Step]:
    for s in steps or ():
        yield s
        for inner in (s.options.get("steps"), s.options.get("otherwise")):
            if isinstance(inner, tuple):
                yield from _steps(inner)


def _exprs(value: Any) -> Iterator[ir.Expr]:
    """Every expression in a step's options (assignments, expects, nested tuples), not a nested step."""
    if isinstance(value, ir.Expr):
        yield value
    elif isinstance(value, ir.Assign):
        yield value.value
    elif isinstance(value, ir.Rule):
        yield value.cond
    elif isinstance(value, dict):
        for v in value.values():
            yield from _exprs(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _exprs(v)


def _reads(e: ir.Expr) -> Iterator[str]:
    """The request paths ``e`` reads (the fields, not the objects holding them)."""
    reads = FieldReads()
    reads.read(e, guarded=True)
    for p in reads.fields:
        if not any(q.startswith(p + ".") for q in reads.fields):
            yield p


def request_schema(routes: Any) -> dict[str, Any]:
    """The partial schema of what ``routes`` (sharing one format) read: every field any of them reads; a
    field is required only when every route requires it (another route's request may leave it out)."""
    each = [FieldReads().route(r) for r in routes]
    merged = FieldReads()
    for reads in each:
        for path, info in reads.fields.items():
            m = merged.fields.setdefault(path, FieldInfo(required=True))
            m.type = m.type or info.type
            m.rules += [r for r in info.rules if r not in m.rules]
            m.notes += [n for n in info.notes if n not in m.notes]
    for path, m in merged.fields.items():
        m.required = all(path in r.fields and r.fields[path].required for r in each)
    return merged.schema()
