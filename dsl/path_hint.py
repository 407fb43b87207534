"""E047's help for a file that is there under another path: ``copybook/REQ.cpy`` written for
``copybooks/REQ.cpy``, ``CD_REQ.cpy`` for ``CD-REQ.cpy``.  Looks in the declaring file's folder, its
subfolders two deep and its parent's subfolders (``../common/``) for the same name, then in the folder the
path names (or the declaring file's) for a close one; the path is given as the route file writes it."""
from __future__ import annotations

import difflib
import os
from itertools import islice
from pathlib import Path

MAX_ENTRIES = 2000       # never walk a large tree for a help text

PLAIN = "paths are relative to the file that declares them"


def _files(base: Path) -> list[Path]:
    out: list[Path] = []
    for root, pattern in ((base, "*"), (base, "*/*"), (base, "*/*/*"), (base.parent, "*/*")):
        out += [p for p in islice(root.glob(pattern), MAX_ENTRIES) if p.is_file()]
        if len(out) > MAX_ENTRIES:
            break
    return out


def path_help(base_dir: Path, written: str) -> str:
    """``did you mean "REL"? (paths are ...)`` when a file like ``written`` exists near ``base_dir``."""
    try:
        name = Path(written).name
        found = [p for p in _files(base_dir) if p.name == name]
        if not found:
            folder = (base_dir / written).parent
            folder = folder if folder.is_dir() else base_dir
            names = [p.name for p in islice(folder.iterdir(), MAX_ENTRIES) if p.is_file()]
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
            found = [folder / close[0]] if close else []
    except OSError:
        return PLAIN
    if not found:
        return PLAIN
    rel = os.path.relpath(found[0], base_dir).replace(os.sep, "/")
    return f'did you mean "{rel}"? ({PLAIN})'
