"""``max_connections_per_client`` (engine/channels/per_client.py) over real loopback sockets: one client
address holding its cap has each new connection closed at once, unread, while another address
(127.0.0.2: Linux routes all of 127/8 to loopback) is still served; the counts return to 0 when the
connections end, also when the server is cancelled under them.  ``http listen``, the admin API and
``tcp listen`` (off by default there).

Time is a ``MockClock``; its ``autojump_threshold`` only ends a test that would hang (the clock then
jumps to the next deadline: a request's read_timeout here), so "served at once" is exact virtual time."""
from __future__ import annotations

import re
from functools import partial

import pytest
import trio
import trio.testing

from engine.admin import AdminApp, TokenAuth, serve_admin
from engine.channels.http_listen import HttpListener
from engine.channels.options import ChannelConfigError
from engine.channels.per_client import client_key
from engine.channels.tcp_listen import TcpListener
from engine.http import HTTPLimits, Request, Response, Router, serve_http
from engine.metrics import Metrics
from formats.framing import LengthPrefixFramer

GET = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
SLOW = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow"      # a request never finished (slowloris)
F = LengthPrefixFramer(2)


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=1.0)


def router() -> Router:
    r = Router()

    @r.route("GET", "/hello")
    async def hello(request: Request) -> Response:
        return Response.json({"hello": "world"})

    return r


async def connect_from(source: str, port: int) -> trio.SocketStream:
    sock = trio.socket.socket()
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


async def answer(s: trio.SocketStream) -> bytes:
    out = b""
    with trio.fail_after(60):
        while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
            try:
                data = await s.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not data:
                break
            out += data
    return out


async def closed(s: trio.SocketStream) -> bool:
    """True when the server closed ``s`` (FIN or reset) without sending a byte."""
    with trio.fail_after(60):
        try:
            return await s.receive_some(100) == b""
        except trio.BrokenResourceError:
            return True


async def until(cond) -> None:
    """Let the server run until ``cond()`` (bounded: a leak fails, not hangs)."""
    for _ in range(2000):
        if cond():
            return
        await trio.testing.wait_all_tasks_blocked(0.001)
    raise AssertionError("condition not reached")


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked(0.05)


async def test_a_slowloris_from_one_address_no_longer_delays_another(nursery, clock, caplog) -> None:
    """The attack review's case, scaled down: the global cap is 4, one address opens 10 connections that
    trickle a request (never evictable: they are reading); another address is still answered at once,
    not after read_timeout."""
    port = await nursery.start(partial(serve_http, router(), "127.0.0.1", 0,
                                       limits=HTTPLimits(max_connections=4, max_connections_per_client=3)))
    attack = []
    for _ in range(10):
        s = await connect_from("127.0.0.1", port)
        attack.append(s)
        try:
            await s.send_all(SLOW)
        except trio.BrokenResourceError:
            pass
        await settle()
    t0 = trio.current_time()
    caller = await connect_from("127.0.0.2", port)
    await caller.send_all(GET)
    assert (await answer(caller)).startswith(b"HTTP/1.1 200 ")
    assert trio.current_time() == t0            # at once, not when the slow requests time out (10s)
    for s in attack[3:]:
        assert await closed(s)                  # over the cap: closed unread
    logged = re.findall(r"client 127\.0\.0\.1 holds 3 connections \(max_connections_per_client\)", caplog.text)
    assert len(logged) == 1, caplog.text        # once, not per connection refused
    for s in (*attack, caller):
        await trio.aclose_forcefully(s)


async def test_http_listen_refuses_over_the_cap_counts_and_returns_to_zero(nursery, clock, caplog) -> None:
    lst = HttpListener("api", {"address": "127.0.0.1:0", "path": "/pay", "max_connections_per_client": 2})
    metrics = Metrics()
    lst.attach_metrics(metrics)
    await nursery.start(lst.serve, object())
    port = lst.port
    held = [await connect_from("127.0.0.1", port) for _ in range(2)]
    await settle()
    assert lst.clients.open == {"127.0.0.1": 2}
    over = await connect_from("127.0.0.1", port)
    assert await closed(over)
    assert lst.clients.refused == 1 and lst.clients.open == {"127.0.0.1": 2}
    assert metrics.channel_client_refused.labels("api")._value.get() == 1
    other = await connect_from("127.0.0.2", port)
    await other.send_all(GET)
    assert (await answer(other)).startswith(b"HTTP/1.1 404 ")      # served (no route for /hello)
    assert "channel api: client 127.0.0.1 holds 2 connections (max_connections_per_client): closing its new " \
           "connection at once, unread; if partners share that address" in caplog.text
    for s in (*held, over, other):
        await s.aclose()
    await until(lambda: not lst.clients.open)
    assert lst.clients.open == {}
    again = await connect_from("127.0.0.1", port)           # room again for the first address
    await again.send_all(GET)
    assert (await answer(again)).startswith(b"HTTP/1.1 404 ")
    await again.aclose()


