"""What ``bsp check`` can tell of one line of a message body in a copybook format, before any byte is
encoded: a path that names no item of the copybook's field tree (``hdr.resp_cod``), and a literal that
the item's picture cannot hold (``"000"`` into PIC X(2), ``1.555`` into PIC 9V99, a count of 7 for an
``OCCURS 0 TO 3 DEPENDING ON`` counter).  The literal is tried with the encoder's own field encoder, so
the check refuses exactly what the encode would refuse at run time (code 96); an expression is not
checked (its value is known at run time only).

Pure (formats/ only): the format component's ``body_check`` hook returns ``BodyCheck(codec)``.
"""
from __future__ import annotations

import difflib
from decimal import Decimal
from typing import Any

from formats.component import BodyProblem
from formats.copybook.keys import condition_key, mapped
from formats.copybook.layout import Node

NOT_LITERAL = object()      # the value of a line whose value is an expression


class BodyCheck:
    def __init__(self, codec: Any) -> None:
        self.codec = codec
        self.opts = codec.options
        self.enc = codec._encoder.enc
        roots = codec.layout.roots
        self.collapsed = len(roots) == 1 and self.opts.collapse_root
        renames = [r.key for r in codec.layout.renames if r.key]
        if self.collapsed:
            self.top: tuple[Node | None, dict[str, Any]] = (roots[0], self._names(roots[0], renames))
        else:
            self.top = (None, {r.key: r for r in roots if r.key})
        # counter -> the tables it counts (OCCURS ... DEPENDING ON it)
        self.counts: dict[int, list[Node]] = {}
        for r in roots:
            for n in r.walk():
                if n.counter is not None and not mapped(n, self.opts):
                    self.counts.setdefault(id(n.counter), []).append(n)

    def _names(self, g: Node, extra: list[str] = ()) -> dict[str, Any]:
        """The keys a dict for group ``g`` may hold, as the encoder's ``KeyCheck`` has them: each item,
        its level-88 names (``True``: a condition), and the 66 RENAMES names at the record level (``None``)."""
        out: dict[str, Any] = {}
        for c in g.children:
            if c.key:
                out[c.key] = c
            for cname, _vals in c.conditions:
                out.setdefault(condition_key(cname, self.opts), True)
        for k in extra:
            out.setdefault(k, None)
        return out

    def __call__(self, parts: tuple, value: Any = NOT_LITERAL) -> BodyProblem | None:
        group, names = self.top
        node: Node | None = None
        table_index = False         # the node is a table's element (indexed)
        for i, part in enumerate(parts):
            shown = _render(parts[:i + 1])
            if node is not None and node.occurs_max is not None and not table_index:
                if not isinstance(part, int):
                    return BodyProblem("unknown", i, f"`{_render(parts[:i])}` is a table (OCCURS "
                                       f"{_occurs(node)}): `{part}` is a field of one of its elements",
                                       f"index it: `{_render(parts[:i])}[0].{part}`", ())
                if part >= node.occurs_max:
                    return BodyProblem("index", i, f"`{shown}` is past the end of table `{_render(parts[:i])}` "
                                       f"(OCCURS {_occurs(node)}): it holds {node.occurs_max} elements",
                                       f"index from 0 to {node.occurs_max - 1}", ())
                table_index = True
                if not node.is_group:
                    continue
                names = self._names(node)
                continue
            if isinstance(part, int):
                what = f"`{_render(parts[:i])}`" if i else "the record"
                return BodyProblem("unknown", i, f"{what} is not a table: it cannot be indexed with [{part}]",
                                   "only an OCCURS item takes an index", ())
            if node is not None and not node.is_group:
                pic = _picture(node)
                return BodyProblem("unknown", i, f"`{_render(parts[:i])}` is an elementary item ({pic}), not a "
                                   f"group: it has no field `{part}`", f"set it directly: `{_render(parts[:i])} = ...`",
                                   ())
            got = names.get(part)
            if got is None and part not in names:
                close = difflib.get_close_matches(str(part), list(names), n=1, cutoff=0.6)
                scope = f"group `{_render(parts[:i])}`" if i else "the record"
                return BodyProblem("unknown", i, f"{scope} has no field `{part}`",
                                   f"did you mean `{_render(parts[:i] + (close[0],))}`?" if close else
                                   "fields: " + ", ".join(names), tuple(names))
            if not isinstance(got, Node):
                return None         # a level-88 name (true fills its item) or a RENAMES view: not checked here
            node, table_index = got, False
            if node.is_group and node.occurs_max is None:
                names = self._names(node)
        if node is None or value is NOT_LITERAL or value is None:
            return None
        if node.occurs_max is not None and not table_index:
            return None             # a whole table given by a literal: not a record's line
        if node.is_group:
            return None
        return self._fits(node, _render(parts), value, len(parts) - 1)

    def missing(self, paths) -> list:
        """The text and DISPLAY-number fields a body setting ``paths`` leaves out (``LeftOut``, W015)."""
        from formats.copybook.bodymissing import left_out
        return left_out(self.codec.layout.roots, self.collapsed, self.opts, self.codec.layout.renames, paths)

    def _fits(self, n: Node, path: str, value: Any, last: int) -> BodyProblem | None:
        pic = _picture(n)
        try:
            self.enc[id(n)](value)
        except (ValueError, TypeError) as exc:
            return BodyProblem("misfit", last, f"field `{path}` ({pic}) cannot hold {_show(value)}: "
                               f"{_why(n, value, exc)}", _fix(n, path, value), ())
        for table in self.counts.get(id(n), ()):
            if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
                # the encoder refuses a count its table's elements do not match, and a table above its size;
                # a count under OCCURS m TO (0 for OCCURS 1 TO 3) with as few elements is written as it is
                lo = 0
                if not lo <= value <= table.occurs_max:
                    return BodyProblem("misfit", last, f"field `{path}` counts table `{table.key}` (OCCURS "
                                       f"{_occurs(table)} DEPENDING ON {n.name}): {value} elements do not fit",
                                       f"give a count of at most {table.occurs_max}, or leave `{path}` out: it is "
                                       f"set from the number of elements `{table.key}` holds", ())
        return None


