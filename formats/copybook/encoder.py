"""Values -> record bytes, following the same layout and options as the decoder.

Rules: a missing or None PIC X value is written as LOW-VALUES when
``low_values_null`` (so it decodes back to None), otherwise spaces; a missing
DISPLAY number is written as spaces (None on decode); a None binary / packed
number as zero.  ``KeyCheck`` (run by ``CopybookCodec.encode`` first) refuses a
key the layout does not know and a missing binary / packed number.  In a
REDEFINES set the first member holding a value is written (with a segment
map: the member chosen by the segment value).  An OCCURS DEPENDING ON table
writes as many elements as its list holds and sets the counter when the
counter is missing.
"""
from __future__ import annotations

from typing import Any, Callable

from formats import ebcdic
from formats.copybook import numbers as num
from formats.copybook.keys import condition_key, mapped as _mapped
from formats.copybook.layout import Layout, Node
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError


class Encoder:
    def __init__(self, layout: Layout, opts: CopybookOptions, segment_members: dict[str, set[str]]) -> None:
        self.layout = layout
        self.opts = opts
        page = opts.encoding.lower().replace("_", "-")
        self.utf8 = page in ("utf-8", "utf8")
        self.page = "ascii" if self.utf8 else page
        self.space = ebcdic.space_byte(self.page)
        self.zt = num.ZonedTables(self.page)
        self.segment_members = segment_members
        self.enc: dict[int, Callable[[Any], bytes]] = {}
        for root in layout.roots:
            for n in root.walk():
                if n.ftype is not None:
                    self.enc[id(n)] = self._field_encoder(n)

    def _field_encoder(self, n: Node) -> Callable[[Any], bytes]:
        ft = n.ftype
        assert ft is not None
        if ft.kind == "alnum":
            size, utf8, page, low = ft.size, self.utf8, self.page, self.opts.low_values_null
            pad = b" " if utf8 else bytes([self.space])

            def enc(value: Any) -> bytes:
                if value is None:
                    return bytes(size) if low else pad * size
                if not isinstance(value, str):
                    value = str(value)
                try:
                    b = value.encode("utf-8") if utf8 else ebcdic.encode(value, page)
                except UnicodeEncodeError as exc:
                    raise no_code(value, exc.start, page) from None
                if len(b) > size:
                    raise ValueError(do_not_fit(f"{len(b)} bytes", ft.pic, size, "bytes"))
                return b + pad * (size - len(b))
            return enc
        if ft.kind == "national":
            return num.national_encoder(ft, self.opts.low_values_null)
        if ft.kind == "display":
            return num.display_encoder(ft, self.zt)
        if ft.kind == "packed":
            return num.packed_encoder(ft)
        if ft.kind == "binary":
            return num.binary_encoder(ft, self.opts.little_endian(ft.native))
        if ft.kind == "float":
            return num.float_encoder(ft, self.opts.float_format == "ieee")
        return num.edited_encoder(ft, self.page)

    def encode(self, values: Any, size: int) -> bytes:
        if not isinstance(values, dict):
            raise FormatError(f"a copybook record is encoded from a dict, not {type(values).__name__}")
        buf = bytearray([self.space]) * size
        roots = self.layout.roots
        self.counters: dict[int, Any] = {}
        self.counter_at: dict[int, tuple[int, str]] = {}
        if len(roots) == 1 and self.opts.collapse_root:
            end = self._group(roots[0], values, buf, 0, "")
        else:
            end = 0
            for r in roots:
                sub = values.get(r.key)
                if sub is not None:
                    end = max(end, self._group(r, sub, buf, 0, r.key))
        if self.opts.variable_occurs:
            return bytes(buf[:end])
        return bytes(buf)

    def _group(self, g: Node, values: Any, buf: bytearray, base: int, path: str) -> int:
        """Write ``g``'s children starting at ``base``; returns the end offset."""
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise FormatError(f"expected a dict for group {path}, got {type(values).__name__}", field=path,
                              offset=base)
        pos = base
        kids = g.children
        skip: set[int] = set()
        for c in kids:
            if id(c) in skip:
                continue
            if c.redefined_by:
                members = [c] + c.redefined_by
                skip.update(id(m) for m in c.redefined_by)
                chosen = self._choose(members, values)
                start = pos
                end = pos
                for m in members:
                    end = max(end, start + m.total_size)
                if chosen is not None:
                    self._node(chosen, values, buf, start, path)
                    if end - start > chosen.total_size:
                        self.tail(members, chosen, values, buf, start, path)
                pos = end
                continue
            pos = self._node(c, values, buf, pos, path)
        return pos if self.opts.variable_occurs else base + g.size

    def tail(self, members: list[Node], chosen: Node, values: dict, buf: bytearray, start: int,
             path: str) -> None:
        """A REDEFINES member longer than the chosen one owns the bytes past the chosen one's end:
        write them from its value when it holds one (a decoded record holds every member), so
        encode(decode(x)) == x; a value that cannot be written leaves them as they were."""
        covered = chosen.total_size
        for m in members:
            if m is chosen or m.total_size <= covered or not _chosen(values.get(m.key)):
                continue
            scratch = bytearray(buf)
            saved = dict(self.counters), dict(self.counter_at)
            try:
                self._node(m, values, scratch, start, path)
            except FormatError:
                continue
            finally:
                self.counters, self.counter_at = saved
            buf[start + covered:start + m.total_size] = scratch[start + covered:start + m.total_size]
            covered = m.total_size

    def _choose(self, members: list[Node], values: dict) -> Node | None:
        seg_node = self.layout.find(self.opts.segment_field) if self.opts.segment_field else None
        if seg_node is not None and id(seg_node) in self.counters:
            seg = self.counters[id(seg_node)]
            for m in members:
                if m.name in self.segment_members and seg in self.segment_members[m.name]:
                    return m
        for m in members:
            if _chosen(values.get(m.key)):
                return m
        return None

    def _node(self, n: Node, values: dict, buf: bytearray, pos: int, path: str) -> int:
        p = f"{path}.{n.key}" if path else n.key
        v = values.get(n.key)
        if n.occurs_max is not None:
            items = v if v is not None else []
            if not isinstance(items, list):
                raise FormatError(f"expected a list for table {p}, got {type(items).__name__}", field=p, offset=pos)
            lo = n.occurs_min if n.occurs_min is not None else (0 if n.counter is not None else n.occurs_max)
            if len(items) > n.occurs_max:
                raise FormatError(f"{len(items)} elements for OCCURS {n.occurs_max} table {p}", field=p, offset=pos)
            if n.counter is not None:
                have = self.counters.get(id(n.counter))
                if have is None and id(n.counter) in self.counter_at and not _mapped(n, self.opts):
                    cpos, cpath = self.counter_at[id(n.counter)]
                    self._write(n.counter, len(items), buf, cpos, cpath)
                    self.counters[id(n.counter)] = len(items)
                elif have is not None and have != len(items) and not _mapped(n, self.opts):
                    raise FormatError(f"{n.counter.key} = {have} but table {p} holds {len(items)} elements",
                                      field=p, offset=pos, hint="leave the counter out and it is set for you")
            elif len(items) < lo:
                items = list(items) + [None] * (lo - len(items))
            q = pos
            for i, item in enumerate(items):
                ip = f"{p}[{i}]"
                if n.is_group:
                    q = self._group(n, item, buf, q, ip) if self.opts.variable_occurs else (
                        self._group(n, item, buf, q, ip), q + n.size)[1]
                else:
                    self._write(n, item, buf, q, ip)
                    q += n.size
            return q if self.opts.variable_occurs and n.counter is not None else pos + n.total_size
        if n.is_group:
            return self._group(n, v, buf, pos, p)
        if v is None and n.conditions:
            for cname, cvals in n.conditions:
                flag = values.get(condition_key(cname, self.opts))
                if flag is True and cvals and not isinstance(cvals[0], tuple):
                    v = cvals[0]
        self._write(n, v, buf, pos, p)
        self.counters[id(n)] = v
        self.counter_at[id(n)] = (pos, p)
        return pos + n.size

    def _write(self, n: Node, v: Any, buf: bytearray, pos: int, path: str) -> None:
        try:
            b = self.enc[id(n)](v) if v is not None or n.ftype.kind in ("alnum", "national", "display", "edited") else \
                self.enc[id(n)](0 if n.ftype.kind != "float" else 0.0)  # type: ignore[union-attr]
        except (ValueError, TypeError) as exc:
            raise located(exc, path, pos) from None
        buf[pos:pos + len(b)] = b


