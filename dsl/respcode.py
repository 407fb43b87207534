"""A route's response-code field: which field of its reply the deal's ``response_code`` is read from.

A committed deal records the code its reply carried (``docs/ledger.md``), with no declaration of its own:
the route's error reply says which field is the code, by filling it with ``error.code``; the route's
success ``reply`` of the same format gives that field the code of a committed deal.

- The error reply is the route's own (``on error reply FORMAT { }``, or the last ``reply`` of its
  ``on error { }`` block), else its inbound channel's ``on error reply`` (the one that answers when the
  route's own ``on error`` gives no reply).
- Its code field is the first field set to ``error.code`` itself; failing that, the first whose value
  uses ``error.code`` (``"39" = if error.kind == "refused" then auth["39"] else error.code``).
- The success reply is the route's last ``reply`` step (the one whose answer is sent).  When it has the
  error reply's format and sets the code field, the lowered route names the field (``Route.response_code``,
  shown by ``bsp check --explain``); otherwise (no such field, no reply, another format) it is None and a
  committed deal's ``response_code`` stays empty.

Resolved once here, at compile time: at run time the engine reads the field from the reply's values.
"""
from __future__ import annotations

from typing import Any, Iterable

from dsl import ir


def response_code_field(steps: Iterable[ir.Step], on_error: Iterable[ir.Step], route_format: str | None,
                        channel_error_reply: ir.Step | None,
                        formats: dict[str, ir.FormatDecl] | None = None) -> str | None:
    """The path (``resp_code``, ``"39"``, ``XferRsp.Code``) of the success reply's field that carries the
    committed deal's response code, or None.  With ``formats``, two formats that differ only in ``validate``
    (an ISO 8583 spec read strictly, and leniently for the error answers) count as one."""
    error_reply = _last_reply(on_error) or channel_error_reply
    success = _last_reply(steps)
    if error_reply is None or success is None:
        return None
    if not _same(_format(error_reply, route_format), _format(success, route_format), formats):
        return None
    field = code_field_of(error_reply)
    if field is None:
        return None
    if not any(a.path == field for a in success.options.get("fields", ())):
        return None
    return field


def code_field_of(reply: ir.Step) -> str | None:
    """The field an error reply fills with ``error.code``: set to it exactly, else using it; the first
    written of either kind."""
    fields = reply.options.get("fields", ())
    for a in fields:
        if _is_error_code(a.value):
            return a.path
    for a in fields:
        if _uses_error_code(a.value):
            return a.path
    return None


def _last_reply(steps: Iterable[ir.Step]) -> ir.Step | None:
    found = None
    for s in steps:
        if s.kind == "reply":
            found = s
    return found


def _format(reply: ir.Step, route_format: str | None) -> str | None:
    return reply.options.get("format") or route_format


def _same(a: str | None, b: str | None, formats: dict[str, ir.FormatDecl] | None) -> bool:
    """One format, or two declarations of one (kind, options, fields) but for ``validate``: the lenient twin
    a channel's error answers are written in (docs/formats-iso8583.md#answering-what-cannot-be-read)."""
    if a == b:
        return True
    x, y = (formats or {}).get(a or ""), (formats or {}).get(b or "")
    if x is None or y is None or x.kind != y.kind or x.fields != y.fields:
        return False
    if x.options.get("validate", True) == y.options.get("validate", True):
        return False
    return {k: v for k, v in x.options.items() if k != "validate"} == \
        {k: v for k, v in y.options.items() if k != "validate"}


def _is_error_code(e: Any) -> bool:
    return type(e) is ir.Attr and e.name == "code" and type(e.base) is ir.Name and e.base.name == "error"


def _uses_error_code(e: Any) -> bool:
    if _is_error_code(e):
        return True
    if isinstance(e, ir.Attr):
        return _uses_error_code(e.base)
    if isinstance(e, ir.Index):
        return _uses_error_code(e.base) or _uses_error_code(e.index) or (e.at is not None and _uses_error_code(e.at))
    if isinstance(e, ir.Unary):
        return _uses_error_code(e.operand)
    if isinstance(e, ir.Binary):
        return _uses_error_code(e.left) or _uses_error_code(e.right)
    if isinstance(e, ir.Cond):
        return _uses_error_code(e.test) or _uses_error_code(e.then) or _uses_error_code(e.otherwise)
    if isinstance(e, ir.Call):
        return any(_uses_error_code(a) for a in e.args)
    if isinstance(e, ir.ListExpr):
        return any(_uses_error_code(a) for a in e.items)
    return False
