"""Static checks of types and of what a message needs (dsl/types.py, dsl/listen.py and the checker):
mistakes that used to pass `bsp check` and fail (or silently misbehave) at run time."""
from __future__ import annotations

import re
import shutil

import pytest

from dsl.load import compile_paths, compile_source
from engine.registry import default_registry

from dslkit import REPO

HEAD = '''channel mainframe = memory
channel biller = tcp connect { address = "127.0.0.1:7002" }
format Req = fixed {
    txn_code    string(4)
    amount      decimal(12, 2)
    currency    string(3)
    value_date  date(8, "%Y%m%d")
    count       integer(3)
}
format Rsp = fixed {
    resp_code string(2)
    fee       decimal(8, 2)
    value     string(40)
    n         integer(3)
}
format Post = json
table billers = csv "billers.csv" key biller_id
'''


def found(result):
    return [d for d in result.diagnostics if d.code not in UNUSED]


def check(tmp_path, body: str, registry, head: str = HEAD, tail: str = ""):
    (tmp_path / "billers.csv").write_text("biller_id,name,fee\nEL0001,Electric,1.50\n")
    src = head + "route r {\n    receive from mainframe as Req\n" + body + "\n    reply Rsp { resp_code = \"00\" }\n}\n" + tail
    return compile_source(src, registry, tmp_path / "main.route")


UNUSED = ("W001", "W002", "W003")      # the examples leave some declarations unused


def diags(result, code=None):
    return [(d.code, d.message) for d in result.diagnostics
            if (code is None and d.code not in UNUSED) or d.code == code]


@pytest.mark.parametrize("expr, message", [
    ('msg.amount in ["CNY", "USD"]',
     'a decimal (msg.amount) is never in a list of strings: values of different types are never equal'),
    ('msg.amount > "0"', 'cannot compare a decimal (msg.amount) > a string ("0")'),
    ('msg.value_date + 1', '`+` beside a date needs a duration of days: 1 is an integer'),
    ('msg.amount * msg.currency', 'cannot apply * to a decimal (msg.amount) and a string (msg.currency)'),
    ('msg.amount + "1.00"', '`+` joins a decimal (msg.amount) and a string ("1.00") as text, it does not add them'),
    ('msg.amount == "0"', 'a decimal (msg.amount) == a string ("0") never holds: values of different types are '
                          'never equal'),
    ('-msg.currency', 'cannot negate a string (msg.currency)'),
    ('msg.value_date < today() and msg.value_date > now()', 'cannot compare a date (msg.value_date) > a timestamp (now(...))'),
    ('msg.amount in 5', '`in` needs a list, a table or a string on its right, got an integer (5)'),
])
def test_incompatible_operands_are_e073(tmp_path, registry, expr, message):
    r = check(tmp_path, f"    let x = {expr}", registry)
    assert diags(r) == [("E073", message)]
    d = found(r)[0]
    assert d.pos.line == 20 and d.pos.col in (13, 42)     # the (sub)expression the evaluator would fail at
    assert r.program is None


def test_a_let_keeps_its_type_and_the_hint_says_what_to_write(tmp_path, registry):
    r = check(tmp_path, '    let fee = round(msg.amount * 0.01, 2)\n    validate { fee > "1" else reject "13" "x" }',
              registry)
    assert diags(r) == [("E073", 'cannot compare a decimal (fee) > a string ("1")')]
    assert found(r)[0].help == "write 1 without quotes: it is compared with a number"


