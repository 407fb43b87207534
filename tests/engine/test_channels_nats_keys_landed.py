"""nats consume with a shared key store (``keys``): a write to the bucket whose answer was lost (the server
frozen or killed past the write's timeout, having applied it) is not taken for another engine's takeover.
Before, the next renewal of the claim failed its compare-and-set on the revision our own lost write had moved,
was logged as an ERROR (``the claim of deal ... was taken over by another engine``), and the claim was
dropped: the deal's final state was never written, so its key stayed ``running`` in the bucket for another
engine to flag after ``key_lease`` (found scaling out: the same false ERROR after NATS was killed under load)."""
from __future__ import annotations

import logging

import orjson
import trio

from engine.channels.nats_keys import bucket_key
from formats.framing import LengthPrefixFramer
from kit import compile_text, running
from natskit import bound, eventually, nats_client, nats_registry, nats_server, value

ROUTE = """
format Order = json
format Ack   = json

channel orders = nats consume {{
    url             = "{url}"
    subject         = "orders.new"
    stream          = "ORDERS"
    durable         = "bsp-orders"
    fetch_wait      = 100ms
    connect_timeout = 500ms
    keys            = "BSP_KEYS"
    key_lease       = 1500ms
}}

channel book = tcp connect {{
    address = "127.0.0.1:{port}"
    framing = length4
    timeout = 30s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
}}
"""


async def test_a_renewal_whose_answer_was_lost_is_not_a_takeover(tmp_path, nursery, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="bsp.channel.nats")
    called, release = trio.Event(), trio.Event()

    async def host(stream) -> None:                 # answers once released: the claim is held meanwhile
        f = LengthPrefixFramer(4)
        async with stream:
            while data := await stream.receive_some(65536):
                for _ in f.feed(data):
                    called.set()
                    await release.wait()
                    await stream.send_all(f.frame(b'{"status": "OK"}'))

    listeners = await nursery.start(trio.serve_tcp, host, 0)
    port = listeners[0].socket.getsockname()[1]
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url, port=port), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            await nc.publish("orders.new", b'{"ref": "L-1", "amount": 1}')
            with trio.fail_after(10):
                await called.wait()
            srv.freeze()        # renewals (every 0.5 s) sent now wait in the server's socket past their 1 s timeout
            await trio.sleep(2.5)
            srv.thaw()          # ... and are applied: the claim's revision moves without the engine knowing
            await trio.sleep(1.5)                   # three renewal rounds on the moved revision
            release.set()
            await eventually(lambda: value(ch.acked == 1), "L-1 settled")
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")

            async def final() -> object:
                return orjson.loads((await nc.call(kv.get, bucket_key("take_order|L-1"))).value)["state"] == "done"
            await eventually(final, "L-1's final state in the bucket")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors
