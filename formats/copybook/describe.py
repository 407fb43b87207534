"""A parsed ``Layout`` as rows a person reads: what ``bsp copybook layout`` prints.

Every number comes from the layout the codec decodes with (``Node.offset``,
``Node.size``, ``FieldType.size``); nothing here sizes a PIC again.

Per item (groups, elementary items, FILLERs, then level-66 RENAMES):
``offset`` is 0-based from the start of the record, ``position`` 1-based (as
mainframe listings count) and ``end`` the 1-based last byte; an item inside an
OCCURS table is placed in the table's first element.  ``length`` is the bytes
the item holds (a table: every element, at its maximum count); ``min_length``
the bytes with every OCCURS DEPENDING ON count at its minimum (what a record
may shrink to with ``variable_occurs``).  ``area`` (REDEFINES set members
only) is the bytes the set occupies: its largest member, which is the length
cobrix's layout dump shows for each member.
"""
from __future__ import annotations

from typing import Any

from formats.copybook.layout import Layout, Node, record_offset


def min_total(n: Node) -> int:
    """``n``'s bytes (all its elements) when every DEPENDING ON count is at its minimum.  An item of a
    REDEFINES set keeps its full size: the decoder refuses to vary one (decoder.emit_node)."""
    if n.in_redefines or not any(x.depending_on for x in n.walk()):
        return n.total_size
    if n.is_group:
        one = 0
        for c in n.children:
            if not c.redefines:
                one += max([min_total(c)] + [min_total(r) for r in c.redefined_by])
    else:
        one = n.size
    if n.occurs_max is None:
        return one
    count = (n.occurs_min or 0) if n.depending_on else n.occurs_max
    return one * count


def _usage(n: Node) -> str:
    if n.ftype is None:
        return n.usage or ""
    if n.usage:
        return "COMP-5" if n.usage == "COMP-X" else n.usage
    return "NATIONAL" if n.ftype.kind == "national" else "DISPLAY"


def _sign(n: Node) -> str | None:
    ft = n.ftype
    if ft is None or ft.kind != "display" or not ft.signed or not n.sign:
        return None
    return f"{ft.sign_pos.upper()}{' SEPARATE' if ft.sign_separate else ''}"


def _occurs(n: Node) -> str:
    if n.occurs_max is None:
        return ""
    if n.depending_on or n.occurs_min is not None:
        return f"{n.occurs_min or 0} TO {n.occurs_max}"
    return str(n.occurs_max)


def _key_path(n: Node, collapse: bool) -> str | None:
    """The item's place in decoded values (``METADATA.ACCOUNT_DETAIL[].ACCOUNT_NUMBER``), None when the
    options leave it out of them."""
    parts: list[str] = []
    p: Node | None = n
    while p is not None:
        if p.dropped:
            return None
        if not (p.parent is None and collapse):
            parts.append(p.key + ("[]" if p.occurs_max is not None else ""))
        p = p.parent
    return ".".join(reversed(parts)) or None


def _area(n: Node) -> int | None:
    """The bytes of n's REDEFINES set (its largest member), None when n is in no set."""
    if not (n.redefines or n.redefined_by) or n.parent is None:
        return None
    base = n._redef_base if n.redefines else n     # type: ignore[attr-defined]  (layout._link_redefines)
    return max(m.total_size for m in [base, *base.redefined_by])


def _depth(n: Node) -> int:
    d = 0
    while n.parent is not None:
        d, n = d + 1, n.parent
    return d


def _after_variable_table(n: Node) -> bool:
    """Does n follow (in the record, not inside) a DEPENDING ON table?  Its offset then moves with the
    count when records are read with variable_occurs."""
    p: Node | None = n
    while p is not None and p.parent is not None:
        for sib in p.parent.children:
            if sib is p:
                break
            if not sib.in_redefines and any(x.depending_on for x in sib.walk()):
                return True
        p = p.parent
    return False


