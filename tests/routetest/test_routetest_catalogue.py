"""The route-test diagnostics (E088-E098, W005): each catalogue example yields its code at its place,
and docs/testing.md shows the current table."""
from __future__ import annotations

from pathlib import Path

from dsl.diagnostics import render
from dsl.errors_catalogue import CATALOGUE, TEST_CATALOGUE, markdown
from dsl.load import compile_paths
from engine.registry import default_registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_every_route_test_catalogue_example_yields_its_code_at_its_place(tmp_path):
    registry = default_registry()
    failures = []
    for i, entry in enumerate(TEST_CATALOGUE):
        d = tmp_path / f"{i:02d}_{entry.code}"
        d.mkdir()
        (d / "main.route").write_text(entry.example)
        result = compile_paths([d / "main.route"], registry)
        at = [x for x in result.diagnostics if x.code == entry.code and x.pos is not None
              and (x.pos.line, x.pos.col) == (entry.line, entry.col)]
        if not at:
            shown = "\n".join(render(x, result.sources) for x in result.diagnostics) or "(no diagnostics)"
            failures.append(f"{entry.code} expected at {entry.line}:{entry.col}, got:\n{shown}")
        assert (result.program is None) == (entry.severity == "error"), entry.code
    assert not failures, "\n\n".join(failures)


def test_codes_do_not_clash_with_the_language_catalogue():
    codes = [e.code for e in CATALOGUE + TEST_CATALOGUE]
    assert len(codes) == len(set(codes))


def test_docs_testing_md_has_the_current_table():
    assert markdown(TEST_CATALOGUE) in DOC.read_text(encoding="utf-8")
