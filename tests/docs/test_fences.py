"""Every code block in README.md and docs/ closes where its writer meant it to.

A closing fence may hold nothing but the backticks (CommonMark): "``` While draining, ..." does not close
the block, so the text after it, and everything down to the next bare fence, renders as code.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").rglob("*.md"))
_FENCE = re.compile(r"^( {0,3}|\s*)(`{3,}|~{3,})(.*)$")


def fence_problems(text: str) -> list[str]:
    out = []
    open_at: tuple[int, str] | None = None          # (line, fence) of the block we are in
    for n, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if not m:
            continue
        fence, rest = m.group(2), m.group(3)
        if open_at is None:
            open_at = (n, fence)
            continue
        if fence[0] != open_at[1][0] or len(fence) < len(open_at[1]):
            continue
        if rest.strip():
            out.append(f"line {n}: {line.strip()[:50]!r} does not close the block opened on line {open_at[0]} "
                       f"(a closing fence holds nothing after its {fence[0]}s)")
            continue
        open_at = None
    if open_at is not None:
        out.append(f"line {open_at[0]}: this code block is never closed")
    return out


def test_the_check_finds_a_closing_fence_with_text_and_an_unclosed_block() -> None:
    assert fence_problems("```\ncode\n```\ntext\n```sh\nmore\n```\n") == []
    found = fence_problems("```\ncode\n``` While draining\ntext\n```\n")
    assert len(found) == 1 and found[0].startswith("line 3:")
    assert fence_problems("text\n```\nnever closed\n") == ["line 2: this code block is never closed"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_code_blocks_close_cleanly(page: Path) -> None:
    found = fence_problems(page.read_text(encoding="utf-8"))
    assert not found, "\n".join(f"{page.relative_to(REPO)}:{p}" for p in found)
