"""Values -> record bytes, following the same layout and options as the decoder.

Rules: a missing or None PIC X value is written as LOW-VALUES when
``low_values_null`` (so it decodes back to None), otherwise spaces; a missing
number is written as spaces (DISPLAY) or zero (binary / packed).  In a
REDEFINES set the first member holding a value is written (with a segment
map: the member chosen by the segment value).  An OCCURS DEPENDING ON table
writes as many elements as its list holds and sets the counter when the
counter is missing.
"""
from __future__ import annotations

from typing import Any, Callable

from formats import ebcdic
from formats.copybook import numbers as num
from formats.copybook.keys import condition_key
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
                    raise ValueError(f"character {value[exc.start]!r} has no code in {page}") from None
                if len(b) > size:
                    raise ValueError(f"{len(b)} bytes do not fit PIC {ft.pic} ({size})")
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
                pos = end
                continue
            pos = self._node(c, values, buf, pos, path)
        return pos if self.opts.variable_occurs else base + g.size

    def _choose(self, members: list[Node], values: dict) -> Node | None:
        seg_node = self.layout.find(self.opts.segment_field) if self.opts.segment_field else None
        if seg_node is not None and id(seg_node) in self.counters:
            seg = self.counters[id(seg_node)]
            for m in members:
                if m.name in self.segment_members and seg in self.segment_members[m.name]:
                    return m
        for m in members:
            v = values.get(m.key)
            if v is not None and v != {} and v != []:
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
                if have is None and id(n.counter) in self.counter_at and n.key not in self.opts.occurs_mappings:
                    cpos, cpath = self.counter_at[id(n.counter)]
                    self._write(n.counter, len(items), buf, cpos, cpath)
                    self.counters[id(n.counter)] = len(items)
                elif have is not None and have != len(items) and n.key not in self.opts.occurs_mappings:
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
            raise FormatError(str(exc), field=path, offset=pos) from None
        buf[pos:pos + len(b)] = b
