"""An expected text never equals a number (nor a number a text).  Where the format fixes a field's type
(a copybook's PIC, a csv/fixed field block, a deal's fields) `bsp check` says so (E103) with the value to
write; `number(text)` reads a computed text as a number; for a format that does not fix types (JSON) the
failing test says why it can never hold."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

CPY = Path(__file__).resolve().parents[2] / "routes" / "standing_orders" / "copybooks" / "SO-COLL-REQ.cpy"

ROUTE = f'''format Req = json
format Coll = copybook "{CPY}" encoding cp037 names lower
format Rsp = json
format Line = csv header false {{
    code    string
    amount  decimal(2)
}}
channel front = memory
channel host = tcp connect {{ address = "127.0.0.1:1" }}
channel out = tcp connect {{ address = "127.0.0.1:1" }}
route r {{
    receive from front as Req
    deal PAY {{ ref = msg.ref  amount = 1.00 }}
    call h = host as Coll reply Rsp {{
        txn_code = "SO01"  due_date = format_date(add_days(today(), 30), "%Y%m%d")  amount = 1.00
    }}
    call o = out as Line reply Rsp {{ code = "00"  amount = 1.00 }}
    reply Rsp {{ code = 12  text = "12" }}
}}
'''

HEAD = 'use "r.route"\n'
GIVEN = ('    given front sends { ref = "A" }\n    given host answers { ok = true }\n'
         '    given out answers { ok = true }\n')


def _write(tmp_path: Path, tests: str) -> None:
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text(HEAD + tests)


def test_text_against_a_number_and_a_number_against_text_are_told_at_check_time(tmp_path: Path) -> None:
    _write(tmp_path, 'test "t" {\n' + GIVEN + '''    expect call host { due_date = format_date(add_days(today(), 30), "%Y%m%d") }
    expect call host { due_date = "20261226"  amount ~ "1" }
    expect call out { code = 0  amount = "1.00" }
    expect deal PAY { response_code = 14  amount = "1.00" }
}
''')
    res = compile_paths(sorted(tmp_path.glob("*.route")), default_registry())
    # the route's call leaves fields of the collection copybook out (W015): not this test's point
    diags = [d for d in res.diagnostics if d.code != "W015"]
    got = {(d.pos.line, d.pos.col): d for d in diags}
    assert all(d.code == "E103" for d in diags), [(d.code, d.message) for d in diags]
    assert sorted(got) == [(6, 35), (7, 35), (8, 30), (8, 42), (9, 39), (9, 52)], \
        [(d.pos.line, d.pos.col, d.message) for d in diags]
    computed = got[(6, 35)]
    assert computed.message == ("field `due_date` of format `Coll` is a number (integer): the text format_date(...) "
                                "is never equal to it")
    assert computed.help == "read the text as a number: `due_date = number(format_date(...))`"
    assert got[(7, 35)].help == "write the number without quotes: `due_date = 20261226`"
    assert got[(8, 30)].message == "field `code` of format `Line` is text: the number 0 is never equal to it"
    assert got[(8, 30)].help == 'write it as text: `code = "0"`'
    assert got[(8, 42)].message.startswith("field `amount` of format `Line` is a number (decimal)")
    assert got[(9, 39)].message == "a deal's field `response_code` is text: the number 14 is never equal to it"
    assert got[(9, 52)].help == "write the number without quotes: `amount = 1.00`"


def test_number_reads_a_computed_text_as_the_number_the_field_holds(tmp_path: Path) -> None:
    _write(tmp_path, 'test "t" {\n' + GIVEN + '''    expect call host { due_date = number(format_date(add_days(today(), 30), "%Y%m%d"))  amount = 1 }
    expect call out { code = "00"  amount = 1.00 }
    expect deal PAY { status = "committed"  amount = 1 }
}
''')
    res = run_paths([tmp_path], default_registry())
    assert not res.broken, [d.message for b in res.broken for d in b.diagnostics]
    [out] = res.outcomes
    assert out.passed, out.failures


def test_a_format_without_types_fails_the_test_saying_why(tmp_path: Path) -> None:
    _write(tmp_path, 'test "t" {\n' + GIVEN + '''    expect reply { code = "12"  text = 12 }
}
''')
    res = run_paths([tmp_path], default_registry())
    [out] = res.outcomes
    text = "\n".join(out.failures)
    assert not out.passed
    assert ('field `code`: expected "12", got 12 (a text is never equal to a number: write the number, '
            '`code = 12`, or read a computed text as one, `code = number(...)`)') in text, text
    assert 'field `text`: expected 12, got "12" (a number is never equal to a text: write the text, `text = "12"`)' \
        in text, text
