"""What a diagnostic tells the analyst who made the mistake: the message and the help must be right
(found by following docs/language.md literally and writing a route with the usual slips)."""
from __future__ import annotations

from dsl.load import compile_source

HEAD = '''channel mf = memory
format Req = fixed {
    code string(4)
}
'''


def _diag(src, registry, tmp_path, code):
    r = compile_source(src, registry, tmp_path / "main.route")
    found = [d for d in r.diagnostics if d.code == code]
    assert found, [(d.code, d.message) for d in r.diagnostics]
    return found[0]


def test_an_unknown_deal_field_lists_key_among_the_deal_fields(tmp_path, registry):
    src = HEAD + 'route r {\n    receive from mf as Req\n    deal PAY { ref = msg.code  amount = 1  idempotency = msg.code }\n}\n'
    d = _diag(src, registry, tmp_path, "E035")
    assert d.help == "a deal has ref, amount, currency, party, key and match"


def test_an_unexpected_format_value_is_told_in_plain_words(tmp_path, registry):
    d = _diag('format F = fixed "x" {\n    a string(1)\n}\n', registry, tmp_path, "E048")
    assert d.message == "unexpected value `x` (a quoted string) in format `F` (fixed): it follows no option name"
    assert (d.pos.line, d.pos.col) == (1, 18)


def test_a_use_of_a_misspelt_file_suggests_the_route_files_beside_it(tmp_path, registry):
    from dsl.load import compile_paths
    (tmp_path / "standing_order.route").write_text(HEAD)
    (tmp_path / "standing_order_test.route").write_text('use "standing_ordr.route"\n')
    r = compile_paths([tmp_path / "standing_order_test.route"], registry)
    d = next(x for x in r.diagnostics if x.code == "E010")
    assert (d.pos.line, d.pos.col) == (1, 1)
    assert d.help == ("did you mean `standing_order.route`? "
                      "(`use` paths are relative to the file that has the `use` line)")
    (tmp_path / "t.route").write_text('use "common/mainframe.route"\n')
    d = next(x for x in compile_paths([tmp_path / "t.route"], registry).diagnostics if x.code == "E010")
    assert d.help.endswith(f"; there is no folder {tmp_path / 'common'}")


def test_an_unknown_body_or_deal_field_underlines_the_name_not_the_whole_line(tmp_path, registry):
    from dsl.diagnostics import render
    src = HEAD + 'route r {\n    receive from mf as Req\n    reply Req { cde = "00" }\n}\n'
    r = compile_source(src, registry, tmp_path / "main.route")
    d = next(x for x in r.diagnostics if x.code == "E061")
    assert render(d, r.sources).splitlines()[1:3] == [' 7 |     reply Req { cde = "00" }',
                                                      "   |                 ^^^"]
    d = _diag(HEAD + 'route r {\n    receive from mf as Req\n    deal PAY { ref = msg.code  amount = 1  curency = "CNY" }\n}\n',
              registry, tmp_path, "E035")
    assert (d.pos.line, d.pos.col, d.pos.end_col) == (7, 44, 51)
    d = _diag(HEAD + 'route r {\n    receive from mf as Req\n    reply Req { "x-y" = "00" }\n}\n',
              registry, tmp_path, "E061")
    assert (d.pos.col, d.pos.end_col) == (17, 29)      # a quoted name: the line, as before


def test_a_step_kind_that_declares_no_options_refuses_every_option(tmp_path, fresh_registry):
    """docs/language.md: a plugin step's options are checked against the kind's description; one that
    declares none takes none.  Until 2026-11-27 a kind with ``options=()`` took any option unchecked (a
    misspelt one, or one its author forgot to declare, reached ``build`` silently)."""
    from formats.component import ComponentSpec

    reg = fresh_registry
    reg.register(ComponentSpec("step", "tick", "counts the request", ()))
    src = HEAD + 'route r {\n    receive from mf as Req\n    tick t { txt = msg.code }\n}\n'
    d = _diag(src, reg, tmp_path, "E043")
    assert d.message == "unknown option `txt` for step `tick`"
    assert (d.pos.line, d.pos.col) == (7, 14)
    assert d.help == "step `tick` takes no options"


def test_a_misspelt_format_option_is_one_error_not_two(tmp_path, registry):
    """`sepparator ";"`: the unknown option is told once (E043, did you mean); its value is not told again
    as a value that follows no option name (E048), as it was until 2026-11-27."""
    src = 'format F = csv delimter ";" header false {\n    a string(1)\n}\n'
    r = compile_source(src, registry, tmp_path / "main.route")
    assert [(d.code, d.pos.col, d.help) for d in r.errors] == [("E043", 16, "did you mean `delimiter`?")], r.errors


def test_a_level_88_name_is_a_field_of_a_copybook_reply(tmp_path, registry):
    """docs/formats-copybook.md: on encode a condition set to true fills its field; level-88 names are
    known keys.  Until 2026-11-27 `bsp check` refused them (E061 "has no field `SUBSCRIPTION`").
    The test registry has the real copybook kind: its fields come from the copybook."""
    from pathlib import Path
    cpy = Path(__file__).resolve().parents[2] / "routes/fund_management/copybooks/FUNDTXN-REQ.cpy"
    src = (f'channel mf = memory\nformat Req = copybook "{cpy}" encoding cp037\n'
           'route r {\n    receive from mf as Req\n    reply Req { SUBSCRIPTION = true  TRACE_NO = msg.TRACE_NO }\n}\n')
    r = compile_source(src, registry, tmp_path / "main.route")
    assert not [(d.code, d.message) for d in r.diagnostics if d.severity == "error"]
    d = _diag(src.replace("SUBSCRIPTION =", "SUBSCRIPTON ="), registry, tmp_path, "E061")
    assert "SUBSCRIPTION" in d.help
