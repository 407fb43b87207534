"""Layout -> one specialised Python encode function per record layout.

The counterpart of ``decoder.py``: the source of ``record(values) -> bytes``
is generated from the parsed layout and compiled once.  As there, every
identifier in the generated text is ours and every number one we computed;
copybook names, literals and code pages reach the function only through the
constant names ``K_n`` (keys), ``E_n`` (field encoders), ``M_n`` (REDEFINES members), ``N_n`` (the bytes of a
missing value), ``S_n`` (field paths) and ``C_n`` (level-88 fill-ins).

The rules are those of ``encoder.Encoder`` (which stays the reference, and
is used for ``variable_occurs`` and ``segment_map`` layouts): a missing value
is written as its None form, the first REDEFINES member holding a value is
written, an OCCURS DEPENDING ON counter left out is set from its table.  The
common cases (PIC X text, packed, zoned, binary from int / Decimal) are
inline; anything else goes through the field's encoder, which also raises
the precise error.
"""
from __future__ import annotations

import codecs
from decimal import Decimal
from typing import Any, Callable

from formats import ebcdic
from formats.copybook.encoder import Encoder, located
from formats.copybook.keys import condition_key, mapped as _mapped
from formats.copybook.layout import Layout, Node
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError

_EMPTY: dict = {}


def _slow(enc: Callable[[Any], bytes], v: Any, buf: bytearray, at: int, path: str) -> None:
    try:
        b = enc(v)
    except (ValueError, TypeError) as exc:
        raise located(exc, path, at) from None
    buf[at:at + len(b)] = b


def _not_dict(v: Any, path: str, at: int) -> FormatError:
    return FormatError(f"expected a dict for group {path}, got {type(v).__name__}", field=path, offset=at)


def _not_list(v: Any, path: str, at: int) -> FormatError:
    return FormatError(f"expected a list for table {path}, got {type(v).__name__}", field=path, offset=at)


def _too_many(count: int, mx: int, path: str, at: int) -> FormatError:
    return FormatError(f"{count} elements for OCCURS {mx} table {path}", field=path, offset=at)


def _mismatch(counter: str, have: Any, count: int, path: str, at: int) -> FormatError:
    return FormatError(f"{counter} = {have} but table {path} holds {count} elements", field=path, offset=at,
                       hint="leave the counter out and it is set for you")


def _chosen(v: Any) -> bool:
    return v is not None and v != {} and v != []


