"""W010: a route that replies on a tcp listen channel, with no error reply of its own nor of its channel,
leaves the sender without an answer when a step fails (tests/engine/test_unanswered_failure.py shows the
engine sends nothing).  Until 2026-11-27 `bsp check` said nothing of it."""
from __future__ import annotations

from dsl.load import compile_source

REQ = 'format Req = json\n'
TCP = 'channel front = tcp listen {\n    address = "127.0.0.1:7000"\n}\n'        # 3 lines
ROUTE = 'route pay {\n    receive from front as Req\n    reply Req { code = trim(msg.code) }\n}\n'


def _w010(tmp_path, registry, src):
    r = compile_source(src, registry, tmp_path / "main.route")
    assert not r.errors, r.errors
    return [d for d in r.diagnostics if d.code == "W010"]


def test_a_tcp_listen_route_without_an_error_reply_is_told(tmp_path, registry):
    [d] = _w010(tmp_path, registry, REQ + TCP + ROUTE)
    assert d.severity == "warning"
    assert d.message == ("route `pay` replies on channel `front` (tcp listen), but it has no `on error` and the "
                         "channel has no `on error reply`: when a step fails, nothing is sent and the sender "
                         "waits for its own timeout")
    assert (d.pos.line, d.pos.col) == (5, 7)
    assert "on error reply Req {" in d.help and "error.code" in d.help
    # an `on error { }` block that answers nothing leaves the sender waiting too
    src = REQ + TCP + ROUTE.replace("}\n}\n", "}\n    on error { audit r { text = error.text } }\n}\n")
    [d] = _w010(tmp_path, registry, src)
    assert "its `on error { }` block has no `reply`" in d.message


def test_an_error_reply_of_the_route_or_channel_an_echo_or_no_reply_is_not_told(tmp_path, registry):
    on_error = ROUTE.replace("}\n}\n", '}\n    on error reply Req { code = error.code }\n}\n')
    block = ROUTE.replace("}\n}\n", '}\n    on error { reply Req { code = error.code } }\n}\n')
    channel = REQ + TCP.replace("}\n", "    on error reply Req { code = error.code }\n}\n") + ROUTE
    echo = ROUTE.replace("trim(msg.code)", 'msg.code  status = "00"')
    quiet = ROUTE.replace("    reply Req { code = trim(msg.code) }\n", '    audit r { text = msg.code }\n')
    for src in (REQ + TCP + on_error, REQ + TCP + block, channel, REQ + TCP + echo, REQ + TCP + quiet):
        assert _w010(tmp_path, registry, src) == [], src
