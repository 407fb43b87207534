"""W007: an ISO 8583 call to a `tcp connect` without `match` pairs answers in the order requests were sent;
a host answering out of order (or twice) gives deals each other's answers, so bsp check says so."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry

ROUTE = '''
channel mf = memory
format Auth = iso8583 iso8583_1987_ascii
format Post = json
channel host = tcp connect {
    address = "127.0.0.1:7001"
    %s
}
route r {
    receive from mf as Auth
    call auth = host as %s { %s }
    reply Auth { t = "0210" }
}
'''


def _w007(tmp_path: Path, match: str, fmt: str = "Auth", body: str = 't = "0200"  "11" = msg["11"]  "41" = msg["41"]'):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "r.route").write_text(ROUTE % (match, fmt, body))
    res = compile_paths([tmp_path / "r.route"], default_registry())
    assert res.program is not None, [str(d) for d in res.errors]
    return [d for d in res.diagnostics if d.code == "W007"]


def test_an_iso_call_paired_in_order_is_a_warning_with_the_fix(tmp_path):
    (w,) = _w007(tmp_path, "")
    assert (w.pos.line, w.pos.col) == (11, 17) and w.severity == "warning"
    assert "answers out of order, or twice, gives deals each other's answers" in w.message
    assert "set `match = iso8583` on channel `host`" in w.help


def test_matched_channels_and_other_formats_are_quiet(tmp_path):
    assert _w007(tmp_path / "a", "match = iso8583") == []
    assert _w007(tmp_path / "b", "", fmt="Post", body='ref = "x"') == []
