"""The checker: all problems at once, each with its place, a hint and the right code."""
from __future__ import annotations

from pathlib import Path

from dsl.diagnostics import render
from dsl.load import compile_paths, compile_source

from dslkit import BILL_PAYMENT

HEAD = '''channel mf = memory
format Req = fixed {
    code   string(4)
    amount decimal(12, 2)
}
'''


def codes(result):
    return [(d.code, d.pos.line, d.pos.col) for d in result.diagnostics]


def test_bill_payment_compiles_clean(registry):
    r = compile_paths([BILL_PAYMENT], registry)
    assert [render(d, r.sources) for d in r.diagnostics] == []
    assert r.program is not None


def test_every_problem_is_reported_not_just_the_first(tmp_path, registry):
    src = HEAD + '''channel mf2 = tcp lisen { address = "x" }
route r {
    receive from mff as Req
    let fee = round(msg.amont, "2")
    reply Req { code = upper(fe)  amont = 1 }
}
'''
    r = compile_source(src, registry, tmp_path / "main.route")
    assert r.program is None
    got = {c for c, *_ in codes(r)}
    assert {"E041", "E020", "E060", "E072", "E024", "E061"} <= got, codes(r)
    helps = {d.code: d.help for d in r.diagnostics}
    assert helps["E020"] == "did you mean `mf` or `mf2`?"
    assert helps["E060"] == "did you mean `amount`?"
    assert helps["E024"] == "did you mean `fee`?"
    assert helps["E041"] == "did you mean `tcp listen`?"


def test_duplicate_names_point_at_the_first_declaration(tmp_path, registry):
    src = HEAD + 'table Req = csv "t.csv" key k\n'
    (tmp_path / "t.csv").write_text("k,v\n1,2\n")
    r = compile_source(src, registry, tmp_path / "main.route")
    d = next(d for d in r.diagnostics if d.code == "E022")
    assert (d.pos.line, d.pos.col) == (6, 7)
    assert d.help.startswith("first declared as a format at ") and d.help.split(" at ")[1].endswith(":2:8; formats, channels and tables share one set of names")


def test_call_result_used_before_its_step_and_msg_before_decode(tmp_path, registry):
    src = HEAD + '''route r {
    receive from mf
    let a = msg.code
    decode as Req
    let b = post.code
    call post = mf as Req { code = msg.code }
    reply Req { code = b }
}
'''
    r = compile_source(src, registry, tmp_path / "main.route")
    assert ("E026", 8, 13) in codes(r)
    assert ("E025", 10, 13) in codes(r)
    assert next(d for d in r.diagnostics if d.code == "E025").help.endswith(":11:10; move this use after it")


def test_format_options_grouped_with_spec_and_paths_resolved(tmp_path, registry):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "post.json").write_text("{}")
    src = HEAD + '''format P = json schema "schemas/post.json"
format Q = json "schemas/post.json"
format E = fixed encoding cp037 {
    a string(2)
}
route r {
    receive from mf as Req
    call p = mf as P reply Q { x = 1 }
    reply E { a = "1" }
}
'''
    r = compile_source(src, registry, tmp_path / "main.route")
    assert r.diagnostics == [], [render(d, r.sources) for d in r.diagnostics]
    fm = r.program.formats
    want = str((tmp_path / "schemas" / "post.json").resolve())
    assert fm["P"].options == {"schema": want}
    assert fm["Q"].options == {"schema": want}          # positional fills spec.positional
    assert fm["E"].options == {"encoding": "cp037"}


def test_bad_format_options(tmp_path, registry):
    src = '''format A = json schema "nope.json"
format B = fixed encoding ebcdic {
    a string(1)
}
format C = fixed encodng ascii {
    a string(1)
}
'''
    r = compile_source(src, registry, tmp_path / "main.route")
    assert ("E047", 1, 24) in codes(r)
    assert ("E046", 2, 27) in codes(r)
    assert ("E043", 5, 18) in codes(r)
    e43 = next(d for d in r.diagnostics if d.code == "E043")
    assert e43.help == "did you mean `encoding`?"


