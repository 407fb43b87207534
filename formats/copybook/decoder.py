"""Layout -> one specialised Python decode function per record layout.

We generate the source of a function from the *parsed layout* and compile it
once: every identifier in the generated text is ours (``d3``, ``F[12]``),
every number is an int we computed; copybook names, values and code pages
never appear in the text, they are passed in through the constant tuples
``K`` (keys), ``F`` (field decoders), ``P`` (field paths) and ``S`` (segment
value sets).  The result decodes a record with straight-line slicing and no
walk over the tree.

Generated frame functions have the signature ``fr(raw, text, o, cnt) ->
(dict, end_offset)``: ``o`` is where the record or array element starts,
``cnt`` holds the values of OCCURS DEPENDING ON counters and the segment field.
"""
from __future__ import annotations

import codecs
import difflib
import re
from decimal import Decimal
from typing import Any, Callable

from formats import ebcdic
from formats.copybook import numbers as num
from formats.copybook.keys import condition_key
from formats.copybook.layout import Layout, Node, lenient_field
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError, SpecError


class _Gen:
    def __init__(self, layout: Layout, opts: CopybookOptions, utf8: bool) -> None:
        self.layout = layout
        self.opts = opts
        self.utf8 = utf8
        self.consts: dict[str, list[Any]] = {"K": [], "F": [], "P": [], "S": [], "Z": [], "C": []}
        self.funcs: list[str] = []
        self.counter_slot: dict[int, int] = {}
        self.nvar = 0
        self.zt = num.ZonedTables(opts.encoding if not utf8 else "ascii")
        self.top_body = ""
        # ascii is 7-bit: bytes 128-255 decode to lone surrogates, which a text field refuses
        self.ascii_only = not utf8 and ebcdic.canonical(opts.encoding) == "ascii"
        self.low_char: str | None = None
        if not utf8:
            table = ebcdic.decoding_table(opts.encoding.lower().replace("_", "-"), opts.controls)
            if table.count(table[0]) == 1:
                self.low_char = table[0]
        seg = opts.segment_field
        self.segment_node = layout.find(seg) if seg else None
        if seg and self.segment_node is None:
            close = difflib.get_close_matches(seg.upper().replace("_", "-"),
                                              [n.name for r in layout.roots for n in r.walk() if n.name], 1)
            raise SpecError(f"segment_field {seg} is not a field of the copybook", path=layout.path,
                            hint=(f"did you mean {close[0]}? " if close else "")
                            + "name the elementary item that holds the segment id, e.g. SEGMENT-ID")
        self.segment_members: dict[str, set[str]] = {}
        for value, member in opts.segment_map.items():
            self.segment_members.setdefault(member.upper().replace("_", "-"), set()).add(value)
        for member in self.segment_members:
            if layout.find(member) is None:
                raise SpecError(f"segment_map names {member}, which is not an item of the copybook",
                                path=layout.path, hint=_members_hint(member, layout))
        for root in layout.roots:
            for n in root.walk():
                if n.is_counter or n is self.segment_node:
                    self.counter_slot[id(n)] = len(self.counter_slot)

    def const(self, kind: str, value: Any) -> int:
        lst = self.consts[kind]
        lst.append(value)
        return len(lst) - 1

    def var(self, prefix: str) -> str:
        self.nvar += 1
        return f"{prefix}{self.nvar}"

    # ---------------------------------------------------------------- fields
    def field_decoder(self, n: Node) -> Callable:
        ft = n.ftype
        assert ft is not None
        o = self.opts
        if ft.kind == "alnum":
            return self.alnum_decoder(n)
        if ft.kind == "national":
            return num.national_decoder(ft, o.trim, o.low_values_null)
        if ft.kind == "display":
            if self.utf8:
                inner = num.display_decoder(ft, self.zt, o.low_values_null)

                def dec(raw, text, s, _inner=inner):
                    return _inner(raw, text, s)
                return dec
            return num.display_decoder(ft, self.zt, o.low_values_null)
        if ft.kind == "packed":
            return num.packed_decoder(ft, o.low_values_null)
        if ft.kind == "binary":
            return num.binary_decoder(ft, o.little_endian(ft.native))
        if ft.kind == "float":
            return num.float_decoder(ft, o.float_format == "ieee")
        if ft.kind == "edited":
            inner = num.edited_decoder(ft)
            if self.utf8:          # no record text for utf-8: edited numbers are ASCII, one char per byte
                def dec(raw, text, s, _inner=inner, _size=ft.size):
                    return _inner(raw, raw[:s + _size].decode("latin-1"), s)
                return dec
            return inner
        raise AssertionError(ft.kind)

    def alnum_decoder(self, n: Node) -> Callable:
        size = n.ftype.size  # type: ignore[union-attr]
        trim = self.opts.trim
        low = bytes(size) if self.opts.low_values_null else None
        utf8 = self.utf8
        ascii_only = self.ascii_only

        def dec(raw: bytes, text: str, s: int):
            if low is not None and raw[s:s + size] == low:
                return None
            if utf8:
                try:
                    t = raw[s:s + size].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise num._Bad(f"invalid UTF-8 ({exc.reason})", s + exc.start) from None
            else:
                t = text[s:s + size]
                if ascii_only and not t.isascii():
                    raise _not_ascii(raw, s, size)
            if trim == "right":
                return t.rstrip(" ")
            if trim == "both":
                return t.strip(" ")
            if trim == "left":
                return t.lstrip(" ")
            return t
        return dec

    def fast_path(self, n: Node, v: str, start: str) -> list[str]:
        """Inline code for the common well-formed case; ``else:`` falls back to the
        full decoder (which handles blanks, odd signs and raises the error)."""
        ft = n.ftype
        assert ft is not None
        end = f"{start}+{ft.size}"
        if ft.scale > 0:
            wrap = f"D(_x).scaleb({-ft.scale}, CTX)"
        elif ft.scale < 0:
            wrap = f"_x * {10 ** -ft.scale}"
        else:
            wrap = "_x"
        if ft.kind == "packed" and ft.digits % 2 == 1:
            signs = "'cfaedb'" if ft.signed else "'fc'"
            value = "-int(_d) if _s in 'db' else int(_d)" if ft.signed else "int(_d)"
            return [f"_h = raw[{start}:{end}].hex()",
                    "_s = _h[-1]",
                    f"if _s in {signs} and (_d := _h[:-1]).isdigit():",
                    f"    _x = {value}",
                    f"    {v} = {wrap}"]
        if ft.kind == "display" and not ft.signed and not ft.explicit_point and not self.utf8:
            t = self.const("Z", self.zt.digit)
            return [f"_b = raw[{start}:{end}].translate(Z[{t}])",
                    "if _b.isdigit():",
                    "    _x = int(_b)",
                    f"    {v} = {wrap}"]
        if (ft.kind == "display" and ft.signed and not ft.sign_separate and ft.sign_pos == "trailing"
                and not ft.explicit_point and not self.utf8 and ft.size == ft.digits):
            # trailing overpunch: SG[byte] is +1 / -1 for a sign-carrying digit byte (0 if none), LD its digit
            sg = self.const("Z", tuple(0 if self.zt.over[b] == 0x78 else (-1 if self.zt.neg[b] else 1)
                                       for b in range(256)))
            ld = self.const("Z", tuple(self.zt.over[b] - 0x30 if self.zt.over[b] != 0x78 else 0 for b in range(256)))
            last = f"{start}+{ft.size - 1}"
            if ft.size == 1:
                return [f"_c = raw[{last}]",
                        f"if Z[{sg}][_c]:",
                        f"    _x = Z[{sg}][_c] * Z[{ld}][_c]",
                        f"    {v} = {wrap}"]
            t = self.const("Z", self.zt.digit)
            return [f"_c = raw[{last}]",
                    f"if Z[{sg}][_c] and (_b := raw[{start}:{last}].translate(Z[{t}])).isdigit():",
                    f"    _x = Z[{sg}][_c] * (int(_b) * 10 + Z[{ld}][_c])",
                    f"    {v} = {wrap}"]
        if ft.kind == "binary":
            sgn = "True" if ft.signed else "False"
            order = "'little'" if self.opts.little_endian(ft.native) else "'big'"
            if ft.native:       # no digit limit: every bit pattern is a value
                return [f"_x = from_bytes(raw[{start}:{end}], {order}, signed={sgn})",
                        "if True:",
                        f"    {v} = {wrap}"]
            lim = 10 ** ft.digits
            return [f"_x = from_bytes(raw[{start}:{end}], {order}, signed={sgn})",
                    f"if -{lim} < _x < {lim}:",
                    f"    {v} = {wrap}"]
        return []

    def alnum_inline(self, n: Node, start: str) -> str | None:
        """A fast inline expression for a PIC X field, when possible."""
        if self.utf8:
            return None
        size = n.ftype.size  # type: ignore[union-attr]
        trim = {"right": ".rstrip(' ')", "both": ".strip(' ')", "left": ".lstrip(' ')", "none": ""}[self.opts.trim]
        if not self.opts.low_values_null:
            return f"text[{start}:{start}+{size}]{trim}"
        if self.low_char is not None:
            # X'00' decodes to a character no other byte gives: compare the text slice
            z = self.const("Z", self.low_char * size)
            return f"(None if (_t := text[{start}:{start}+{size}]) == Z[{z}] else _t{trim})"
        z = self.const("Z", bytes(size))
        return f"(None if raw[{start}:{start}+{size}] == Z[{z}] else text[{start}:{start}+{size}]{trim})"

    # ---------------------------------------------------------------- frames
    def lenient(self, n: Node) -> bool:
        """Invalid data decodes to None (not an error) for this field?

        Yes with ``invalid = null``, and for fields in a REDEFINES set that no
        segment map chooses: those bytes may well belong to another member.
        """
        return lenient_field(n, self.opts.invalid, self.segment_members)

    def path_of(self, n: Node) -> str:
        parts = []
        p: Node | None = n
        while p is not None:
            if p.parent is None and self.opts.collapse_root and len(self.layout.roots) == 1:
                break
            parts.append(p.key + ("[]" if p.occurs_max is not None else ""))
            p = p.parent
        return ".".join(reversed(parts))

    def frame(self, group: Node, elem: bool) -> str:
        """Emit a function decoding ``group``'s children; returns its name.

        The record frame (``elem`` false) starts at offset 0, so its slices are
        constants that Python folds at compile time.
        """
        name = f"fr{len(self.funcs)}"
        self.funcs.append("")  # reserve the slot (nested frames are appended later)
        idx = len(self.funcs) - 1
        lines: list[str] = []
        state = {"base": "o" if elem else "0", "origin": 0}
        self.emit_children(group, "d", 0, lines, state, "    ")
        end = self.pos(state, group.size)
        body = "\n".join(lines) or "    pass"
        self.funcs[idx] = f"def {name}(raw, text, o, cnt):\n    d = {{}}\n{body}\n    return d, {end}\n"
        if not elem:
            self.top_body = body
        return name

    @staticmethod
    def pos(state: dict, frame_off: int) -> str:
        delta = frame_off - state["origin"]
        if state["base"] == "0":
            return str(delta)
        return f"{state['base']}+{delta}" if delta else state["base"]

    def emit_children(self, group: Node, dvar: str, frame_off: int, lines: list[str], state: dict, ind: str) -> None:
        for c in group.children:
            if c.dropped and not self.needs_decode(c):
                if self.opts.variable_occurs and self.has_variable(c):
                    self.emit_node(c, None, frame_off + c.offset, lines, state, ind)
                continue
            guard = None
            if c.name and c.name in self.segment_members and self.segment_node is not None:
                s = self.const("S", frozenset(self.segment_members[c.name]))
                slot = self.counter_slot[id(self.segment_node)]
                guard = f"cnt[{slot}] in S[{s}]"
            if guard:
                lines.append(f"{ind}if {guard}:")
                self.emit_node(c, dvar, frame_off + c.offset, lines, state, ind + "    ")
            else:
                self.emit_node(c, dvar, frame_off + c.offset, lines, state, ind)

    def needs_decode(self, n: Node) -> bool:
        return any(id(x) in self.counter_slot for x in n.walk())

    def has_variable(self, n: Node) -> bool:
        return any(x.depending_on for x in n.walk())

    def emit_node(self, n: Node, dvar: str | None, frame_off: int, lines: list[str], state: dict, ind: str) -> None:
        variable = self.opts.variable_occurs and self.has_variable(n)
        if variable and n.in_redefines:
            raise SpecError(f"{n.name or 'FILLER'}: OCCURS DEPENDING ON inside a REDEFINES set cannot vary in size",
                            path=self.layout.path, line=n.line, col=n.col,
                            hint="read with variable_occurs = false (tables keep their maximum size)")
        emit = dvar is not None and not n.dropped
        start = self.pos(state, frame_off)
        if n.occurs_max is not None:
            self.emit_array(n, dvar if emit else None, start, lines, state, ind, frame_off, variable)
            return
        if n.is_group:
            if emit:
                sub = self.var("d")
                k = self.const("K", n.key)
                lines.append(f"{ind}{sub} = {dvar}[K[{k}]] = {{}}")
            else:
                sub = None
            self.emit_children(n, sub, frame_off, lines, state, ind) if sub else self.emit_dropped_children(n, frame_off, lines, state, ind)
            return
        target = f"{dvar}[K[{self.const('K', n.key)}]]" if emit else None
        slot = self.counter_slot.get(id(n))
        self.emit_field(n, target, start, slot, lines, ind)

    def emit_dropped_children(self, group: Node, frame_off: int, lines, state, ind) -> None:
        for c in group.children:
            if self.needs_decode(c) or (self.opts.variable_occurs and self.has_variable(c)):
                self.emit_node(c, None, frame_off + c.offset, lines, state, ind)

    def emit_field(self, n: Node, target: str | None, start: str, slot: int | None, lines, ind) -> None:
        v = self.var("v")
        inline = self.alnum_inline(n, start) if n.ftype.kind == "alnum" else None  # type: ignore[union-attr]
        if inline is not None:
            lines.append(f"{ind}{v} = {inline}")
            if self.ascii_only:
                size = n.ftype.size  # type: ignore[union-attr]
                lines.append(f"{ind}if {v} is not None and not {v}.isascii():")
                if self.lenient(n):
                    lines.append(f"{ind}    {v} = None")
                else:
                    p = self.const("P", self.path_of(n))
                    lines.append(f"{ind}    _e = _not_ascii(raw, {start}, {size})")
                    lines.append(f"{ind}    raise FormatError(_e.message, offset=_e.offset, field=P[{p}],"
                                 f" hint=_e.hint) from None")
        else:
            f = self.const("F", self.field_decoder(n))
            p = self.const("P", self.path_of(n))
            fast = self.fast_path(n, v, start)
            slow = ind
            if fast:
                lines.extend(f"{ind}{x}" for x in fast)
                lines.append(f"{ind}else:")
                slow = ind + "    "
            lines.append(f"{slow}try:")
            lines.append(f"{slow}    {v} = F[{f}](raw, text, {start})")
            lines.append(f"{slow}except _Bad as e:")
            if self.lenient(n):
                lines.append(f"{slow}    {v} = None")
            else:
                lines.append(f"{slow}    raise FormatError(e.message, offset=e.offset, field=P[{p}]) from None")
        if target:
            lines.append(f"{ind}{target} = {v}")
        if slot is not None:
            lines.append(f"{ind}cnt[{slot}] = {v}")
        if target and self.opts.conditions and n.conditions:
            for cname, values in n.conditions:
                k = self.const("K", condition_key(cname, self.opts))
                dv = target.split("[", 1)[0]
                lines.append(f"{ind}{dv}[K[{k}]] = {self.condition_expr(values, n, v)}")

    def condition_expr(self, values: list[Any], n: Node, v: str) -> str:
        """A level-88 test as an expression; plain literal lists become a set lookup."""
        ft = n.ftype
        assert ft is not None
        text = ft.kind in ("alnum", "national")
        if values and not any(isinstance(x, tuple) for x in values):
            if text and all(isinstance(x, str) for x in values):
                z = self.const("Z", frozenset(x.rstrip(" ") for x in values))
                if self.opts.trim in ("right", "both"):
                    return f"({v} in Z[{z}])"
                return f"({v} is not None and {v}.rstrip(' ') in Z[{z}])"
            if not text and ft.kind != "float" and all(isinstance(x, (int, Decimal)) and not isinstance(x, bool)
                                                       for x in values):
                z = self.const("Z", frozenset(values))
                return f"({v} in Z[{z}])"
        c = self.const("C", _condition_test(values, n))
        return f"C[{c}]({v})"

    def emit_array(self, n: Node, dvar: str | None, start: str, lines, state, ind, frame_off, variable) -> None:
        size, mx = n.size, n.occurs_max
        assert mx is not None
        count = self.var("n")
        if n.counter is not None:
            slot = self.counter_slot[id(n.counter)]
            mapping = self.opts.occurs_mappings.get(n.key) or self.opts.occurs_mappings.get(n.name or "")
            c = self.const("C", _counter(n, mapping, self.path_of(n)))
            lines.append(f"{ind}{count} = C[{c}](cnt[{slot}], {start})")
        else:
            lines.append(f"{ind}{count} = {mx}")
        lst = self.var("l")
        if n.is_group:
            fn = self.frame(n, True)
            if variable:
                q = self.var("q")
                lines.append(f"{ind}{lst} = []")
                lines.append(f"{ind}{q} = {start}")
                lines.append(f"{ind}for _ in range({count}):")
                lines.append(f"{ind}    _e, {q} = {fn}(raw, text, {q}, cnt)")
                lines.append(f"{ind}    {lst}.append(_e)")
            else:
                lines.append(f"{ind}{lst} = [{fn}(raw, text, {start}+{size}*_i, cnt)[0] for _i in range({count})]")
        else:
            f = self.const("F", self.field_decoder(n))
            p = self.const("P", self.path_of(n))
            lines.append(f"{ind}try:")
            lines.append(f"{ind}    {lst} = [F[{f}](raw, text, {start}+{size}*_i) for _i in range({count})]")
            lines.append(f"{ind}except _Bad as e:")
            if self.lenient(n):
                lines.append(f"{ind}    {lst} = [None] * {count}")
            else:
                lines.append(f"{ind}    raise FormatError(e.message, offset=e.offset, field=P[{p}]) from None")
            if variable:
                q = self.var("q")
        if dvar is not None:
            lines.append(f"{ind}{dvar}[K[{self.const('K', n.key)}]] = {lst}")
        if variable:
            if n.is_group:
                lines.append(f"{ind}p = {q}")
            else:
                lines.append(f"{ind}p = {start}+{size}*{count}")
            state["base"] = "p"
            state["origin"] = frame_off + n.total_size


