"""What ``bsp check`` can tell of a whole message body in a copybook format: the text fields it leaves
out (W015).  The encoder writes a left-out PIC X / PIC N item as LOW-VALUES (X'00', with
``low_values_null``, the default) or spaces, and a left-out DISPLAY or edited number as spaces: a host
program that reads X'00' or spaces where it expects zoned digits abends (S0C7) or misreads them.  A
left-out COMP-3 / COMP / COMP-1/2 number is the ``missing_numbers`` option's business (zero, or an
encode error) and is not told here.

Not told: FILLERs, the counter of an OCCURS DEPENDING ON table (set from the elements given), elements
of such a table past the last one the body gives (not written), a field one of whose level-88 names
the body sets, a field under a path the body sets whole (``hdr = msg.hdr``), the fields a 66 RENAMES
name the body sets covers, and the members of a REDEFINES set the body writes nothing into (only the
chosen member is written).

Pure (formats/ only): ``BodyCheck.missing`` (formats/copybook/bodycheck.py) calls ``left_out``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from formats.copybook.keys import condition_key
from formats.copybook.layout import Node

_TEXT = frozenset({"alnum", "national", "display", "edited"})


@dataclass(frozen=True)
class LeftOut:
    """One field (or a run of table elements) a body leaves out.

    ``path``: as a body writes it (``hdr.ref``, ``lines[2]``, ``lines[1..4]``); ``picture``: ``PIC X(8)``;
    ``numeric``: a DISPLAY / edited number (else text); ``written``: what the encoder puts there today
    (``LOW-VALUES`` or ``spaces``).
    """
    path: str
    picture: str
    numeric: bool
    written: str


def left_out(roots: list[Node], collapsed: bool, opts: Any, renames: list[Any],
             given: Iterable[tuple]) -> list[LeftOut]:
    paths = [tuple(p) for p in given]
    w = _Walk(opts, paths, renames)
    if collapsed:
        w.group(roots[0], ())
    else:
        for r in roots:
            if w.touched((r.key,)) and (r.key,) not in w.given:
                w.group(r, (r.key,))
    return w.out


class _Walk:
    def __init__(self, opts: Any, paths: list[tuple], renames: list[Any]) -> None:
        self.opts = opts
        self.given = set(paths)
        self.prefixes = {p[:i] for p in paths for i in range(1, len(p) + 1)}
        names = {p[0] for p in paths if p}
        self.renamed = {id(n) for r in renames if r.key in names for n in r.covered}
        self.out: list[LeftOut] = []

    def touched(self, path: tuple) -> bool:
        return path in self.prefixes

    def whole(self, path: tuple) -> bool:
        """Is ``path`` or a group above it set by one line (``hdr = msg.hdr``)?"""
        return any(path[:i] in self.given for i in range(1, len(path) + 1))

    def group(self, g: Node, at: tuple) -> None:
        kids = g.children
        done: set[int] = set()
        for c in kids:
            if id(c) in done:
                continue
            if c.redefined_by:
                members = [c] + c.redefined_by
                done.update(id(m) for m in members)
                for m in members:       # the member the body writes into is the one written
                    if self.touched(at + (m.key,)):
                        self.node(m, at)
                        break
                continue
            self.node(c, at)

    def node(self, c: Node, at: tuple) -> None:
        if c.dropped or c.is_filler or c.is_counter or id(c) in self.renamed:
            return
        path = at + (c.key,)
        if self.whole(path):
            return
        if any(at + (condition_key(name, self.opts),) in self.given for name, _v in c.conditions):
            return
        if c.occurs_max is not None:
            self.table(c, path)
        elif c.is_group:
            self.group(c, path)
        else:
            self.field(c, path)

    def table(self, t: Node, path: tuple) -> None:
        given = sorted({p[len(path)] for p in self.prefixes
                        if len(p) > len(path) and p[:len(path)] == path and isinstance(p[len(path)], int)})
        # OCCURS DEPENDING ON: as many elements as the body gives are written; a fixed table: all of them
        count = (given[-1] + 1 if given else 0) if t.counter is not None else t.occurs_max
        if not self._holds_text(t):
            return
        run: list[int] = []
        for i in range(count or 0):
            if i not in given:
                run.append(i)
                continue
            self._run(t, path, run)
            run = []
            if t.is_group and not self.whole(path + (i,)):
                self.group(t, path + (i,))
        self._run(t, path, run)

    def _run(self, t: Node, path: tuple, run: list[int]) -> None:
        """Elements ``run`` (consecutive) of table ``t`` that the body gives nothing of."""
        if not run:
            return
        first = next(n for n in t.walk() if n.ftype is not None and n.ftype.kind in _TEXT and not n.is_filler)
        idx = f"[{run[0]}]" if len(run) == 1 else f"[{run[0]}..{run[-1]}]"
        self.out.append(LeftOut(_render(path) + idx, f"OCCURS {t.occurs_max}" + (
            "" if t.is_group else f", {picture(t)}"), first.ftype.kind in ("display", "edited"),
            self._written(first)))

    def _holds_text(self, n: Node) -> bool:
        return any(x.ftype is not None and x.ftype.kind in _TEXT and not x.is_filler and not x.dropped
                   and not x.is_counter for x in n.walk())

    def field(self, n: Node, path: tuple) -> None:
        ft = n.ftype
        if ft is None or ft.kind not in _TEXT:
            return
        self.out.append(LeftOut(_render(path), picture(n), ft.kind in ("display", "edited"), self._written(n)))

    def _written(self, n: Node) -> str:
        ft = n.ftype
        return "LOW-VALUES" if ft is not None and ft.kind in ("alnum", "national") and self.opts.low_values_null \
            else "spaces"


def _render(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def picture(n: Node) -> str:
    ft = n.ftype
    assert ft is not None
    usage = {"national": " NATIONAL"}.get(ft.kind, "")
    return f"PIC {ft.pic}{usage}"
