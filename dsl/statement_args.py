"""``bsp check`` of what reads a bank statement is given one (E135).

``statement_check(s)``, ``statement_kind(s)`` and the ``continuity`` step's ``statement = ...`` read an MT940,
MT942 or MT950 (a ``swift`` format of one of those types, or of any type), a camt.053 or camt.052 (an
``iso20022`` format of one of them, or of any message), or what a ``json`` format or a ``let`` holds.  Given the
message of a format that can hold no statement (``swift mt103``, ``iso20022 pain.001``, an ``iso8583``,
``fixed``, ``csv`` or ``copybook`` record) it would fail every exchange that reaches it: ``bsp check`` says so
at the argument, naming the format and what it holds.  The same words as the engine's when a message of a
format of any type turns out to be no statement (formats/swift/statement_kind.py).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from dsl import ir
from dsl.types import show
from formats.swift.statement_kind import ACCEPTED, STATEMENT_TYPES, mt_name

RECORDS = {"iso8583": "an ISO 8583 message", "fixed": "a fixed-width record", "csv": "a CSV record",
           "copybook": "a copybook record"}
READS = (f"{ACCEPTED} (a swift format of that type, or of any type) or a camt.053 / camt.052 (an iso20022 "
         f"format)")


def holds_no_statement(kind: str, options: Mapping[str, Any]) -> str | None:
    """What a message of a format (``kind``, its ``options``) is when it can hold no bank statement, else None."""
    if kind == "swift":
        mt = str(options.get("message") or "").lower().removeprefix("mt")
        return f"swift mt{mt}: {mt_name(mt)}" if mt.isdigit() and mt not in STATEMENT_TYPES else None
    if kind == "iso20022":
        message = str(options.get("message") or "")
        return (f"iso20022 {message}" if message and not message.startswith(("camt.053", "camt.052"))
                else None)
    return f"{kind}: {RECORDS[kind]}" if kind in RECORDS else None


def _msg_root(e: ir.Expr) -> bool:
    while isinstance(e, (ir.Attr, ir.Index)):
        e = e.base
    return isinstance(e, ir.Name) and e.name == "msg"


def check_statement_arg(what: str, arg: ir.Expr, scope: Mapping[str, Any], formats: Mapping[str, Any],
                        report: Callable[..., None]) -> None:
    """E135 at ``arg`` when it is the received message (or a part of it) of a format that holds no statement;
    ``what``: who reads it ("statement_check()", "`continuity stmts`: statement")."""
    if not _msg_root(arg):
        return
    binding = scope.get("msg")
    name = getattr(binding, "format", None)
    decl = formats.get(name) if name else None
    if decl is None:
        return
    holds = holds_no_statement(decl.kind, decl.options)
    if holds is None:
        return
    report("E135", f"{what}: `{show(arg)}` is of format `{name}` ({holds}), which holds no bank statement: it "
                   f"reads {READS}", arg.pos,
           "give it a statement's message, received through a format of the statement's type (e.g. `format Stmt "
           "= swift mt940`); a message of another type is checked with validate rules")


__all__ = ["check_statement_arg", "holds_no_statement"]