async def test_counts_return_to_zero_when_the_server_is_cancelled_under_open_connections(clock) -> None:
    lst = HttpListener("api", {"address": "127.0.0.1:0", "max_connections_per_client": 5})
    async with trio.open_nursery() as nursery:
        await nursery.start(lst.serve, object())
        held = [await connect_from("127.0.0.1", lst.port) for _ in range(3)]
        await held[0].send_all(SLOW)                       # one reading a request, two waiting for one
        await settle()
        assert lst.clients.open == {"127.0.0.1": 3}
        nursery.cancel_scope.cancel()
    assert lst.clients.open == {}
    for s in held:
        await trio.aclose_forcefully(s)


async def test_the_admin_api_has_its_own_cap_per_client(nursery, clock, caplog) -> None:
    app = AdminApp(backend=None, auth=TokenAuth("t" * 32))  # type: ignore[arg-type]
    port = await nursery.start(partial(serve_admin, app, "127.0.0.1", 0))
    held = []
    for _ in range(16):
        s = await connect_from("127.0.0.1", port)
        await s.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow")
        held.append(s)
    await settle()
    over = await connect_from("127.0.0.1", port)
    assert await closed(over)
    assert "admin: client 127.0.0.1 holds 16 connections (its per-client limit, fixed)" in caplog.text
    other = await connect_from("127.0.0.2", port)
    await other.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = await answer(other)
    assert got.startswith(b"HTTP/1.1 "), got
    assert not got.startswith(b"HTTP/1.1 408"), got
    for s in (*held, over, other):
        await trio.aclose_forcefully(s)


class Upper:
    async def handle(self, conn, frames):
        return [f.upper() for f in frames]

    async def framing_error(self, conn, err):
        return b"BAD"


async def ask_tcp(s: trio.SocketStream, text: bytes) -> bytes:
    await s.send_all(F.frame(text))
    rx = LengthPrefixFramer(2)
    with trio.fail_after(60):
        while True:
            data = await s.receive_some(1000)
            assert data, f"closed instead of answering {text!r}"
            got = rx.feed(data)
            if got:
                return got[0]


async def test_tcp_listen_cap_per_client_when_set(nursery, clock) -> None:
    lst = TcpListener("front", {"address": "127.0.0.1:0", "framing": "length2", "max_connections_per_client": 2})
    await nursery.start(lst.serve, Upper())
    held = [await connect_from("127.0.0.1", lst.port) for _ in range(2)]
    await settle()
    over = await connect_from("127.0.0.1", lst.port)
    assert await closed(over)
    assert lst.clients.refused == 1
    other = await connect_from("127.0.0.2", lst.port)
    assert await ask_tcp(other, b"hi") == b"HI"
    assert await ask_tcp(held[0], b"yo") == b"YO"
    for s in (*held, over, other):
        await s.aclose()
    await until(lambda: not lst.clients.open)
    assert lst.clients.open == {}


async def test_tcp_listen_has_no_cap_per_client_by_default(nursery, clock) -> None:
    lst = TcpListener("mainframe", {"address": "127.0.0.1:0", "framing": "length2"})
    await nursery.start(lst.serve, Upper())
    conns = [await connect_from("127.0.0.1", lst.port) for _ in range(70)]
    for s in conns[::10]:
        assert await ask_tcp(s, b"x") == b"X"
    assert lst.clients.refused == 0
    for s in conns:
        await s.aclose()


def test_ipv4_mapped_is_the_ipv4_client_and_ipv6_counts_by_its_64() -> None:
    assert client_key(("::ffff:10.1.2.3", 5000, 0, 0)) == client_key(("10.1.2.3", 6000)) == "10.1.2.3"
    assert client_key(("2001:db8:1:2::5", 1, 0, 0)) == client_key(("2001:db8:1:2:ffff::9%eth0", 2, 0, 0)) \
        == "2001:db8:1:2::/64"
    assert client_key(("2001:db8:1:3::5", 1, 0, 0)) != client_key(("2001:db8:1:2::5", 1, 0, 0))


@pytest.mark.parametrize("bad", [-1, "8", True, 1.5])
def test_the_option_is_checked(bad) -> None:
    for make in (lambda o: HttpListener("api", o), lambda o: TcpListener("front", {"framing": "length2", **o})):
        with pytest.raises(ChannelConfigError, match="option max_connections_per_client: expected a whole number"):
            make({"address": "127.0.0.1:0", "max_connections_per_client": bad})
    assert HttpListener("api", {"address": "127.0.0.1:0"}).limits.max_connections_per_client == 64
    assert HttpListener("api", {"address": "127.0.0.1:0", "max_connections_per_client": 0}).clients.cap == 0