def _not_ascii(raw: bytes, start: int, size: int) -> num._Bad:
    """The first byte over 0x7F in a text field read as (7-bit) ascii."""
    i = next((k for k in range(start, start + size) if raw[k] >= 0x80), start)
    bad = num._Bad(f"byte 0x{raw[i]:02x} is not valid ascii (7-bit)", i)
    bad.hint = "the data is not ASCII text: EBCDIC needs encoding cp037 (or its page), 8-bit text latin-1"
    return bad


def _condition_test(values: list[Any], n: Node) -> Callable[[Any], bool]:
    """A level-88 test: value in the listed literals / ranges (figuratives resolved)."""
    singles: list[Any] = []
    ranges: list[tuple[Any, Any]] = []
    alnum = n.ftype is not None and n.ftype.kind in ("alnum", "national")

    def norm(v: Any) -> Any:
        if isinstance(v, tuple) and v and v[0] == "figurative":
            word = v[1]
            if word.startswith("ZERO"):
                width = n.ftype.size // (2 if n.ftype.kind == "national" else 1) if n.ftype else 1
                return "0" * width if alnum else 0
            if word.startswith("SPACE"):
                return ""
            return None
        if alnum and isinstance(v, str):
            return v.rstrip(" ")
        return v

    for v in values:
        if isinstance(v, tuple) and v and v[0] == "range":
            ranges.append((norm(v[1]), norm(v[2])))
        else:
            singles.append(norm(v))

    def test(value: Any) -> bool:
        if value is None:
            return None in singles
        if isinstance(value, str):
            value = value.rstrip(" ")
        try:
            return value in singles or any(lo <= value <= hi for lo, hi in ranges)
        except TypeError:
            return False
    return test


