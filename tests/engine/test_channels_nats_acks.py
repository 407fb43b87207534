"""The acknowledgement path of `nats consume` on the wire: no in-progress ack (`+WPI`) for a message once
its verdict (`-NAK`, `+ACK`, `+TERM`) is sent.  Real nats-server -js on loopback, a real TCP counterpart,
a DuckDB ledger; a test client subscribed to the consumer's ack subjects sees what the engine sends."""
from __future__ import annotations

import asyncio
import functools

import orjson
import trio

from formats.framing import LengthPrefixFramer
from kit import compile_text, deals, running
from natskit import ack_delivery, book, bound, eventually, nats_client, nats_registry, nats_server, value
from test_channels_nats import CONSUME_ROUTE


async def refusing_counterpart(nursery: trio.Nursery, release: trio.Event) -> int:
    """A real TCP JSON counterpart answering each request `{"status": "NO"}` (the deal fails), the first
    ones only once ``release`` is set."""

    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while data := await stream.receive_some(65536):
                reqs = list(f.feed(data))
                await release.wait()
                await stream.send_all(b"".join(f.frame(b'{"status": "NO"}') for _ in reqs))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def test_no_in_progress_ack_after_a_nak_holds_back_the_redelivery(tmp_path, nursery, monkeypatch) -> None:
    """A progress round (every third of ack_wait) sends `+WPI` for each held message in turn; nats-py can
    suspend it between two of them (it waits for a flush when its outbound buffer is full: here each
    in-progress ack waits 300 ms after its publish).  A worker nak'ed both messages meanwhile; the round
    then sent `+WPI` for the second one after its `-NAK`, the server restarted its ack_wait, and it came
    back after ack_wait (3 s) instead of nak_delay (1 s).  A settled message gets no `+WPI` now."""
    from nats.aio.msg import Msg

    sent_progress = Msg.in_progress

    async def progress_then_flush(self: Msg) -> None:
        await sent_progress(self)
        await asyncio.sleep(0.3)          # the publish is in the buffer; nats-py waits for the flush

    monkeypatch.setattr(Msg, "in_progress", progress_then_flush)
    release = trio.Event()
    port = await refusing_counterpart(nursery, release)
    seen: list[tuple[float, tuple[int, int], bytes]] = []     # what the engine sent to its ack subjects

    async def on_ack(msg) -> None:
        seen.append((trio.current_time(), ack_delivery(msg.subject), bytes(msg.data)))
        if msg.data == b"+WPI":
            release.set()                 # the deals end (and are nak'ed) while the round waits

    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        await nc.call(nc.nc.subscribe, "$JS.ACK.ORDERS.bsp-orders.>", cb=on_ack)
        route = CONSUME_ROUTE.replace("nak_delay  = 100ms", "nak_delay  = 1s")
        assert route != CONSUME_ROUTE
        prog = compile_text(tmp_path, route.format(url=srv.url, ack_wait="3s", on_failed="nak", max_deliver=2),
                            registry=nats_registry())
        async with running(prog, tmp_path / "one.duckdb", registry=nats_registry(), overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch)
            for ref in ("W-1", "W-2"):
                await nc.publish("orders.new", orjson.dumps({"ref": ref, "amount": 1}))
            await eventually(lambda: value(ch.received == 2), "both messages fetched")
            await eventually(lambda: value(ch.naked == 4), "each nak'ed on its two deliveries", timeout=8)
    late = []
    for i, (_, delivery, data) in enumerate(seen):
        if data == b"+WPI" and any(d == delivery and v != b"+WPI" for _, d, v in seen[:i]):
            late.append(delivery)
    assert late == [], f"+WPI sent after the verdict for (stream seq, delivery) {late}: {seen}"
    for sseq in (1, 2):
        nak = min(t for t, d, v in seen if d == (sseq, 1) and v.startswith(b"-NAK"))
        back = min(t for t, d, _ in seen if d == (sseq, 2))
        assert back - nak < 2.0, (sseq, back - nak, seen)          # nak_delay 1 s, not ack_wait 3 s
    assert len(deals(tmp_path / "one.duckdb")) == 4