class _Gen:
    def __init__(self, layout: Layout, opts: CopybookOptions, ref: Encoder) -> None:
        self.layout = layout
        self.opts = opts
        self.ref = ref
        self.consts: dict[str, list[Any]] = {"K": [], "E": [], "N": [], "S": [], "C": [], "T": [], "M": []}
        self.funcs: list[str] = []
        self.nvar = 0
        self.slot: dict[int, int] = {}
        for root in layout.roots:
            for n in root.walk():
                if n.is_counter:
                    self.slot[id(n)] = len(self.slot)
        zt = ref.zt
        self.ascii = zt.ascii
        digits = bytes(zt.zero + d for d in range(10))
        self.a2e = bytes.maketrans(b"0123456789", digits)
        if zt.ascii:
            pos, neg = b"{ABCDEFGHI", b"}JKLMNOPQR"
        else:
            pos = bytes(0xC0 + d for d in range(10))
            neg = bytes(0xD0 + d for d in range(10))
        table_pos, table_neg = bytearray(range(256)), bytearray(range(256))
        for d in range(10):
            table_pos[digits[d]] = pos[d]
            table_neg[digits[d]] = neg[d]
        self.over_pos, self.over_neg = bytes(table_pos), bytes(table_neg)

    def const(self, kind: str, value: Any) -> str:
        lst = self.consts[kind]
        lst.append(value)
        return f"{kind}_{len(lst) - 1}"

    def var(self, prefix: str) -> str:
        self.nvar += 1
        return f"{prefix}{self.nvar}"

    # ------------------------------------------------------------ fields
    def none_bytes(self, n: Node) -> bytes:
        ft = n.ftype
        assert ft is not None
        enc = self.ref.enc[id(n)]
        if ft.kind in ("alnum", "national", "display", "edited"):
            return enc(None)
        return enc(0.0 if ft.kind == "float" else 0)

    def stored(self, n: Node, v: str) -> tuple[list[str], str]:
        """Lines setting ``_x`` (the stored integer) from ``v`` and the condition that it worked."""
        ft = n.ftype
        assert ft is not None
        if ft.scale > 0:
            m = 10 ** ft.scale
            # the exponent bound keeps as_integer_ratio cheap (1E+999999999 goes to the field
            # encoder, which refuses it without expanding it)
            return [f"if {v}.__class__ is D and {v}.is_finite() and -80 < {v}.adjusted() < 80:",
                    f"    _n, _d = {v}.as_integer_ratio()",
                    f"    _x = _n * ({m} // _d) if {m} % _d == 0 else None",
                    f"elif {v}.__class__ is int:",
                    f"    _x = {v} * {m}",
                    "else:",
                    "    _x = None"], "_x is not None"
        if ft.scale < 0:
            return [f"_x = {v} // {10 ** -ft.scale} if {v}.__class__ is int and {v} % {10 ** -ft.scale} == 0"
                    " else None"], "_x is not None"
        return [f"_x = {v} if {v}.__class__ is int else None"], "_x is not None"

    def fast(self, n: Node, v: str, at: str, slow: str) -> list[str] | None:
        """Inline code for a value that is not None: the common case written directly,
        anything else handed to ``slow`` (the field encoder, which also raises the error)."""
        ft = n.ftype
        assert ft is not None
        size = ft.size
        if ft.kind == "alnum":
            if self.ref.utf8:
                return [f"if {v}.__class__ is str and len(_b := {v}.encode('utf-8')) <= {size}:",
                        f"    buf[{at}:{at}+len(_b)] = _b",
                        "else:",
                        f"    {slow}"]
            m = self.const("T", ebcdic.encoding_map(self.ref.page))
            # one byte per character in every single-byte page: len(encoded) == len(v)
            return [f"if {v}.__class__ is str and len({v}) <= {size}:",
                    "    try:",
                    f"        buf[{at}:{at}+len({v})] = charmap_encode({v}, 'strict', {m})[0]",
                    "    except UnicodeEncodeError:",
                    f"        {slow}",
                    "else:",
                    f"    {slow}"]
        if ft.kind not in ("packed", "display", "binary"):
            return None
        if ft.kind == "display" and (ft.explicit_point or ft.sign_separate or ft.size != ft.digits
                                     or (ft.signed and ft.sign_pos == "leading")):
            return None
        lines, ok = self.stored(n, v)
        lim = 10 ** ft.digits
        rng = f"-{lim} < _x < {lim}" if ft.signed else f"0 <= _x < {lim}"
        if ft.kind == "binary" and ft.native:
            bits = 8 * size
            rng = f"{-(1 << (bits - 1))} <= _x < {1 << (bits - 1)}" if ft.signed else f"0 <= _x < {1 << bits}"
        lines.append(f"if {ok} and {rng}:")
        if ft.kind == "packed":
            w = 2 * size - 1
            if ft.signed:
                lines.append(f"    buf[{at}:{at}+{size}] = fromhex('%0{w}dc' % _x if _x >= 0 else '%0{w}dd' % -_x)")
            else:
                lines.append(f"    buf[{at}:{at}+{size}] = fromhex('%0{w}df' % _x)")
        elif ft.kind == "binary":
            order = "'little'" if self.opts.little_endian(ft.native) else "'big'"
            lines.append(f"    buf[{at}:{at}+{size}] = _x.to_bytes({size}, {order}, signed={ft.signed})")
        else:
            a2e = self.const("T", self.a2e)
            digits = ft.digits
            if not ft.signed:
                lines.append(f"    buf[{at}:{at}+{size}] = ('%0{digits}d' % _x).encode().translate({a2e})")
            else:
                pos, neg = self.const("T", self.over_pos), self.const("T", self.over_neg)
                lines.append(f"    _b = ('%0{digits}d' % abs(_x)).encode().translate({a2e})")
                lines.append(f"    buf[{at}:{at}+{size - 1}] = _b[:-1]")
                lines.append(f"    buf[{at}+{size - 1}] = ({neg} if _x < 0 else {pos})[_b[-1]]")
        lines.append("else:")
        lines.append(f"    {slow}")
        return lines

    def emit_field(self, n: Node, getter: str, at: str, pre: str, suffix: str, lines: list[str], ind: str,
                   value: str | None = None, values: str = "") -> str:
        """Write elementary ``n``; returns the variable holding its value."""
        ft = n.ftype
        assert ft is not None
        v = value or self.var("v")
        if value is None:
            lines.append(f"{ind}{v} = {getter}({self.const('K', n.key)})")
        if n.conditions and value is None:
            fill = self.const("C", _condition_fill(n, self.opts))
            lines.append(f"{ind}if {v} is None:")
            lines.append(f"{ind}    {v} = {fill}({values})")
        if not at.isdigit():
            a = self.var("a")
            lines.append(f"{ind}{a} = {at}")
            at = a
        none = self.const("N", self.none_bytes(n))
        enc = self.const("E", self.ref.enc[id(n)])
        path = self.const("S", suffix)
        lines.append(f"{ind}if {v} is None:")
        lines.append(f"{ind}    buf[{at}:{at}+{ft.size}] = {none}")
        slow = f"_slow({enc}, {v}, buf, {at}, {pre} + {path})"
        fast = self.fast(n, v, at, slow)
        lines.append(f"{ind}else:")
        lines.extend(f"{ind}    {x}" for x in (fast or [slow]))
        slot = self.slot.get(id(n))
        if slot is not None:
            lines.append(f"{ind}cnt[{2 * slot}] = {v}")
            lines.append(f"{ind}cnt[{2 * slot + 1}] = ({at}, {pre} + {path})")
        return v

    # ------------------------------------------------------------ structure
    def emit_children(self, g: Node, values: str, base: str, off0: int, pre: str, suffix: str,
                      lines: list[str], ind: str) -> None:
        getter = self.var("get")
        lines.append(f"{ind}{getter} = {values}.get")
        skip: set[int] = set()
        for c in g.children:
            if id(c) in skip:
                continue
            if c.redefined_by:
                members = [c] + c.redefined_by
                skip.update(id(m) for m in c.redefined_by)
                for i, m in enumerate(members):
                    word = "if" if i == 0 else "elif"
                    lines.append(f"{ind}{word} _chosen({getter}({self.const('K', m.key)})):")
                    self.emit_node(m, values, getter, base, off0, pre, suffix, lines, ind + "    ")
                if len({m.total_size for m in members}) > 1:     # a longer member owns the tail bytes
                    ms = self.const("M", tuple(members))
                    at = self.at(base, off0 + c.offset)
                    lines.append(f"{ind}_tail({ms}, {values}, buf, {at}, {pre} + {self.const('S', suffix)})")
                continue
            self.emit_node(c, values, getter, base, off0, pre, suffix, lines, ind)

    def at(self, base: str, off: int) -> str:
        if base == "0":
            return str(off)
        return f"{base}+{off}" if off else base

    def emit_node(self, n: Node, values: str, getter: str, base: str, off0: int, pre: str, suffix: str,
                  lines: list[str], ind: str) -> None:
        off = off0 + n.offset
        at = self.at(base, off)
        sub = f"{suffix}.{n.key}" if suffix else n.key
        if n.occurs_max is not None:
            self.emit_table(n, getter, at, pre, sub, lines, ind)
        elif n.is_group:
            g = self.var("g")
            lines.append(f"{ind}{g} = {getter}({self.const('K', n.key)})")
            lines.append(f"{ind}if {g} is None:")
            lines.append(f"{ind}    {g} = _EMPTY")
            lines.append(f"{ind}elif not isinstance({g}, dict):")
            lines.append(f"{ind}    raise _not_dict({g}, {pre} + {self.const('S', sub)}, {at})")
            self.emit_children(n, g, base, off, pre, sub, lines, ind)
        else:
            self.emit_field(n, getter, at, pre, sub, lines, ind, values=values)

    def emit_table(self, n: Node, getter: str, at: str, pre: str, sub: str, lines: list[str], ind: str) -> None:
        mx = n.occurs_max
        assert mx is not None
        items, count = self.var("it"), self.var("n")
        path = self.const("S", sub)
        lines.append(f"{ind}{items} = {getter}({self.const('K', n.key)})")
        lines.append(f"{ind}if {items} is None:")
        lines.append(f"{ind}    {items} = []")
        lines.append(f"{ind}elif not isinstance({items}, list):")
        lines.append(f"{ind}    raise _not_list({items}, {pre} + {path}, {at})")
        lines.append(f"{ind}{count} = len({items})")
        lines.append(f"{ind}if {count} > {mx}:")
        lines.append(f"{ind}    raise _too_many({count}, {mx}, {pre} + {path}, {at})")
        if n.counter is not None:
            mapped = _mapped(n, self.opts)
            s = self.slot[id(n.counter)]
            if not mapped:
                enc = self.const("E", self.ref.enc[id(n.counter)])
                ckey = self.const("K", n.counter.key)
                lines.append(f"{ind}if cnt[{2 * s}] is None and cnt[{2 * s + 1}] is not None:")
                lines.append(f"{ind}    _slow({enc}, {count}, buf, cnt[{2 * s + 1}][0], cnt[{2 * s + 1}][1])")
                lines.append(f"{ind}    cnt[{2 * s}] = {count}")
                lines.append(f"{ind}elif cnt[{2 * s}] is not None and cnt[{2 * s}] != {count}:")
                lines.append(f"{ind}    raise _mismatch({ckey}, cnt[{2 * s}], {count}, {pre} + {path}, {at})")
            total = count
        else:
            lo = n.occurs_min if n.occurs_min is not None else mx
            total = f"max({count}, {lo})" if lo else count
        i = self.var("i")
        ep = f"'%s%s[%d]' % ({pre}, {path}, {i})"
        lines.append(f"{ind}for {i} in range({total}):")
        item = f"({items}[{i}] if {i} < {count} else None)" if total != count else f"{items}[{i}]"
        q = f"{at}+{n.size}*{i}" if at != "0" else f"{n.size}*{i}"
        if n.is_group:
            fn = self.frame(n)
            lines.append(f"{ind}    {fn}({item}, buf, {q}, cnt, {ep} + '.', {ep})")
        else:
            x = self.var("x")
            lines.append(f"{ind}    {x} = {item}")
            body: list[str] = []
            self.emit_field(n, "", q, ep, "", body, ind + "    ", value=x)
            lines.extend(body)

    def frame(self, g: Node) -> str:
        """A function writing one element of table ``g``: ``fr(values, buf, o, cnt, pre, path)``."""
        name = f"fr{len(self.funcs)}"
        self.funcs.append("")
        idx = len(self.funcs) - 1
        lines = ["    if values is None:", "        values = _EMPTY",
                 "    elif not isinstance(values, dict):", "        raise _not_dict(values, path, o)"]
        self.emit_children(g, "values", "o", 0, "pre", "", lines, "    ")
        self.funcs[idx] = f"def {name}(values, buf, o, cnt, pre, path):\n" + "\n".join(lines) + "\n"
        return name