def _members_hint(member: str, layout) -> str:
    """The REDEFINES members a segment_map can name, the closest first."""
    names = [n.name for r in layout.roots for n in r.walk() if n.name and (n.redefines or n.redefined_by)]
    close = difflib.get_close_matches(member, names, 1)
    listed = ", ".join(names) or "none: the copybook has no REDEFINES"
    return (f"did you mean {close[0]}? " if close else "") + f"REDEFINES members: {listed}"


def _counter(n: Node, mapping, path: str) -> Callable[[Any, int], int]:
    lo = n.occurs_min if n.occurs_min is not None else 0
    hi = n.occurs_max
    name = n.depending_on

    def count(value: Any, offset: int) -> int:
        if mapping is not None:
            key = value if isinstance(value, str) else str(value)
            if key not in mapping:
                raise FormatError(f"DEPENDING ON {name} value {value!r} is not in occurs_mappings"
                                  f" ({', '.join(map(repr, mapping))})", offset=offset, field=path)
            value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise FormatError(f"DEPENDING ON {name} is {value!r}, not a whole number", offset=offset, field=path,
                              hint="a non-numeric counter needs its counts: occurs_mappings"
                                   f" [\"{n.key}:TEXT=COUNT\", ...] in the route's format"
                                   f" (bsp decode/encode --occurs-mapping {n.key}:TEXT=COUNT)")
        if not lo <= value <= hi:  # type: ignore[operator]
            raise FormatError(f"DEPENDING ON {name} = {value} is outside OCCURS {lo} TO {hi}",
                              offset=offset, field=path)
        return value
    return count


