"""The error catalogue is a table; this one test walks all of it (lark's GRAMMAR_ERRORS idea)."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsl.diagnostics import render
from dsl.errors_catalogue import CATALOGUE, by_code
from dsl.load import compile_paths


def test_every_catalogue_example_yields_its_code_at_its_place(tmp_path, registry):
    failures = []
    for i, entry in enumerate(CATALOGUE):
        d = tmp_path / f"{i:02d}_{entry.code}"
        d.mkdir()
        for name, text in entry.files.items():
            (d / name).write_text(text)
        (d / "main.route").write_text(entry.example)
        result = compile_paths([d / "main.route"], registry)
        hits = [x for x in result.diagnostics if x.code == entry.code]
        at = [x for x in hits if x.pos is not None and Path(x.pos.file).name == entry.file
              and (x.pos.line, x.pos.col) == (entry.line, entry.col)]
        if not at or at[0].severity != entry.severity:
            shown = "\n".join(render(x, result.sources) for x in result.diagnostics) or "(no diagnostics)"
            failures.append(f"{entry.code} expected at {entry.file}:{entry.line}:{entry.col}, got:\n{shown}")
        if entry.severity == "error":
            assert result.program is None, entry.code
    assert not failures, "\n\n".join(failures)


def test_every_code_the_compiler_gives_is_in_a_catalogue():
    """A code an analyst meets in `bsp check` or `bsp test` can be looked up (docs/language.md, docs/testing.md)."""
    import re
    dsl = Path(__file__).resolve().parents[2] / "dsl"
    given = {code: src.name for src in dsl.glob("*.py") if src.name != "errors_catalogue.py"
             for code in re.findall(r'"([EW]\d{3})"', src.read_text(encoding="utf-8"))}
    assert len(given) > 60
    missing = sorted(f"{code} ({where})" for code, where in given.items() if code not in by_code())
    assert not missing, f"codes without a catalogue entry: {missing}"


def test_catalogue_is_big_and_codes_are_unique():
    codes = [e.code for e in CATALOGUE]
    assert len(codes) == len(set(codes))
    assert len(codes) >= 25


@pytest.mark.parametrize("entry", [e for e in CATALOGUE if e.code == "E020"], ids=lambda e: e.code)
def test_rendered_catalogue_example_has_caret_and_help(tmp_path, registry, entry):
    (tmp_path / "main.route").write_text(entry.example)
    result = compile_paths([tmp_path / "main.route"], registry)
    text = render(next(d for d in result.diagnostics if d.code == "E020"), result.sources)
    lines = text.splitlines()
    assert lines[0].endswith("main.route:6:18: error[E020]: unknown channel `mff`")
    assert lines[1] == " 6 |     receive from mff as Req"
    assert lines[2] == "   |                  ^^^"
    assert lines[3] == "help: did you mean `mf`?"