def rows(layout: Layout, collapse_root: bool = True, variable_occurs: bool = False) -> list[dict[str, Any]]:
    """One dict per item of every record, depth first, then one per level-66 RENAMES."""
    collapse = collapse_root and len(layout.roots) == 1
    out: list[dict[str, Any]] = []
    for root in layout.roots:
        for n in root.walk():
            off = record_offset(n)
            row: dict[str, Any] = {
                "level": n.level, "depth": _depth(n), "name": n.name or "FILLER", "key": _key_path(n, collapse),
                "line": n.line, "group": n.is_group,
                "pic": n.ftype.pic if n.ftype is not None and n.ftype.pic else None,
                "usage": _usage(n) or None, "sign": _sign(n),
                "offset": off, "position": off + 1, "end": off + n.total_size, "length": n.total_size,
                "min_length": min_total(n),
                "occurs": _occurs(n) or None, "element_length": n.size if n.occurs_max is not None else None,
                "depending_on": n.depending_on, "redefines": n.redefines,
                "redefined_by": [r.name or "FILLER" for r in n.redefined_by] or None, "area": _area(n),
                "offset_varies": variable_occurs and _after_variable_table(n),
            }
            out.append(row)
    for r in layout.renames:
        thru = r.last.name if r.last is not None and r.last is not r.first else None
        out.append({"level": 66, "depth": 0, "name": r.name, "key": r.key or None, "line": r.line, "group": not r.single,
                    "pic": None, "usage": None, "sign": None,
                    "offset": r.start, "position": r.start + 1, "end": r.end, "length": r.end - r.start,
                    "min_length": r.end - r.start, "occurs": None, "element_length": None,
                    "depending_on": None, "redefines": None, "redefined_by": None, "area": None,
                    "offset_varies": False,
                    "renames": f"{r.first.name}{f' THRU {thru}' if thru else ''}"})
    return out


def record_lengths(layout: Layout) -> tuple[int, int]:
    """(smallest, largest) record: the largest 01 at minimum / maximum DEPENDING ON counts."""
    return (max((min_total(r) for r in layout.roots), default=0), layout.size)


# ------------------------------------------------------------------ the table

_HEAD = ("LEVEL/NAME", "PIC", "USAGE", "OFFSET", "POS", "END", "LENGTH", "OCCURS", "NOTES")


def _notes(row: dict[str, Any]) -> str:
    notes = []
    if row.get("renames"):
        notes.append(f"RENAMES {row['renames']}")
    if row["sign"]:
        notes.append(f"SIGN {row['sign']}")
    if row["depending_on"]:
        notes.append(f"DEPENDING ON {row['depending_on']}")
    if row["element_length"] is not None:
        notes.append(f"{row['element_length']} byte{'' if row['element_length'] == 1 else 's'} each")
    if row["redefines"]:
        notes.append(f"REDEFINES {row['redefines']}")
    if row["redefined_by"]:
        notes.append(f"redefined by {', '.join(row['redefined_by'])}")
    if row["area"] is not None and row["area"] != row["length"]:
        notes.append(f"set area {row['area']}")
    if row["offset_varies"]:
        notes.append("offset at maximum counts")
    return "; ".join(notes)


def summary(layout: Layout, name: str, variable_occurs: bool) -> list[str]:
    lo, hi = record_lengths(layout)
    roots = ", ".join(r.name or "FILLER" for r in layout.roots)
    if lo == hi:
        return [f"{name}: record {roots}, {hi} bytes"]
    if variable_occurs:
        return [f"{name}: record {roots}, {lo} to {hi} bytes (variable: OCCURS DEPENDING ON tables "
                "take count x element bytes)"]
    return [f"{name}: record {roots}, {hi} bytes (OCCURS DEPENDING ON tables take their maximum; "
            f"with --variable-occurs {lo} to {hi} bytes)"]


def table(layout: Layout, name: str, *, variable_occurs: bool = False, collapse_root: bool = True) -> str:
    """The layout as a plain-text table (fixed columns, no colour: it is diffed and pasted into reviews)."""
    body = []
    for row in rows(layout, collapse_root, variable_occurs):
        indent = "  " * row["depth"]
        body.append((f"{indent}{row['level']:02d} {row['name']}", row["pic"] or "", row["usage"] or "",
                     str(row["offset"]), str(row["position"]), str(row["end"]), str(row["length"]),
                     row["occurs"] or "", _notes(row)))
    widths = [max(len(r[i]) for r in [_HEAD, *body]) for i in range(len(_HEAD))]
    right = {3, 4, 5, 6}

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([*summary(layout, name, variable_occurs), "", fmt(_HEAD), *map(fmt, body)]) + "\n"

