"""docs/services/*.md name each route with the line it starts on in routes/<service>/: the lines are right."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted((REPO / "docs" / "services").glob("*.md"))
ROUTE_LINE = re.compile(r"^- `([a-z0-9_]+)` \(line (\d+)\)", re.M)


def _starts(service: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in sorted((REPO / "routes" / service).glob("*.route")):
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            m = re.match(r"route\s+([A-Za-z0-9_]+)\b", line)
            if m:
                out.setdefault(m.group(1), n)
    return out


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_route_lines_named_by_a_service_page_are_where_the_routes_start(page: Path) -> None:
    named = ROUTE_LINE.findall(page.read_text(encoding="utf-8"))
    if not (REPO / "routes" / page.stem).is_dir():
        assert not named, f"{page.name} names routes but routes/{page.stem}/ does not exist"
        return
    starts = _starts(page.stem)
    wrong = [(route, int(line), starts.get(route)) for route, line in named if starts.get(route) != int(line)]
    assert not wrong, f"{page.name}: (route, line on the page, line in routes/{page.stem}/): {wrong}"