def _condition_fill(n: Node, opts: CopybookOptions) -> Callable[[dict], Any]:
    """A missing field takes the first literal of the last level-88 name set to true."""
    conds = [(condition_key(name, opts), vals) for name, vals in n.conditions]

    def fill(values: dict) -> Any:
        v = None
        for key, vals in conds:
            if values.get(key) is True and vals and not isinstance(vals[0], tuple):
                v = vals[0]
        return v
    return fill


def build_encoder(layout: Layout, opts: CopybookOptions, ref: Encoder, size: int
                  ) -> tuple[Callable[[dict], bytes], str]:
    """Returns ``encode(values_dict) -> bytes`` for a layout without variable-size tables, and its source."""
    gen = _Gen(layout, opts, ref)
    lines: list[str] = []
    roots = layout.roots
    if len(roots) == 1 and opts.collapse_root:
        gen.emit_children(roots[0], "values", "0", 0, "''", "", lines, "    ")
    else:
        for r in roots:
            sub = gen.var("r")
            lines.append(f"    {sub} = values.get({gen.const('K', r.key)})")
            lines.append(f"    if {sub} is not None:")
            lines.append(f"        if not isinstance({sub}, dict):")
            lines.append(f"            raise _not_dict({sub}, {gen.const('S', r.key)}, 0)")
            gen.emit_children(r, sub, "0", 0, f"{gen.const('S', r.key + '.')}", "", lines, "        ")
    blank = bytes([ref.space]) * size
    nslots = len(gen.slot)
    head = ["def record(values):", f"    buf = bytearray({gen.const('T', blank)})"]
    # table frames take cnt even when the layout has no counters (an OCCURS n group table)
    head.append(f"    cnt = [None] * {2 * nslots}" if nslots else "    cnt = None")
    source = "\n".join(gen.funcs) + "\n" + "\n".join(head + lines + ["    return bytes(buf)"]) + "\n"
    def _tail(members: tuple[Node, ...], values: dict, buf: bytearray, at: int, path: str) -> None:
        chosen = next((m for m in members if _chosen(values.get(m.key))), None)
        if chosen is not None and max(m.total_size for m in members) > chosen.total_size:
            ref.counters, ref.counter_at = {}, {}
            ref.tail(list(members), chosen, values, buf, at, path)

    ns: dict[str, Any] = {"FormatError": FormatError, "D": Decimal, "_EMPTY": _EMPTY, "_slow": _slow, "_tail": _tail,
                          "_not_dict": _not_dict, "_not_list": _not_list, "_chosen": _chosen,
                          "_too_many": _too_many, "_mismatch": _mismatch,
                          "fromhex": bytes.fromhex, "charmap_encode": codecs.charmap_encode}
    for kind, values in gen.consts.items():
        for i, value in enumerate(values):
            ns[f"{kind}_{i}"] = value
    exec(compile(source, f"<copybook encoder {layout.path or 'layout'}>", "exec"), ns)  # our generated code
    return ns["record"], source
