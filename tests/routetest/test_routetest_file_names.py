"""`expect call CHANNEL [{ fields }] name { word = value }`: a route test checks the file name values a call
gave a `file write` channel (`name = "pacs008-{ref}-{who}.xml"` on the channel, `name { ... }` on the call).
Misuse is told at check time as a call's `name { }` is (E104, E105; E103 for a number)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Remit = json classify ["payee:personal"]
format Ack = json
format Written = json
channel front = tcp listen { address = "127.0.0.1:0" }
channel remit_out = file write {
    dir   = "out"
    name  = "pacs008-{ref}-{who}.xml"
    fsync = false
}
channel back = tcp connect { address = "127.0.0.1:1" }
route remit {
    receive from front as Remit
    deal REMIT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call w = remit_out as Remit reply Written {
        ref    = msg.ref
        amount = msg.amount
    } name { ref = msg.ref  who = upper(msg.payee) }
    call b = back as Ack { ref = msg.ref }
    reply Ack { ref = msg.ref }
}
'''

SEND = '''    given front sends { ref = "R1"  amount = 1.50  payee = "ann" }
    given remit_out answers { file = "pacs008-R1-ANN.xml"  bytes = 10 }
    given back answers { ok = true }
'''


def _write(tmp_path: Path, test: str) -> None:
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text('use "r.route"\n' + test)


def _run(tmp_path: Path, test: str):
    _write(tmp_path, test)
    res = run_paths([tmp_path], default_registry())
    assert not res.broken, [d.message for b in res.broken for d in b.diagnostics]
    return res.outcomes


def test_the_name_values_the_call_gave_are_expected(tmp_path: Path) -> None:
    outs = _run(tmp_path, f'''test "named" {{
{SEND}    expect call remit_out {{ ref = "R1" }} name {{ ref = "R1"  who = "ANN" }} once
    expect call remit_out name {{ who ~ "AN" }}
}}
test "wrong name" {{
{SEND}    expect call remit_out name {{ ref = "R1"  who = "ann" }}
}}
test "fields hold, the name does not" {{
{SEND}    expect call remit_out {{ ref = "R1" }} name {{ who = "BOB" }} once
}}
''')
    assert [o.passed for o in outs] == [True, False, False], [o.failures for o in outs]
    assert outs[1].failures == [f"{tmp_path / 'r_test.route'}:13:46: expect call remit_out name: field `who`: "
                                'expected "ann", got "ANN"'], outs[1].failures
    assert "expect call remit_out name: field `who`: expected \"BOB\", got \"ANN\"" in outs[2].failures[0]


def _errors(tmp_path: Path, test: str) -> list[tuple]:
    _write(tmp_path, test)
    res = compile_paths([tmp_path / "r_test.route"], default_registry())
    return [(d.code, d.pos.line, d.pos.col, d.message, d.help) for d in res.diagnostics if d.is_error]


def test_an_unknown_word_a_channel_without_names_and_a_number_are_told_at_check_time(tmp_path: Path) -> None:
    got = _errors(tmp_path, f'''test "misuse" {{
{SEND}    expect call remit_out name {{ reff = "R1"  who = 7  ref.x = "R1" }}
    expect call back {{ ref = "R1" }} name {{ ref = "R1" }}
}}
''')
    assert [g[:3] for g in got] == [("E104", 6, 34), ("E103", 6, 53), ("E104", 6, 56), ("E105", 7, 37)], got
    assert got[0][3] == ("unknown file name value `reff`: the name of channel `remit_out` ('pacs008-{ref}-{who}.xml') "
                         "has no {reff}")
    assert got[0][4] == "write `ref` instead, or add {reff} to the channel's name if the file is named by it"
    assert got[1][3] == "a file name's field `who` is text: the number 7 is never equal to it", got[1]
    assert got[1][4] == 'write it as text: `who = "7"`'
    assert got[2][3].startswith("`ref.x` is not a file name field")
    assert got[3][3].startswith("channel `back` (tcp connect) takes no file name values"), got[3]
    assert got[3][4] == "remove `name { ... }`: only file write channels name their files from the call"