def _chosen(v: Any) -> bool:
    return v is not None and v != {} and v != []


# ------------------------------------------------------------ keys: unknown and missing

# binary numbers: a missing one would be written as zero.  A missing DISPLAY (zoned) number is
# written as spaces, which decodes back to None (no number is invented; documented and tested).
_NUMERIC = frozenset({"packed", "binary", "float"})


class _GroupKeys:
    """What one group's dict may and must hold (built once per layout)."""

    __slots__ = ("node", "known", "names", "required", "conditional", "groups", "tables")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.known: frozenset[str] = frozenset()
        self.names: list[str] = []
        self.required: frozenset[str] = frozenset()       # numeric fields a record must give
        self.conditional: dict[str, tuple[Node, list[tuple[str, Any]]]] = {}   # required, unless an 88 fills it
        self.groups: list[tuple[str, Node, "_GroupKeys", bool]] = []   # (key, node, keys, optional)
        self.tables: list[tuple[str, Node, "_GroupKeys | None", bool]] = []  # (key, node, element keys, required)


def _participates(n: Node) -> bool:
    """In a REDEFINES set: written only when chosen (holding a value), so it may be absent."""
    return bool(n.redefines or n.redefined_by)


def _needs_value(n: Node) -> bool:
    """An elementary numeric item the record must give (not a FILLER, not a counter set from its table)."""
    return (n.ftype is not None and n.ftype.kind in _NUMERIC and not n.is_filler and not n.dropped
            and not n.is_counter)


