"""`workers` of a `nats consume` channel bounds the batches being processed, deferred messages run again
included: a retry of a deferred message takes a worker slot like a fetched batch, first come first
served, so neither side starves the other, and a message waiting for a slot keeps its in-progress acks.
Real nats-server -js on loopback, a real TCP counterpart counting the requests it holds at once, a DuckDB
ledger."""
from __future__ import annotations

import functools

import orjson
import trio

from engine.channels.nats_keys import bucket_key
from formats.framing import LengthPrefixFramer
from kit import compile_text, deals, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, settled, value
from test_channels_nats_keys_guard import _claim

ROUTE = """
format Order = json
format Ack   = json
channel orders = nats consume {{
    url = "{url}"  subject = "orders.new"  stream = "ORDERS"  durable = "bsp-orders"
    batch = 1  workers = 2  ack_wait = 1s  fetch_wait = 100ms  nak_delay = 100ms
    keys = "BSP_KEYS"  key_lease = 900ms
}}
channel book = tcp connect {{ address = "127.0.0.1:9"  framing = length4  timeout = 20s }}
route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
}}
"""


class Counting:
    """A TCP JSON counterpart answering each request `{"status": "OK"}` ``delay`` seconds after it came,
    in order (the `tcp connect` channel pipelines its calls on one connection); ``peak`` is the most
    requests it held unanswered at once: the calls in flight."""

    def __init__(self, delay: float) -> None:
        self.delay, self.calls, self.holding, self.peak = delay, [], 0, 0

    async def start(self, nursery: trio.Nursery) -> int:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, self._serve, 0, host="127.0.0.1"))
        return listeners[0].socket.getsockname()[1]

    async def _serve(self, stream: trio.SocketStream) -> None:
        send, recv = trio.open_memory_channel[float](100)
        f = LengthPrefixFramer(4)

        async def answer() -> None:
            async for came in recv:
                await trio.sleep_until(came + self.delay)
                self.holding -= 1
                await stream.send_all(f.frame(b'{"status": "OK"}'))

        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            while data := await stream.receive_some(65536):
                for p in f.feed(data):
                    self.calls.append(orjson.loads(p)["ref"])
                    self.holding += 1
                    self.peak = max(self.peak, self.holding)
                    await send.send(trio.current_time())
            nursery.cancel_scope.cancel()


async def test_deferred_retries_and_fetched_batches_share_the_workers(tmp_path, nursery, monkeypatch) -> None:
    """workers = 2, batch = 1.  D-1 and D-2 are deferred (another engine holds their keys); then their keys
    are freed and F-1..F-4 published at once, each call taking 1.2 s.  The retries of D-1 and D-2 ran
    beside the two workers' fetched batches: four calls at once for `workers = 2`.  Now at most two, the
    deferred messages are not held back behind the whole stream (run before F-4), and no message waiting
    for a slot longer than ack_wait (1 s) is redelivered (its in-progress acks go on)."""
    monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    counterpart = Counting(1.2)
    port = await counterpart.start(nursery)
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=nats_registry(), name="w.route")
        async with running(prog, tmp_path / "one.duckdb", registry=nats_registry(), overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consuming")
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            keys = [bucket_key("take_order|D-1"), bucket_key("take_order|D-2")]
            for bk in keys:
                await nc.call(kv.create, bk, _claim("other:1", "running"))
            for ref in ("D-1", "D-2"):
                await nc.publish("orders.new", b'{"ref": "%s"}' % ref.encode())
            await eventually(lambda: value(ch.deferred >= 2), "both deferred")
            for bk in keys:                          # freed: D-1 and D-2 run here at their next retry
                await nc.call(kv.delete, bk)
            for i in range(1, 5):
                await nc.publish("orders.new", b'{"ref": "F-%d"}' % i)
            await eventually(lambda: value(ch.acked == 6), "all six acknowledged", timeout=20)
            await eventually(lambda: settled(nc), "the acks reached the consumer")   # processed apart from the flush
            info = await nc.consumer("ORDERS", "bsp-orders")
            assert (ch.received, info.num_redelivered, info.num_ack_pending) == (6, 0, 0), \
                (ch.received, info.num_redelivered, info.num_ack_pending)
    calls = counterpart.calls
    assert sorted(calls) == ["D-1", "D-2", "F-1", "F-2", "F-3", "F-4"], calls
    assert counterpart.peak <= 2, (counterpart.peak, calls)
    assert calls.index("D-1") < calls.index("F-4") and calls.index("D-2") < calls.index("F-4"), calls
    assert sorted((r["reference"], r["status"]) for r in deals(tmp_path / "one.duckdb")) == \
        [(ref, "committed") for ref in ("D-1", "D-2", "F-1", "F-2", "F-3", "F-4")]