@pytest.mark.parametrize("expr", [
    'msg.amount == 1',                      # a decimal equals an integer (1 == 1.0 holds)
    'msg.amount > 0 and msg.count < 10.5',
    '"fee " + 0.50',                        # + joins text when a side is a string
    '"" + msg.value_date',
    'msg.amount + " CNY"',
    'msg.currency in ["CNY", "USD"]',
    'msg.amount in [1, 2.50, null]',
    'msg.currency in "CNY USD"',
    'msg.currency in billers',
    'msg.value_date < today()',
    'msg.amount > billers["EL0001"].fee',   # a table cell: unknown
    'msg.amount > coalesce(msg.amount, "0")',
    'msg.amount > env("LIMIT", "0")',
    'msg.amount == null',
    'msg.currency + 1',
    'round(msg.count, 2) / 3 % 2 - abs(msg.amount)',
    'if msg.amount > 0 then msg.amount else 0',
    'format_date(msg.value_date, "%Y")',
])
def test_what_runs_is_not_refused(tmp_path, registry, expr):
    r = check(tmp_path, f"    let x = {expr}\n    call post = biller as Post {{ a = x  b = msg.amount + 1 }}",
              registry)
    assert diags(r) == []
    assert r.program is not None


def test_unknown_types_never_error(tmp_path, registry):
    """JSON without a schema and call results in it are unknown: nothing to say."""
    head = HEAD.replace("channel mainframe = memory", "channel mainframe = memory\nchannel api = memory")
    r = check(tmp_path, '    call post = biller as Post { a = 1 }\n    let x = post.amount > "0"\n'
              '    let y = post.a * post.b', registry, head=head.replace("\nchannel api = memory", ""))
    assert diags(r) == []


@pytest.mark.parametrize("cond", ["msg.currency", "msg.amount", "msg.value_date", "not msg.currency"])
def test_a_condition_that_is_not_true_or_false_is_a_warning(tmp_path, registry, cond):
    r = check(tmp_path, f'    let x = if {cond} then 1 else 2\n    validate {{ {cond} else reject "15" "x" }}',
              registry)
    assert {c for c, _ in diags(r)} == {"W004"} and len(found(r)) == 2
    assert r.program is not None                 # the language defines its truth: it still compiles
    assert diags(r)[0][1].endswith("is used as a condition")


def test_values_for_typed_record_fields(tmp_path, registry):
    r = check(tmp_path, '''    reply Rsp {
        resp_code = "00"
        fee = "abc"
        value = "0123456789012345678901234567890123456789012345678901234567890123456789"
        n = 1000
    }''', registry)
    got = diags(r)
    assert ("E074", 'field `fee` of format `Rsp` is a decimal(8, 2): it cannot take a string ("abc")') in got
    assert ("E075", '"012345678901234567890..." is 70 characters, field `value` of format `Rsp` holds 40') in got
    assert ("E075", "1000 needs 4 characters, field `n` of format `Rsp` holds 3") in got
    e074 = next(d for d in found(r) if d.code == "E074")
    assert (e074.pos.line, e074.pos.col) == (22, 15)     # the value


@pytest.mark.parametrize("field, value, code", [
    ("fee", "1.234", "E074"),            # more places than the scale: never rounded silently
    ("fee", "msg.value_date", "E074"),
    ("n", "1.5", "E074"),
    ("n", '"12"', "E074"),               # an integer field does not read text
    ("value", "today()", "E074"),
    ("fee", "123456.78", "E075"),         # 8 digits with the implied point: fits 8
    ("fee", "1234567.00", "E075"),
])
def test_field_value_mismatches(tmp_path, registry, field, value, code):
    r = check(tmp_path, f'    reply Rsp {{ resp_code = "00"  {field} = {value} }}', registry)
    got = [c for c, _ in diags(r)]
    assert got == ([code] if value != "123456.78" else []), diags(r)


@pytest.mark.parametrize("field, value", [
    ("fee", '"12.50"'), ("fee", "12"), ("fee", "-12.5"), ("fee", "msg.amount"), ("n", "msg.count"),
    ("n", "12.0"), ("value", "msg.amount"), ("value", "12.50"), ("value", '"x" + msg.amount'),
    ("value", "null"), ("fee", "coalesce(msg.amount, 0)"),
])
def test_field_values_that_encode(tmp_path, registry, field, value):
    r = check(tmp_path, f'    reply Rsp {{ resp_code = "00"  {field} = {value} }}', registry)
    assert diags(r) == []


