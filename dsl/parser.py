"""Route file text -> ``dsl.ast.Module``.

The LALR parser is built once per process (module-level singleton, lark's
``cache=True`` keeps the tables on disk between processes).  Parse errors
become a ``Diagnostic`` (see ``dsl.syntax_errors`` for the friendly wording).
"""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError

from dsl import ast as A
from dsl.diagnostics import ERROR, Diagnostic
from dsl.escapes import ESCAPES, scan
from dsl.ir import Pos

GRAMMAR = Path(__file__).with_name("route.lark")

_parser: Lark | None = None


def get_parser() -> Lark:
    global _parser
    if _parser is None:
        try:
            parser = Lark.open(str(GRAMMAR), parser="lalr", lexer="contextual",
                               propagate_positions=True, maybe_placeholders=True, cache=True)
        except OSError:   # cache directory not writable: build without the cache
            parser = Lark.open(str(GRAMMAR), parser="lalr", lexer="contextual",
                               propagate_positions=True, maybe_placeholders=True)
        parser.parser.lexer = _WholeWords(parser.parser.lexer, {
            t.name: t.pattern.value for t in parser.terminals
            if t.pattern.type == "str" and t.pattern.value.isidentifier()})
        _parser = parser
    return _parser


def keywords() -> dict[str, str]:
    """The grammar's word keywords: terminal name -> word (``FROM`` -> ``from``, ``__ANON_0`` -> ``name``)."""
    return get_parser().parser.lexer.keywords


_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_WORD_REST = re.compile(r"[A-Za-z0-9_]*")


class _WholeWords:
    """Keywords end at a word boundary, in every parser state.

    The contextual lexer only tries the terminals the parser state accepts; where
    a keyword is accepted but a name is not (after ``receive`` only ``from`` fits)
    the keyword's string matches the front of a longer word: ``frominb`` read as
    ``from inb``, ``names`` as ``name`` + ``s``.  A keyword followed directly by a
    letter, digit or ``_`` is not that keyword: the whole word becomes one NAME
    token, which the parser then rejects at that word (``dsl.syntax_hints.keyword_word``
    words the error).  Where a name is accepted too, lark already reads the whole word."""

    def __init__(self, inner, keywords: dict[str, str]) -> None:
        self.inner = inner
        self.keywords = keywords

    def lex(self, lexer_state, parser_state):
        keywords = self.keywords
        for tok in self.inner.lex(lexer_state, parser_state):
            if tok.type in keywords:
                text = lexer_state.text
                src = getattr(text, "text", text)
                end = tok.end_pos
                if end < getattr(text, "end", len(src)) and src[end] in _WORD_CHARS:
                    tok = _whole_word(tok, src, lexer_state)
            yield tok

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _whole_word(tok: Token, src: str, lexer_state) -> Token:
    rest = _WORD_REST.match(src, tok.end_pos).group(0)      # word characters: no newline in it
    lexer_state.line_ctr.feed(rest, test_newline=False)
    word = Token("NAME", str(tok.value) + rest, tok.start_pos, tok.line, tok.column,
                 tok.end_line, tok.end_column + len(rest), tok.end_pos + len(rest))
    lexer_state.last_token = word
    return word


class ParseFailure(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _keyword_as_name(e: UnexpectedInput) -> bool:
    """LALR merges states, so the contextual lexer may read a keyword
    (``timeout``, ``reply`` ...) where only a name fits, e.g. a channel option
    called ``timeout``.  Re-feed such a token as a NAME when that is accepted."""
    tok = getattr(e, "token", None)
    ip = getattr(e, "interactive_parser", None)
    if tok is None or ip is None or tok.type in ("NAME", "$END"):
        return False
    if not str(tok.value).isidentifier() or "NAME" not in ip.accepts():
        return False
    ip.feed_token(Token.new_borrow_pos("NAME", str(tok.value), tok))
    return True


def raw_parse(text: str):
    """The lark tree (used by the syntax-error examples too)."""
    return get_parser().parse(text, on_error=_keyword_as_name)


def parse(text: str, path: str, step_kinds=None) -> A.Module:
    """Parse one file.  Raises ``ParseFailure`` carrying a diagnostic.
    ``step_kinds`` (the registry's plugin step kinds) sharpens that diagnostic."""
    from dsl.syntax_errors import diagnostic_for
    try:
        tree = raw_parse(text)
    except UnexpectedInput as e:
        raise ParseFailure(diagnostic_for(e, text, path, step_kinds)) from None
    try:
        decls = _Build(path, text).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, ParseFailure):
            raise e.orig_exc from None
        raise
    return A.Module(path=path, decls=tuple(decls.children if hasattr(decls, "children") else decls),
                    escapes=scan(tree, path))


