"""E066: a call to a `match`ed tcp connect channel must set the key fields in its request body
(checked where the format shows its fields; the MUX's run-time error covers the rest)."""
from __future__ import annotations

import pytest

from dsl.diagnostics import render
from dsl.load import compile_paths
from engine.registry import default_registry

HEAD = '''format Iso = iso8583 iso8583_1987_ascii
format Doc = json
format Rec = fixed {
    code string(4)
    hdr  string(6)
    term string(8)
}
channel front = tcp listen { address = "127.0.0.1:7300" }
channel issuer = tcp connect {
    address = "127.0.0.1:7301"
    match   = MATCH
}
route r {
    receive from front as RECV
'''


def compile_body(body: str, match: str = "iso8583", recv: str = "Iso"):
    return HEAD.replace("MATCH", match).replace("RECV", recv) + body + "}\n"


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def diags(tmp_path, registry, text: str):
    p = tmp_path / "main.route"
    p.write_text(text)
    result = compile_paths([p], registry)
    return result, [d for d in result.diagnostics if d.severity == "error"]


def test_iso8583_request_without_de41_is_an_error_at_the_call(tmp_path, registry):
    text = compile_body('    call auth = issuer as Iso {\n        t = "0200"\n        "11" = msg["11"]\n    }\n'
                        '    reply Iso { t = "0210" "11" = msg["11"] "39" = auth["39"] }\n')
    result, errors = diags(tmp_path, registry, text)
    assert [d.code for d in errors] == ["E066"]
    d = errors[0]
    assert (d.pos.line, d.pos.col) == (15, 5)
    assert '"41" (terminal id)' in d.message and "issuer" in d.message
    assert 'e.g. `"41" = msg["41"]`' in d.help and "MTI class + DE 11 + DE 41" in d.help
    assert "error[E066]" in render(d, result.sources)
    assert result.program is None


def test_iso8583_request_with_the_key_fields_compiles(tmp_path, registry):
    text = compile_body('    call auth = issuer as Iso {\n        t = "0200"\n        "11" = msg["11"]\n'
                        '        "41" = msg["41"]\n    }\n    reply Iso { t = "0210" "39" = auth["39"] }\n')
    result, errors = diags(tmp_path, registry, text)
    assert errors == [] and result.program is not None


def test_network_management_needs_only_the_stan_and_null_is_not_a_value(tmp_path, registry):
    ok = compile_body('    call echo = issuer as Iso { t = "0800"  "11" = msg["11"]  "70" = "301" }\n'
                      '    reply Iso { t = "0210" }\n')
    assert diags(tmp_path, registry, ok)[1] == []
    null = compile_body('    call auth = issuer as Iso { t = "0200"  "11" = msg["11"]  "41" = null }\n'
                        '    reply Iso { t = "0210" }\n')
    assert [d.code for d in diags(tmp_path, registry, null)[1]] == ["E066"]
    no_mti = compile_body('    call auth = issuer as Iso { "11" = msg["11"]  "41" = msg["41"] }\n'
                          '    reply Iso { t = "0210" }\n')
    (d,) = diags(tmp_path, registry, no_mti)[1]
    assert d.code == "E066" and "t (the MTI)" in d.message


def test_listed_key_fields_and_dotted_paths(tmp_path, registry):
    body = '    call post = issuer as Rec { code = msg.code }\n    reply Rec { code = "00" }\n'
    (d,) = diags(tmp_path, registry, compile_body(body, '["hdr", "term"]', "Rec"))[1]
    assert d.code == "E066" and "`hdr`, `term`" in d.message and "by fields hdr, term" in d.help
    good = '    call post = issuer as Rec { hdr = msg.hdr  term = msg.term }\n    reply Rec { code = "00" }\n'
    assert diags(tmp_path, registry, compile_body(good, '["hdr", "term"]', "Rec"))[1] == []


def test_a_format_without_a_field_list_is_left_to_the_run_time_check(tmp_path, registry):
    body = '    call post = issuer as Doc { a = 1 }\n    reply Doc { code = "00" }\n'
    assert diags(tmp_path, registry, compile_body(body, '["reference"]', "Doc"))[1] == []