def test_deal_amount_must_be_a_number(tmp_path, registry):
    r = check(tmp_path, '    deal PAY { ref = msg.txn_code  amount = msg.currency }', registry)
    assert diags(r) == [("E074", "a deal's amount is a number: it cannot take a string (msg.currency)")]


def test_test_bodies_are_typed_and_expectations_only_for_values_never_equal(tmp_path, registry):
    # a request body is encoded: E074 as for any body; an expectation is compared, not encoded: only a text
    # for a number (or a number for a text), which is never equal, is told (E103, docs/testing.md)
    tail = '''test "t" {
    given mainframe sends Req { txn_code = "BP01"  amount = "lots"  value_date = "20261125" }
    expect reply { fee = "1.00"  resp_code = 0 }
}
'''
    r = check(tmp_path, "", registry, tail=tail)
    assert [c for c, _ in diags(r)] == ["E074", "E074", "E103", "E103"]
    assert [d.pos.line for d in found(r)] == [24, 24, 25, 25]


# ---------------------------------------------------------------- a bad field type: one error


@pytest.mark.parametrize("bad", ['decimal(12, "2")', "strng(3)"])
def test_a_bad_field_type_is_one_error_not_a_cascade(tmp_path, bad):
    src = REPO / "routes" / "bill_payment"
    dst = tmp_path / "bill_payment"
    shutil.copytree(src, dst)
    route = dst / "bill_payment.route"
    text = route.read_text()
    line = "amount      decimal(12, 2)" if "decimal" in bad else "currency    string(3)"
    assert line in text
    route.write_text(text.replace(line, line.split()[0].ljust(12) + bad, 1))
    r = compile_paths(sorted(dst.glob("*.route")), default_registry())
    assert [d.code for d in r.diagnostics] == ["E052"], [(d.code, d.message) for d in r.diagnostics]


# ---------------------------------------------------------------- a schema's required fields


def test_a_body_without_the_schemas_required_fields(tmp_path, registry):
    (tmp_path / "order.schema.json").write_text(
        '{"type": "object", "required": ["ta", "order_id"], "properties": {"ta": {}, "order_id": {}, "x": {}}}')
    head = 'channel mf = memory\nchannel ta = tcp connect { address = "127.0.0.1:7002" }\n' \
           'format Req = json\nformat Order = json schema "order.schema.json"\n'
    src = head + '''route r {
    receive from mf as Req
    call o = ta as Order reply Req { order_id = msg.id  x = 1 }
    call p = ta as Order reply Req { order_id = msg.id  ta = "T1" }
    reply Req { ok = true }
}
'''
    r = compile_source(src, registry, tmp_path / "main.route")
    assert diags(r) == [("E076", "the call body in format `Order` does not set `ta`: its schema requires it")]
    assert (found(r)[0].pos.line, found(r)[0].pos.col) == (7, 20)
    assert found(r)[0].help.startswith("set ta = ...")


def test_the_tour_example_sets_what_the_ta_order_schema_requires(tmp_path):
    """docs/tour-analyst.md section 3, in place of fund_management's fund_subscription route."""
    doc = (REPO / "docs" / "tour-analyst.md").read_text()
    block = re.search(r"```route\n(route fund_subscription \{.*?\n\})\n```", doc, re.S).group(1)
    shutil.copytree(REPO / "routes" / "fund_management", tmp_path / "fund_management")
    shutil.copytree(REPO / "routes" / "common", tmp_path / "common")
    route = tmp_path / "fund_management" / "fund_management.route"
    text = route.read_text()
    start = text.index("route fund_subscription {")
    end = text.index("\n}\n", start) + 3
    route.write_text(text[:start] + block + "\n" + text[end:])
    r = compile_paths([route], default_registry())
    assert [(d.code, d.message) for d in r.diagnostics if d.is_error] == []


# ---------------------------------------------------------------- listening channels


@pytest.mark.parametrize("a, b, clash", [
    ("127.0.0.1:7001", "127.0.0.1:7001", True),
    ("0.0.0.0:7001", "127.0.0.1:7001", True),
    ("localhost:7001", "127.0.0.1:7001", True),
    ("127.0.0.1:7001", "127.0.0.1:7002", False),
    ("127.0.0.1:0", "127.0.0.1:0", False),        # 0: any free port
    ("127.0.0.2:7001", "127.0.0.1:7001", False),
])
def test_two_channels_listening_on_one_address(tmp_path, registry, a, b, clash):
    src = (f'channel one = tcp listen {{ address = "{a}" }}\n'
           f'channel two = tcp listen {{ address = "{b}" }}\n'
           'channel out = tcp connect { address = "' + a + '" }\n')
    r = compile_source(src, registry, tmp_path / "main.route")
    got = diags(r, "E058")
    if clash:
        assert got == [("E058", f"channels `one` and `two` both listen on {b}")]
        assert (found(r)[0].pos.line, found(r)[0].pos.col) == (2, 38)
        assert "`one` listens on " + a in found(r)[0].help
    else:
        assert got == []


def test_http_and_tcp_listeners_clash_too(tmp_path):
    src = ('channel web = http listen { address = "127.0.0.1:8080" }\n'
           'channel mf = tcp listen { address = "127.0.0.1:8080" }\n')
    r = compile_source(src, default_registry(), tmp_path / "main.route")
    assert diags(r, "E058") == [("E058", "channels `web` and `mf` both listen on 127.0.0.1:8080")]


# ---------------------------------------------------------------- route tests


def test_an_answer_in_another_format_than_the_call_reads(tmp_path):
    shutil.copytree(REPO / "routes" / "bill_payment", tmp_path / "bp")
    t = tmp_path / "bp" / "bill_payment_test.route"
    text = t.read_text()
    old = 'given biller answers BillerAck { status = "OK"  confirmation = "C-77" }'
    assert old in text
    t.write_text(text.replace(old, 'given biller answers BillPayRsp { resp_code = "OK" }', 1))
    r = compile_paths(sorted((tmp_path / "bp").glob("*.route")), default_registry())
    got = [(d.code, d.message) for d in r.diagnostics]
    assert got == [("E079", "the calls to `biller` read their answer as `BillerAck`, not `BillPayRsp`")]
    assert "given biller answers BillerAck" in found(r)[0].help


def test_a_misspelt_reply_format_in_the_route_is_told_once_not_blamed_on_the_tests(tmp_path):
    """`reply BillerAK` in the route is E020 there; the tests' right `given biller answers BillerAck` is not
    E079 "read their answer as `BillerAK`, not `BillerAck`" (which would tell the analyst to misspell them)."""
    shutil.copytree(REPO / "routes" / "bill_payment", tmp_path / "bp")
    route = tmp_path / "bp" / "bill_payment.route"
    text = route.read_text()
    assert "reply BillerAck" in text
    route.write_text(text.replace("reply BillerAck", "reply BillerAK", 1))
    r = compile_paths(sorted((tmp_path / "bp").glob("*.route")), default_registry())
    got = sorted({d.code for d in r.diagnostics if d.severity == "error"})
    assert got == ["E020"], [str(d) for d in r.diagnostics]


def test_a_date_argument_of_a_known_other_type(tmp_path, registry):
    r = check(tmp_path, '    let x = format_date(msg.amount, "%Y")', registry)
    assert diags(r) == [("E072", "format_date(): argument 1 (d) must be a date, got a decimal (msg.amount)")]
    r = check(tmp_path, '    let x = format_date(msg.currency, "%Y")', registry)
    assert found(r)[0].help == "read text as a date with parse_date(text, pattern)"
