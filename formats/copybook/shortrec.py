"""RDW records shorter than the copybook (``record rdw`` / ``rdw_le`` without ``variable_occurs``).

A variable-length record may stop before the copybook's end: its trailing
fields are absent (a shorter segment, or trailing fields the writer left out).
The rules:

* a field that lies wholly past the record's end decodes to ``None`` (absent;
  its level-88 names are false);
* a number (or PIC N / numeric-edited item) the record ends *inside* is an
  error naming it and its bytes (``record is 26 bytes and ends inside COUNT_X
  (bytes 25-26 of the record)``): padding its missing bytes would invent a
  value (a binary count of 64, a packed sign nibble of 0).  Where invalid data
  is not an error - a REDEFINES member no segment map chose, or ``invalid
  null`` - it is ``None`` instead;
* a PIC X item the record ends inside keeps the characters present, padded
  with spaces (writers that drop trailing blanks; upstream readers do the same).

The record is decoded once, padded with a template in which every field past
the end holds a value that decodes cleanly (spaces for text, zero for
numbers, so an OCCURS DEPENDING ON counter past the end counts 0); those
fields are then set to ``None``.
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Any

from formats.copybook.keys import condition_key
from formats.copybook.layout import Layout, Node, lenient_field
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError

_MISSING = object()


class _Slot:
    __slots__ = ("start", "end", "path", "name", "node", "lenient", "conds", "shown")

    def __init__(self, start: int, end: int, path: tuple, name: str, node: Node, lenient: bool,
                 conds: tuple[str, ...], shown: bool) -> None:
        self.start, self.end, self.path, self.name = start, end, path, name
        self.node, self.lenient, self.conds, self.shown = node, lenient, conds, shown


class ShortRecords:
    def __init__(self, layout: Layout, opts: CopybookOptions, enc: dict[int, Any], space: int, size: int) -> None:
        self.opts = opts
        members = {m.upper().replace("_", "-") for m in opts.segment_map.values()}
        self.members = members
        slots: list[_Slot] = []
        collapsed = len(layout.roots) == 1 and opts.collapse_root
        for r in layout.roots:
            self._walk(r, 0, () if collapsed else (r.key,), "" if collapsed else r.key, slots, True)
        template = bytearray([space]) * size
        # text first, numbers last: where REDEFINES members overlap, the bytes decode as numbers
        order = {"alnum": 0, "national": 0, "edited": 1, "display": 2, "packed": 3, "binary": 3, "float": 3}
        for s in sorted(slots, key=lambda s: order.get(s.node.ftype.kind, 0)):  # type: ignore[union-attr]
            kind = s.node.ftype.kind  # type: ignore[union-attr]
            try:
                if kind in ("alnum", "national", "edited"):
                    b = bytes([space]) * (s.end - s.start) if kind != "national" else None
                    if b is None:
                        b = enc[id(s.node)](" " * ((s.end - s.start) // 2))
                elif kind == "display":
                    b = enc[id(s.node)](0 if s.node.is_counter else None)
                else:
                    b = enc[id(s.node)](0.0 if kind == "float" else 0)
            except (ValueError, TypeError, FormatError):
                continue
            template[s.start:s.start + len(b)] = b
        self.template = bytes(template)
        self.space = bytes([space])
        self.slots = sorted(slots, key=lambda s: s.end)
        self.ends = [s.end for s in self.slots]

    def _lenient(self, n: Node) -> bool:
        return lenient_field(n, self.opts.invalid, self.members)

    def _walk(self, g: Node, base: int, path: tuple, dotted: str, out: list[_Slot], shown: bool) -> None:
        for c in g.children:
            start = base + c.offset
            vis = shown and not c.dropped
            key_path = path + (c.key,)
            name = f"{dotted}.{c.key}" if dotted else c.key
            count = c.occurs_max if c.occurs_max is not None else None
            for i in range(count if count is not None else 1):
                at = start + i * c.size
                p = key_path + (i,) if count is not None else key_path
                nm = f"{name}[{i}]" if count is not None else name
                if c.is_group:
                    self._walk(c, at, p, nm, out, vis)
                else:
                    conds = tuple(condition_key(cn, self.opts) for cn, _v in c.conditions) if count is None else ()
                    out.append(_Slot(at, at + c.size, p, nm, c, self._lenient(c), conds, vis))

    def pad(self, rec: bytes) -> bytes:
        """``rec`` completed with the template, after checking no strict field is cut."""
        n = len(rec)
        text_end = n
        for s in self.slots[bisect_right(self.ends, n):]:
            if s.start >= n or not s.shown:
                continue
            if s.node.ftype.kind == "alnum":  # type: ignore[union-attr]
                text_end = max(text_end, s.end)
            elif not s.lenient:
                raise FormatError(f"record is {n} bytes and ends inside {s.name} "
                                  f"(bytes {s.start}-{s.end - 1} of the record)", offset=s.start, field=s.name,
                                  hint="the record is cut short, or its RDW length is wrong")
        # a PIC X item cut short is completed with spaces (not the template's numbers)
        return rec + self.space * (text_end - n) + self.template[text_end:]

    def absent(self, values: dict, n: int) -> None:
        """Set the fields the record does not reach to None (numbers it cuts too, where that is lenient)."""
        for s in self.slots[bisect_right(self.ends, n):]:
            if not s.shown:
                continue
            if s.start < n and s.node.ftype.kind == "alnum":  # type: ignore[union-attr]
                continue                      # PIC X cut short: the characters present, space padded
            holder: Any = values
            for k in s.path[:-1]:
                holder = holder.get(k, _MISSING) if isinstance(holder, dict) else (
                    holder[k] if isinstance(holder, list) and k < len(holder) else _MISSING)
                if holder is _MISSING or holder is None:
                    break
            else:
                last = s.path[-1]
                if isinstance(holder, dict) and last in holder:
                    holder[last] = None
                    for ck in s.conds:
                        if ck in holder:
                            holder[ck] = False
                elif isinstance(holder, list) and isinstance(last, int) and last < len(holder):
                    holder[last] = None
