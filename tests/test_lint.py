"""The shipped code passes pyflakes: no unused import or variable, no undefined name, no redefinition.

Only `engine/`, `dsl/`, `formats/` and `bench/`: the tests import pytest fixtures by name (pki,
ledger_path), which pyflakes reads as unused imports."""
from __future__ import annotations

import io
from pathlib import Path

from pyflakes.api import checkRecursive
from pyflakes.reporter import Reporter

REPO = Path(__file__).resolve().parents[1]


def test_the_packages_pass_pyflakes() -> None:
    out, err = io.StringIO(), io.StringIO()
    found = checkRecursive([str(REPO / d) for d in ("engine", "dsl", "formats", "bench")], Reporter(out, err))
    assert (found, out.getvalue() + err.getvalue()) == (0, "")
