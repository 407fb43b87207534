"""E020's help for a name the route library declares in a file this one does not ``use``.

A new service copied next to the others that forgot ``use "../common/mainframe.route"`` meets
"unknown format `MfRsp`"; "declare it" would make it declare the shared record a second time (E022 once
every service compiles together).  The route files beside the file's folder and one level below its
parent (``routes/*/*.route``, test files left out) are searched for a declaration of that name and kind;
the help names the first found, ``common/`` first, and the ``use`` line to add.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

MAX_FILES = 400          # a library is a few dozen files; never read a whole disk for a help text


def _candidates(here: Path) -> list[Path]:
    parent = here.parent.parent
    files = sorted(set(here.parent.glob("*.route")) | set(parent.glob("*.route")) | set(parent.glob("*/*.route")))
    files = [f for f in files if not f.name.endswith("_test.route") and f.resolve() != here.resolve()]
    return sorted(files, key=lambda f: (f.parent.name != "common", str(f)))[:MAX_FILES]


def use_hint(name: str, category: str, file: str | None) -> str | None:
    """``"`NAME` is declared in REL:LINE: add `use "REL"` ..."`` or None when no library file declares it."""
    if not file or not Path(file).is_file():
        return None
    here = Path(file)
    pattern = re.compile(rf"^[ \t]*{re.escape(category)}[ \t]+{re.escape(name)}[ \t]*=", re.M)
    for f in _candidates(here):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        m = pattern.search(text)
        if m:
            rel = os.path.relpath(f, here.parent).replace(os.sep, "/")
            line = text.count("\n", 0, m.start()) + 1
            return f'`{name}` is declared in {rel}:{line}: add `use "{rel}"` at the top of this file'
    return None
