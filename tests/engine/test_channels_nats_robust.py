"""nats consume under stress: a route slower than ack_wait, two engines sharing a consumer through a
server restart, a server that forgets acks (SIGKILL).  Real nats-server -js on loopback, real TCP
counterparts, a DuckDB ledger per engine."""
from __future__ import annotations

import functools

import orjson
import trio

from engine.testing.nats_server import eventually, nats_client, nats_registry, nats_server
from formats.framing import LengthPrefixFramer
from kit import compile_text, deals, running

ROUTE = """
format Order = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    fetch_wait = 100ms
    nak_delay  = 100ms
    {extra}
}}

channel book = tcp connect {{
    address = "127.0.0.1:9"
    framing = length4
    timeout = 10s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ {key} ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
}}
"""


def program(tmp_path, url, *, extra="", key="", name="orders.route"):
    return compile_text(tmp_path, ROUTE.format(url=url, extra=extra, key=key), name=name, registry=nats_registry())


async def _v(value: object) -> object:
    return value


async def slow_counterpart(nursery: trio.Nursery, delay: float, calls: list[str]) -> int:
    """A real TCP JSON counterpart answering each request `{"status": "OK"}` after ``delay`` seconds."""

    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while data := await stream.receive_some(65536):
                for p in f.feed(data):
                    calls.append(orjson.loads(p)["ref"])
                    await trio.sleep(delay)
                    await stream.send_all(f.frame(b'{"status": "OK"}'))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def test_a_route_slower_than_ack_wait_is_not_redelivered_while_it_runs(tmp_path, nursery) -> None:
    """A deal still running when ack_wait passes: the channel tells the server it is in progress, so the
    message is not handed out again meanwhile (it was: the same call ran a second time, here or on
    another engine sharing the consumer, and a second deal row was written)."""
    calls: list[str] = []
    port = await slow_counterpart(nursery, 1.2, calls)
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        prog = program(tmp_path, srv.url, extra="ack_wait = 400ms\n    batch = 1")
        async with running(prog, tmp_path / "l.duckdb", registry=reg,
                           overrides={"book": {"address": f"127.0.0.1:{port}"}}) as sb:
            ch = sb.channel("orders")
            await eventually(lambda: _v(ch.ready.is_set()), "consumer set up")
            await nc.publish("orders.new", b'{"ref": "SLOW-1", "amount": 1}')
            await eventually(lambda: _v(ch.acked >= 1), "SLOW-1 settled")
            await trio.sleep(0.5)                       # more than ack_wait: a redelivery would be here
            info = await nc.consumer("ORDERS", "bsp-orders")
            assert (ch.received, ch.acked, info.num_redelivered, info.num_ack_pending) == (1, 1, 0, 0)
    assert calls == ["SLOW-1"]
    assert [(r["reference"], r["status"]) for r in deals(tmp_path / "l.duckdb")] == [("SLOW-1", "committed")]
