"""A path option may also name a built-in resource (e.g. an ISO 8583 spec shipped with bsp)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry

ROUTE = """
format Auth = iso8583 iso8583_1987_ascii
format Missing = iso8583 "no-such-spec.yaml"
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route auth {
    receive from front as Auth
    reply Missing { t = "0110" }
}
"""


def test_builtin_spec_name_is_accepted_and_a_missing_file_is_not(tmp_path: Path) -> None:
    src = tmp_path / "auth.route"
    src.write_text(ROUTE)
    result = compile_paths([src], default_registry())
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert [(d.code, d.pos.line) for d in errors] == [("E047", 3)], [str(d.message) for d in errors]
    assert "no-such-spec.yaml" in errors[0].message