def build_decoder(layout: Layout, opts: CopybookOptions) -> tuple[Callable[[bytes], tuple[dict, int, list]], str]:
    """Returns ``decode(raw) -> (values, end_offset, counters)`` and the generated source.

    ``decode.segment_slot`` is the index of the segment field's value in ``counters``;
    ``decode.plain`` is ``plain(raw) -> values`` for one record of exactly the layout's
    size (a single collapsed 01 without variable tables), else None.
    """
    page = opts.encoding.lower().replace("_", "-")
    utf8 = page in ("utf-8", "utf8")
    gen = _Gen(layout, opts, utf8)
    roots = layout.roots
    if len(roots) == 1 and opts.collapse_root:
        top = gen.frame(roots[0], False)
        record = f"def record(raw, text, cnt):\n    return {top}(raw, text, 0, cnt)\n"
    else:
        parts = []
        for r in roots:
            fake = Node(name=None, level=0, line=r.line, col=r.col, children=[r], size=r.total_size)
            parts.append(gen.frame(fake, False))
        body = "".join(f"    v{i}, e{i} = {fn}(raw, text, 0, cnt)\n    d.update(v{i})\n" for i, fn in enumerate(parts))
        ends = ", ".join(f"e{i}" for i in range(len(parts)))
        record = f"def record(raw, text, cnt):\n    d = {{}}\n{body}    return d, max({ends}, 0)\n"
    source = "\n".join(gen.funcs) + "\n" + record
    if len(roots) == 1 and opts.collapse_root and not opts.variable_occurs:
        # decode() of one whole record: the record frame's body with no calls around it
        text = "''" if utf8 else "_charmap_decode(raw, 'strict', _TABLE)[0]"
        source += (f"\ndef plain(raw):\n    text = {text}\n    cnt = [None] * {len(gen.counter_slot)}\n"
                   f"    d = {{}}\n{gen.top_body}\n    return d\n")
    # constants become module-level names (K_3, F_12): one dict lookup each, no subscript
    source = re.sub(r"\b([KFPSZC])\[(\d+)\]", r"\1_\2", source)
    ns: dict[str, Any] = {"FormatError": FormatError, "_Bad": num._Bad, "D": Decimal, "CTX": num.CTX,
                          "_not_ascii": _not_ascii,
                          "from_bytes": int.from_bytes, "_charmap_decode": codecs.charmap_decode,
                          "_TABLE": None if utf8 else ebcdic.decoding_table(page, opts.controls)}
    for kind, values in gen.consts.items():
        for i, value in enumerate(values):
            ns[f"{kind}_{i}"] = value
    exec(compile(source, f"<copybook {layout.path or 'layout'}>", "exec"), ns)  # our generated code, see module doc
    record_fn = ns["record"]
    nslots = len(gen.counter_slot)
    seg_slot = gen.counter_slot.get(id(gen.segment_node)) if gen.segment_node is not None else None
    if utf8:
        def decode(raw: bytes) -> tuple[dict, int, list]:
            cnt = [None] * nslots
            d, end = record_fn(raw, "", cnt)
            return d, end, cnt
    else:
        table = ebcdic.decoding_table(page, opts.controls)
        charmap_decode = codecs.charmap_decode

        def decode(raw: bytes) -> tuple[dict, int, list]:
            cnt = [None] * nslots
            d, end = record_fn(raw, charmap_decode(raw, "strict", table)[0], cnt)
            return d, end, cnt
    decode.segment_slot = seg_slot  # type: ignore[attr-defined]
    decode.plain = ns.get("plain")  # type: ignore[attr-defined]
    return decode, source