def test_format_check_hook_errors_point_into_the_definition(tmp_path, registry):
    # the test registry's fixed kind rejects fields without a width via SpecError
    src = 'format F = fixed {\n    a string(2)\n    b integer\n}\n'
    r = compile_source(src, registry, tmp_path / "main.route")
    d = next(d for d in r.diagnostics if d.code == "E050")
    assert (d.pos.line, d.pos.col) == (3, 5)
    assert "needs a width" in d.message and d.help == "write the width in parentheses"


def test_channel_options_checked_and_lowered(tmp_path, registry):
    src = '''channel a = tcp listen {
    address = "127.0.0.1:1"
    framing = length4
    max_frame = 10
    timeout = 250ms
}
channel b = tcp connect {
    timeout = 3
    max_frame = 1.5
    framing = "length2"
}
'''
    r = compile_source(src, registry, tmp_path / "main.route")
    got = codes(r)
    assert ("E044", 7, 9) in got            # address missing
    assert ("E045", 8, 15) in got           # 3 without unit
    assert ("E045", 9, 17) in got           # not an int
    assert ("W003", 1, 9) in got
    assert next(d for d in r.diagnostics if d.pos.line == 8).message.endswith("(write a unit: ms, s, m, h or d)")


def test_includes_keep_declaration_order_and_report_cycles(tmp_path, registry):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "mf.route").write_text(HEAD + '''route first {
    receive from mf as Req when msg.code == "A"
    reply Req { code = "1" }
}
''')
    (tmp_path / "main.route").write_text('''use "common/mf.route"
route second {
    receive from mf as Req
    reply Req { code = "2" }
}
''')
    r = compile_paths([tmp_path / "main.route"], registry)
    assert r.diagnostics == []
    assert [x.name for x in r.program.routes] == ["first", "second"]
    assert set(r.program.sources) == {str((tmp_path / "main.route").resolve()),
                                      str((tmp_path / "common" / "mf.route").resolve())}
    # a cycle a -> b -> a names the chain
    (tmp_path / "a.route").write_text('use "b.route"\n')
    (tmp_path / "b.route").write_text('\n\nuse "a.route"\n')
    r = compile_paths([tmp_path / "a.route"], registry)
    d = next(d for d in r.diagnostics if d.code == "E011")
    assert d.message == "include cycle: a.route -> b.route -> a.route"
    assert Path(d.pos.file).name == "b.route" and d.pos.line == 3


def test_unused_declarations_are_warnings_only(tmp_path, registry):
    src = HEAD + 'format Spare = json\nroute r {\n    receive from mf as Req\n    reply Req { code = "1" }\n}\n'
    r = compile_source(src, registry, tmp_path / "main.route")
    assert [(d.code, d.severity) for d in r.diagnostics] == [("W001", "warning")]
    assert r.program is not None


def test_a_file_of_formats_only_is_a_layout_library_not_warned_unused(tmp_path, registry):
    """A file declaring formats and nothing else is read by `bsp decode/encode --route`, `bsp reconcile --type
    totals --route`: checked with the routes (`bsp check routes/`), its formats are not W001; a format no route
    uses in a file that has routes still is."""
    (tmp_path / "main.route").write_text(
        HEAD + 'format Spare = json\nroute r {\n    receive from mf as Req\n    reply Req { code = "1" }\n}\n')
    (tmp_path / "layouts.route").write_text('# for bsp decode --route\nformat Eod = json\nformat Eod2 = json\n')
    r = compile_paths([tmp_path / "main.route", tmp_path / "layouts.route"], registry)
    assert [(d.code, Path(d.pos.file).name, d.message) for d in r.diagnostics] == [
        ("W001", "main.route", "format `Spare` is never used")]
    # a formats-only file that a route file includes (`use`) holds formats for routes: unused ones are warned
    (tmp_path / "main.route").write_text('use "layouts.route"\n' + (tmp_path / "main.route").read_text())
    r = compile_paths([tmp_path / "main.route"], registry)
    assert sorted((d.code, Path(d.pos.file).name, d.message) for d in r.diagnostics) == [
        ("W001", "layouts.route", "format `Eod2` is never used"), ("W001", "layouts.route", "format `Eod` is never used"),
        ("W001", "main.route", "format `Spare` is never used")]