class KeyCheck:
    """Refuses, before any byte is written, a record whose dicts hold a key the copybook does not
    know (a misspelt ``AMOUNTT`` would otherwise be dropped and the amount written as zero) or,
    with ``missing_numbers error``, lack a binary numeric field (COMP-3, COMP/COMP-4/COMP-5, COMP-1/2) that is not a FILLER, not an OCCURS
    DEPENDING ON counter (set from its table) and not in a REDEFINES set (the member holding a
    value is written, the others may be absent).  ``None`` stays a value: a field given as
    null is written as before.  A missing DISPLAY number is still written as spaces (it
    decodes back to None, so no number is invented).  A level-88 name set to true fills its missing field."""

    def __init__(self, layout: Layout, opts: CopybookOptions) -> None:
        self.opts = opts
        self.with_offsets = not opts.variable_occurs
        self.missing = opts.missing_numbers == "error"
        renames: dict[int, set[str]] = {}
        for r in layout.renames:
            if r.root is not None and r.key:
                renames.setdefault(id(r.root), set()).add(r.key)
        self.roots = [(r, self._keys(r, renames.get(id(r), set()))) for r in layout.roots]
        self.collapsed = len(layout.roots) == 1 and opts.collapse_root
        self.root_known = frozenset(r.key for r in layout.roots)
        top = self.roots[0][1] if self.collapsed else None
        # a flat record (the usual case): two set tests, no walk
        self.flat = (top.known, top.required) if top is not None and not (top.groups or top.tables
                                                                           or top.conditional) else None

    def _keys(self, g: Node, extra: set[str]) -> _GroupKeys:
        gk = _GroupKeys(g)
        known: list[str] = []
        required: set[str] = set()
        for c in g.children:
            known.append(c.key)
            for cname, _vals in c.conditions:
                known.append(condition_key(cname, self.opts))
            if c.dropped:
                continue
            if c.occurs_max is not None:
                elem = self._keys(c, set()) if c.is_group else None
                needs = (elem is not None and _has_required(elem)) or (c.is_group is False and _needs_value(c))
                must = self.missing and needs and c.counter is None and not _participates(c)
                gk.tables.append((c.key, c, elem, must))
            elif c.is_group:
                gk.groups.append((c.key, c, self._keys(c, set()), _participates(c)))
            elif self.missing and _needs_value(c) and not _participates(c):
                if c.conditions:
                    gk.conditional[c.key] = (c, [(condition_key(n, self.opts), v) for n, v in c.conditions])
                else:
                    required.add(c.key)
        gk.names = [k for k in known if k]
        gk.known = frozenset(gk.names) | frozenset(extra)
        gk.required = frozenset(required)
        return gk

    def __call__(self, values: Any) -> None:
        if not isinstance(values, dict):
            return                      # the encoder says what is wrong with it
        flat = self.flat
        if flat is not None and flat[0].issuperset(values) and flat[1].issubset(values):
            return
        if self.collapsed:
            self._group(self.roots[0][1], values, "", 0)
            return
        if not self.root_known.issuperset(values):
            self._unknown(values, self.root_known, sorted(self.root_known), "", 0)
        for r, gk in self.roots:
            sub = values.get(r.key)
            if sub is None and len(self.roots) == 1:
                sub = {}
            if isinstance(sub, dict):
                self._group(gk, sub, r.key, 0)

    def _group(self, gk: _GroupKeys, values: dict, path: str, base: int) -> None:
        if not gk.known.issuperset(values):
            self._unknown(values, gk.known, gk.names, path, base)
        if not gk.required.issubset(values):
            for c in gk.node.children:
                if c.key in gk.required and c.key not in values:
                    self._missing(c, path, base)
        for key, (c, conds) in gk.conditional.items():
            if key not in values and not any(values.get(k) is True and vals and not isinstance(vals[0], tuple)
                                             for k, vals in conds):
                self._missing(c, path, base)
        for key, c, sub, optional in gk.groups:
            v = values.get(key)
            if v is None:
                if optional:
                    continue
                v = {}
            elif not isinstance(v, dict) or (optional and not v):
                continue
            self._group(sub, v, f"{path}.{key}" if path else key, base + c.offset)
        for key, c, elem, must in gk.tables:
            items = values.get(key)
            p = f"{path}.{key}" if path else key
            if items is None:
                if must:
                    self._missing(c, path, base)
                continue
            if elem is None or not isinstance(items, list):
                continue
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    self._group(elem, item, f"{p}[{i}]", base + c.offset + i * c.size)

    def _unknown(self, values: dict, known: frozenset[str], names: list[str], path: str, base: int) -> None:
        import difflib
        bad = next(k for k in values if k not in known)
        where = f"{path}.{bad}" if path else str(bad)
        close = difflib.get_close_matches(str(bad), [str(k) for k in known], n=1, cutoff=0.6)
        mean = f"; did you mean {close[0]!r}?" if close else ""
        scope = f"group {path}" if path else "the copybook record"
        # no offset: a key the copybook does not have has no place in the record (until 2026-11-27 the
        # group's start was given, "record byte 0"); bsp encode names the key's column in the JSON line
        raise FormatError(f"no field {bad!r} in {scope}{mean}", field=where,
                          hint="fields are: " + ", ".join(names))

    def _missing(self, c: Node, path: str, base: int) -> None:
        where = f"{path}.{c.key}" if path else c.key
        if c.occurs_max is not None:
            what = f"table {c.key} (OCCURS {c.occurs_max}) is missing; it holds numbers, which need values"
        else:
            ft = c.ftype
            assert ft is not None
            usage = {"packed": " COMP-3", "binary": " COMP"}.get(ft.kind, "")
            pic = f"PIC {ft.pic}{usage}" if ft.pic else "COMP-1/COMP-2"
            what = f"numeric field {c.key} ({pic}) is missing"
        raise FormatError(what, field=where, offset=base + c.offset if self.with_offsets else None,
                          hint=f"give {c.key} a value (0 when zero is meant); a missing number is not "
                               f"written as zero")


