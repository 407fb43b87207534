"""`peer.*`: the peer a tcp listen / http listen channel authenticated, read by the route.

Over real loopback mutual TLS, two partners with different certificate CNs share one channel whose deal key
is `peer.cn + "/" + msg.request_id`: partner B sending A's request id gets a deal of its own (not A's
answer, which would leak it across partners), A's own repeat gets A's original answer. A channel without TLS
gives `peer.cn` null and `peer.address` the client's ip:port. The checker knows the names (E060 with did
you mean, W008 for a certificate the channel never has); route tests set the peer (`peer { ... }`, E110)."""
from __future__ import annotations

from pathlib import Path

import duckdb
import httpx
import pytest
import trio

from dsl.load import compile_paths
from engine.certs import new_ca
from engine.registry import default_registry
from engine.routetest.runner import run_paths
from engine.tls import client_context, peer_values
from kit import Client, compile_text, deals, running


@pytest.fixture(scope="module")
def partners(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for localhost, and PARTNER-A / PARTNER-B / PARTNER-C client certificates."""
    d = tmp_path_factory.mktemp("partners")
    ca = new_ca("partners CA")
    ca_pem, _ = ca.write(d / "ca")
    out = {"ca": ca_pem}
    out["server"], out["server_key"] = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"],
                                                server=True).write(d / "server")
    for who in ("A", "B", "C"):
        out[who], out[who + "_key"] = ca.issue(f"PARTNER-{who}", dns=[f"partner-{who.lower()}.example"],
                                               client=True).write(d / who)
    return out


def _tls(p: dict[str, Path], allow: str = '["cn:PARTNER-A", "cn:PARTNER-B"]') -> str:
    return (f'    cert = "{p["server"]}"\n    key = "{p["server_key"]}"\n    ca = "{p["ca"]}"\n'
            f'    client_cert = "required"\n    allow = {allow}\n')


ROUTE = '''
format Req = json
channel partners = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
%s}
route book {
    receive from partners as Req
    deal ORDER { ref = msg.request_id  amount = msg.amount  key = peer.cn + "/" + msg.request_id }
    reply Req { request_id = msg.request_id  n = msg.n  partner = peer.cn  san = peer.san  at = peer.address }
}
'''


async def _tls_client(port: int, p: dict[str, Path], who: str) -> Client:
    ctx = client_context(p["ca"], p[who], p[who + "_key"], "localhost")
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx)
    return Client(stream, 2)  # type: ignore[arg-type]


def _keys(ledger: Path) -> list[str]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT key FROM deal_keys").fetchall())
    finally:
        con.close()


async def test_two_partners_on_one_mtls_channel_never_read_each_others_answer(tmp_path: Path, partners) -> None:
    prog = compile_text(tmp_path, ROUTE % _tls(partners))
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        port = sb.channel("partners").port
        a = await _tls_client(port, partners, "A")
        await a.send(b'{"request_id": "R1", "amount": 5, "n": 1}')
        (first,) = await a.recv_json()
        b = await _tls_client(port, partners, "B")
        # B sends A's request id (and its own amount): the key is PARTNER-B/R1, a deal of its own
        await b.send(b'{"request_id": "R1", "amount": 5, "n": 2}')
        (of_b,) = await b.recv_json()
        await a.send(b'{"request_id": "R1", "amount": 5, "n": 3}')        # A's repeat: A's original answer
        (again,) = await a.recv_json()
        c = await _tls_client(port, partners, "C")                          # not in the allow list: closed
        with pytest.raises(trio.BrokenResourceError):
            await c.send(b'{"request_id": "R1", "amount": 5, "n": 4}')
            await c.recv_json()
        await trio.aclose_forcefully(c.stream)
        for x in (a, b):
            await x.aclose()
    assert first["partner"] == "PARTNER-A" and first["n"] == 1
    assert first["san"] == ["dns:partner-a.example"] and first["at"].startswith("127.0.0.1:")
    assert of_b["partner"] == "PARTNER-B" and of_b["n"] == 2, of_b           # not A's answer
    assert again == first                                                   # A's repeat: the original reply
    rows = deals(ledger)
    assert [(r["reference"], r["status"]) for r in rows if r["status"] == "committed"] == [("R1", "committed")] * 2
    assert _keys(ledger) == ["book|PARTNER-A/R1", "book|PARTNER-B/R1"]


async def test_without_tls_peer_cn_is_null_and_the_address_is_the_clients(tmp_path: Path) -> None:
    prog = compile_text(tmp_path, ROUTE % "")
    async with running(prog, tmp_path / "l.duckdb") as sb:
        c = await Client.open(sb.channel("partners").port)
        await c.send(b'{"request_id": "R1", "amount": 5, "n": 1}')
        (reply,) = await c.recv_json()
        here = c.stream.socket.getsockname()
        await c.aclose()
    assert reply["partner"] is None and reply["san"] == []
    assert reply["at"] == f"{here[0]}:{here[1]}"


HTTP_ROUTE = '''
format Req = json
channel api = http listen {
    address = "127.0.0.1:0"
    path = "/orders"
%s}
route book {
    receive from api as Req
    deal ORDER { ref = msg.request_id  amount = msg.amount  key = peer.cn + "/" + msg.request_id }
    reply Req { request_id = msg.request_id  n = msg.n  partner = peer.cn }
}
'''


async def test_http_listen_partners_get_their_own_answers(tmp_path: Path, partners) -> None:
    prog = compile_text(tmp_path, HTTP_ROUTE % _tls(partners))
    async with running(prog, tmp_path / "l.duckdb") as sb:
        url = f"https://localhost:{sb.channel('api').port}/orders"

        async def post(who: str, n: int) -> dict:
            ctx = client_context(partners["ca"], partners[who], partners[who + "_key"])
            async with httpx.AsyncClient(verify=ctx) as c:
                r = await c.post(url, json={"request_id": "R1", "amount": 5, "n": n})
            assert r.status_code == 200, r.text
            return r.json()

        first = await post("A", 1)
        of_b = await post("B", 2)
        again = await post("A", 3)
    assert first == {"request_id": "R1", "n": 1, "partner": "PARTNER-A"}
    assert of_b == {"request_id": "R1", "n": 2, "partner": "PARTNER-B"}
    assert again == first


def test_peer_values_use_the_access_lists_extraction() -> None:
    cert = {"subject": ((("commonName", "MAINFRAME01"),),),
            "subjectAltName": (("email", "ops@bank.example"), ("URI", "spiffe://bank/mainframe"),
                               ("IP Address", "10.0.0.1\n"))}
    assert peer_values(cert, "127.0.0.1:5") == {
        "cn": "MAINFRAME01", "san": ["email:ops@bank.example", "uri:spiffe://bank/mainframe", "ip:10.0.0.1"],
        "address": "127.0.0.1:5"}
    assert peer_values(None, None) == {"cn": None, "san": [], "address": None}


def _diags(tmp_path: Path, text: str) -> list:
    path = tmp_path / "t.route"
    path.write_text(text)
    return compile_paths([path], default_registry()).diagnostics


def test_checker_knows_the_peer_names(tmp_path: Path, partners) -> None:
    text = (ROUTE % _tls(partners)).replace("at = peer.address", "at = peer.adress")
    (d,) = [d for d in _diags(tmp_path, text) if d.severity == "error"]
    assert d.code == "E060" and "`peer` has no field `adress`" in d.message
    assert "did you mean `address`?" in d.help and "peer.cn, peer.san, peer.address" in d.help


def test_checker_warns_when_the_channel_never_has_a_certificate(tmp_path: Path) -> None:
    ds = _diags(tmp_path, ROUTE % "")
    assert not [d for d in ds if d.severity == "error"], ds
    warns = [d for d in ds if d.code == "W008"]
    assert [(d.pos.line, d.pos.col) for d in warns] == [(9, 67), (10, 67), (10, 82)], warns
    assert "channel `partners` (tcp listen) never has a client certificate: `peer.cn` is always null" \
        in warns[0].message and 'client_cert = "none"' in warns[0].message
    assert "client_cert = \"required\"" in warns[0].help
    timer = ('format Req = json\nchannel tick = timer { every = 1m }\nroute r {\n    receive from tick as Req\n'
             '    deal T { ref = "x"  amount = 1  key = peer.cn }\n}\n')
    (w,) = [d for d in _diags(tmp_path, timer) if d.code == "W008"]
    assert "(timer) never has a client certificate" in w.message and "no TLS connection" in w.message


TESTED = ROUTE + '''
test "partner A books R1" {
    given partners sends { request_id = "R1"  amount = 5  n = 1 } peer { cn = "PARTNER-A"  address = "10.1.2.3:5000" }
    expect reply { partner = "PARTNER-A"  at = "10.1.2.3:5000"  n = 1 }
    expect deal ORDER { status = "committed" }
}
test "B repeats with its own key" {
    given partners sends { request_id = "R1"  amount = 5  n = 2 } peer { cn = "PARTNER-B"  san = ["dns:b.example"] } twice
    expect reply { partner = "PARTNER-B"  san[0] = "dns:b.example" }
}
'''


def test_a_route_test_sets_the_peer(tmp_path: Path, partners) -> None:
    path = tmp_path / "t.route"
    path.write_text(TESTED % _tls(partners))
    ran = run_paths([path], default_registry())
    assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
    assert len(ran.outcomes) == 2 and all(o.passed for o in ran.outcomes), \
        [f for o in ran.outcomes for f in o.failures]


def test_a_route_test_setting_a_peer_wrongly_is_told(tmp_path: Path, partners) -> None:
    text = (ROUTE % _tls(partners)) + ('test "t" {\n    given partners sends { request_id = "R1"  amount = 5  n = 1 } '
                                       'peer { cm = "X"  cn = 3  adress = "1" }\n}\n')
    ds = [d for d in _diags(tmp_path, text) if d.code == "E110"]
    assert [d.message for d in ds] == ["a peer has no `cm` to set", "`peer.cn` is a text: it cannot take 3",
                                       "a peer has no `adress` to set"], ds
    assert ds[2].help == "did you mean `address`?"
    plain = (ROUTE % "") + ('test "t" {\n    given partners sends { request_id = "R1"  amount = 5  n = 1 } '
                            'peer { cn = "PARTNER-A" }\n}\n')
    (d,) = [d for d in _diags(tmp_path, plain) if d.code == "E110"]
    assert "never has a client certificate" in d.message and 'client_cert = "required"' in d.help


ERROR_REPLY = '''
format Req = json
channel partners = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    max_frame = 300
%s    on error reply Req { code = error.code  partner = peer.cn  san = peer.san  at = peer.address }
}
route book {
    receive from partners as Req when msg.n == 1
    reply Req { ok = true }
}
'''


async def test_a_channels_error_reply_reads_the_peer(tmp_path: Path, partners) -> None:
    """A channel's `on error reply` (a request no route takes: not JSON, no route's `when`, a frame over
    max_frame) reads peer.* as the routes do: the checker has it in scope (it said `peer` is unknown), the
    engine fills it (a frame too big gave no peer: null)."""
    prog = compile_text(tmp_path, ERROR_REPLY % _tls(partners))
    async with running(prog, tmp_path / "l.duckdb") as sb:
        a = await _tls_client(sb.channel("partners").port, partners, "A")
        await a.send(b'{"request_id": "R1", "n": 2}')            # no route's `when` takes it
        (unrouted,) = await a.recv_json()
        await a.send(b'not json')
        (malformed,) = await a.recv_json()
        await a.send(b'[' + b'1,' * 200 + b'1]')              # over max_frame: answered, then closed
        (oversized,) = await a.recv_json()
        await trio.aclose_forcefully(a.stream)
    for reply in (unrouted, malformed, oversized):
        assert reply["partner"] == "PARTNER-A" and reply["san"] == ["dns:partner-a.example"], reply
        assert reply["at"].startswith("127.0.0.1:") and reply["code"] is not None, reply


def test_checker_takes_peer_in_a_channels_error_reply(tmp_path: Path, partners) -> None:
    assert not _diags(tmp_path, ERROR_REPLY % _tls(partners))
    ds = _diags(tmp_path, (ERROR_REPLY % "").replace("at = peer.address", "at = peer.adress"))
    assert [d.code for d in ds if d.severity == "error"] == ["E060"], [(d.code, d.message) for d in ds]
    warns = [d for d in ds if d.code == "W008"]        # no client certificate: cn and san, as in a route
    assert [(d.pos.line, d.pos.col) for d in warns] == [(7, 55), (7, 70)], [(d.pos, d.message) for d in warns]
    assert "channel `partners` (tcp listen) never has a client certificate" in warns[0].message


def test_a_route_test_reads_the_peer_in_a_channels_error_reply(tmp_path: Path, partners) -> None:
    path = tmp_path / "t.route"
    path.write_text(ERROR_REPLY % _tls(partners) + '''
test "no route takes it" {
    given partners sends { request_id = "R1"  n = 2 } peer { cn = "PARTNER-B"  address = "10.1.2.3:5000" }
    expect reply { partner = "PARTNER-B"  at = "10.1.2.3:5000" }
}
''')
    ran = run_paths([path], default_registry())
    assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
    [out] = ran.outcomes
    assert out.passed, out.failures