def test_plugin_steps_come_from_the_registry(tmp_path, registry):
    src = HEAD + '''route r {
    receive from mf as Req
    audit note { text = "got " + msg.code  levl = "info" }
    audit { level = "x" }
    reply Req { code = "1" }
}
'''
    r = compile_source(src, registry, tmp_path / "main.route")
    got = codes(r)
    assert ("E043", 8, 44) in got            # levl: did you mean level
    assert ("E044", 9, 5) in got             # text is required
    assert r.program is None
    ok = compile_source(src.replace("  levl = \"info\"", "").replace('audit { level = "x" }', ""),
                        registry, tmp_path / "main.route")
    assert ok.diagnostics == []
    step = ok.program.routes[0].steps[0]
    assert (step.kind, step.name, [a.path for a in step.options["fields"]]) == ("audit", "note", ["text"])
    # the same source without the audit kind registered
    bare = compile_source(src, registry.without("step", "audit"), tmp_path / "main.route")
    assert ("E042", 8, 5) in codes(bare)


def test_against_the_default_registry():
    from engine.registry import default_registry
    r = compile_paths([BILL_PAYMENT], default_registry())
    assert [render(d, r.sources) for d in r.errors] == []
    assert r.program.channels["biller"].options["timeout"] == 3


def test_list_options_of_a_format_are_written_as_lists():
    """classify, lists, segment_map take lists: `format P = json classify ["account:personal"]`."""
    from engine.registry import default_registry
    registry = default_registry()
    src = '''channel mf = memory
format P = json classify ["account:personal", "card.number:pan"]
format X = xml lists [Item, Entry] classify ["Order.Name:personal"]
route r {
    receive from mf as P
    reply X { Order.Name = msg.name }
}
'''
    r = compile_source(src, registry)
    assert r.errors == [], [d.message for d in r.errors]
    assert r.program.formats["P"].options["classify"] == ("account:personal", "card.number:pan")
    assert r.program.formats["X"].options["lists"] == ("Item", "Entry")
    bad = compile_source(src.replace('"card.number:pan"', '"card.number:card"'), registry)
    assert [(d.code, d.pos.line) for d in bad.errors] == [("E050", 2)]
    assert "unknown tag 'card'" in bad.errors[0].message
    wrong = compile_source(src.replace('classify ["account:personal", "card.number:pan"]', 'classify "x"'), registry)
    assert [d.code for d in wrong.errors] == ["E045"] and "expects a list" in wrong.errors[0].message


def test_a_misspelt_required_option_is_reported_once_as_unknown(tmp_path, registry):
    """`adress = ...` is E043 with did you mean `address`; E044 (address missing) would only repeat it."""
    from formats.component import ComponentSpec, OptionSpec
    reg = registry.clone()
    reg.register(ComponentSpec("format", "needy", "a kind with a required option", (
        OptionSpec("layout", "string", "the layout", required=True),)))
    src = HEAD + '''channel c = tcp listen {
    adress = "127.0.0.1:7001"
}
format N = needy layot "x"
route r {
    receive from c as N
    audit { txt = "x" }
    reply Req { code = "1" }
}
'''
    r = compile_source(src, reg, tmp_path / "main.route")
    got = codes(r)
    assert ("E043", 7, 5) in got and ("E043", 9, 18) in got and ("E043", 12, 13) in got, got
    assert not [c for c in got if c[0] == "E044"], got
    assert {d.help for d in r.diagnostics if d.code == "E043"} == {
        "did you mean `address`?", "did you mean `layout`?", "did you mean `text`?"}
    # an unknown option that names another option leaves the missing one reported
    other = compile_source(src.replace("adress", "framng"), reg, tmp_path / "main.route")
    assert ("E044", 6, 9) in codes(other)
