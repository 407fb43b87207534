"""E087: `expect call X { opp = ... }` where no call to X sets `opp` is told by `bsp check`, not at run
time as `got "<none>"`; only where the call bodies give the request's fields for certain."""
from __future__ import annotations

import pytest

from dsl.load import compile_source
from engine.registry import default_registry

HEAD = '''format Req = json
format Doc = xml
format Pacs = iso20022 pacs.008.001.08 validate false
channel front = memory
channel back = tcp connect { address = "127.0.0.1:1" }
route r {
    receive from front as Req
    call post = back as FMT { opp_acct = msg.a  amount = 1  party.name = "x" }
        compensate call back as FMT { reversal = true }
    reply Req { code = "00" }
}
test "t" {
    given front sends { a = 1 }
    expect call back { EXPECTED }
}
'''


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def _check(registry, tmp_path, expected: str, fmt: str = "Req"):
    src = HEAD.replace("FMT", fmt).replace("EXPECTED", expected)
    return compile_source(src, registry, tmp_path / "main_test.route")


def test_a_field_no_call_sets_is_an_error_with_did_you_mean(registry, tmp_path):
    r = _check(registry, tmp_path, 'opp = 1  amount = 1')
    hits = [d for d in r.diagnostics if d.code == "E087"]
    assert [(d.pos.line, d.pos.col, d.pos.end_col) for d in hits] == [(14, 24, 27)]
    assert hits[0].message == 'no call to `back` sets a field `opp`: the test would get "<none>"'
    assert hits[0].help == ("did you mean `opp_acct`? the calls to `back` set `amount`, `opp_acct`, `party`, "
                            "`reversal`")
    assert r.program is None


def test_xml_bodies_are_known_too(registry, tmp_path):
    r = _check(registry, tmp_path, 'amont ~ "1"', fmt="Doc")
    assert [(d.code, d.help.split("?")[0]) for d in r.diagnostics if d.code == "E087"] == [
        ("E087", "did you mean `amount`")]


@pytest.mark.parametrize("expected", [
    'opp_acct = 1  amount = 1',             # set by the call
    'reversal = true',                      # set by the compensation to the same channel
    'party.name = "x"  party.id ~ "1"',     # inside a record the call sets: not told here
    'opp = "<none>"',                       # the runner's word for a missing field: it holds
])
def test_fields_a_call_sets_or_may_set_are_not_told(registry, tmp_path, expected):
    r = _check(registry, tmp_path, expected)
    assert [d for d in r.diagnostics if d.code == "E087"] == []


def test_a_format_that_adds_fields_of_its_own_is_not_told(registry, tmp_path):
    """An iso20022 request carries `message` (and an AppHdr) though the body may not set them."""
    r = _check(registry, tmp_path, 'message = "pacs.008.001.08"', fmt="Pacs")
    assert [d for d in r.diagnostics if d.code == "E087"] == []
