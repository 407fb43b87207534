"""Copybook text -> flat list of ``Entry`` (one per data description entry).

Fixed-format COBOL: columns 1-6 (sequence area) and 73-80 are ignored, column
7 is the indicator (``*`` or ``/`` comment, ``D`` debug line: ignored).  The
text handed to lark keeps every character's line and column, so a parse error
points at the original file.  ``source_format="free"`` reads the whole line
and treats ``*>`` as a comment.
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from formats.errors import SpecError

GRAMMAR_FILE = Path(__file__).with_name("copybook.lark")


@dataclass
class Entry:
    level: int
    name: str | None            # None for FILLER / unnamed
    line: int
    col: int
    pic: str | None = None
    pic_line: int = 0
    pic_col: int = 0
    usage: str | None = None
    redefines: str | None = None
    occurs_min: int | None = None
    occurs_max: int | None = None
    depending_on: str | None = None
    sign_pos: str | None = None     # "leading" / "trailing"
    sign_separate: bool = False
    values: list[Any] = field(default_factory=list)   # 88: literals or (lo, hi)
    renames: tuple[str, str | None] | None = None
    justified: bool = False
    blank_when_zero: bool = False


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR_FILE.read_text(encoding="utf-8"), parser="lalr",
                lexer="contextual", propagate_positions=True, maybe_placeholders=False)


def preprocess(text: str, source_format: str = "fixed") -> str:
    """Blank the non-code areas, keeping line and column positions.

    A ``-`` in column 7 continues the previous code line: a literal left open
    there runs to column 72 (trailing spaces included) and goes on after the
    quote that opens the continuation's text; a word or number goes on with the
    continuation's first non-blank character.  The joined text is placed on
    the first line (so positions after the join point at that line) and the
    continuation line is left blank.
    """
    out: list[str] = []
    last = -1                      # index in ``out`` of the last code line (a continuation joins it)
    for line in text.splitlines():
        if source_format == "free":
            cut = line.find("*>")
            if cut >= 0:
                line = line[:cut]
            if line.lstrip().startswith("*"):
                line = ""
            out.append(line)
            continue
        if "\t" in line:          # a copybook edited off the mainframe: tab stops every 8 columns (GnuCOBOL)
            line = line.expandtabs(8)
        indicator = line[6:7]
        if indicator in ("*", "/", "D", "d") or line.lstrip().startswith("*>"):
            out.append("")
            continue
        body = line[7:72]
        if indicator == "-" and last >= 0:
            out[last] = _continue(out[last], body)
            out.append("")
            continue
        cut = _comment_start(body)
        if cut >= 0:
            body = body[:cut]
        out.append(" " * min(len(line), 7) + body)
        if body.strip():
            last = len(out) - 1
    return "\n".join(out) + "\n"


def _open_quote(code: str) -> str | None:
    """The quote character of a literal still open at the end of ``code``, else None."""
    quote = None
    for ch in code:
        if quote is None:
            if ch in "'\"":
                quote = ch
        elif ch == quote:
            quote = None            # a doubled quote closes and reopens: same state at the end
    return quote


def _comment_start(body: str) -> int:
    """Where a ``*>`` inline comment starts outside literals, or -1."""
    quote = None
    for i, ch in enumerate(body):
        if quote is None:
            if ch in "'\"":
                quote = ch
            elif body.startswith("*>", i):
                return i
        elif ch == quote:
            quote = None
    return -1


def _continue(prev: str, body: str) -> str:
    quote = _open_quote(prev)
    text = body.lstrip(" ")
    if quote is None:
        return prev.rstrip(" ") + text
    # the open literal takes every column up to 72; the continuation resumes after its quote
    prev = prev.ljust(72) if len(prev) <= 72 else prev
    if text[:1] == quote:
        text = text[1:]
    return prev + text


def _literal(tok: Any) -> Any:
    if isinstance(tok, tuple):
        return tok
    if isinstance(tok, Token):
        if tok.type == "STRING":
            s = str(tok)
            prefix = ""
            if s[0] in "xXnNgG":
                prefix, s = s[0].upper(), s[1:]
            q = s[0]
            body = s[1:-1].replace(q + q, q)
            if prefix == "X":
                try:
                    return bytes.fromhex(body)
                except ValueError:
                    return body
            return body
        if tok.type == "NUMBER":
            from decimal import Decimal
            d = Decimal(str(tok))
            return int(d) if d == d.to_integral_value() and "." not in str(tok) else d
    return str(tok)


@v_args(meta=True)
class _Build(Transformer):
    def start(self, meta, items):
        return list(items)

    def entry(self, meta, items):
        level_tok = items[0]
        e = Entry(level=int(level_tok), name=None, line=level_tok.line, col=level_tok.column)
        for it in items[1:]:
            if isinstance(it, tuple):
                kind, val = it
                if kind == "name":
                    e.name = val
                elif kind == "pic":
                    e.pic, e.pic_line, e.pic_col = val
                elif kind == "usage":
                    e.usage = val
                elif kind == "redefines":
                    e.redefines = val
                elif kind == "occurs":
                    e.occurs_min, e.occurs_max, e.depending_on = val
                elif kind == "sign":
                    e.sign_pos, e.sign_separate = val
                elif kind == "value":
                    e.values.extend(val)
                elif kind == "renames":
                    e.renames = val
                elif kind == "justified":
                    e.justified = True
                elif kind == "blank":
                    e.blank_when_zero = True
        return e

    def entry_name(self, meta, items):
        tok = items[0]
        return ("name", None if tok.type == "FILLER" else str(tok).upper())

    def redefines(self, meta, items):
        return ("redefines", str(items[0]).upper())

    def pic(self, meta, items):
        tok = items[1]
        return ("pic", (str(tok).upper(), tok.line, tok.column))

    def usage(self, meta, items):
        u = str(items[-1]).upper().replace("COMPUTATIONAL", "COMP")
        return ("usage", u)

    def occurs(self, meta, items):
        ints = [int(t) for t in items if isinstance(t, Token) and t.type == "INT"]
        dep = next((it for it in items if isinstance(it, str) and not isinstance(it, Token)), None)
        lo, hi = (ints[0], ints[1]) if len(ints) == 2 else (None, ints[0])
        return ("occurs", (lo, hi, dep))

    def depending(self, meta, items):
        return str(items[0]).upper()

    def occ_key(self, meta, items):
        return ("ignored", None)

    def occ_index(self, meta, items):
        return ("ignored", None)

    def separate(self, meta, items):
        return True

    def sign(self, meta, items):
        pos = next(str(t).lower() for t in items if isinstance(t, Token) and t.type == "SIGN_POS")
        return ("sign", (pos, True in items))

    def sync(self, meta, items):
        return ("ignored", None)

    def extglobal(self, meta, items):
        return ("ignored", None)

    def justified(self, meta, items):
        return ("justified", True)

    def blank(self, meta, items):
        return ("blank", True)

    def figurative(self, meta, items):
        tok = items[-1]
        if tok.type == "STRING":
            return _literal(tok)
        return ("figurative", str(tok).upper())

    def value_item(self, meta, items):
        vals = [_literal(t) for t in items if not (isinstance(t, Token) and t.type == "THRU")]
        return vals[0] if len(vals) == 1 else ("range", vals[0], vals[1])

    def value(self, meta, items):
        return ("value", [it for it in items[1:]])

    def renames(self, meta, items):
        names = [str(t).upper() for t in items if isinstance(t, Token) and t.type == "NAME"]
        return ("renames", (names[0], names[1] if len(names) > 1 else None))


_EXPECT_WORDS = {
    "PERIOD": "'.' ending the entry",
    "LEVEL": "a level number (01-49, 66, 77, 88)",
    "NAME": "a data name",
    "PIC_STRING": "a picture string such as X(10) or S9(7)V99",
    "INT": "a whole number",
    "USAGE_KIND": "a usage (DISPLAY, COMP, COMP-1..5, BINARY, PACKED-DECIMAL)",
}


_LEVEL = re.compile(r"0?[1-9]|[1-4][0-9]|66|77|88")


def _lacking_period(src: str, tok: Any) -> tuple[int, int, str, str] | None:
    """When the parser met the next entry (or the end of the copybook) where it wanted a period:
    (line, column just past the last character of the entry that lacks it, that entry's text, what
    follows it); else None.  The next entry starts its line with its level number: at the unexpected
    token, or just before it (a VALUE list takes the level number as one more literal and stumbles
    on the name after it)."""
    if tok.type == "$END":
        stop, follows = len(src), "the copybook ends"
    else:
        stop = src.rfind("\n", 0, tok.start_pos) + 1            # the start of the token's line
        head = src[stop:tok.start_pos]
        if head.strip() == "":
            if not _LEVEL.fullmatch(str(tok)):
                return None
        elif not (len(head.split()) == 1 and _LEVEL.fullmatch(head.split()[0])):
            return None
        follows = f"the next entry, at line {src.count(chr(10), 0, stop) + 1}, is read as part of it"
    end = len(src[:stop].rstrip())
    if end == 0:
        return None
    begin = src.rfind("\n", 0, end) + 1                         # the line the entry ends on
    first = begin                                              # the line it starts on (its level number)
    while first > 0 and not (src[first:end].split() and _LEVEL.fullmatch(src[first:end].split()[0])):
        first = src.rfind("\n", 0, first - 1) + 1
    return src.count("\n", 0, end) + 1, end - begin + 1, " ".join(src[first:end].split()), follows


def parse_entries(text: str, path: str | None = None, source_format: str = "fixed") -> list[Entry]:
    """Parse copybook source into entries; raises ``SpecError`` with path:line:col."""
    src = preprocess(text, source_format)
    try:
        return _Build().transform(_parser().parse(src))
    except UnexpectedInput as exc:
        line, col = exc.line, exc.column
        if isinstance(exc, UnexpectedToken):
            got = repr(str(exc.token)) if exc.token.type != "$END" else "end of file"
            expected = sorted(_EXPECT_WORDS.get(t, t.strip('"').upper()) for t in exc.expected
                              if not t.startswith("__"))[:6]
            msg = f"unexpected {got}; expected {', '.join(expected) or 'something else'}"
        elif isinstance(exc, UnexpectedCharacters):
            msg = f"unexpected character {src[exc.pos_in_stream]!r}"
        else:  # pragma: no cover - UnexpectedEOF is not raised by LALR
            msg = "unexpected end of copybook"
        hint = ("every data description entry is 'level name clauses.' and ends with a period;"
                " code goes in columns 8-72 of fixed-format source")
        if isinstance(exc, UnexpectedToken) and "PERIOD" in exc.expected:
            lacking = _lacking_period(src, exc.token)
            if lacking is not None:
                line, col, entry, follows = lacking
                raise SpecError(f"missing period: the entry `{entry}` does not end with one ({follows})",
                                path=path, line=line, col=col, hint=f"end the entry with a period: {entry}.") from None
        if isinstance(exc, UnexpectedToken) and str(exc.token).upper() in ("COPY", "REPLACE"):
            hint = (f"{str(exc.token).upper()} statements are not expanded: put the member's entries into this"
                    " copybook (the compiler listing shows the expanded source)")
        raise SpecError(msg, path=path, line=line, col=col, hint=hint) from None