# ------------------------------------------------------------------ transformer

def unquote(tok: str) -> str:
    """A STRING token's text: its quotes off, the escapes of ``dsl.escapes.ESCAPES`` read; an unknown
    escape keeps only its character (``"\\d"`` is ``d``), which ``bsp check`` refuses (E111)."""
    body = tok[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_DURATION_UNITS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600), "d": Decimal(86400)}


def duration_seconds(text: str) -> Decimal:
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit):
            return Decimal(text[: -len(unit)]) * _DURATION_UNITS[unit]
    raise ValueError(text)


@v_args(meta=True)
class _Build(Transformer):
    def __init__(self, path: str, source: str = "") -> None:
        super().__init__()
        self.path = path
        self.source = source

    # positions
    def _pos(self, meta: Any) -> Pos:
        if getattr(meta, "empty", False):
            return Pos(self.path, 1, 1)
        return Pos(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _text(self, meta: Any) -> str | None:
        """The source text of a node (its whitespace runs made one space), for messages that name it."""
        start, end = getattr(meta, "start_pos", None), getattr(meta, "end_pos", None)
        if getattr(meta, "empty", False) or start is None or end is None or not self.source:
            return None
        return " ".join(self.source[start:end].split()) or None

    def _tpos(self, tok: Token) -> Pos:
        return Pos(self.path, tok.line, tok.column, tok.end_line, tok.end_column)

    def _id(self, tok: Token | None) -> A.Ident | None:
        return None if tok is None else A.Ident(str(tok), self._tpos(tok))

    # ---------------------------------------------------------- declarations
    def start(self, meta, ch):
        return list(ch)

    def use_decl(self, meta, ch):
        return A.UseDecl(unquote(ch[0]), self._pos(meta))

    def format_decl(self, meta, ch):
        name, kind, *rest = ch
        fields = None
        if rest and isinstance(rest[-1], _FieldBlock):
            fields = rest.pop().fields
        return A.FormatAst(self._id(name), self._id(kind), tuple(rest), fields, self._pos(meta))

    def atom_word(self, meta, ch):
        return A.Atom(str(ch[0]), "word", self._tpos(ch[0]))

    def atom_string(self, meta, ch):
        return A.Atom(unquote(ch[0]), "string", self._tpos(ch[0]))

    def atom_int(self, meta, ch):
        return A.Atom(int(ch[0]), "int", self._tpos(ch[0]))

    def atom_decimal(self, meta, ch):
        return A.Atom(Decimal(str(ch[0])), "decimal", self._tpos(ch[0]))

    def atom_list(self, meta, ch):
        """``["account:personal", "card.no:pan"]``: a list option's value (classify, lists, segment_map)."""
        return A.Atom(tuple(a.value for a in ch if a is not None), "list", self._pos(meta))

    def field_block(self, meta, ch):
        return _FieldBlock(tuple(c for c in ch if isinstance(c, A.FieldAst)))

    def field_args(self, meta, ch):
        return _Args(tuple(c for c in ch if c is not None))

    def field_decl(self, meta, ch):
        name, typ, *rest = ch
        args = None
        cls = None
        for r in rest:
            if isinstance(r, _Args):
                args = r.items
            elif isinstance(r, Token):
                cls = self._id(r)
        return A.FieldAst(self._id(name), self._id(typ), args, cls, self._pos(meta))

    def channel_decl(self, meta, ch):
        words = [w for w in ch[1:] if isinstance(w, Token)]
        body = next((b for b in ch if isinstance(b, _ChannelBody)), None)
        opts: tuple = ()
        replies: list = []
        if body is not None:
            opts = body.options
            replies = list(body.replies)
        return A.ChannelAst(self._id(ch[0]), tuple(self._id(w) for w in words), opts,
                            replies[0] if replies else None, self._pos(meta),
                            tuple(replies[1:]))

    def channel_body(self, meta, ch):
        return _ChannelBody(tuple(c for c in ch if isinstance(c, A.ChannelOption)),
                            tuple(c for c in ch if isinstance(c, A.OnErrorReply)))

    def channel_option(self, meta, ch):
        return A.ChannelOption(self._id(ch[0]), ch[1], self._pos(meta))

    def channel_error(self, meta, ch):
        return A.OnErrorReply(self._id(ch[0]), ch[1], self._pos(meta))

    def table_decl(self, meta, ch):
        name, kind, path, key, effective = ch
        return A.TableAst(self._id(name), self._id(kind), unquote(path), self._tpos(path),
                          self._id(key), self._pos(meta), effective)

    def table_effective(self, meta, ch):
        return self._id(ch[0])

    def route_decl(self, meta, ch):
        return A.RouteAst(self._id(ch[0]), tuple(ch[1:]), self._pos(meta))

    # ---------------------------------------------------------- route tests
    def test_decl(self, meta, ch):
        name, at, *body = ch
        lit, bare = at if at is not None else (None, False)
        return A.RouteTestAst(unquote(name), self._tpos(name), tuple(body), self._pos(meta), lit, bare)

    def test_at(self, meta, ch):
        tok = ch[0]
        if tok.type == "STRING":
            return A.Lit(unquote(tok), "string", pos=self._tpos(tok)), False
        # ``at 2026-11-25T10:00:00Z``: the literal as a route writes it, checked as one (E133/E134); its text
        # is what the clock reads (a zone-less one is refused there, E113, as the quoted string is)
        if tok.type == "BAD_TIMESTAMP":
            self.bad_timestamp(meta, ch)
        self.timestamp(meta, ch)
        return A.Lit(str(tok), "string", pos=self._tpos(tok)), True

    def given_sends(self, meta, ch):
        return A.GivenSendAst(self._id(ch[0]), self._id(ch[1]), ch[2], self._pos(meta), ch[3], ch[6], ch[4], ch[5])

    def given_sends_file(self, meta, ch):
        path = A.Lit(unquote(ch[1]), "string", pos=self._tpos(ch[1]))
        return A.GivenSendAst(self._id(ch[0]), None, (), self._pos(meta), None, ch[2], None, None, path)

    def repeat(self, meta, ch):
        return self._pos(meta)

    def count_once(self, meta, ch):
        return A.Lit(1, "int", pos=self._pos(meta))

    def count_twice(self, meta, ch):
        return A.Lit(2, "int", pos=self._pos(meta))

    def count_times(self, meta, ch):
        return A.Lit(int(ch[0]), "int", pos=self._tpos(ch[0]))

    def http_block(self, meta, ch):
        return ch[0]

    def file_block(self, meta, ch):
        return ch[0]

    def peer_block(self, meta, ch):
        return ch[0]

    def headers_block(self, meta, ch):
        return ch[0]

    def expect_block(self, meta, ch):
        return tuple(ch)

    def expect_like(self, meta, ch):
        return A.LikeAst(ch[0], ch[1], self._pos(meta))

    def answer_values(self, meta, ch):
        endpoint, status, fmt, assigns, headers, delay = ch
        slit = None if status is None else A.Lit(int(status), "int", pos=self._tpos(status))
        dlit = None
        if delay is not None:
            dlit = A.Lit(duration_seconds(str(delay)), "duration", pos=self._tpos(delay))
        return A.GivenAnswerAst(self._id(endpoint), "values", slit, self._id(fmt), assigns, dlit,
                                self._pos(meta), headers)

    def answer_error(self, meta, ch):
        return A.GivenAnswerAst(self._id(ch[0]), "error", None, None, (), None, self._pos(meta))

    def answer_timeout(self, meta, ch):
        return A.GivenAnswerAst(self._id(ch[0]), "timeout", None, None, (), None, self._pos(meta))

    def answer_unreachable(self, meta, ch):
        return A.GivenAnswerAst(self._id(ch[0]), "unreachable", None, None, (), None, self._pos(meta))

    def expect_reply(self, meta, ch):
        status, fmt, assigns = ch
        slit = None if status is None else A.Lit(int(status), "int", pos=self._tpos(status))
        return A.ExpectAst("reply", self._id(fmt), assigns, self._pos(meta), slit)

    def expect_no_reply(self, meta, ch):
        return A.ExpectAst("no_reply", None, (), self._pos(meta))

    def expect_call(self, meta, ch):
        return A.ExpectAst("call", self._id(ch[0]), ch[1], self._pos(meta), count=ch[3], names=ch[2])

    def expect_call_names(self, meta, ch):
        return A.ExpectAst("call", self._id(ch[0]), (), self._pos(meta), count=ch[2], names=ch[1])

    def expect_names(self, meta, ch):
        return A.NameClause(ch[0], self._pos(meta))

    def expect_call_count(self, meta, ch):
        return A.ExpectAst("call", self._id(ch[0]), (), self._pos(meta), count=ch[1])

    def expect_no_call(self, meta, ch):
        return A.ExpectAst("no_call", self._id(ch[0]), (), self._pos(meta))

    def expect_deal(self, meta, ch):
        return A.ExpectAst("deal", self._id(ch[0]), ch[1], self._pos(meta))

    def expect_dead_letter(self, meta, ch):
        return A.ExpectAst("dead_letter", None, ch[0] if ch and ch[0] is not None else (), self._pos(meta))

    # ---------------------------------------------------------- statements
    def receive_stmt(self, meta, ch):
        return A.Receive(self._id(ch[0]), self._id(ch[1]), ch[2], self._pos(meta))

    def decode_stmt(self, meta, ch):
        return A.Decode(ch[0], self._id(ch[1]), self._pos(meta))

    def let_stmt(self, meta, ch):
        return A.Let(self._id(ch[0]), ch[1], self._pos(meta))

    def validate_stmt(self, meta, ch):
        return A.Validate(tuple(ch), self._pos(meta))

    def rule(self, meta, ch):
        return A.RuleAst(ch[0], unquote(ch[1]), unquote(ch[2]), self._pos(meta), ch[3])

    def rule_more(self, meta, ch):
        return ch[0]

    def deal_stmt(self, meta, ch):
        return A.Deal(self._id(ch[0]), ch[1], self._pos(meta))

    def call_stmt(self, meta, ch):
        name, chan, fmt, rfmt, readonly, assigns, names, expect, timeout, forward, comp = ch
        tlit = None
        if timeout is not None:
            tlit = A.Lit(duration_seconds(str(timeout)), "duration", pos=self._tpos(timeout))
        return A.CallStep(self._id(name), self._id(chan), self._id(fmt), self._id(rfmt), assigns,
                          expect, tlit, self._pos(meta), comp, names, readonly, forward)

    def readonly(self, meta, ch):
        return self._pos(meta)

    def forward_clause(self, meta, ch):
        return self._pos(meta)

    def name_clause(self, meta, ch):
        return A.NameClause(ch[0], self._pos(meta))

    def compensate_clause(self, meta, ch):
        chan, fmt, rfmt, assigns, expect, timeout = ch
        tlit = None
        if timeout is not None:
            tlit = A.Lit(duration_seconds(str(timeout)), "duration", pos=self._tpos(timeout))
        return A.Compensate(self._id(chan), self._id(fmt), self._id(rfmt), assigns, expect, tlit, self._pos(meta))

    def on_restart_stmt(self, meta, ch):
        return A.OnRestart(self._id(ch[0]), self._pos(meta))

    def on_doubt_stmt(self, meta, ch):
        return A.OnDoubt(self._id(ch[0]), self._pos(meta))

    def on_refusal_stmt(self, meta, ch):
        return A.OnRefusal(self._id(ch[0]), self._pos(meta))

    def reply_stmt(self, meta, ch):
        return A.Reply(self._id(ch[0]), ch[1], self._pos(meta))

    def on_error_reply(self, meta, ch):
        return A.OnErrorReply(self._id(ch[0]), ch[1], self._pos(meta))

    def on_error_block(self, meta, ch):
        return A.OnErrorBlock(tuple(ch), self._pos(meta))

    def plugin_stmt(self, meta, ch):
        return A.PluginStep(self._id(ch[0]), self._id(ch[1]), ch[2], self._pos(meta))

    def assign_block(self, meta, ch):
        return tuple(ch)

    def assign(self, meta, ch):
        return A.AssignAst(ch[0], ch[1], self._pos(meta))

    def target(self, meta, ch):
        first = ch[0]
        head = unquote(str(first)) if getattr(first, "type", None) == "STRING" else str(first)
        return (head,) + tuple(ch[1:])

    def target_key(self, meta, ch):
        return unquote(str(ch[0]))

    def target_attr(self, meta, ch):
        return str(ch[0])

    def target_index(self, meta, ch):
        return int(ch[0])

    # ---------------------------------------------------------- expressions
    def string(self, meta, ch):
        return A.Lit(unquote(ch[0]), "string", pos=self._pos(meta))

    def int(self, meta, ch):
        return A.Lit(int(ch[0]), "int", pos=self._pos(meta))

    def decimal(self, meta, ch):
        return A.Lit(Decimal(str(ch[0])), "decimal", pos=self._pos(meta))

    def duration(self, meta, ch):
        return A.Lit(duration_seconds(str(ch[0])), "duration", pos=self._pos(meta), text=str(ch[0]))

    def timestamp(self, meta, ch):
        from dsl import timestamps
        try:
            value = timestamps.parse(str(ch[0]))
        except timestamps.LiteralError as exc:
            raise ParseFailure(Diagnostic(exc.code, ERROR, exc.message, self._tpos(ch[0]), exc.help)) from None
        return A.Lit(value, "timestamp", pos=self._pos(meta))

    def date_lit(self, meta, ch):
        from dsl import timestamps
        try:
            value = timestamps.parse_day(str(ch[0]))
        except timestamps.LiteralError as exc:
            raise ParseFailure(Diagnostic(exc.code, ERROR, exc.message, self._tpos(ch[0]), exc.help)) from None
        return A.Lit(value, "date", pos=self._pos(meta))

    def bad_timestamp(self, meta, ch):
        from dsl.syntax_hints import bad_timestamp
        raise ParseFailure(bad_timestamp(str(ch[0]), self._tpos(ch[0])))

    def bad_number(self, meta, ch):
        from dsl.syntax_hints import bad_number
        raise ParseFailure(bad_number(str(ch[0]), self._tpos(ch[0])))

    def true(self, meta, ch):
        return A.Lit(True, "bool", pos=self._pos(meta))

    def false(self, meta, ch):
        return A.Lit(False, "bool", pos=self._pos(meta))

    def null(self, meta, ch):
        return A.Lit(None, "null", pos=self._pos(meta))

    def name(self, meta, ch):
        return A.Name(str(ch[0]), pos=self._pos(meta))

    def call(self, meta, ch):
        return A.Call(str(ch[0]), tuple(c for c in ch[1:] if c is not None), pos=self._pos(meta))

    def list(self, meta, ch):
        return A.ListExpr(tuple(c for c in ch if c is not None), pos=self._pos(meta))

    def attr(self, meta, ch):
        return A.Attr(ch[0], str(ch[1]), pos=self._pos(meta))

    def index(self, meta, ch):
        return A.Index(ch[0], ch[1], pos=self._pos(meta))

    def index_at(self, meta, ch):
        return A.Index(ch[0], ch[1], ch[2], pos=self._pos(meta))

    def neg(self, meta, ch):
        operand = ch[0]
        if isinstance(operand, A.Lit) and operand.type in ("int", "decimal", "duration"):
            return A.Lit(-operand.value, operand.type, pos=self._pos(meta),
                         text=self._text(meta) if operand.type == "duration" else None)
        return A.Unary("-", operand, pos=self._pos(meta), text=self._text(meta))

    def not_op(self, meta, ch):
        return A.Unary("not", ch[0], pos=self._pos(meta), text=self._text(meta))

    def binop(self, meta, ch):
        return A.Binary(str(ch[1]), ch[0], ch[2], pos=self._pos(meta), text=self._text(meta))

    compare = binop

    def in_op(self, meta, ch):
        return A.Binary("in", ch[0], ch[1], pos=self._pos(meta), text=self._text(meta))

    def not_in_op(self, meta, ch):
        return A.Binary("not_in", ch[0], ch[1], pos=self._pos(meta), text=self._text(meta))

    def and_op(self, meta, ch):
        return A.Binary("and", ch[0], ch[1], pos=self._pos(meta), text=self._text(meta))

    def or_op(self, meta, ch):
        return A.Binary("or", ch[0], ch[1], pos=self._pos(meta), text=self._text(meta))

    def cond(self, meta, ch):
        return A.Cond(ch[0], ch[1], ch[2], pos=self._pos(meta), text=self._text(meta))


class _FieldBlock:
    __slots__ = ("fields",)

    def __init__(self, fields: tuple) -> None:
        self.fields = fields


class _Args:
    __slots__ = ("items",)

    def __init__(self, items: tuple) -> None:
        self.items = items


class _ChannelBody:
    __slots__ = ("options", "replies")

    def __init__(self, options: tuple, replies: tuple) -> None:
        self.options = options
        self.replies = replies
