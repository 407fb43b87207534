"""Entries -> a tree of ``Node`` with sizes and offsets (the record layout).

Offsets are relative to the start of the enclosing array element (or the
record).  A REDEFINES set (the item and every item redefining it) occupies
the size of its largest member.  An OCCURS item occupies ``size * max``; with
``variable_occurs`` the codec shrinks it to the actual count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from formats.copybook.parser import Entry, parse_entries
from formats.copybook.picture import FieldType, PictureError, field_type
from formats.errors import SpecError


@dataclass(eq=False)
class Node:
    name: str | None            # COBOL name, None for FILLER
    level: int
    line: int
    col: int
    ftype: FieldType | None = None
    children: list["Node"] = field(default_factory=list)
    parent: "Node | None" = None
    occurs_min: int | None = None
    occurs_max: int | None = None
    depending_on: str | None = None
    counter: "Node | None" = None
    redefines: str | None = None
    redefined_by: list["Node"] = field(default_factory=list)
    in_redefines: bool = False     # this node or an ancestor takes part in a REDEFINES set
    conditions: list[tuple[str, list[Any]]] = field(default_factory=list)
    key: str = ""                  # output name
    size: int = 0                  # one element
    offset: int = 0                # relative to the enclosing element
    dropped: bool = False
    is_counter: bool = False
    values: list[Any] = field(default_factory=list)
    usage: str | None = None       # USAGE in force (own, or a group's: it applies to the items it holds)
    sign: tuple[str, bool] | None = None   # SIGN (position, separate) in force, own or a group's

    @property
    def is_group(self) -> bool:
        return self.ftype is None

    @property
    def is_filler(self) -> bool:
        return self.name is None

    @property
    def total_size(self) -> int:
        return self.size * (self.occurs_max or 1) if self.occurs_max is not None else self.size

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class Renames:
    """``66 NAME RENAMES first [THRU last]``: an alias view of a byte span.

    ``covered`` are the items the span holds (elementary items and tables,
    depth first, FILLERs included; the keys module decides what is dropped).
    ``single`` is true when the entry renames one elementary item (no THRU,
    or ``A THRU A``): its value is that item's value, not a group.
    """
    name: str
    first: Node
    last: Node | None
    root: Node | None = None
    line: int = 0
    col: int = 0
    start: int = 0                 # record offset of the span's first byte
    end: int = 0                   # one past its last byte
    covered: list[Node] = field(default_factory=list)
    single: bool = False
    key: str = ""


@dataclass
class Layout:
    roots: list[Node]
    renames: list[Renames]
    path: str | None
    warnings: list[SpecError] = field(default_factory=list)   # accepted, but not as IBM's compiler would

    @property
    def size(self) -> int:
        return max((r.total_size for r in self.roots), default=0)

    def find(self, cobol_name: str) -> Node | None:
        """The item named ``cobol_name`` (``SEGMENT-ID``), or by its output name (``SEGMENT_ID``,
        ``segment_id``) when no item has that COBOL name."""
        want = cobol_name.strip().upper()
        for name in dict.fromkeys((want, want.replace("_", "-"))):
            for r in self.roots:
                for n in r.walk():
                    if n.name == name:
                        return n
        return None


def _err(msg: str, path: str | None, line: int, col: int, hint: str | None = None) -> SpecError:
    return SpecError(msg, path=path, line=line, col=col, hint=hint)


def build_layout(entries: list[Entry], path: str | None = None) -> Layout:
    roots: list[Node] = []
    stack: list[Node] = []
    renames_raw: list[tuple[Entry, Node | None]] = []
    last_field: Node | None = None
    # which entries are groups: the next data entry has a higher level (USAGE on a group is inherited)
    data = [i for i, x in enumerate(entries) if x.level not in (66, 88)]
    groups = {a for a, b in zip(data, data[1:])
              if entries[a].level != 77 and entries[b].level not in (1, 77) and entries[b].level > entries[a].level}
    warnings: list[SpecError] = []
    for index, e in enumerate(entries):
        if e.level == 88:
            if last_field is None:
                raise _err("level 88 condition before any data item", path, e.line, e.col)
            last_field.conditions.append((e.name or "", e.values))
            continue
        if e.level == 66:
            renames_raw.append((e, roots[-1] if roots else None))
            continue
        if not (1 <= e.level <= 49 or e.level == 77):
            raise _err(f"level {e.level:02d} is not a data level", path, e.line, e.col,
                       "use 01-49 for data items, 66 for RENAMES, 77 for independent items, 88 for conditions")
        if e.level not in (1, 77):
            while stack and stack[-1].level >= e.level:
                stack.pop()
        holder = stack[-1] if stack and e.level not in (1, 77) else None
        usage = e.usage or (holder.usage if holder is not None else None)
        sign = (e.sign_pos, e.sign_separate) if e.sign_pos else (holder.sign if holder is not None else None)
        if sign and not e.sign_pos and e.pic is not None and not e.pic.upper().startswith("S"):
            sign_for_kids, sign = sign, None       # a group's SIGN applies to its signed numeric items only
        else:
            sign_for_kids = sign
        if e.sign_pos and index not in groups:
            sign = _check_sign(e, usage, path, warnings)
        elif sign and usage not in (None, "DISPLAY", "NATIONAL"):
            sign = None                             # a group's SIGN applies to its DISPLAY items only
        ftype = None
        if index not in groups and (e.pic is not None or usage in ("COMP-1", "COMP-2", "POINTER", "INDEX")):
            try:
                ftype = field_type(e.pic, usage, sign[0] if sign else None, sign[1] if sign else False)
            except PictureError as exc:
                line, col = (e.pic_line, e.pic_col) if e.pic else (e.line, e.col)
                raise _err(str(exc), path, line, col, exc.hint) from None
        node = Node(name=e.name, level=e.level, line=e.line, col=e.col, ftype=ftype,
                    occurs_min=e.occurs_min, occurs_max=e.occurs_max, depending_on=e.depending_on,
                    redefines=e.redefines, values=e.values, usage=usage, sign=sign_for_kids)
        if e.occurs_max is not None:
            if e.level in (1, 77):
                raise _err("OCCURS is not allowed at level 01/77", path, e.line, e.col)
            if e.occurs_min is not None and e.occurs_min > e.occurs_max:
                raise _err(f"OCCURS {e.occurs_min} TO {e.occurs_max}: minimum exceeds maximum", path, e.line, e.col)
        if e.level in (1, 77):
            stack = [node]
            roots.append(node)
        else:
            if not stack:
                raise _err(f"level {e.level:02d} item {e.name or 'FILLER'} has no enclosing 01 record",
                           path, e.line, e.col, "start the copybook with an 01 level")
            parent = stack[-1]
            if parent.ftype is not None:
                raise _err(f"{parent.name or 'FILLER'} has a PIC/USAGE and so cannot hold subordinate items",
                           path, e.line, e.col, f"remove the PIC from line {parent.line} or change the level numbers")
            node.parent = parent
            parent.children.append(node)
            stack.append(node)
        last_field = node
    if not roots:
        raise _err("the copybook declares no data items", path, 1, 1, "add an 01 level record")
    for r in roots:
        _check_groups(r, path)
        _link_redefines(r, path)
        _size(r, path)
    layout = Layout(roots, [], path, warnings)
    _link_counters(layout, path)
    for e, root in renames_raw:
        layout.renames.append(_renames(e, root, path))
    return layout


def _check_sign(e: Entry, usage: str | None, path: str | None,
                warnings: list[SpecError]) -> tuple[str, bool] | None:
    """An elementary item's own SIGN clause, as IBM Enterprise COBOL takes it: only on a signed
    numeric item (S in its PICTURE) of USAGE DISPLAY or NATIONAL.  On a packed / binary / float item
    it would be silently ignored, so it is refused; on an unsigned picture it is read as signed
    (other writers than IBM's, such as cobrix's test files, put a sign there) and told as a warning."""
    name = e.name or "FILLER"
    clause = f"SIGN {e.sign_pos.upper()}{' SEPARATE' if e.sign_separate else ''}"
    if usage not in (None, "DISPLAY", "NATIONAL"):
        raise _err(f"{name}: {clause} on a USAGE {usage} item: a SIGN clause is only for signed numeric "
                   f"DISPLAY (or NATIONAL) items, and {usage} keeps its sign in its own way", path, e.line, e.col,
                   f"remove the SIGN clause from {name}, or make it a DISPLAY item if the data holds a "
                   f"zoned or separate sign")
    pic = (e.pic or "").upper()
    if not pic.startswith("S"):
        what = f"PIC {e.pic}" if e.pic else "no PICTURE"
        warnings.append(_warn(f"{name}: {clause} on an unsigned item ({what}): IBM's compiler refuses it; "
                              f"read as signed, with its sign {'byte' if e.sign_separate else 'in a digit'}",
                              path, e.line, e.col,
                              f"write PIC S{e.pic} if the data holds a sign, "
                              f"or remove the SIGN clause if it does not" if e.pic else
                              "give the item a signed numeric PICTURE (PIC S9...)"))
    return (e.sign_pos, e.sign_separate)


def _warn(msg: str, path: str | None, line: int, col: int, hint: str | None = None) -> SpecError:
    return SpecError(msg, path=path, line=line, col=col, hint=hint, warning=True)


def _find_in(root: Node, name: str) -> Node | None:
    return next((n for n in root.walk() if n.name == name), None)


def record_offset(n: Node) -> int:
    """The byte offset of ``n`` from the start of the record (its offset within each parent, added up)."""
    off = 0
    p: Node | None = n
    while p is not None:
        off += p.offset
        p = p.parent
    return off


def _renames(e: Entry, root: Node | None, path: str | None) -> Renames:
    """Resolve a level-66 entry against the record it follows (IBM Enterprise COBOL rules)."""
    if e.renames is None:
        raise _err("level 66 needs RENAMES", path, e.line, e.col, "write 66 NAME RENAMES ITEM [THRU ITEM].")
    if e.name is None:
        raise _err("level 66 needs a name", path, e.line, e.col)
    if root is None:
        raise _err("level 66 before any 01 record", path, e.line, e.col, "66 entries follow the record they rename")
    ends: list[Node] = []
    for name in e.renames:
        if name is None:
            continue
        n = _find_in(root, name)
        if n is None:
            raise _err(f"RENAMES names {name}, which is not declared in record {root.name or 'FILLER'}",
                       path, e.line, e.col, "a 66 entry renames items of the 01 record just before it")
        if n is root or n.level == 77:
            raise _err(f"RENAMES {name}: a level {n.level:02d} item cannot be renamed", path, e.line, e.col,
                       "rename items at levels 02-49")
        p: Node | None = n
        while p is not None:
            if p.occurs_max is not None:
                raise _err(f"RENAMES {name}: {p.name or 'FILLER'} has OCCURS, so it (and what it holds)"
                           " cannot be renamed", path, e.line, e.col)
            p = p.parent
        ends.append(n)
    first = ends[0]
    last = ends[1] if len(ends) > 1 else None
    start = record_offset(first)
    stop = record_offset(last or first) + (last or first).total_size
    if last is not None and last is not first:
        if stop <= start or record_offset(last) < start:
            raise _err(f"RENAMES {first.name} THRU {last.name}: {last.name} must come after {first.name}",
                       path, e.line, e.col)
        p = last.parent
        while p is not None:
            if p is first:
                raise _err(f"RENAMES {first.name} THRU {last.name}: {last.name} is part of {first.name}",
                           path, e.line, e.col, f"write 66 {e.name} RENAMES {first.name}.")
            p = p.parent
    covered: list[Node] = []

    def visit(n: Node, base: int) -> None:
        s = base + n.offset
        if s >= stop or s + n.total_size <= start:
            return
        inside = start <= s and s + n.total_size <= stop
        if n.occurs_max is not None and inside:
            if n.depending_on or any(x.depending_on for x in n.walk()):
                raise _err(f"RENAMES {e.name}: the span holds {n.name or 'FILLER'}, a table with"
                           " OCCURS DEPENDING ON", path, e.line, e.col,
                           "a renamed span must have a fixed size (IBM rule)")
            covered.append(n)
        elif n.is_group and n.occurs_max is None:
            for c in n.children:
                visit(c, s)
        elif inside:
            covered.append(n)
    for c in root.children:
        visit(c, 0)
    single = (last is None or last is first) and not first.is_group
    return Renames(e.name, first, last, root, e.line, e.col, start, stop, covered, single)


def _check_groups(node: Node, path: str | None) -> None:
    for c in node.children:
        _check_groups(c, path)
    if node.ftype is None and not node.children:
        raise _err(f"{node.name or 'FILLER'} has neither a PIC clause nor subordinate items", path,
                   node.line, node.col, "add PIC X(n) / 9(n), or items with a higher level number")


def _link_redefines(node: Node, path: str | None, inherited: bool = False) -> None:
    node.in_redefines = inherited
    by_name: dict[str, Node] = {}
    for c in node.children:
        if c.redefines:
            target = by_name.get(c.redefines)
            if target is None:
                raise _err(f"{c.name or 'FILLER'} REDEFINES {c.redefines}, which is not an earlier item"
                           " at the same level", path, c.line, c.col,
                           "REDEFINES must name the item (or a previous redefinition) directly before it")
            base = target if target.redefines is None else target._redef_base  # type: ignore[attr-defined]
            c._redef_base = base  # type: ignore[attr-defined]
            base.redefined_by.append(c)
            if c.occurs_max is not None:
                raise _err("an item with REDEFINES cannot have OCCURS", path, c.line, c.col)
        if c.name:
            by_name[c.name] = c
    for c in node.children:
        member = bool(c.redefines) or bool(c.redefined_by)
        _link_redefines(c, path, inherited or member)


def _size(node: Node, path: str | None) -> int:
    if node.ftype is not None:
        node.size = node.ftype.size
        return node.total_size
    off = 0
    i = 0
    kids = node.children
    while i < len(kids):
        c = kids[i]
        if c.redefines:
            i += 1
            continue
        span = _size(c, path)
        c.offset = off
        for r in c.redefined_by:
            span = max(span, _size(r, path))
            r.offset = off
        off += span
        i += 1
    node.size = off
    return node.total_size


def _link_counters(layout: Layout, path: str | None) -> None:
    for root in layout.roots:
        order = {id(n): i for i, n in enumerate(root.walk())}
        for n in root.walk():
            if n.depending_on:
                target = layout.find(n.depending_on)
                if target is None or target.ftype is None:
                    raise _err(f"OCCURS DEPENDING ON {n.depending_on}: "
                               + ("no such elementary item" if target is None else
                                  f"{target.name} is a group (line {target.line}), not an elementary item"),
                               path, n.line, n.col, _counter_hint(root, n, order))
                if order.get(id(target), 1 << 30) >= order[id(n)]:
                    raise _err(f"OCCURS DEPENDING ON {n.depending_on}: the counter must come before the table",
                               path, n.line, n.col)
                n.counter = target
                target.is_counter = True


def _counter_hint(root: Node, table: Node, order: dict[int, int]) -> str:
    """The elementary items before ``table`` that could count it, the closest name first."""
    import difflib
    before = [m.name for m in root.walk() if m.ftype is not None and m.name and m.occurs_max is None
              and order[id(m)] < order[id(table)]]
    close = difflib.get_close_matches((table.depending_on or "").upper(), before, n=1, cutoff=0.6)
    listed = ", ".join(before[-8:]) or "none"
    return ((f"did you mean {close[0]}? " if close else "")
            + f"the counter is an elementary item before the table; items before it: {listed}")


def parse_copybook(text: str, path: str | None = None, source_format: str = "fixed") -> Layout:
    return build_layout(parse_entries(text, path, source_format), path)


def lenient_field(n: "Node", invalid: str, members: Any) -> bool:
    """Does invalid data in field ``n`` decode to None rather than fail?  Yes with ``invalid = null``,
    and for fields in a REDEFINES set whose member no segment map chooses (``members``): those bytes
    may well belong to another member."""
    if invalid == "null":
        return True
    p: Node | None = n
    while p is not None:
        if (p.redefines or p.redefined_by) and p.name not in members:
            return True
        p = p.parent
    return False
