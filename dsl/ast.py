"""The AST of one route file: frozen dataclasses, each carrying its ``Pos``.

Expressions are the IR's expression classes (``dsl.ir.Lit``, ``Name``,
``Attr`` ...): they already carry positions and the checker hands them to the
IR unchanged.  Everything else here is source-shaped (names keep their own
positions so a diagnostic can point at the exact word) and is lowered by
``dsl.lower`` into ``dsl.ir``.
"""
from __future__ import annotations

import json
import re

from dataclasses import dataclass
from typing import Any, Union

from dsl.ir import Attr, Binary, Call, Cond, Expr, Index, ListExpr, Lit, Name, Pos, Unary

__all__ = [
    "Pos", "Expr", "Lit", "Name", "Attr", "Index", "Unary", "Binary", "Cond", "Call", "ListExpr",
    "Ident", "Atom", "FieldAst", "UseDecl", "FormatAst", "ChannelOption", "ChannelAst", "TableAst",
    "AssignAst", "RuleAst", "Receive", "Decode", "Let", "Validate", "Deal", "CallStep", "Reply",
    "OnErrorReply", "OnErrorBlock", "PluginStep", "RouteAst", "Module", "Decl", "Stmt",
    "GivenSendAst", "GivenAnswerAst", "ExpectAst", "RouteTestAst",
]


@dataclass(frozen=True)
class Ident:
    """A name as written, with its own position."""
    name: str
    pos: Pos


@dataclass(frozen=True)
class Atom:
    """One word / dotted word / string / number after a format's kind.
    ``type``: word, string, int, decimal."""
    value: Any
    type: str
    pos: Pos


@dataclass(frozen=True)
class FieldAst:
    """``name type[(args)] [classification]`` inside a format's field block."""
    name: Ident
    type: Ident
    args: tuple[Atom, ...] | None      # None: no parentheses at all
    classification: Ident | None
    pos: Pos


@dataclass(frozen=True)
class UseDecl:
    path: str
    pos: Pos


@dataclass(frozen=True)
class FormatAst:
    name: Ident
    kind: Ident
    atoms: tuple[Atom, ...]
    fields: tuple[FieldAst, ...] | None   # None: no field block
    pos: Pos


@dataclass(frozen=True)
class ChannelOption:
    key: Ident
    value: Expr
    pos: Pos


@dataclass(frozen=True)
class AssignAst:
    """``target = value``; ``parts`` are names (str) and list indexes (int)."""
    parts: tuple[Union[str, int], ...]
    value: Expr
    pos: Pos

    @property
    def path(self) -> str:
        return render_path(self.parts)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def render_path(parts: tuple[Union[str, int], ...]) -> str:
    """("a", 0, "39") -> 'a[0]["39"]': words dotted, indexes [n], other keys ["..."] (JSON-quoted)."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _WORD.match(p):
            out += f".{p}" if out else p
        else:
            out += "[" + json.dumps(p) + "]"
    return out


@dataclass(frozen=True)
class OnErrorReply:
    format: Ident
    assigns: tuple[AssignAst, ...]
    pos: Pos


@dataclass(frozen=True)
class ChannelAst:
    name: Ident
    kind: tuple[Ident, ...]            # words joined by "." give the kind
    options: tuple[ChannelOption, ...]
    error_reply: OnErrorReply | None
    pos: Pos
    extra_error_replies: tuple[OnErrorReply, ...] = ()

    @property
    def kind_name(self) -> str:
        return ".".join(w.name for w in self.kind)


@dataclass(frozen=True)
class TableAst:
    name: Ident
    kind: Ident
    path: str
    path_pos: Pos
    key: Ident
    pos: Pos
    effective: Ident | None = None     # `effective from COLUMN`: the column of the date each row applies from


@dataclass(frozen=True)
class RuleAst:
    cond: Expr
    code: str
    text: str
    pos: Pos
    more: Expr | None = None      # ``... "text" + EXPR``: appended to the text when the rule fails


@dataclass(frozen=True)
class Receive:
    channel: Ident
    format: Ident | None
    when: Expr | None
    pos: Pos


@dataclass(frozen=True)
class Decode:
    source: Expr | None
    format: Ident
    pos: Pos


@dataclass(frozen=True)
class Let:
    name: Ident
    value: Expr
    pos: Pos


@dataclass(frozen=True)
class Validate:
    rules: tuple[RuleAst, ...]
    pos: Pos


@dataclass(frozen=True)
class Deal:
    type: Ident
    assigns: tuple[AssignAst, ...]
    pos: Pos


@dataclass(frozen=True)
class Compensate:
    """``compensate call CHANNEL as FORMAT [reply FORMAT] { ... } [expect E] [timeout D]`` after a call."""
    channel: Ident
    format: Ident
    reply_format: Ident | None
    assigns: tuple[AssignAst, ...]
    expect: Expr | None
    timeout: Lit | None
    pos: Pos


@dataclass(frozen=True)
class NameClause:
    """``name { word = EXPR ... }`` after a call's fields: the values of its file name's ``{word}``."""
    assigns: tuple[AssignAst, ...]
    pos: Pos


@dataclass(frozen=True)
class CallStep:
    name: Ident
    channel: Ident
    format: Ident
    reply_format: Ident | None
    assigns: tuple[AssignAst, ...]
    expect: Expr | None
    timeout: Lit | None
    pos: Pos
    compensate: Compensate | None = None
    names: NameClause | None = None
    readonly: Pos | None = None         # `readonly`: an enquiry, it changes nothing at the counterpart
    forward: Pos | None = None          # `store and forward`: an ISO 8583 advice left in doubt is repeated until acknowledged


@dataclass(frozen=True)
class OnRestart:
    """``on restart complete|compensate|flag``: what to do with this route's deals left in flight."""
    policy: Ident
    pos: Pos


