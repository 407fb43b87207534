"""A channel the routes call in more than one format (one SWIFT gateway taking MT101 and MT103, a host
taking two record layouts): `expect call CHANNEL { ... }` reads each call in the format it decodes in,
not only in the first route's. Until 2026-11-27 every call was read in the format of the first call to
the channel in the configuration, so a test of the second route's calls failed "does not decode as".
A call that decodes in none of them still names them all."""
from __future__ import annotations

from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Req = json
format Upper = fixed {
    kind string(1)
    ref  string(8)
}
format Lower = fixed {
    kind string(2)
    ref  string(8)
}
format Ack = json
channel front = memory
channel back = tcp connect { address = "127.0.0.1:1" }
route upper {
    receive from front as Req when msg.kind == "U"
    call a = back as Upper reply Ack { kind = "U"  ref = msg.ref }
    reply Req { code = "00" }
}
route lower {
    receive from front as Req when msg.kind == "L"
    call a = back as Lower reply Ack { kind = "LL"  ref = msg.ref }
    reply Req { code = "00" }
}
test "the first route's call is read as its format" {
    given front sends { kind = "U"  ref = "R1" }
    given back answers { ok = true }
    expect call back { kind = "U"  ref = "R1" } once
}
test "the second route's call is read as its own format" {
    given front sends { kind = "L"  ref = "R2" }
    given back answers { ok = true }
    expect call back { kind = "LL"  ref = "R2" } once
}
test "a call's fields that differ are told" {
    given front sends { kind = "L"  ref = "R3" }
    given back answers { ok = true }
    expect call back { ref = "R9" }
}
'''


def test_each_call_is_read_in_the_format_it_decodes_in(tmp_path):
    d = tmp_path / "svc"
    d.mkdir()
    (d / "svc_test.route").write_text(ROUTE)
    res = run_paths([d], default_registry())
    assert not res.broken, res.broken
    got = {o.name: o.failures for o in res.outcomes}
    assert got["the first route's call is read as its format"] == []
    assert got["the second route's call is read as its own format"] == []
    [fail] = got["a call's fields that differ are told"]
    assert 'field `ref`: expected "R9", got "R3"' in fail, fail
