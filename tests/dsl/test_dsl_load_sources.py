"""`dsl.load.compile_paths(..., sources=)`: a generated file compiled with real route files, in place of one
that need not exist (what `bsp replay --answers` does with its answers: engine/replay/script.py), through the
public entry point rather than the private `dsl.load._compile` it used."""
from __future__ import annotations

import ast
from pathlib import Path

from dsl.load import compile_paths

REPO = Path(__file__).resolve().parents[2]

ROUTE = '''
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route echo {
    receive from front as Req
    reply Req { ref = msg.ref }
}
'''


def test_a_generated_source_compiles_with_the_route_files(tmp_path: Path, registry) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ROUTE)
    gen = tmp_path / "answers.txt.route"                   # never written: its text is given
    good = 'test "generated" {\n    given front sends Req { ref = "A1" }\n    expect reply { ref = "A1" }\n}\n'
    res = compile_paths([route, gen], registry, sources={gen: good})
    assert res.ok and not gen.exists(), [str(d) for d in res.diagnostics]
    assert [t.name for t in res.program.tests] == ["generated"]
    bad = good.replace("given front", "given frnt")
    res = compile_paths([route, str(gen)], registry, sources={str(gen): bad})
    assert not res.ok
    [err] = res.errors
    assert err.pos is not None and Path(err.pos.file) == gen.resolve() and err.pos.line == 2, str(err)


def test_replay_uses_no_private_name_of_the_compiler() -> None:
    private = []
    for path in sorted((REPO / "engine" / "replay").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dsl"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []
