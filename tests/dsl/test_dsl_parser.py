"""Grammar and AST: the sample route parses exactly, literals and precedence are right."""
from __future__ import annotations

from decimal import Decimal

import pytest

from dsl import ast as A
from dsl.parser import ParseFailure, get_parser, parse

from dslkit import BILL_PAYMENT


def _expr(text: str) -> A.Expr:
    m = parse(f"route r {{ let x = {text} }}", "t.route")
    return m.decls[0].body[0].value


def test_bill_payment_parses_with_positions():
    m = parse(BILL_PAYMENT.read_text(), "bp.route")
    kinds = [type(d).__name__ for d in m.decls]
    assert kinds == ["FormatAst", "FormatAst", "FormatAst", "FormatAst", "TableAst",
                     "ChannelAst", "ChannelAst", "RouteAst", "RouteAst"]
    req = m.decls[0]
    assert req.name.name == "BillPayReq" and req.kind.name == "fixed"
    assert [f.name.name for f in req.fields] == ["txn_code", "trace_no", "biller_id", "account", "amount",
                                                 "currency", "value_date"]
    account = req.fields[3]
    assert account.classification.name == "personal"
    assert (account.pos.line, account.pos.col) == (12, 5)
    mainframe = m.decls[5]
    assert mainframe.kind_name == "tcp.listen"
    assert [o.key.name for o in mainframe.options] == ["address", "framing", "max_frame"]
    assert mainframe.error_reply.format.name == "BillPayRsp"
    biller = m.decls[6]
    # `timeout` is a keyword of `call`, yet a plain option name here
    assert [o.key.name for o in biller.options] == ["address", "framing", "timeout"]
    assert biller.options[2].value == A.Lit(Decimal(3), "duration")
    route = m.decls[7]
    stmts = [type(s).__name__ for s in route.body]
    assert stmts == ["Receive", "Validate", "Deal", "CallStep", "Reply", "OnErrorReply"]
    call = route.body[3]
    assert (call.name.name, call.channel.name, call.format.name, call.reply_format.name) == \
        ("post", "biller", "BillerPost", "BillerAck")
    assert isinstance(call.expect, A.Binary) and call.expect.op == "=="
    assert (call.pos.line, call.pos.col) == (75, 5)      # after the deal and its key's comment


@pytest.mark.parametrize("text, value, typ", [
    ("120.50", Decimal("120.50"), "decimal"),
    ("42", 42, "int"),
    ('"a\\"b"', 'a"b', "string"),
    ("true", True, "bool"),
    ("null", None, "null"),
    ("200ms", Decimal("0.200"), "duration"),
    ("2m", Decimal(120), "duration"),
    ("1h", Decimal(3600), "duration"),
    ("-3", -3, "int"),
])
def test_literals(text, value, typ):
    lit = _expr(text)
    assert isinstance(lit, A.Lit) and lit.type == typ and lit.value == value
    assert not isinstance(lit.value, float)


def test_precedence_and_postfix():
    e = _expr("1 + 2 * 3 == 7 and not a or b")
    assert e.op == "or"
    assert e.left.op == "and"
    assert e.left.left.op == "==" and e.left.left.left.op == "+" and e.left.left.left.right.op == "*"
    assert isinstance(e.left.right, A.Unary) and e.left.right.op == "not"
    p = _expr("billers[msg.items[0].id].api_code")
    assert isinstance(p, A.Attr) and p.name == "api_code"
    assert isinstance(p.base, A.Index) and p.base.base == A.Name("billers")
    assert _expr("a not in [1, 2]").op == "not_in"
    c = _expr("if a then 1 else if b then 2 else 3")
    assert isinstance(c, A.Cond) and isinstance(c.otherwise, A.Cond)
    call = _expr('pad_left(x, 10, "0")')
    assert isinstance(call, A.Call) and call.func == "pad_left" and len(call.args) == 3


def test_statements_and_targets():
    m = parse('''route r {
        receive from c
        decode msg.body as F
        decode as G
        validate { a > 0 else reject "13" "bad" }
        audit note { text = "x" }
        reply { lines[0].amount = 1  party.name = "n" }
        on error { reply F { code = error.code } }
    }''', "t.route")
    body = m.decls[0].body
    assert isinstance(body[1], A.Decode) and isinstance(body[1].source, A.Attr)
    assert body[2].source is None
    assert body[3].rules[0].code == "13" and body[3].rules[0].text == "bad"
    assert isinstance(body[4], A.PluginStep) and body[4].kind.name == "audit" and body[4].name.name == "note"
    assert [a.path for a in body[5].assigns] == ["lines[0].amount", "party.name"]
    assert body[5].format is None
    assert isinstance(body[6], A.OnErrorBlock) and isinstance(body[6].body[0], A.Reply)


def test_format_atoms_and_field_shapes():
    m = parse('''format P = iso20022 pacs.008 xsd "pacs.008.001.08.xsd"
format R = copybook "REQ.cpy" encoding cp037 record fixed
format C = csv {
    name     string
    amount   decimal(2)
    pan      string(19) pan
    when_    date("%Y-%m-%d")
}''', "t.route")
    p, r, c = m.decls
    assert [(a.value, a.type) for a in p.atoms] == [("pacs.008", "word"), ("xsd", "word"),
                                                    ("pacs.008.001.08.xsd", "string")]
    assert [a.value for a in r.atoms] == ["REQ.cpy", "encoding", "cp037", "record", "fixed"]
    # a field may be called `pan` and also be classified `pan`: one field per line
    assert [(f.name.name, f.classification.name if f.classification else None) for f in c.fields] == \
        [("name", None), ("amount", None), ("pan", "pan"), ("when_", None)]
    assert c.fields[0].args is None and [a.value for a in c.fields[1].args] == [2]


def test_parse_error_is_a_diagnostic_with_place():
    with pytest.raises(ParseFailure) as info:
        parse('route r {\n    reply X { a = }\n}\n', "t.route")
    d = info.value.diagnostic
    assert d.code == "E014" and (d.pos.line, d.pos.col) == (2, 19)
    assert "found `}`" in d.message


def test_parser_is_built_once():
    assert get_parser() is get_parser()
