"""NATS channels when things go wrong: ack only after commit, redelivery after an engine dies,
nak / term per option, a server down at start, a server restart."""
from __future__ import annotations

import os

import functools
import logging

import orjson
import trio

from formats.framing import LengthPrefixFramer
from kit import Client, compile_text, deals, json_counterpart, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, value
from test_channels_nats import PUBLISH_ROUTE, consume_program


async def held_counterpart(nursery: trio.Nursery, release: trio.Event, seen: list[str]) -> int:
    """A real TCP JSON counterpart that reads each request at once but answers only after ``release``."""

    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                reqs = [orjson.loads(p) for p in f.feed(data)]
                seen.extend(r["ref"] for r in reqs)
                await release.wait()
                await stream.send_all(b"".join(f.frame(orjson.dumps({"status": "OK"})) for _ in reqs))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


def ok(req: dict) -> dict:
    return {"status": "OK"}


async def test_message_is_acked_only_once_its_deal_is_committed(tmp_path, nursery) -> None:
    release, seen = trio.Event(), []
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        port = await held_counterpart(nursery, release, seen)
        reg = nats_registry()
        prog = consume_program(tmp_path, srv.url)
        async with running(prog, tmp_path / "ledger.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch)
            await nc.publish("orders.new", b'{"ref": "A-1", "amount": 5}')
            await eventually(lambda: value(seen == ["A-1"]), "request reached the counterpart")
            info = await nc.consumer("ORDERS", "bsp-orders")
            assert info.num_ack_pending == 1 and ch.acked == 0        # in the route, not committed: no ack
            assert sb.stats.total == 0
            release.set()

            async def acked():
                i = await nc.consumer("ORDERS", "bsp-orders")
                return i.num_ack_pending == 0 and ch.acked == 1

            await eventually(acked, "ack after the commit")
            assert sb.stats.committed == 1
    (row,) = deals(tmp_path / "ledger.duckdb")
    assert (row["reference"], row["status"]) == ("A-1", "committed")


async def test_engine_killed_before_ack_message_goes_to_the_next_engine(tmp_path, nursery) -> None:
    release, seen = trio.Event(), []
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        held = await held_counterpart(nursery, release, seen)
        reg = nats_registry()
        prog = consume_program(tmp_path, srv.url, ack_wait="1s")
        with trio.CancelScope() as kill:                       # engine 1: dies mid-deal
            async with running(prog, tmp_path / "one.duckdb", registry=reg, overrides=book(held)) as sb1:
                await bound(sb1.channel("orders"))
                await nc.publish("orders.new", b'{"ref": "K-1", "amount": 7}')
                await eventually(lambda: value(seen == ["K-1"]), "engine 1 working on K-1")
                kill.cancel()
        assert kill.cancelled_caught
        port = await json_counterpart(nursery, ok)             # engine 2, same durable consumer
        async with running(prog, tmp_path / "two.duckdb", registry=reg, overrides=book(port)) as sb:

            async def redelivered_and_acked():
                i = await nc.consumer("ORDERS", "bsp-orders")
                return i.num_ack_pending == 0 and sb.channel("orders").acked == 1 and i

            info = await eventually(redelivered_and_acked, "K-1 redelivered to engine 2 and acked")
            assert (info.delivered.stream_seq, info.delivered.consumer_seq) == (1, 2)   # one message, 2 deliveries
    assert [(r["reference"], r["status"]) for r in deals(tmp_path / "one.duckdb")] == []
    assert [(r["reference"], r["status"]) for r in deals(tmp_path / "two.duckdb")] == [("K-1", "committed")]


NO_CALL_CONSUME = """
format Order = json

channel orders = nats consume {{
    url         = "{url}"
    subject     = "orders.new"
    stream      = "ORDERS"
    durable     = "bsp-orders"
    nak_delay   = 100ms
    fetch_wait  = 200ms
    max_deliver = 3
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ ref = msg.ref  amount = msg.amount  currency = "EUR" }}
}}
"""


async def test_deal_not_recorded_is_naked_and_redelivered_up_to_max_deliver(tmp_path, nursery, caplog) -> None:
    """The ledger cannot write (its journal's descriptor swapped for a read-only one: EBADF, as a full disk
    gives ENOSPC) and nothing of the deal left the engine (its route has no call): the deal is not recorded,
    so the message is nak'ed and redelivered, up to max_deliver; once the disk takes writes again the next
    message is recorded and acked.  (A deal whose call went out is acked instead, its row written once the
    disk frees: tests/engine/test_channels_nats_full_disk.py.)"""
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        prog = compile_text(tmp_path, NO_CALL_CONSUME.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "ledger.duckdb", registry=reg, sync="journal") as sb:
            ch = sb.channel("orders")
            await bound(ch)
            jl = sb.ledger
            while not hasattr(jl, "_fd"):                    # the journaled ledger under any view
                jl = jl._ledger
            good, jl._fd = jl._fd, os.open(tmp_path / "read-only", os.O_RDONLY | os.O_CREAT)
            try:
                await nc.publish("orders.new", b'{"ref": "N-1", "amount": 1.50}')

                async def given_up():
                    i = await nc.consumer("ORDERS", "bsp-orders")
                    return ch.naked == 3 and i.num_ack_pending == 0 and i

                info = await eventually(given_up, "N-1 delivered 3 times (nak)")
                assert (info.delivered.stream_seq, info.delivered.consumer_seq) == (1, 3)
            finally:
                os.close(jl._fd)
                jl._fd = good
            await nc.publish("orders.new", b'{"ref": "N-2", "amount": 2.50}')

            async def acked():
                i = await nc.consumer("ORDERS", "bsp-orders")
                return ch.acked == 1 and i.num_ack_pending == 0

            await eventually(acked, "N-2 acked")
    # nothing of N-1 left the engine: no row (it stays in the stream for an operator), nothing to write later
    got = deals(tmp_path / "ledger.duckdb")
    assert [(r["reference"], r["status"]) for r in got] == [("N-2", "committed")]
    assert "journal: write works again after 3 failure(s)" in caplog.text    # the journal says it, once each way
    # the server drops N-1 after its last nak without a word: the channel says so, once
    given_up = [r.getMessage() for r in caplog.records if "max_deliver" in r.getMessage()]
    assert given_up == ["channel orders: message stream seq 1 on orders.new (stream ORDERS, consumer bsp-orders) "
                        "was delivered 3 times (max_deliver) without being settled; the server will not deliver "
                        "it again: it stays in the stream for an operator"]


async def test_an_amount_the_ledger_cannot_store_is_rejected_and_acked(tmp_path, nursery) -> None:
    """An amount with more decimals than the ledger keeps is rejected at the deal step (13), before any call:
    recorded, so the message is acked (before 2026-11-26 the counterpart was called and the deal then lost)."""
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        port = await json_counterpart(nursery, ok)
        reg = nats_registry()
        prog = consume_program(tmp_path, srv.url, max_deliver=3)
        async with running(prog, tmp_path / "ledger.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch)
            await nc.publish("orders.new", b'{"ref": "N-1", "amount": 1.000000001}')
            await nc.publish("orders.new", b'{"ref": "N-2", "amount": 2.50}')

            async def settled():
                i = await nc.consumer("ORDERS", "bsp-orders")
                return ch.acked == 2 and ch.naked == 0 and i.num_ack_pending == 0

            await eventually(settled, "both acked")
    got = sorted((r["reference"], r["status"], r["response_code"]) for r in deals(tmp_path / "ledger.duckdb"))
    assert got == [("N-1", "rejected", "13"), ("N-2", "committed", None)], got


async def test_failed_deal_term_or_nak_per_option(tmp_path, nursery, dead_port) -> None:
    dead = dead_port                                             # nobody listens: the call is unreachable
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        for on_failed, ledger in (("term", "term.duckdb"), ("nak", "nak.duckdb")):
            prog = consume_program(tmp_path, srv.url, on_failed=on_failed)
            async with running(prog, tmp_path / ledger, registry=reg, overrides=book(dead)) as sb:
                ch = sb.channel("orders")
                await bound(ch)
                await nc.publish("orders.new", b'{"ref": "F-%s", "amount": 1}' % on_failed.encode())
                if on_failed == "term":
                    await eventually(lambda: value(ch.termed == 1), "terminated")
                    await trio.sleep(0.3)                        # nak_delay is 100ms: would have come back
                    assert ch.received == 1
                else:
                    await eventually(lambda: value(ch.naked >= 2), "nak'ed and redelivered")
                    await nc.call(nc.js.delete_consumer, "ORDERS", "bsp-orders")   # stop the loop
    term_rows = deals(tmp_path / "term.duckdb")
    assert [(r["reference"], r["status"]) for r in term_rows] == [("F-term", "failed")]
    assert "unreachable" in term_rows[0]["reason"]
    nak_rows = deals(tmp_path / "nak.duckdb")
    assert len(nak_rows) >= 2 and {r["reference"] for r in nak_rows} == {"F-nak"}


async def test_server_down_at_start_clear_errors_then_recovers(tmp_path, nursery, caplog, held_port) -> None:
    caplog.set_level(logging.ERROR, logger="bsp.channel.nats")
    port = held_port.port
    url = f"nats://127.0.0.1:{port}"
    reg = nats_registry()
    pub = compile_text(tmp_path, PUBLISH_ROUTE.format(url=url), name="pub.route", registry=reg)
    async with running(pub, tmp_path / "pub.duckdb", registry=reg) as sb:
        client = await Client.open(sb.channel("teller").port)
        with trio.fail_after(5):
            await client.send(b'{"ref": "D-1", "amount": 1}')
            (rsp,) = await client.recv_json(1)
        await client.aclose()
    assert rsp["error"] == "unreachable"
    assert f"channel bus: NATS at {url} unreachable: " in rsp["text"] and "Connect call failed" in rsp["text"]
    assert f"channel bus: cannot connect to NATS at {url}" in caplog.text and "is nats-server running" in caplog.text

    caplog.clear()
    prog = consume_program(tmp_path, url)
    cp = await json_counterpart(nursery, ok)
    async with running(prog, tmp_path / "ledger.duckdb", registry=reg,
                       overrides=book(cp)) as sb:   # starts without the server
        ch = sb.channel("orders")
        await eventually(lambda: value(f"channel orders: cannot connect to NATS at {url}" in caplog.text),
                         "error logged")
        assert not ch.ready.is_set()
        async with nats_server(tmp_path / "nats", port=held_port.release()) as srv, nats_client(srv.url) as nc:
            await bound(ch, "consumer ready once the server is up")
            await nc.publish("orders.new", b'{"ref": "D-2", "amount": 1}')
            await eventually(lambda: value(ch.acked == 1), "D-2 consumed")
    assert [(r["reference"], r["status"]) for r in deals(tmp_path / "ledger.duckdb")] == [("D-2", "committed")]


async def test_server_restart_both_channels_reconnect(tmp_path, nursery) -> None:
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        cp = await json_counterpart(nursery, ok)
        cons = consume_program(tmp_path, srv.url)
        pub = compile_text(tmp_path, PUBLISH_ROUTE.format(url=srv.url), name="pub.route", registry=reg)
        async with running(cons, tmp_path / "c.duckdb", registry=reg,
                           overrides=book(cp)) as sc, \
                running(pub, tmp_path / "p.duckdb", registry=reg) as sp:
            ch = sc.channel("orders")
            bus = sp.channel("bus")
            await bound(ch)
            await nc.publish("orders.new", b'{"ref": "S-1", "amount": 1}')
            await eventually(lambda: value(ch.acked == 1), "S-1 consumed")
            client = await Client.open(sp.channel("teller").port)
            await client.send(b'{"ref": "S-P1", "amount": 1}')
            assert (await client.recv_json(1))[0]["seq"] == 1

            await srv.stop()
            await eventually(lambda: value(not bus.link.connected and not ch.link.connected), "both disconnected")
            await client.send(b'{"ref": "S-P2", "amount": 1}')        # while down: fails at once
            (down,) = await client.recv_json(1)
            assert down["error"] == "unreachable" and "reconnecting" in down["text"]
            await srv.start()                                        # same port, same store

            # nats-py reports a reconnection (reconnected_cb) just after it is connected again
            await eventually(lambda: value(bus.link.connected and ch.link.connected
                                        and bus.link.reconnects >= 1 and ch.link.reconnects >= 1),
                             "both reconnected")
            await nc.publish("orders.new", b'{"ref": "S-2", "amount": 2}')
            await eventually(lambda: value(ch.acked == 2), "S-2 consumed after the restart")
            await client.send(b'{"ref": "S-P3", "amount": 1}')
            (after,) = await client.recv_json(1)
            assert after == {"ref": "S-P3", "seq": 2, "duplicate": False}
            await client.aclose()
    assert [r["reference"] for r in deals(tmp_path / "c.duckdb")] == ["S-1", "S-2"]


KEYED_CONSUME = """
format Order = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    nak_delay  = 100ms
    fetch_wait = 200ms
    on_failed  = nak
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }}
}}
"""


async def test_a_repeated_deal_key_is_acked_not_redelivered(tmp_path, nursery) -> None:
    """A repeat of a keyed deal that ended without an answer (a consumer route has no reply) is a
    `duplicate`: settled, so acked.  The channel was told the exchange's own status (failed, kind
    duplicate) instead of the deal's, and with `on_failed = nak` the repeat came back every nak_delay,
    each time one more duplicate row, until max_deliver."""
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        prog = compile_text(tmp_path, KEYED_CONSUME.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "ledger.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch)
            await nc.publish("orders.new", b'{"ref": "K-1", "amount": 5}')
            await eventually(lambda: value(ch.acked == 1), "the original acked")
            await nc.publish("orders.new", b'{"ref": "K-1", "amount": 5}')
            await eventually(lambda: value(ch.acked + ch.naked >= 2), "the repeat settled")
            await trio.sleep(0.5)                    # nak_delay is 100ms: a nak'ed repeat would be back
            assert (ch.received, ch.acked, ch.naked) == (2, 2, 0)
            assert (sb.stats.committed, sb.stats.duplicate, sb.stats.failed) == (1, 1, 0)
    assert [(r["reference"], r["status"]) for r in deals(tmp_path / "ledger.duckdb")] == [
        ("K-1", "committed"), ("K-1", "duplicate")]
