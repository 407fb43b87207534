"""`bsp check` refuses what a channel would refuse when `bsp run` builds it, at the option's place,
without reading TLS files (they may be secrets kept off the machine that checks routes)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry

ROUTES = '''
format F = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    %s
}
channel back = tcp connect {
    address = "127.0.0.1:9"
    framing = length2
    %s
}
route r {
    receive from front as F
    call b = back as F reply F { x = msg.x }
    reply F { x = b.x }
}
'''


def errors(tmp_path: Path, front: str = "", back: str = "") -> list[str]:
    (tmp_path / "server.pem").write_text("not a certificate")        # exists, never read by the check
    (tmp_path / "server.key").write_text("not a key")
    (tmp_path / "r.route").write_text(ROUTES % (front, back))
    res = compile_paths([tmp_path / "r.route"], default_registry())
    return [f"{d.pos.line}:{d.pos.col} {d.code} {d.message}" for d in res.diagnostics if d.severity == "error"]


def test_tls_options_checked_without_reading_the_files(tmp_path: Path) -> None:
    assert errors(tmp_path, 'cert = "server.pem"\n    key = "server.key"',
                  'cert = "server.pem"\n    key = "server.key"') == []


def test_tcp_listen_refuses_certificate_rules_without_client_certificates(tmp_path: Path) -> None:
    assert errors(tmp_path, 'allow = ["cn:MAINFRAME01"]') == [
        "6:5 E055 channel front: option allow has certificate rules but no client certificate is asked for; "
        "add cert, key, ca and client_cert = \"required\""]


def test_tcp_connect_refuses_retries_of_a_call_that_is_not_idempotent(tmp_path: Path) -> None:
    (got,) = errors(tmp_path, back="retries = 2")
    assert got.startswith("11:5 E055 channel back: option retries = 2 needs idempotent = true")
    assert errors(tmp_path, back="retries = 2\n    idempotent = true") == []


def test_tcp_connect_key_without_cert(tmp_path: Path) -> None:
    assert errors(tmp_path, back='key = "server.key"') == [
        "11:5 E055 channel back: option key needs cert (the client certificate)"]