@dataclass(frozen=True)
class OnDoubt:
    """``on doubt flag|compensate``: what to do with the calls made before a call that nothing can undo
    and that was left in doubt (docs/transactions.md)."""
    policy: Ident
    pos: Pos


@dataclass(frozen=True)
class OnRefusal:
    """``on refusal keep|free``: whether a deal a counterpart refused (a call's ``expect`` false) keeps its
    deal key (keep: the refusal is the answer to every repeat) or frees it (free: a repeat runs again, as a
    debit refused for insufficient funds presented again) (docs/transactions.md)."""
    policy: Ident
    pos: Pos


@dataclass(frozen=True)
class Reply:
    format: Ident | None
    assigns: tuple[AssignAst, ...]
    pos: Pos


@dataclass(frozen=True)
class OnErrorBlock:
    body: tuple["Stmt", ...]
    pos: Pos


@dataclass(frozen=True)
class PluginStep:
    kind: Ident
    name: Ident | None
    assigns: tuple[AssignAst, ...]
    pos: Pos


Stmt = Union[Receive, Decode, Let, Validate, Deal, CallStep, Reply, OnErrorReply, OnErrorBlock, OnRestart, OnDoubt,
             OnRefusal, PluginStep]


@dataclass(frozen=True)
class RouteAst:
    name: Ident
    body: tuple[Stmt, ...]
    pos: Pos


# ---------------------------------------------------------------- route tests

@dataclass(frozen=True)
class GivenSendAst:
    """``given CHANNEL sends [FORMAT] { fields } [http { method path params query headers }]
    [file { name line record offset records }] [peer { cn san address }] [twice]``, or
    ``given CHANNEL sends file "NAME.csv" [twice]``"""
    channel: Ident
    format: Ident | None
    assigns: tuple[AssignAst, ...]
    pos: Pos
    http: tuple[AssignAst, ...] | None = None
    repeat: Pos | None = None                        # ``twice``: where it is written (None: sent once)
    file: tuple[AssignAst, ...] | None = None        # ``file { name line record offset records }`` (file watch)
    peer: tuple[AssignAst, ...] | None = None        # ``peer { cn san address }``: who sent it (peer.*)
    path: Lit | None = None                          # ``sends file "NAME.csv"``: a whole file (file watch)


@dataclass(frozen=True)
class GivenAnswerAst:
    """``given ENDPOINT answers [STATUS] [FORMAT] { fields } [delay D]`` / ``answers error`` /
    ``answers timeout`` / ``answers unreachable``; ``mode``: values, error, timeout, unreachable."""
    endpoint: Ident
    mode: str
    status: Lit | None
    format: Ident | None
    assigns: tuple[AssignAst, ...]
    delay: Lit | None
    pos: Pos
    headers: tuple[AssignAst, ...] | None = None     # ``headers { name = value }`` (http call answers)


@dataclass(frozen=True)
class ExpectAst:
    """``expect reply [STATUS]|no reply|call X|no call X|deal TYPE|dead letter``;
    ``kind``: reply, no_reply, call, no_call, deal, dead_letter.  ``assigns`` may hold
    ``LikeAst`` (``field ~ "text"``)."""
    kind: str
    target: Ident | None
    assigns: tuple[AssignAst, ...]
    pos: Pos
    status: Lit | None = None                        # ``expect reply 422 { ... }`` (http listen)
    count: Lit | None = None                         # ``expect call X { ... } once|twice|N times``
    names: NameClause | None = None                  # ``expect call X { ... } name { ref = "R1" }``


@dataclass(frozen=True)
class LikeAst(AssignAst):
    """``field ~ "text"`` in an expectation: the field's text contains the value's."""


@dataclass(frozen=True)
class RouteTestAst:
    """``test "name" [at 2026-11-25T10:00:00Z] { given ... expect ... }`` (``at`` quoted too)"""
    name: str
    name_pos: Pos
    body: tuple[Union[GivenSendAst, GivenAnswerAst, ExpectAst], ...]
    pos: Pos
    at: Lit | None = None                            # ``at "..."``: the test's clock (None: the wall clock)
    at_bare: bool = False                            # written as a timestamp literal (``at 2026-11-25T10:00:00Z``)


Decl = Union[UseDecl, FormatAst, ChannelAst, TableAst, RouteAst, RouteTestAst]


@dataclass(frozen=True)
class Module:
    """One parsed file; ``escapes``: its strings' unknown escapes (``dsl.escapes``, E111)."""
    path: str
    decls: tuple[Decl, ...]
    escapes: tuple = ()
