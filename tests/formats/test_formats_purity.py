"""formats/ is pure: importing every module in it pulls in no trio, duckdb, engine or dsl."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_formats_import_no_trio_duckdb_engine_or_dsl() -> None:
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts)
        for p in (REPO / "formats").rglob("*.py")
        if p.name != "__init__.py" or p.parent != REPO / "formats"
    )
    modules = [m.removesuffix(".__init__") for m in modules]
    assert len(modules) > 20, modules          # the walk found the package
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'duckdb', 'engine', 'dsl'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"formats/ imported: {out.stdout.strip()}"
