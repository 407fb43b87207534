"""Assignments ``path = expr`` -> one function building the nested message values."""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> tuple[str | int, ...]:
    """``"a.b[2].c"`` -> ("a", "b", 2, "c")."""
    parts: list[str | int] = []
    for name, index in _PART.findall(path):
        parts.append(int(index) if index else name)
    if not parts:
        raise ValueError(f"empty assignment path {path!r}")
    return tuple(parts)


def set_path(target: dict[str, Any], parts: tuple[str | int, ...], value: Any) -> None:
    cur: Any = target
    for here, nxt in zip(parts, parts[1:]):
        if isinstance(here, int):
            while len(cur) <= here:
                cur.append(None)
            if cur[here] is None:
                cur[here] = [] if isinstance(nxt, int) else {}
            cur = cur[here]
        else:
            child = cur.get(here)
            if child is None:
                child = cur[here] = [] if isinstance(nxt, int) else {}
            cur = child
    last = parts[-1]
    if isinstance(last, int):
        while len(cur) <= last:
            cur.append(None)
    cur[last] = value


def compile_assigns(
    assigns: Iterable[Any], compile_expr: Callable[[Any], Callable[[Mapping[str, Any]], Any]],
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """``assigns``: ``dsl.ir.Assign`` objects.  Flat names take a fast path."""
    flat: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = []
    nested: list[tuple[tuple[str | int, ...], Callable[[Mapping[str, Any]], Any]]] = []
    for a in assigns:
        parts = parse_path(a.path)
        fn = compile_expr(a.value)
        if len(parts) == 1 and isinstance(parts[0], str):
            flat.append((parts[0], fn))
        else:
            nested.append((parts, fn))
    if not nested:
        def build_flat(scope: Mapping[str, Any]) -> dict[str, Any]:
            return {name: fn(scope) for name, fn in flat}
        return build_flat

    def build(scope: Mapping[str, Any]) -> dict[str, Any]:
        out = {name: fn(scope) for name, fn in flat}
        for parts, fn in nested:
            set_path(out, parts, fn(scope))
        return out
    return build
