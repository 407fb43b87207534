"""`given ... sends ... file { name = "X.csv" line = 3 }`: a route test of a `file watch` route gives the
record's place in its batch file, which the route reads as `file.*` (engine/channels/file_origin.py);
without it `file.*` are null.  Misuse is told at check time (E102)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Line = csv {
    ref     string
    amount  decimal(2)
}
format Out = json
channel batch_in = file watch {
    dir        = "inbox"
    pattern    = "*.csv"
    record     = "csv"
    header_row = true
}
channel audit = tcp connect { address = "127.0.0.1:1" }
channel front = memory
route take_line {
    receive from batch_in as Line
    call logged = audit as Out {
        ref = msg.ref  source_file = file.name  source_line = file.line  record = file.record
        offset = file.offset  records = file.records
    }
}
route echo {
    receive from front as Out
    reply Out { ok = true }
}
'''


def _run(tmp_path: Path, test: str):
    (tmp_path / "inbox").mkdir(exist_ok=True)
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text('use "r.route"\n' + test)
    res = run_paths([tmp_path], default_registry())
    assert not res.broken, [d.message for b in res.broken for d in b.diagnostics]
    return res.outcomes


def test_the_route_reads_the_place_the_test_gives(tmp_path: Path) -> None:
    [out] = _run(tmp_path, '''test "placed" {
    given batch_in sends Line { ref = "R1"  amount = 1.00 } file { name = "UT-20261126.csv"  line = 3
                                                                  record = 3  offset = 42  records = 5 }
    given audit answers { ok = true }
    expect call audit { ref = "R1"  source_file = "UT-20261126.csv"  source_line = 3  record = 3  offset = 42
                        records = 5 }
}
''')
    assert out.passed, out.failures


def test_what_the_test_does_not_give_is_null_and_a_wrong_place_fails(tmp_path: Path) -> None:
    outs = _run(tmp_path, '''test "only the name" {
    given batch_in sends Line { ref = "R2"  amount = 1.00 } file { name = "B.csv" } twice
    given audit answers { ok = true }
    given audit answers { ok = true }
    expect call audit { source_file = "B.csv"  source_line = null  records = null } twice
}
test "no file" {
    given batch_in sends Line { ref = "R3"  amount = 1.00 }
    given audit answers { ok = true }
    expect call audit { source_file = null  source_line = null }
}
test "wrong line" {
    given batch_in sends Line { ref = "R4"  amount = 1.00 } file { name = "B.csv"  line = 7 }
    given audit answers { ok = true }
    expect call audit { source_line = 8 }
}
''')
    assert [o.passed for o in outs] == [True, True, False], [o.failures for o in outs]
    assert "field `source_line`: expected 8, got 7" in "\n".join(outs[2].failures)


def test_misuse_is_told_at_check_time(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text('''use "r.route"
test "memory" {
    given front sends Out { a = 1 } file { name = "x.csv" }
}
test "unknown field" {
    given batch_in sends Line { ref = "R"  amount = 1.00 } file { lines = 3 }
}
test "wrong types" {
    given batch_in sends Line { ref = "R"  amount = 1.00 } file { name = 3  line = "3" }
}
''')
    res = compile_paths(sorted(tmp_path.glob("*.route")), default_registry())
    got = {(d.code, d.pos.line, d.pos.col): d for d in res.diagnostics if d.code != "W012"}  # its route: no key
    assert set(got) == {("E102", 3, 44), ("E102", 6, 67), ("E102", 9, 74), ("E102", 9, 84)}, \
        [(d.code, d.pos.line, d.pos.col, d.message) for d in res.diagnostics]
    memory = got[("E102", 3, 44)]
    assert memory.message == "channel `front` (memory) does not take files: its routes see no `file`"
    assert "only the routes of a file watch channel" in memory.help
    unknown = got[("E102", 6, 67)]
    assert unknown.message == "a file record has no `lines` to set" and "`line`" in unknown.help
    assert got[("E102", 9, 74)].message == "`file.name` is a string: it cannot take an integer (3)"
    assert got[("E102", 9, 84)].message == '`file.line` is an integer: it cannot take a string ("3")'
    assert got[("E102", 9, 84)].help == "write `line = 3`"
