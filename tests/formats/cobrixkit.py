"""Reading cobrix's record layout dumps (the copybook corpus's ``expected/*_layout.txt``, upstream's output,
never ours), for the tests that compare our layout with them (tests/formats/test_copybook_corpus.py,
tests/engine/test_copybook_layout_cli.py)."""
from __future__ import annotations

import re
from pathlib import Path

# "  5 NAME   [r|R|rR]  FLD START END LENGTH"; test19's dump shows its 01 level without the level number
# and without a field number
_ROW = re.compile(r"^( *)(?:(\d+) )?(\S+) +(r|R|rR)? +(?:(\d+) +)?(\d+) +(\d+) +(\d+)$")


def cobrix_layout(path: Path) -> list[tuple[int, str, int, int, int]]:
    """(level, name, start, end, length) per row of a cobrix layout dump (1-based start and end)."""
    rows = []
    for line in path.read_text().splitlines()[2:]:
        if line.strip():
            m = _ROW.match(line)
            assert m, f"{path.name}: unexpected layout line {line!r}"
            rows.append((int(m[2] or 1), m[3], int(m[6]), int(m[7]), int(m[8])))
    return rows
