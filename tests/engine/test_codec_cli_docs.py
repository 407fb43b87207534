"""docs/formats.md's conformance table and docs/cli.md's decode/encode section stay true."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from engine.commands.codec import register

REPO = Path(__file__).resolve().parents[2]
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_formats_md_conformance_table_is_fresh() -> None:
    """Re-runs the corpus tests (a few seconds) and compares the table with docs/formats.md."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "corpus_table.py"), "--check"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def _section(text: str, title: str) -> str:
    start = text.index(title)
    nxt = text.find("\n## ", start + len(title))
    return text[start:nxt if nxt >= 0 else len(text)]


def test_cli_md_names_every_decode_and_encode_option() -> None:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    cmd = typer.main.get_command(app)
    doc = _section((REPO / "docs" / "cli.md").read_text(encoding="utf-8"), "## `bsp decode` / `bsp encode`")
    missing = []
    for name in ("decode", "encode"):
        for param in cmd.commands[name].params:
            for flag in list(param.opts) + list(param.secondary_opts):
                if flag.startswith("--") and flag != "--help" and not re.search(re.escape(flag) + r"\b", doc):
                    missing.append(f"{name} {flag}")
    assert not missing, f"docs/cli.md does not describe: {', '.join(sorted(set(missing)))}"
