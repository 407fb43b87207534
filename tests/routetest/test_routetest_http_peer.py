"""``given CHANNEL sends ... http { peer = "HOST:PORT" }``: a route test sets the client's address an http listen
channel gives its route as ``http.peer`` (before, a test could not: every request came from 127.0.0.1:0)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Req = json
format Ack = json

channel api = http listen {
    address    = "127.0.0.1:0"
    path       = "/notices"
    status_map = ["rejected:403"]
}

route notice {
    receive from api as Req
    validate {
        substr(http.peer, 0, 9) == "10.20.30." else reject "63" "caller outside the partner's network"
    }
    deal NOTICE { ref = msg.ref  amount = 0  currency = "EUR" }
    reply Ack { status = "OK"  caller = http.peer }
}
'''


def _write(tmp_path: Path, tests: str) -> Path:
    d = tmp_path / "peer"
    d.mkdir()
    (d / "notice.route").write_text(ROUTE)
    (d / "notice_test.route").write_text('use "notice.route"\n' + tests)
    return d


def test_a_route_test_sets_http_peer(tmp_path):
    d = _write(tmp_path, '''test "from the partner's network" {
    given api sends Req { ref = "N1" } http { peer = "10.20.30.40:51234" }
    expect reply 200 Ack { status = "OK"  caller = "10.20.30.40:51234" }
    expect deal NOTICE { status = "committed" }
}
test "from elsewhere" {
    given api sends Req { ref = "N2" } http { peer = "192.0.2.7:4000" }
    expect reply 403 { }
}
test "without a peer: the loopback of no port" {
    given api sends Req { ref = "N3" }
    expect reply 403 { }
}
''')
    result = run_paths([d], default_registry())
    assert [o.name for o in result.outcomes] == ["from the partner's network", "from elsewhere",
                                                 "without a peer: the loopback of no port"]
    assert all(o.passed for o in result.outcomes), [f for o in result.outcomes for f in o.failures]


def test_a_peer_that_is_no_address_is_refused_at_its_place(tmp_path):
    d = _write(tmp_path, '''test "t" {
    given api sends Req { ref = "N1" } http { peer = "partner-a" }
}
''')
    res = compile_paths(sorted(d.glob("*.route")), default_registry())
    e099 = [x for x in res.diagnostics if x.code == "E099"]
    assert [(x.pos.line, x.pos.col) for x in e099] == [(3, 54)], [str(x) for x in res.diagnostics]
    assert "`http.peer` is the client's address, HOST:PORT" in e099[0].message


def test_a_computed_peer_that_is_no_address_fails_the_test_with_its_place(tmp_path):
    d = _write(tmp_path, '''test "t" {
    given api sends Req { ref = "N1" } http { peer = "partner" + "-a" }
    expect reply 200 { }
}
''')
    (o,) = run_paths([d], default_registry()).outcomes
    assert not o.passed
    assert "notice_test.route:3:5: given api sends: http: peer = 'partner-a' is not the client's address" \
        in o.failures[0], o.failures
