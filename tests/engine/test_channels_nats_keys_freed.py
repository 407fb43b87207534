"""nats consume with a shared key store (``keys``): a deal whose key is free after its failure (its call
never left: the counterpart was down, docs/transactions.md "Which failures keep the key", case a) runs again
when ``on_failed = nak`` brings its message back, once the counterpart is there.  Before, its final state
(failed) was written to the bucket: the message came back as a duplicate of the failure, was acked, and the
order was never done (found scaling out: two engines, NATS killed under load, 1 order of 4000 never booked)."""
from __future__ import annotations

import logging
import socket

import orjson
import trio

from formats.framing import LengthPrefixFramer
from kit import compile_text, deals, running
from natskit import bound, eventually, nats_client, nats_registry, nats_server, value

ROUTE = """
format Order = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    fetch_wait = 100ms
    nak_delay  = 200ms
    on_failed  = nak
    keys       = "BSP_KEYS"
}}

channel book = tcp connect {{
    address = "127.0.0.1:{port}"
    framing = length4
    timeout = 5s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
}}
"""


async def test_a_deal_that_freed_its_key_runs_again_when_its_message_comes_back(tmp_path, nursery, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bsp.channel.nats")
    with socket.socket() as s:                  # the counterpart's port, nobody listening yet: refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    calls: list[str] = []

    async def host(stream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while data := await stream.receive_some(65536):
                for p in f.feed(data):
                    calls.append(orjson.loads(p)["ref"])
                    await stream.send_all(f.frame(b'{"status": "OK"}'))

    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url, port=port), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            await nc.publish("orders.new", b'{"ref": "F-1", "amount": 1}')
            await eventually(lambda: value(ch.naked >= 1), "F-1 failed (the counterpart is down) and nak'ed")
            await nursery.start(lambda task_status: trio.serve_tcp(host, port, host="127.0.0.1",
                                                                    task_status=task_status))
            await eventually(lambda: value(calls == ["F-1"]), "F-1 run again once the counterpart is there",
                             timeout=20)
            await eventually(lambda: value(ch.acked >= 1), "F-1 acked")
    rows = deals(tmp_path / "l.duckdb")
    assert rows[-1]["reference"] == "F-1" and rows[-1]["status"] == "committed", rows
    assert {r["status"] for r in rows[:-1]} == {"failed"}, rows     # each attempt while it was down
    # the bucket's max age is the key retention as written (it said "max age 3.024e+06s")
    assert "created key-value bucket BSP_KEYS for the shared deal keys (max age 35d)" in caplog.text
