"""A route's response-code field (docs/ledger.md "response_code"): the field its error reply (its own, else
its channel's) fills with `error.code`, when its success `reply` of the same format sets it.  Resolved at
compile time into the IR (`Route.response_code`), shown by `bsp check --explain`; every shipped route with
an error reply and a reply has one."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app
from engine.registry import default_registry

REPO = Path(__file__).resolve().parents[2]

HEAD = '''format J = json
format K = json
channel front = memory
channel plain = memory
'''


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def code_fields(tmp_path, registry, text: str) -> dict[str, str | None]:
    p = tmp_path / "main.route"
    p.write_text(HEAD + text)
    result = compile_paths([p], registry)
    assert result.program is not None and not [d for d in result.diagnostics if d.severity == "error"], \
        result.diagnostics
    return {r.name: r.response_code for r in result.program.routes}


@pytest.mark.parametrize("error_reply, success, field", [
    # the field set to error.code itself
    ('on error reply J { ref = msg.ref  code = error.code  text = error.text }', 'reply J { code = "00" }', "code"),
    # set to it exactly beats a field that only uses it, whatever their order
    ('on error reply J { text = error.code + " " + error.text  rc = error.code }', 'reply J { text = "ok"  rc = "00" }',
     "rc"),
    # a field that uses it (an ISO 8583 DE 39 that repeats the host's refusal)
    ('on error reply J { "39" = if error.kind == "refused" then "51" else error.code }', 'reply J { "39" = "00" }',
     '["39"]'),
    # nested
    ('on error reply J { Rsp.Code = error.code }', 'reply J { Rsp.Code = "00"  Rsp.Ref = msg.ref }', "Rsp.Code"),
    # the last reply of an `on error { }` block
    ('on error {\n let t = error.text\n reply J { code = error.code  text = t }\n }', 'reply J { code = "00" }', "code"),
    # the success reply does not set it: no code
    ('on error reply J { code = error.code }', 'reply J { ref = msg.ref }', None),
    # another format: no code (its field may mean something else)
    ('on error reply K { code = error.code }', 'reply J { code = "00" }', None),
    # no field takes error.code
    ('on error reply J { text = error.text }', 'reply J { text = "ok" }', None),
    # no success reply
    ('on error reply J { code = error.code }', '', None),
])
def test_the_route_own_error_reply_names_the_field(tmp_path, registry, error_reply, success, field):
    text = f"route r {{\n    receive from front as J\n    {success}\n    {error_reply}\n}}\n"
    assert code_fields(tmp_path, registry, text) == {"r": field}


def test_the_channel_error_reply_answers_for_routes_without_their_own(tmp_path, registry):
    text = '''channel mf = memory {
    on error reply J { code = error.code  text = error.text }
}
route own {
    receive from mf as J when msg.op == "A"
    reply J { code = "00" }
    on error reply J { rc = error.code }
}
route channels {
    receive from mf as J when msg.op == "B"
    reply J { code = "00" }
}
route block_without_reply {
    receive from mf as J when msg.op == "C"
    reply J { code = "00" }
    on error { let x = 1 }
}
route other_format {
    receive from mf as J when msg.op == "D"
    reply K { code = "00" }
}
route none {
    receive from plain as J
    reply J { code = "00" }
}
'''
    assert code_fields(tmp_path, registry, text) == {
        "own": None,                      # its own error reply has `rc`, which its reply does not set
        "channels": "code", "block_without_reply": "code", "other_format": None, "none": None}


def test_check_explain_shows_the_field_of_every_shipped_route():
    res = CliRunner().invoke(app, ["check", "--explain", str(REPO / "routes" / "card_payments")])
    assert res.exit_code == 0, res.output
    routes = {r["name"]: r["response_code"] for r in orjson.loads(res.stdout)["routes"]}
    # the echo's failures are answered by its channel's error reply, in CardIsoAnswer: the same spec as its
    # reply's CardIso but `validate false`, so one format for the rule, and DE 39 is its field
    assert routes == {"card_purchase": '["39"]', "card_reversal": '["39"]', "card_echo": '["39"]'}


def test_every_shipped_route_with_an_error_reply_and_a_reply_has_a_code_field(registry):
    """The rule needs no declaration in any shipped route: each route that answers (a `reply`) and whose
    failures are answered with `error.code` (its own or its channel's error reply) has its field."""
    paths = sorted((REPO / "routes").glob("*/*.route"))
    result = compile_paths([p for p in paths if not p.name.endswith("_test.route")], registry)
    assert result.program is not None
    missing = []
    for r in result.program.routes:
        has_reply = any(s.kind == "reply" for s in r.steps)
        chan = result.program.channels[r.channel].error_reply
        error_reply = next((s for s in reversed(r.on_error) if s.kind == "reply"), None) or chan
        if has_reply and error_reply is not None and r.response_code is None:
            missing.append(r.name)
    assert missing == [], missing
    by_name = {r.name: r.response_code for r in result.program.routes}
    assert by_name["bill_payment"] == by_name["bill_enquiry"] == "resp_code"
    assert by_name["broker_transfer"] == "XferRsp.Code"
    assert by_name["claim_payout"] == "code"
    assert by_name["ar_collection"] is None            # a batch route: no reply, its answer is a file it writes


def test_a_lenient_twin_of_the_reply_format_is_the_same_format(tmp_path, registry):
    """A channel's error answers written in the reply's spec with `validate false` (docs/formats-iso8583.md
    #answering-what-cannot-be-read) still name the code field; a format declared otherwise does not."""
    text = """format Iso = iso8583 iso8583_1987_ascii
format IsoAnswer = iso8583 iso8583_1987_ascii validate false
format Other = iso8583 iso8583_1987_bcd validate false
channel isofront = tcp listen {
    address = "127.0.0.1:0"
    on error reply IsoAnswer { t = response_mti(msg.t)  "11" = msg["11"]  "39" = error.code }
}
channel side = tcp listen {
    address = "127.0.0.1:0"
    on error reply Other { t = response_mti(msg.t)  "39" = error.code }
}
route twin {
    receive from isofront as Iso
    reply Iso { t = "0810"  "11" = msg["11"]  "39" = "00" }
}
route other {
    receive from side as Iso
    reply Iso { t = "0810"  "11" = msg["11"]  "39" = "00" }
}
route json_ones {
    receive from front as J
    reply K { code = "00" }
}
route plain_one {
    receive from plain as J
    reply J { code = "00" }
}
"""
    assert code_fields(tmp_path, registry, text) == {"twin": '["39"]', "other": None, "json_ones": None,
                                                       "plain_one": None}
