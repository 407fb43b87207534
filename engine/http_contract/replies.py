"""The JSON bodies a route answers with, as JSON Schema (``bsp docs openapi``).

A reply's format with a JSON Schema file of its own (``json schema "FILE"``) is described by that file
(the codec validates every reply against it). Otherwise a reply built with literal keys
(``reply ClaimAnswer { status = "PAID" ... }``) is described field by field: a text literal is its
``const``, an ``if`` choosing between text literals their ``enum``, ``error.code`` / ``error.text`` text, a
text function's result text, and anything else left open with the route's expression as description
(every assigned field is written, null when its value is). A format that is not JSON is a string in its
media type.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsl import ir
from dsl.types import NUMERIC, STRING, Typer

MEDIA = {"json": "application/json", "xml": "application/xml", "iso20022": "application/xml"}
_ERROR_TEXT = frozenset({"code", "text", "kind", "detail"})


def source_text(program: ir.Program, e: Any) -> str | None:
    """The route file's text of ``e`` (one line, blanks squeezed), None without a place."""
    p = getattr(e, "pos", None)
    if p is None or p.end_line is None or p.end_col is None:
        return None
    lines = program.sources.get(p.file, "").splitlines()
    if not lines or p.end_line > len(lines):
        return None
    if p.line == p.end_line:
        text = lines[p.line - 1][p.col - 1:p.end_col - 1]
    else:
        text = "\n".join([lines[p.line - 1][p.col - 1:], *lines[p.line:p.end_line - 1],
                          lines[p.end_line - 1][:p.end_col - 1]])
    return " ".join(text.split())


def file_schema(decl: ir.FormatDecl) -> dict[str, Any] | None:
    """The JSON Schema file a JSON format names, as read (without ``$id``), or None."""
    path = (decl.options or {}).get("schema") if decl.kind == "json" else None
    if not path:
        return None
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(schema, dict):
        schema = {k: v for k, v in schema.items() if k != "$id"}
    return schema


def media_of(decl: ir.FormatDecl | None) -> str:
    return MEDIA.get(decl.kind, "application/octet-stream") if decl is not None else "application/octet-stream"


def _literals(e: ir.Expr) -> list[Any] | None:
    if type(e) is ir.Lit and e.type == "string":
        return [e.value]
    if type(e) is ir.Cond:
        a, b = _literals(e.then), _literals(e.otherwise)
        if a is not None and b is not None:
            return list(dict.fromkeys(a + b))
    return None


def value_schema(program: ir.Program, e: ir.Expr) -> dict[str, Any]:
    lits = _literals(e)
    if lits is not None:
        return {"type": "string", "const": lits[0]} if len(lits) == 1 else {"type": "string", "enum": lits}
    if type(e) is ir.Lit:
        if e.type == "bool":
            return {"type": "boolean", "const": bool(e.value)}
        if e.type == "null":
            return {"type": "null"}
        if e.type in ("int", "decimal"):
            return {"type": "number"}
    if type(e) is ir.Attr and type(e.base) is ir.Name and e.base.name == "error" and e.name in _ERROR_TEXT:
        return {"type": "string", "description": f"`{e.base.name}.{e.name}`"}
    try:
        t = Typer(lambda *a: None, lambda x: None).infer(e)
    except Exception:
        t = None
    out: dict[str, Any] = {"type": "string"} if t == STRING else {"type": "number"} if t in NUMERIC else {}
    text = source_text(program, e)
    if text:
        out["description"] = f"`{text}`"
    return out


def built_schema(program: ir.Program, step: ir.Step) -> dict[str, Any]:
    """The schema of a ``reply`` step's body: the format's schema file, or its literal-keyed build."""
    decl = program.formats.get(step.options.get("format") or "")
    if decl is None or decl.kind != "json":
        return {"type": "string", "description": f"A {decl.kind if decl else 'raw'} message."}
    from_file = file_schema(decl)
    if from_file is not None:
        return from_file
    root: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for a in step.options.get("fields", ()):
        if "[" in a.path:                  # a list item written by index: the list is described open
            top = a.path.split("[")[0].split(".")[0]
            root["properties"].setdefault(top, {})
            if top not in root["required"]:
                root["required"].append(top)
            continue
        node = root
        parts = a.path.split(".")
        for part in parts[:-1]:
            child = node["properties"].setdefault(part, {"type": "object", "properties": {}, "required": []})
            if part not in node["required"]:
                node["required"].append(part)
            node = child
        node["properties"][parts[-1]] = value_schema(program, a.value)
        if parts[-1] not in node["required"]:
            node["required"].append(parts[-1])
    return root


def reply_steps(steps: Any) -> list[ir.Step]:
    """The ``reply`` steps among ``steps`` (in blocks too), in order."""
    out: list[ir.Step] = []
    for s in steps or ():
        if s.kind == "reply":
            out.append(s)
        for inner in (s.options.get("steps"), s.options.get("otherwise")):
            if isinstance(inner, tuple):
                out.extend(reply_steps(inner))
    return out
