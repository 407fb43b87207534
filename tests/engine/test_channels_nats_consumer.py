"""nats consume: the server's consumer follows the channel's settings, and one deleted on the server
(consumer or whole stream) is set up again instead of leaving the channel fetching nothing for ever."""
from __future__ import annotations

import functools
import logging

import trio

from kit import compile_text, deals, running
from natskit import bound, eventually, nats_client, nats_registry, nats_server, value

ROUTE = """
format Order = json

channel orders = nats consume {{
    url         = "{url}"
    subject     = "orders.new"
    stream      = "ORDERS"
    durable     = "bsp-orders"
    ack_wait    = {ack_wait}
    max_deliver = {max_deliver}
    fetch_wait  = 200ms
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


def program(tmp_path, url, *, ack_wait="30s", max_deliver=-1, name="orders.route"):
    return compile_text(tmp_path, ROUTE.format(url=url, ack_wait=ack_wait, max_deliver=max_deliver),
                        name=name, registry=nats_registry())


async def test_changed_consumer_settings_reach_the_server_consumer(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bsp.channel.nats")
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        async with running(program(tmp_path, srv.url), tmp_path / "l.duckdb", registry=reg) as sb:
            await bound(sb.channel("orders"), "consumer set up")
        first = (await nc.consumer("ORDERS", "bsp-orders")).config
        assert (first.ack_wait, first.max_deliver) == (30.0, -1)

        # the next start (a new version, a reload) asks for other settings on the same durable consumer
        changed = program(tmp_path, srv.url, ack_wait="5s", max_deliver=3, name="changed.route")
        async with running(changed, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up again")
            await nc.publish("orders.new", b'{"ref": "C-1", "amount": 1}')
            await eventually(lambda: value(ch.acked == 1), "C-1 consumed")
        now = (await nc.consumer("ORDERS", "bsp-orders")).config
        assert (now.ack_wait, now.max_deliver) == (5.0, 3)
    assert ("channel orders: consumer bsp-orders on stream ORDERS updated to the channel's settings: "
            "ack_wait 30.0 -> 5.0, max_deliver -1 -> 3") in caplog.text
    assert [r["reference"] for r in deals(tmp_path / "l.duckdb")] == ["C-1"]


async def test_deleted_consumer_or_stream_is_set_up_again(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="bsp.channel.nats")
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        async with running(program(tmp_path, srv.url), tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            await nc.publish("orders.new", b'{"ref": "G-1", "amount": 1}')
            await eventually(lambda: value(ch.acked == 1), "G-1 consumed")

            await nc.call(nc.js.delete_consumer, "ORDERS", "bsp-orders")    # an operator, a cleanup script
            await nc.publish("orders.new", b'{"ref": "G-2", "amount": 2}')
            await eventually(lambda: value("consumer ORDERS/bsp-orders is gone from" in caplog.text),
                             "the vanished consumer logged")

            async def acked_up_to(seq):
                try:
                    info = await nc.consumer("ORDERS", "bsp-orders")
                except Exception:          # not there (yet)
                    return False
                return info.ack_floor.stream_seq >= seq and info.num_ack_pending == 0

            await eventually(lambda: acked_up_to(2), "G-2 consumed by the consumer set up again")

            await nc.call(nc.js.delete_stream, "ORDERS")                        # the whole stream
            await eventually(lambda: value("stream ORDERS is gone from" in caplog.text), "the vanished stream logged")

            await eventually(lambda: acked_up_to(0), "stream and consumer created again")
            await nc.publish("orders.new", b'{"ref": "G-3", "amount": 3}')
            await eventually(lambda: acked_up_to(1), "G-3 consumed from the new stream")
    refs = [r["reference"] for r in deals(tmp_path / "l.duckdb")]
    assert {"G-1", "G-2", "G-3"} == set(refs) and refs.count("G-2") == 1 and refs.count("G-3") == 1



BUSY = """
format Order = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    batch      = 1
    workers    = 1
    fetch_wait = 200ms
    nak_delay  = 10ms
}}

channel desk = tcp connect {{
    address = "127.0.0.1:{desk}"
    framing = length2
    timeout = 30s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{
        ref      = msg.ref
        amount   = msg.amount
        currency = "EUR"
    }}
    call booked = desk as Order {{ ref = msg.ref }}
}}
"""


async def test_nothing_is_fetched_while_every_worker_is_busy_and_a_drain_leaves_the_rest_in_the_stream(
        tmp_path, nursery) -> None:
    """The one worker is busy: no further batch is fetched (it used to be fetched and held here, waiting
    for the worker, then nak'ed on a drain), so the next messages stay in the stream for any consumer;
    a drain then finishes the busy batch and hands nothing back."""
    from formats.framing import LengthPrefixFramer
    release = trio.Event()

    async def desk(stream):                 # answers only once released: the worker stays busy
        f = LengthPrefixFramer(2)
        async with stream:
            while data := await stream.receive_some(65536):
                frames = f.feed(data)
                await release.wait()
                await stream.send_all(b"".join(f.frame(b'{"ok": true}') for _ in frames))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, desk, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, BUSY.format(url=srv.url, desk=port), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            for i in (1, 2, 3):
                await nc.publish("orders.new", b'{"ref": "B-%d", "amount": 1}' % i)
            await eventually(lambda: value(ch.received >= 1), "the first batch fetched")
            await trio.sleep(0.6)               # three fetch_waits: a fetch would have come back by now
            info = await nc.consumer("ORDERS", "bsp-orders")
            assert (ch.received, info.num_ack_pending, info.num_pending) == (1, 1, 2), \
                (ch.received, info.num_ack_pending, info.num_pending)
            ch.stop_accepting()
            release.set()
            await eventually(lambda: value(ch.acked == 1), "the busy batch finished and acked")

            async def acked_there() -> bool:     # the server takes the ack a moment after the channel sent it
                return (await nc.consumer("ORDERS", "bsp-orders")).num_ack_pending == 0
            await eventually(acked_there, "the server has the ack")
            info = await nc.consumer("ORDERS", "bsp-orders")
            assert (ch.received, ch.naked, info.num_ack_pending, info.num_pending) == (1, 0, 0, 2)
    assert [r["reference"] for r in deals(tmp_path / "l.duckdb")] == ["B-1"]     # B-2 waits in the stream
