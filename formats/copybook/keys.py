"""Output keys for layout nodes: '-' -> '_', FILLER naming, which items are dropped."""
from __future__ import annotations

from formats.copybook.layout import Layout, Node
from formats.copybook.options import CopybookOptions


def _norm(name: str, opts: CopybookOptions) -> str:
    k = name.replace("-", "_")
    return k.lower() if opts.names == "lower" else k


def condition_key(name: str, opts: CopybookOptions) -> str:
    return _norm(name, opts)


def mapped(n: Node, opts: CopybookOptions) -> bool:
    """Does table ``n`` count by ``occurs_mappings`` (named by its output key or its COBOL name)?"""
    return n.key in opts.occurs_mappings or (n.name or "") in opts.occurs_mappings


def assign_keys(layout: Layout, opts: CopybookOptions) -> None:
    """Set ``node.key`` and ``node.dropped`` for every node (depth-first order)."""
    group_seq = 0
    value_seq = 0
    prev = ""
    for root in layout.roots:
        for n in root.walk():
            if n.name is not None:
                n.key = _norm(n.name, opts)
            elif opts.filler_naming == "previous":
                n.key = f"FILLER_AFTER_{prev}" if opts.names == "keep" else f"filler_after_{prev}"
            elif n.is_group:
                group_seq += 1
                n.key = f"FILLER_{group_seq}" if opts.names == "keep" else f"filler_{group_seq}"
            else:
                value_seq += 1
                n.key = f"FILLER_P{value_seq}" if opts.names == "keep" else f"filler_p{value_seq}"
            prev = n.key
        _mark_dropped(root, opts)


def _mark_dropped(n: Node, opts: CopybookOptions) -> bool:
    """Returns True when the node is dropped from values."""
    if n.is_group:
        kids = [_mark_dropped(c, opts) for c in n.children]
        n.dropped = all(kids) or (n.is_filler and opts.drop_group_fillers)
    else:
        n.dropped = n.is_filler and opts.drop_value_fillers
    return n.dropped
