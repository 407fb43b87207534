"""E020 for a name a file of the route library declares but the route file does not `use` (a new service
that forgot `use "../common/mainframe.route"`): the help names the file and the `use` line to add, not
"declare it", which would declare the shared name a second time (E022 when the services compile together)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry

SHARED = """# the shared answer record
format MfRsp = fixed {
    resp_code string(2)
}
"""

SERVICE = """format Req = fixed {
    code string(2)
}
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel host = tcp connect { address = "127.0.0.1:1" framing = length2 }
route r {
    receive from front as Req
    call h = host as Req reply MfRsp { code = "01" }
    reply Req { code = h.resp_code }
}
"""


def _errors(path: Path):
    return [d for d in compile_paths([path], default_registry()).diagnostics if d.severity == "error"]


def _library(tmp_path: Path) -> Path:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "mainframe.route").write_text(SHARED)
    (tmp_path / "svc").mkdir()
    src = tmp_path / "svc" / "svc.route"
    src.write_text(SERVICE)
    return src


def test_an_unknown_format_another_library_file_declares_says_which_file_to_use(tmp_path: Path) -> None:
    errors = _errors(_library(tmp_path))
    assert [(d.code, d.pos.line) for d in errors] == [("E020", 8)], [str(d) for d in errors]
    assert errors[0].help == ('`MfRsp` is declared in ../common/mainframe.route:2: add '
                              '`use "../common/mainframe.route"` at the top of this file'), errors[0].help


def test_with_the_use_line_it_compiles(tmp_path: Path) -> None:
    src = _library(tmp_path)
    src.write_text('use "../common/mainframe.route"\n' + SERVICE)
    assert not _errors(src)


def test_a_name_no_file_declares_is_still_told_to_declare_it(tmp_path: Path) -> None:
    src = _library(tmp_path)
    src.write_text(SERVICE.replace("MfRsp", "HostAnswer"))
    errors = _errors(src)
    assert [d.help for d in errors if d.code == "E020"] == ["declare it: `format HostAnswer = ...`"]


def test_a_test_file_or_another_kind_is_not_offered(tmp_path: Path) -> None:
    src = _library(tmp_path)
    (tmp_path / "common" / "mainframe.route").write_text("channel MfRsp = memory\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "other_test.route").write_text(SHARED)
    errors = _errors(src)
    assert [d.help for d in errors if d.code == "E020"] == ["declare it: `format MfRsp = ...`"]
