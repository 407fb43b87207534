"""Load YAML keeping line/column marks, so spec errors can point at the text.

``load_with_marks(text, path)`` returns ``(data, marks)`` where ``marks`` maps a
path tuple (``("fields", 35, "type")``) to a 1-based ``(line, col)``.  Duplicate
mapping keys (which PyYAML silently overwrites) are reported as SpecError.
"""
from __future__ import annotations

from typing import Any

import yaml

from formats.errors import SpecError


def load_with_marks(text: str, path: str | None = None) -> tuple[Any, dict[tuple, tuple[int, int]]]:
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise SpecError(f"not valid YAML: {exc.problem or exc}", path=path,
                            line=mark.line + 1 if mark else None,
                            col=mark.column + 1 if mark else None) from None
        except yaml.YAMLError as exc:
            raise SpecError(f"not valid YAML: {exc}", path=path) from None
        marks: dict[tuple, tuple[int, int]] = {}
        if node is None:
            return None, marks
        data = _walk(loader, node, (), marks, path)
        return data, marks
    finally:
        loader.dispose()


def _walk(loader: yaml.SafeLoader, node: yaml.Node, where: tuple, marks: dict, path: str | None) -> Any:
    marks[where] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            key = _walk(loader, knode, where + ("<key>",), {}, path)
            if isinstance(key, (dict, list)):
                raise SpecError("a mapping key must be a plain value", path=path,
                                line=knode.start_mark.line + 1, col=knode.start_mark.column + 1)
            if key in out:
                raise SpecError(f"duplicate key {key!r}", path=path,
                                line=knode.start_mark.line + 1, col=knode.start_mark.column + 1,
                                hint="each key may appear once in a mapping; remove or merge the repeated one")
            marks[where + (key, "<key>")] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            out[key] = _walk(loader, vnode, where + (key,), marks, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, where + (i,), marks, path) for i, item in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise SpecError(f"bad value: {exc}", path=path, line=node.start_mark.line + 1,
                        col=node.start_mark.column + 1) from None
