"""An expectation whose value is a list (`tags = ["a", "b"]`) compares with the reply's list element by
element (it used to look for a leaf named `tags`, find none and say "<none>"); one that differs names the
first index that differs.  An object the test takes from its request (`o = msg.o`) compares the same way."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format J = json
channel front = memory
channel back = tcp connect { address = "127.0.0.1:1" }
route r {
    receive from front as J
    call b = back as J reply J { ids = [1, 2]  o = msg.o }
    reply J { tags = ["a", "b"]  o.y = ["p", "q"]  flags = [1, true] }
}
'''


def _run(tmp_path: Path, body: str):
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text('use "r.route"\ntest "t" {\n'
                                          '    given front sends J { o.k = "v"  o.n = [1, 2] }\n'
                                          '    given back answers { ok = true }\n' + body + '}\n')
    res = compile_paths(sorted(tmp_path.glob("*.route")), default_registry())
    assert not res.diagnostics, [(d.code, d.message) for d in res.diagnostics]   # a list literal is no E103
    result = run_paths([tmp_path], default_registry())
    assert not result.broken
    [outcome] = result.outcomes
    return outcome


def test_a_list_expected_whole_holds_when_equal(tmp_path: Path) -> None:
    out = _run(tmp_path, '''    expect reply { tags = ["a", "b"]  o.y = ["p", "q"]  flags = [1, true] }
    expect call back { ids = [1, 2]  o = msg.o  o.n = [1, 2] }
''')
    assert out.passed, out.failures


def test_a_list_that_differs_names_the_first_index(tmp_path: Path) -> None:
    out = _run(tmp_path, '''    expect reply { tags = ["a", "c"] }
    expect reply { o.y = ["p"]  flags = [1, 1] }
    expect call back { ids = [1, 2, 3] }
''')
    assert not out.passed
    text = "\n".join(out.failures)
    assert ('field `tags`: expected ["a", "c"], got ["a", "b"] (first difference at index 1, `tags[1]`: '
            'expected "c", got "b")') in text, text
    assert "(first difference at index 1, `o.y[1]`: expected nothing there, got \"q\")" in text, text
    assert "(first difference at index 1, `flags[1]`: expected 1, got true)" in text, text
    assert "(first difference at index 2, `ids[2]`: expected 3, got nothing there)" in text, text
    assert "<none>" not in text, text


def test_an_object_that_differs_names_the_first_field(tmp_path: Path) -> None:
    out = _run(tmp_path, """    expect reply { o = msg.o }
""")
    assert not out.passed
    text = "\n".join(out.failures)
    assert ('field `o`: expected {"k": "v", "n": [1, 2]}, got {"y": ["p", "q"]} (first difference at `o.k`: '
            'expected "v", got nothing there)') in text, text
