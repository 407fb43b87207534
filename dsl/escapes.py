r"""The escapes of a route string, and E111: an escape the language does not know.

A route string knows six escapes (``ESCAPES``).  ``dsl.parser.unquote`` reads any other
``\X`` as a plain ``X``: ``"\d{8}"`` is ``d{8}``, ``"C:\data"`` is ``C:data``.  That is never
what was meant, so every string literal of a file is scanned once, right after parsing
(its STRING tokens carry line and column), and each unknown escape is an E111 at its
backslash.  The findings ride on the ``dsl.ast.Module``; ``dsl.load`` reports them with
the checker's diagnostics and drops what the checker or loader said about the string as
it was misread (a pattern's E078, a path's "file not found"): one mistake, one diagnostic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from lark import Token, Tree

from dsl.diagnostics import ERROR, Diagnostic
from dsl.ir import Pos

ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
KNOWN = " ".join(f"\\{c}" for c in ESCAPES)          # \" \\ \n \t \r \0
CODE = "E111"
# what the loader says at a `use` line (not at its string): dropped when its path was misread
_AT_USE = ("E010", "E011", "E012")


@dataclass(frozen=True)
class LostEscape:
    """An unknown escape: the diagnostic (at its backslash) and the whole literal's place."""
    diagnostic: Diagnostic
    literal: Pos


def _show(ch: str) -> str:
    if ch == " ":
        return "a space"
    return ch if ch.isprintable() else f"U+{ord(ch):04X}"


def _written(ch: str) -> str:
    shown = _show(ch)
    return f"`\\{ch}`" if shown == ch else f"(a backslash followed by {shown})"


def lost_escape(tok: Token, path: str) -> LostEscape | None:
    """The first unknown escape of one STRING token (the others are named in its message), or None.
    A STRING token is one line: it cannot hold a newline."""
    text = str(tok)
    if "\\" not in text:
        return None
    at: list[tuple[int, str]] = []
    i = 1
    while i < len(text) - 1:
        if text[i] == "\\":
            if text[i + 1] not in ESCAPES:
                at.append((i, text[i + 1]))
            i += 2
        else:
            i += 1
    if not at:
        return None
    (i, ch), rest = at[0], at[1:]
    shown, col = _show(ch), tok.column + i
    more = ""
    if rest:
        more = f"; the string has {len(rest)} more: " + ", ".join(f"{_written(c)} (col {tok.column + j})"
                                                                    for j, c in rest)
    return LostEscape(Diagnostic(
        CODE, ERROR, f"unknown escape {_written(ch)} in a string: a route string knows only {KNOWN}, and drops "
        f"the backslash of any other (it reads {shown} alone){more}",
        Pos(path, tok.line, col, tok.line, col + 2),
        f"write \\\\{ch} for a backslash followed by {shown} ({shown} alone if no backslash was meant)"),
        Pos(path, tok.line, tok.column, tok.end_line, tok.end_column))


def scan(tree: Tree, path: str) -> tuple[LostEscape, ...]:
    """Every unknown escape of a parsed file, in source order."""
    toks = tree.scan_values(lambda v: isinstance(v, Token) and v.type == "STRING")
    return tuple(f for f in (lost_escape(tok, path) for tok in toks) if f is not None)


def _inside(inner: Pos, outer: Pos) -> bool:
    return (inner.file == outer.file and (outer.line, outer.col) <= (inner.line, inner.col)
            and outer.end_line is not None and outer.end_col is not None
            and (inner.end_line, inner.end_col) <= (outer.end_line, outer.end_col))


def misread(d: Diagnostic, found: Iterable[LostEscape]) -> bool:
    """True for a diagnostic about a string an unknown escape made wrong: one that starts at the literal
    (a pattern's E078, a table's missing file, a quoted body field's E061), or a `use` line's "file not
    found" for its path."""
    if d.code == CODE or d.pos is None:
        return False
    p = d.pos
    return any((p.file, p.line, p.col) == (f.literal.file, f.literal.line, f.literal.col)
               or (d.code in _AT_USE and _inside(f.literal, p)) for f in found)
