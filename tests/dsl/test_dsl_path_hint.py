"""E047 for a file that is there under another path (`copybook/REQ.cpy` for `copybooks/REQ.cpy`, a
misspelt name in the right folder): the help names the path to write, relative to the declaring file."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry

CPY = """       01  REQ.
           05  CODE   PIC X(2).
"""


def _e047(tmp_path: Path, path: str):
    (tmp_path / "svc" / "copybooks").mkdir(parents=True)
    (tmp_path / "svc" / "copybooks" / "CD-REQ.cpy").write_text(CPY)
    (tmp_path / "svc" / "codes.csv").write_text("code,name\nA,X\n")
    src = tmp_path / "svc" / "svc.route"
    src.write_text(f'format Req = copybook "{path}" encoding cp037\ntable codes = csv "codez.csv" key code\n')
    return [d for d in compile_paths([src], default_registry()).diagnostics if d.code == "E047"]


def test_a_file_in_another_folder_of_the_service_is_named(tmp_path: Path) -> None:
    [cpy, table] = _e047(tmp_path, "copybook/CD-REQ.cpy")
    assert cpy.help == 'did you mean "copybooks/CD-REQ.cpy"? (paths are relative to the file that declares them)'
    assert table.help == 'did you mean "codes.csv"? (paths are relative to the file that declares them)'


def test_a_misspelt_name_in_the_right_folder_is_named(tmp_path: Path) -> None:
    [cpy, _] = _e047(tmp_path, "copybooks/CD_REQ.cpy")
    assert cpy.help.startswith('did you mean "copybooks/CD-REQ.cpy"?'), cpy.help


def test_nothing_like_it_keeps_the_plain_help(tmp_path: Path) -> None:
    [cpy, _] = _e047(tmp_path, "copybooks/ZZZZ.cpy")
    assert cpy.help == "paths are relative to the file that declares them"