def _has_required(gk: _GroupKeys) -> bool:
    return bool(gk.required or gk.conditional or any(not opt and _has_required(s) for _k, _n, s, opt in gk.groups)
                or any(m for _k, _n, _e, m in gk.tables))


# the euro variant of each EBCDIC country page: the same characters, with the euro sign in place of
# the currency sign (IBM CCSIDs 1140-1149)
EURO_PAGES = {"cp037": "cp1140", "cp273": "cp1141", "cp277": "cp1142", "cp278": "cp1143", "cp280": "cp1144",
              "cp284": "cp1145", "cp285": "cp1146", "cp297": "cp1147", "cp500": "cp1148", "cp871": "cp1149"}


def no_code(value: str, start: int, page: str) -> FormatError:
    """A character of ``value`` (at ``start``) that code page ``page`` cannot write; its offset is the
    character's byte within the field (single-byte pages: one byte per character)."""
    ch = value[start]
    euro = EURO_PAGES.get(page)
    try:
        in_euro = euro is not None and bool(ebcdic.encode(ch, euro))
    except (UnicodeEncodeError, LookupError):
        in_euro = False
    if in_euro:
        hint = (f"{euro} is {page} with the euro sign in place of the currency sign; if the receiving "
                f"system reads {euro}, set encoding {euro} on the format (bsp encode --encoding {euro})")
    else:
        hint = f"replace the character, or set the encoding the receiving system reads (now {page})"
    return FormatError(f"character {ch!r} (U+{ord(ch):04X}) has no code in {page}", offset=start, hint=hint)


def do_not_fit(what: str, pic: str, size: int, unit: str) -> str:
    """``13 bytes do not fit PIC X(9)``; the room is said when the picture does not spell it."""
    spelled = f"({size})" in pic.replace(" ", "") or len(pic) == size
    return f"{what} do not fit PIC {pic}" + ("" if spelled else f", which holds {size} {unit}")


def located(exc: Exception, path: str, pos: int) -> FormatError:
    """A field encoder's error at the field ``path`` written at byte ``pos`` of the record (a
    ``FormatError`` of the encoder has its offset within the field, and may have a hint)."""
    if isinstance(exc, FormatError):
        return FormatError(exc.message, field=path, offset=pos + (exc.offset or 0), hint=exc.hint)
    return FormatError(str(exc), field=path, offset=pos)
