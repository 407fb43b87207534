"""The IR: a frozen, JSON-dumpable plan that the engine binds to sockets.

The checker lowers the AST into these classes once every diagnostic has been
collected and none is an error.  ``to_json`` renders the whole program (this is
what ``bsp check --explain`` prints).  The engine never sees the AST.

Expressions stay trees (``Expr`` subclasses); ``dsl.compiler.compile_expr``
turns one into a Python closure ``f(scope) -> value``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Union


@dataclass(frozen=True)
class Pos:
    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# ---------------------------------------------------------------- expressions

@dataclass(frozen=True)
class Expr:
    pos: Pos | None = field(default=None, kw_only=True, compare=False)
    # the expression as written (a duration literal ``90m``, a compound one ``2h + msg.n``), for messages that
    # name it (``dsl.types.show``); None where the parser did not give it
    text: str | None = field(default=None, kw_only=True, compare=False)


@dataclass(frozen=True)
class Lit(Expr):
    """A literal. ``type``: string, int, decimal, bool, null, duration (value: seconds as Decimal), timestamp
    (value: a datetime, aware or zone-less: ``dsl.timestamps``), date (value: a date, ``2026-11-25``)."""
    value: Any
    type: str


@dataclass(frozen=True)
class Name(Expr):
    """A bare name: a scope root (msg, error, header, a call result, a let) or a table."""
    name: str


@dataclass(frozen=True)
class Attr(Expr):
    """``base.name``"""
    base: Expr
    name: str


@dataclass(frozen=True)
class Index(Expr):
    """``base[index]`` (list index, or a table row by key); ``base[index at at]``: the row of an
    effective-dated table in force on the date ``at``."""
    base: Expr
    index: Expr
    at: Expr | None = None


@dataclass(frozen=True)
class Unary(Expr):
    op: str          # "-", "not"
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str          # + - * / %  == != < <= > >=  and or  in  not_in
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Cond(Expr):
    """``if test then a else b``"""
    test: Expr
    then: Expr
    otherwise: Expr


@dataclass(frozen=True)
class Call(Expr):
    """A call to a function of the language's fixed library."""
    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


# ------------------------------------------------------------ declarations

@dataclass(frozen=True)
class FieldDecl:
    """One field of an inline record layout (``fixed`` / ``csv`` formats).

    type: string, integer, decimal, date.  ``width`` for fixed records,
    ``scale`` for decimals, ``pattern`` for dates (strftime), ``classification``
    one of None / "pan" / "secret" / "personal".
    """
    name: str
    type: str
    width: int | None = None
    scale: int | None = None
    pattern: str | None = None
    classification: str | None = None
    pos: Pos | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FormatDecl:
    """``format NAME = KIND ...``.  ``options`` holds literal values only
    (paths already resolved to absolute paths by the checker)."""
    name: str
    kind: str
    options: dict[str, Any]
    fields: tuple[FieldDecl, ...] = ()
    pos: Pos | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ChannelDecl:
    """``channel NAME = KIND ... { options }``; kind like "tcp.listen"."""
    name: str
    kind: str
    options: dict[str, Any]
    error_reply: "Step | None" = None     # reply for exchanges no route could take
    pos: Pos | None = field(default=None, compare=False)
    option_pos: dict[str, Pos] = field(default_factory=dict, compare=False)   # option -> where it was written


@dataclass(frozen=True)
class TableDecl:
    """``table NAME = csv "file.csv" key COLUMN [effective from COLUMN]``."""
    name: str
    kind: str
    path: str               # absolute
    key: str
    options: dict[str, Any] = field(default_factory=dict)
    pos: Pos | None = field(default=None, compare=False)
    effective: str | None = None    # the column of the date each row applies from (several rows per key)


@dataclass(frozen=True)
class Assign:
    """``path = expr`` inside a message body; ``path`` is dotted, may hold [n]."""
    path: str
    value: Expr
    pos: Pos | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rule:
    """One validation rule: ``cond else reject CODE TEXT [+ MORE]``; ``more`` is evaluated, and appended
    to ``text``, only when the rule fails."""
    cond: Expr
    code: str
    text: str
    pos: Pos | None = field(default=None, compare=False)
    more: Expr | None = None


@dataclass(frozen=True)
class Step:
    """One route statement.  ``kind`` selects the engine's step component.

    Built-in kinds and their options:
      decode   {format: str, source: Expr}              -> rebinds ``msg``
      let      {value: Expr}                             -> binds ``name``
      validate {rules: tuple[Rule]}
      deal     {type: str, fields: tuple[Assign]}        (ref, amount, currency, party)
      call     {channel: str, format: str|None, reply_format: str|None,
                fields: tuple[Assign], expect: Expr|None, timeout: Decimal|None}
                                                         -> binds ``name`` to the decoded reply
               + compensate: Step|None  (a ``call`` Step without a name: the step's compensation)
               + names: tuple[Assign], name_tags: {field: tag}  (``name { ref = ... }``: the values of a
                 file write channel's ``{word}`` name fields, and the classification each carries)
      reply    {format: str|None, fields: tuple[Assign]}
      <plugin> {fields: tuple[Assign], ...}              generic ``KIND [NAME] { a = expr }``
    """
    kind: str
    name: str | None
    options: dict[str, Any]
    pos: Pos | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Route:
    name: str
    channel: str
    format: str | None          # receive format (decode before ``when``), None = raw
    when: Expr | None
    steps: tuple[Step, ...]
    on_error: tuple[Step, ...] = ()
    pos: Pos | None = field(default=None, compare=False)
    # ``on restart complete|compensate|flag`` (None: flag); see docs/transactions.md
    on_restart: str | None = None
    # ``on doubt flag|compensate`` (the default, when the route has none: flag): a call that nothing can undo
    # left in doubt keeps (flag) or undoes (compensate) the calls made before it; see docs/transactions.md.
    # Lowered to the policy in force, so `bsp check --explain` shows it on every route
    on_doubt: str = "flag"
    # ``on refusal keep|free`` (default keep): whether a keyed deal a counterpart refused (a call's ``expect``
    # false, nothing else left standing) keeps its key, or frees it so that a repeat runs again
    on_refusal: str = "keep"
    # the reply field a committed deal's ``response_code`` is read from: the field the route's error reply
    # (its own, else its channel's ``on error reply``) fills with ``error.code``, when the route's success
    # ``reply`` of the same format sets it (``dsl.respcode``); None: a committed deal records no code
    response_code: str | None = None