def _render(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _occurs(n: Node) -> str:
    return f"{n.occurs_min} TO {n.occurs_max}" if n.occurs_min is not None else f"{n.occurs_max}"


_USAGE = {"packed": " COMP-3", "binary": " COMP", "national": " NATIONAL"}


def _picture(n: Node) -> str:
    ft = n.ftype
    assert ft is not None
    if ft.kind == "float":
        return "COMP-1" if ft.size == 4 else "COMP-2"
    usage = " COMP-5" if ft.kind == "binary" and ft.native else _USAGE.get(ft.kind, "")
    return f"PIC {ft.pic}{usage}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 40 else f'"{value[:37]}..." ({len(value)} characters)'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _why(n: Node, value: Any, exc: Exception) -> str:
    ft = n.ftype
    assert ft is not None
    if ft.kind in ("alnum", "national") and isinstance(value, str) and "do not fit" in str(exc):
        room = ft.size if ft.kind == "alnum" else ft.size // 2
        return f"{len(value)} characters, the field holds {room}"
    if ft.kind not in ("alnum", "national") and isinstance(value, (str, bool)):
        usage = {"packed": "COMP-3 ", "binary": "binary ", "float": "floating point "}.get(ft.kind, "")
        return f"a {usage}numeric field holds a number, not {'text' if isinstance(value, str) else 'true or false'}"
    text = str(exc)
    if "is negative but" in text:
        return "the picture has no S, so it holds no sign"
    if "more decimal places" in text:
        return f"the picture has {max(ft.scale, 0)} decimal place{'s' if ft.scale != 1 else ''} (V), the value " \
               f"{_places(value)}"
    return text


def _places(value: Any) -> str:
    exp = Decimal(value).as_tuple().exponent if isinstance(value, (int, Decimal)) else 0
    places = -exp if isinstance(exp, int) and exp < 0 else 0
    return f"has {places}"


def _fix(n: Node, path: str, value: Any) -> str:
    ft = n.ftype
    assert ft is not None
    if ft.kind in ("alnum", "national") and isinstance(value, str):
        room = ft.size if ft.kind == "alnum" else ft.size // 2
        return f'write at most {room} character{"s" if room != 1 else ""} (`{path} = "{value[:room]}"`), or widen the PIC in the copybook'
    if ft.kind not in ("alnum", "national") and isinstance(value, (str, bool)):
        return f"write a number without quotes (`{path} = 0`), or read a text as one: `{path} = number(...)`"
    if isinstance(value, (int, Decimal)):
        v = Decimal(value)
        if v < 0 and not ft.signed:
            return f"the field holds no negative amount: send its absolute value and the sign elsewhere, or " \
                   f"make the picture signed (PIC S{ft.pic}) in the copybook"
        exp = v.as_tuple().exponent
        if ft.scale >= 0 and isinstance(exp, int) and -exp > ft.scale:
            return f"round it to {ft.scale} place{'s' if ft.scale != 1 else ''}: " \
                   f"`{path} = {v.quantize(Decimal(1).scaleb(-ft.scale))}` (or round(...) in an expression)"
        if ft.kind != "float":
            top = Decimal(10) ** (ft.digits - max(ft.scale, 0)) - Decimal(1).scaleb(-max(ft.scale, 0))
            return f"PIC {ft.pic} holds at most {top}{' and at least -' + str(top) if ft.signed else ''}"
    return "give a value the picture holds, or change the picture in the copybook"
