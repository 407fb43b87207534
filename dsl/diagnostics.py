"""Diagnostics: what ``bsp check`` prints, one per problem found.

``render`` gives the rustc-like form::

    routes/x.route:12:5: error[E020]: unknown channel `mainfrme`
       12 |     receive from mainfrme as BillPayReq
          |                  ^^^^^^^^
    help: did you mean `mainframe`?
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from dsl.ir import Pos

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: str            # "error" | "warning"
    message: str
    pos: Pos | None
    help: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def to_json(self) -> dict:
        p = self.pos
        return {
            "code": self.code, "severity": self.severity, "message": self.message, "help": self.help,
            "file": p.file if p else None, "line": p.line if p else None, "col": p.col if p else None,
            "end_line": p.end_line if p else None, "end_col": p.end_col if p else None,
        }


def closest(word: str, candidates: Iterable[str]) -> list[str]:
    """Up to three candidates close to ``word`` (best first), or a case-insensitive match."""
    cands = sorted(set(candidates))
    close = difflib.get_close_matches(word, cands, n=3, cutoff=0.6)
    if not close:
        low = {c.lower(): c for c in cands}
        if word.lower() in low:
            close = [low[word.lower()]]
    return close


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """``help`` text naming the closest candidates, or None."""
    close = closest(word, candidates)
    if not close:
        return None
    if len(close) == 1:
        return f"did you mean `{close[0]}`?"
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


def _source_line(pos: Pos, sources: Mapping[str, str]) -> str | None:
    text = sources.get(pos.file)
    if text is None:
        try:
            text = Path(pos.file).read_text(encoding="utf-8-sig", errors="replace")
        except OSError:
            return None
    lines = text.splitlines()
    if 1 <= pos.line <= len(lines):
        return lines[pos.line - 1]
    return None


def render(diag: Diagnostic, sources: Mapping[str, str] | None = None) -> str:
    """``path:line:col: severity[CODE]: message``, the source line with a caret
    run under the span, then ``help: ...`` when known."""
    sources = sources or {}
    pos = diag.pos
    head = f"{diag.severity}[{diag.code}]: {diag.message}"
    out = [f"{pos}: {head}" if pos else head]
    if pos is not None:
        line = _source_line(pos, sources)
        if line is not None:
            num = str(pos.line)
            gutter = " " * len(num)
            if pos.end_line == pos.line and pos.end_col and pos.end_col > pos.col:
                width = pos.end_col - pos.col
            else:
                width = max(1, len(line) - pos.col + 1) if pos.end_line and pos.end_line > pos.line else 1
            # keep tabs so the caret lines up under tabbed source
            lead = "".join("\t" if ch == "\t" else " " for ch in line[: pos.col - 1])
            out.append(f" {num} | {line}")
            out.append(f" {gutter} | {lead}{'^' * width}")
    if diag.help:
        out.append(f"help: {diag.help}")
    return "\n".join(out)


def render_all(diags: Iterable[Diagnostic], sources: Mapping[str, str] | None = None) -> str:
    return "\n\n".join(render(d, sources) for d in diags)


def summary(diags: Iterable[Diagnostic]) -> str:
    diags = list(diags)
    e = sum(1 for d in diags if d.is_error)
    w = len(diags) - e
    return f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''}"
