"""nats consume: a drain (SIGTERM) leaves no message stuck on the server for ack_wait.

An idle channel keeps a pull request open on the server for ``fetch_wait``.  A drain used to cancel that
fetch and leave the request open: a message published in the rest of the window was handed to the
draining engine, which never saw it, and the server gave it to another engine only after ``ack_wait``
(found scaling out with two ``bsp run`` engines: one message 29.7 s late under the default 30 s).  The
drain now lets the open pull run out and hands back (nak) what it brings."""
from __future__ import annotations

from kit import compile_text, deals, running
from natskit import bound, eventually, nats_client, nats_registry, nats_server, value

ROUTE = """
format Order = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    batch      = 8
    ack_wait   = 60s
    fetch_wait = 2s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{
        ref      = msg.ref
        amount   = msg.amount
        currency = "EUR"
    }}
}}
"""


async def test_a_message_the_open_pull_brings_during_a_drain_is_handed_back_at_once(tmp_path) -> None:
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "one.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            await nc.publish("orders.new", b'{"ref": "D-0", "amount": 1}')
            # D-0's fetch ended with it; the next pull (open for fetch_wait, 2 s) was sent right after
            await eventually(lambda: value(ch.acked == 1), "D-0 consumed")
            ch.stop_accepting()
            await nc.publish("orders.new", b'{"ref": "D-1", "amount": 1}')

            async def delivered() -> bool:
                return (await nc.consumer("ORDERS", "bsp-orders")).delivered.stream_seq == 2
            await eventually(delivered, "D-1 handed to the draining engine's open pull")
        assert [r["reference"] for r in deals(tmp_path / "one.duckdb")] == ["D-0"]

        # another engine on the consumer gets D-1 at once (before: only once ack_wait, 60 s, ran out: the
        # stopped engine held it)
        async with running(prog, tmp_path / "two.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await eventually(lambda: value(ch.acked == 1), "D-1 consumed by the next engine", timeout=15)
        assert [r["reference"] for r in deals(tmp_path / "two.duckdb")] == ["D-1"]
