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


def diagnostics(tmp_path: Path, text: str) -> list[str]:
    """The errors of `bsp check` on ``text``, as "line:col CODE message"."""
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "server.pem").write_text("not a certificate")        # exists, never read by the check
    (tmp_path / "server.key").write_text("not a key")
    (tmp_path / "r.route").write_text(text)
    res = compile_paths([tmp_path / "r.route"], default_registry())
    return [f"{d.pos.line}:{d.pos.col} {d.code} {d.message}" for d in res.diagnostics if d.severity == "error"]


def errors(tmp_path: Path, front: str = "", back: str = "") -> list[str]:
    return diagnostics(tmp_path, ROUTES % (front, back))


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


def test_bsp_check_reports_what_the_file_channels_and_timer_refuse_at_start(tmp_path: Path) -> None:
    """The options the engine checks when it builds these channels fail `bsp check` too, at the option."""
    text = ('channel inbox = file watch {\n    dir = "in"\n    record = "fixed"\n}\n'
            'channel outbox = file write {\n    dir = "in"\n    name = "X-{seq}.csv"\n    mode = "append"\n}\n'
            'channel tick = timer {\n    every = 5m\n    timezone = "Asia/Shanghai"\n}\n'
            'format F = json\n'
            'route a {\n    receive from inbox as F\n    call w = outbox as F reply F { x = 1 }\n}\n'
            'route b {\n    receive from tick as F\n}\n')
    got = diagnostics(tmp_path, text)
    assert len(got) == 3, got
    assert got[0].startswith("3:5 E055 channel inbox: record = fixed needs record_size")
    assert got[1].startswith("7:5 E055 channel outbox: option name: 'X-{seq}.csv' uses {seq}")
    assert got[2].startswith("12:5 E055 channel tick: option timezone: only with `at`")


def test_bsp_check_refuses_a_header_row_channel_read_without_header_names(tmp_path: Path) -> None:
    channel = 'channel inbox = file watch {\n    dir = "in"\n    record = "csv"\n    header_row = true\n}\n'
    route = 'route r {\n    receive from inbox as Line\n    deal D { ref = "x"  amount = 1 }\n}\n'
    by_position = diagnostics(tmp_path, 'format Line = csv header false {\n    ref string\n}\n' + channel + route)
    assert by_position == ["10:27 E039 channel `inbox` cannot hand format `Line` its requests: with header_row = "
                           "true each record comes with the file's header row, and format `Line` is csv header "
                           "false (columns by position)"]
    assert "a json format cannot read" in diagnostics(tmp_path, "format Line = json\n" + channel + route)[0]
    assert diagnostics(tmp_path, 'format Line = csv {\n    ref string\n}\n' + channel + route) == []


HTTP_CALL = '''
format F = json
channel teller = memory
channel api = http call {
    url = "%s"
    %s
}
route r {
    receive from teller as F
    call a = api as F reply F { x = msg.x }
    reply F { x = a.x }
}
'''


def test_http_call_checks_its_options_but_reads_no_secret(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BSP_TEST_NO_SUCH_TOKEN", raising=False)
    secret = 'auth_bearer_env = "BSP_TEST_NO_SUCH_TOKEN"\n    headers = ["X-Sig:file:/nowhere/sig"]'
    assert diagnostics(tmp_path, HTTP_CALL % ("https://biller.example/pay", secret)) == []  # bsp run would refuse
    assert diagnostics(tmp_path, HTTP_CALL % ("https://biller.example/pay", 'headers = ["X-Api-Key:abc123"]')) == [
        "6:5 E055 channel api: option headers: entry 1: header X-Api-Key looks secret but its value is written "
        "in the route file; write \"X-Api-Key:env:VARIABLE\" or \"X-Api-Key:file:PATH\""]
    assert diagnostics(tmp_path, HTTP_CALL % ("http://biller.example/pay", 'cert = "server.pem"')) == [
        "6:5 E055 channel api: option cert (TLS, like ca / cert / key) needs an https:// url, not http://"]
    (got,) = diagnostics(tmp_path, HTTP_CALL % ("ftp://biller.example", ""))
    assert got.startswith("5:5 E055 channel api: option url: expected")


def test_file_watch_trailer_options_are_checked(tmp_path: Path) -> None:
    head = ('format Line = csv {\n    ref string\n    amount decimal(2)\n}\n'
            'format T = csv header false {\n    count integer\n    total decimal(2)\n}\n')
    route = 'route r {\n    receive from inbox as Line\n    deal D { ref = msg.ref  amount = msg.amount }\n}\n'

    def inbox(*options: str) -> str:
        return head + 'channel inbox = file watch {\n    dir = "in"\n' + "".join(f"    {o}\n" for o in options) + "}\n" + route

    assert diagnostics(tmp_path, inbox("trailer = T", 'trailer_count = "count"')) == [
        "11:5 E055 channel inbox: option trailer: the trailer is the file's last record and not a deal; "
        "set skip_trailer = 1"]
    (got,) = diagnostics(tmp_path, inbox("skip_trailer = 1", "trailer = T", 'trailer_total = "total"'))
    assert got.startswith("13:5 E055 channel inbox: option trailer_total needs total_field")
    (got,) = diagnostics(tmp_path, inbox('trailer_count = "count"'))
    assert got.startswith("11:5 E055 channel inbox: option trailer_count needs trailer")
    assert diagnostics(tmp_path, inbox("skip_trailer = 1", "trailer = Trailr", 'trailer_count = "count"')) == [
        "12:15 E020 unknown format `Trailr`"]       # and not also the kind's check, which lacks the option
    (got,) = diagnostics(tmp_path, inbox("skip_trailer = 1", "trailer = T"))
    assert got.startswith("12:5 E055 channel inbox: option trailer: name the trailer's fields to check")
    (got,) = diagnostics(tmp_path, inbox("skip_trailer = 1", "trailer = T", 'trailer_count = "count"',
                                         'total_field = "amount"'))
    assert got.startswith("14:5 E055 channel inbox: option total_field is for trailer_total")
    assert diagnostics(tmp_path, inbox("skip_trailer = 1", "trailer = T", 'trailer_count = "count"',
                                       'trailer_total = "total"', 'total_field = "amount"',
                                       "total_format = Line")) == []



def test_a_control_total_option_naming_a_field_its_format_lacks_is_told_by_check(tmp_path: Path) -> None:
    """`trailer_count = "cnt"` on a trailer format without `cnt` passed `bsp check` and failed only when
    `bsp run` bound the channel; the header's options (`header_count`, `header_total`) the same."""
    head = ('format Line = csv {\n    ref string\n    amount decimal(2)\n}\n'
            'format T = csv header false {\n    count integer\n    total decimal(2)\n}\n')
    route = 'route r {\n    receive from inbox as Line\n    deal D { ref = msg.ref  amount = msg.amount  key = msg.ref }\n}\n'

    def inbox(*options: str) -> str:
        return head + 'channel inbox = file watch {\n    dir = "in"\n' + "".join(f"    {o}\n" for o in options) + "}\n" + route

    assert diagnostics(tmp_path, inbox("skip_trailer = 1", "trailer = T", 'trailer_count = "cnt"')) == [
        "13:5 E055 channel inbox: option trailer_count: format T has no field 'cnt'"]
    assert diagnostics(tmp_path, inbox("skip_header = 1", "header = T", 'header_count = "count"',
                                       'header_total = "totl"', 'total_field = "amont"', "total_format = Line")) == [
        "14:5 E055 channel inbox: option header_total: format T has no field 'totl'",
        "15:5 E055 channel inbox: option total_field: format Line has no field 'amont'"]