# ------------------------------------------------------------ route tests

@dataclass(frozen=True)
class GivenSend:
    """``given CHANNEL sends FORMAT { fields }``: the request the test feeds in."""
    channel: str
    format: str | None
    fields: tuple[Assign, ...]
    pos: Pos | None = field(default=None, compare=False)
    # ``http { method path params.X query.X headers.X }`` on an http listen channel (None: the channel's own)
    http: tuple[Assign, ...] | None = None
    twice: bool = False                   # ``twice``: the same bytes are sent again after the first exchange
    # ``file { name line record offset records }``: the record's place in its batch file, what the routes of a
    # file watch channel read as ``file.*`` (None: not given, file.* are null)
    file: tuple[Assign, ...] | None = None
    # ``peer { cn san address }``: the peer the channel authenticated, what the routes read as ``peer.*``
    # (None: not given: peer.cn and peer.address null, peer.san empty)
    peer: tuple[Assign, ...] | None = None
    # ``sends file "NAME.csv"``: the path of a whole file a file watch channel takes (None: a request)
    path: str | None = None


@dataclass(frozen=True)
class GivenAnswer:
    """``given ENDPOINT answers ...``: one scripted answer of a call target, used in order.
    ``mode``: values (encode ``fields`` with ``format``), error (the connection breaks:
    kind lost), timeout (no answer: kind timeout), unreachable (the request never leaves: kind
    unreachable).  ``delay`` in seconds."""
    endpoint: str
    mode: str
    format: str | None
    fields: tuple[Assign, ...] = ()
    status: int | None = None
    delay: Decimal | None = None
    pos: Pos | None = field(default=None, compare=False)
    headers: tuple[Assign, ...] | None = None     # ``headers { ... }`` of an http call's answer


@dataclass(frozen=True)
class Expectation:
    """``expect ...``.  ``kind``: reply, no_reply, call, no_call, deal, dead_letter;
    ``target``: the call's channel or the deal type; ``format`` to decode with."""
    kind: str
    target: str | None
    format: str | None
    fields: tuple[Assign, ...] = ()
    pos: Pos | None = field(default=None, compare=False)
    contains: tuple[int, ...] = ()      # indexes of ``fields`` written ``field ~ "text"`` (the text contains it)
    status: int | None = None           # ``expect reply 422 { ... }``: the HTTP status answered
    count: int | None = None            # ``expect call X { ... } once|twice|N times``: exactly that many calls
    # ``expect call X [{ ... }] name { ref = "R1" }``: the file name values the call gave (a file write channel's
    # ``{word}`` fields); ``names_contains``: indexes of those written ``word ~ "text"``
    names: tuple[Assign, ...] | None = None
    names_contains: tuple[int, ...] = ()


@dataclass(frozen=True)
class RouteTest:
    """``test "name" { ... }`` in a route file (run by ``bsp test``)."""
    name: str
    send: GivenSend
    answers: tuple[GivenAnswer, ...]
    expects: tuple[Expectation, ...]
    pos: Pos | None = field(default=None, compare=False)
    # ``at "2026-11-25T10:00:00Z"``: the instant now() and today() read during the test (dsl.clock), as
    # ``dsl.clock.instant_text`` writes it; None: the wall clock
    at: str | None = None


@dataclass(frozen=True)
class Program:
    version: str                         # sha256 over sorted (path, source) pairs, hex, first 16
    sources: dict[str, str]              # absolute path -> text, every file that was read
    formats: dict[str, FormatDecl]
    channels: dict[str, ChannelDecl]
    tables: dict[str, TableDecl]
    routes: tuple[Route, ...]            # in declaration order: first match wins per channel
    tests: tuple[RouteTest, ...] = ()     # route tests, in declaration order

    def routes_for(self, channel: str) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.channel == channel)

    def to_json(self, *, with_sources: bool = False) -> dict[str, Any]:
        out = _dump(self)
        if not with_sources:
            out.pop("sources", None)
        return out


def _dump(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        d: dict[str, Any] = {}
        if isinstance(obj, Expr):
            d["node"] = type(obj).__name__
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.name == "pos":
                d["pos"] = str(v) if v is not None else None
            elif f.name == "text" and isinstance(obj, Expr):
                continue            # the source text messages name an expression by: not part of the plan
            elif f.name in ("at", "effective") and v is None:
                continue            # an index without `at`, a table without `effective`: as before they existed
            else:
                d[f.name] = _dump(v)
        return d
    if isinstance(obj, dict):
        return {str(k): _dump(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_dump(v) for v in obj]
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, datetime):         # a timestamp literal: as it is written (dsl/timestamps.py)
        from dsl.timestamps import text
        return text(obj)
    if isinstance(obj, date):             # a date literal: 2026-11-25
        return obj.isoformat()
    return obj


IRValue = Union[str, int, Decimal, bool, None, Expr, tuple]
