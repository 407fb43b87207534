"""A `dir` option naming a folder that is not there: E047 says folder, and that bsp does not make it."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry

ROUTE = """format J = json
channel front = memory
channel out = file write {
    dir  = "results"
    name = "claim-{claim}.json"
}
route r {
    receive from front as J
    call w = out as J { a = 1 } name { claim = msg.id }
}
"""


def test_a_missing_file_write_folder_says_folder_and_how_to_make_it(tmp_path: Path) -> None:
    src = tmp_path / "r.route"
    src.write_text(ROUTE)
    errors = [d for d in compile_paths([src], default_registry()).diagnostics if d.severity == "error"]
    assert [(d.code, d.pos.line, d.pos.col) for d in errors] == [("E047", 4, 12)], [d.message for d in errors]
    assert errors[0].message.startswith('folder not found: "results"'), errors[0].message
    assert f"mkdir -p {tmp_path.resolve() / 'results'}" in errors[0].help
    (tmp_path / "results").mkdir()
    assert not [d for d in compile_paths([src], default_registry()).diagnostics if d.severity == "error"]


def test_a_missing_schema_file_still_says_file(tmp_path: Path) -> None:
    src = tmp_path / "r.route"
    src.write_text('format F = json schema "missing.schema.json"\n')
    errors = [d for d in compile_paths([src], default_registry()).diagnostics if d.severity == "error"]
    assert errors[0].code == "E047" and errors[0].message.startswith("file not found"), errors[0].message
