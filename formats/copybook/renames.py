"""Level-66 RENAMES as values: an alias view over the fields of a byte span.

Decode: ``66 R RENAMES A THRU B`` adds the key ``R`` to its record's dict.
When R renames one elementary item (no THRU, or ``A THRU A``) the value is
that item's value; otherwise it is a flat dict ``{field key: value}`` of the
elementary items (and whole tables) that lie inside the span from A's first
byte to B's last byte, in record order.  Items left out of the values
(dropped FILLERs, a REDEFINES member that the segment map did not choose) are
left out here too.

Encode: R is an alias.  A field given only through R is written from R; a
field given both ways must agree (same value, or the same bytes once encoded)
or ``FormatError`` names both.  The caller's dicts are never modified.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from formats.copybook.layout import Layout, Node
from formats.copybook.options import CopybookOptions
from formats.errors import FormatError, SpecError

_MISSING = object()


@dataclass
class _View:
    key: str
    single: bool
    root_key: str | None                       # None: the root's fields are the top-level keys
    fields: list[tuple[str, tuple[str, ...], Node]]   # (key in the view, path from the root dict, node)


def _norm(name: str, opts: CopybookOptions) -> str:
    k = name.replace("-", "_")
    return k.lower() if opts.names == "lower" else k


def _path(n: Node, root: Node) -> tuple[str, ...] | None:
    keys = []
    p: Node | None = n
    while p is not None and p is not root:
        if p.dropped:
            return None
        keys.append(p.key)
        p = p.parent
    return tuple(reversed(keys))


def build_views(layout: Layout, opts: CopybookOptions) -> list[_View]:
    """Resolve keys (after ``assign_keys``); a clash of keys is a ``SpecError`` at the 66 entry."""
    views = []
    collapsed = len(layout.roots) == 1 and opts.collapse_root
    for r in layout.renames:
        r.key = _norm(r.name, opts)
        root = r.root
        assert root is not None
        siblings = {c.key for c in root.children} | {_norm(c, opts) for n in root.walk() for c, _v in n.conditions
                                                      if n.parent is root}
        if r.key in siblings:
            raise SpecError(f"66 {r.name}: the record already has an item named {r.key}", path=layout.path,
                            line=r.line, col=r.col, hint="give the RENAMES entry a name of its own")
        fields: list[tuple[str, tuple[str, ...], Node]] = []
        seen: dict[str, Node] = {}
        for n in r.covered:
            path = _path(n, root)
            if path is None:
                continue
            if n.key in seen:
                raise SpecError(f"66 {r.name}: the renamed span holds two items named {n.key}"
                                f" (lines {seen[n.key].line} and {n.line}), so its group value would be ambiguous",
                                path=layout.path, line=r.line, col=r.col,
                                hint="rename a narrower span, or give the items distinct names")
            seen[n.key] = n
            fields.append((n.key, path, n))
        views.append(_View(r.key, r.single, None if collapsed else root.key, fields))
    return views


def _get(d: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(d, dict):
            return _MISSING
        d = d.get(k, _MISSING)
        if d is _MISSING:
            return d
    return d


def decoder(views: list[_View]) -> Callable[[dict], None]:
    """``add(values)``: put every RENAMES key into the decoded record dict (in place)."""
    def add(values: dict) -> None:
        for v in views:
            target = values if v.root_key is None else values.get(v.root_key)
            if not isinstance(target, dict):
                continue
            if v.single:
                if v.fields:
                    got = _get(target, v.fields[0][1])
                    if got is not _MISSING:
                        target[v.key] = got
                continue
            group = {}
            for key, path, _n in v.fields:
                got = _get(target, path)
                if got is not _MISSING:
                    group[key] = got
            target[v.key] = group
    return add


def _set(root: dict, path: tuple[str, ...], value: Any) -> None:
    d = root
    for k in path[:-1]:
        sub = d.get(k)
        sub = dict(sub) if isinstance(sub, dict) else {}
        d[k] = sub
        d = sub
    d[path[-1]] = value


def encoder(views: list[_View], field_bytes: Callable[[Node, Any], bytes | None]) -> Callable[[Any], Any]:
    """``merge(values) -> values`` with every RENAMES alias folded into the fields it covers."""
    def agree(n: Node, a: Any, b: Any) -> bool:
        if a == b:
            return True
        if n.is_group or n.occurs_max is not None:
            return False
        x, y = field_bytes(n, a), field_bytes(n, b)
        return x is not None and x == y

    def merge(values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        out = values
        for v in views:
            holder = out if v.root_key is None else out.get(v.root_key)
            if not isinstance(holder, dict) or holder.get(v.key) is None:
                continue
            alias = holder[v.key]
            if v.single:
                if not v.fields:
                    continue
                pairs = [(v.fields[0], alias)]
            else:
                if not isinstance(alias, dict):
                    raise FormatError(f"RENAMES {v.key} covers several fields, so its value is a dict,"
                                      f" not {type(alias).__name__}", field=v.key,
                                      hint=f"e.g. {{{', '.join(repr(k) for k, _p, _n in v.fields[:2])}: ...}}")
                by_key = {f[0]: f for f in v.fields}
                pairs = []
                for k, x in alias.items():
                    if k not in by_key:
                        raise FormatError(f"RENAMES {v.key} has no field {k}; it covers"
                                          f" {', '.join(by_key) or 'no fields'}", field=f"{v.key}.{k}")
                    pairs.append((by_key[k], x))
            holder = dict(holder)
            if v.root_key is None:
                out = holder
            else:
                out = dict(out)
                out[v.root_key] = holder
            for (key, path, node), x in pairs:
                if x is None:
                    continue
                cur = _get(holder, path)
                if cur is _MISSING or cur is None:
                    _set(holder, path, x)
                elif not agree(node, x, cur):
                    where = v.key if v.single else f"{v.key}.{key}"
                    raise FormatError(f"RENAMES {where} is {x!r} but {'.'.join(path)} is {cur!r}",
                                      field=where, hint="give the value once (field or RENAMES), or the same"
                                                        " value in both")
        return out
    return merge
