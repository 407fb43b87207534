"""Two guards of a shared deal-key store (`nats consume` with `keys`): a message deferred because another
engine holds its deal key is kept by the engine (in-progress acks), not handed back again and again, so
the wait costs no delivery and `max_deliver` cannot drop it; and an engine whose ledger was copied with
its `<ledger>.engine` file (two engines, one id) is refused while the other one lives.  Real nats-server
-js on loopback, real TCP counterparts, DuckDB ledgers."""
from __future__ import annotations

import logging
import shutil
from datetime import datetime, timezone

import orjson
import trio

from engine.channels.nats_engine_id import heartbeat_key
from engine.channels.nats_keys import bucket_key
from kit import compile_text, deals, json_counterpart, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, settled, value

ROUTE = """
format Order = json
format Ack   = json
channel orders = nats consume {{
    url = "{url}"  subject = "orders.new"  stream = "ORDERS"  durable = "bsp-orders"
    ack_wait = 1s  fetch_wait = 100ms  nak_delay = 100ms  max_deliver = 2
    keys = "BSP_KEYS"  key_lease = {lease}
}}
channel book = tcp connect {{ address = "127.0.0.1:9"  framing = length4  timeout = 10s }}
route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
    reply Ack {{ ref = msg.ref  by = "{engine}" }}
}}
"""


def program(tmp_path, url, lease="900ms", engine="one"):
    return compile_text(tmp_path, ROUTE.format(url=url, lease=lease, engine=engine), registry=nats_registry(),
                        name=f"{engine}.route")


def _claim(engine: str, state: str, **more) -> bytes:
    return orjson.dumps({"engine": engine, "deal": "D-OTHER", "state": state,
                         "at": datetime.now(timezone.utc).isoformat(), **more})


async def test_a_message_deferred_for_longer_than_max_deliver_naks_is_kept_not_dropped(tmp_path, nursery,
                                                                                      monkeypatch) -> None:
    """Another engine holds D-1's key for 3 s (its claim renewed every 250 ms, then its final state
    written).  The message has max_deliver = 2 and would come back every 300 ms (a third of key_lease):
    handed back each time, its second delivery was its last and the server dropped it (nobody ever ran
    or answered it).  Kept with in-progress acks, it is delivered at most twice (once handed back after
    2 x key_lease, its last delivery then kept) and answered as a duplicate once the key is done."""
    monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    calls: list[str] = []
    port = await json_counterpart(nursery, lambda req: calls.append(req["ref"]) or {"status": "OK"})
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        async with running(program(tmp_path, srv.url), tmp_path / "one.duckdb", registry=nats_registry(),
                           overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consuming")
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            bk = bucket_key("take_order|D-1")
            rev = await nc.call(kv.create, bk, _claim("other:1", "running"))
            await nc.publish("orders.new", b'{"ref": "D-1"}')
            t0 = trio.current_time()
            while trio.current_time() - t0 < 3.0:          # the other engine runs D-1 for 3 s
                await trio.sleep(0.25)
                rev = await nc.call(kv.update, bk, _claim("other:1", "running"), last=rev)
            await nc.call(kv.update, bk, _claim("other:1", "done", status="committed", code="00",
                                                reply=b'{"ref":"D-1","by":"other"}'.hex()), last=rev)
            await eventually(lambda: value(ch.acked == 1), "D-1 answered as a duplicate", timeout=10)
            await eventually(lambda: settled(nc), "the ack reached the consumer")    # processed apart from the flush
            assert ch.deferred >= 5 and ch.received <= 2, (ch.deferred, ch.received)
            t0 = trio.current_time()
        assert trio.current_time() - t0 < 2.0       # nothing kept: the drain is at once (not the 5 s grace)
    assert calls == []
    (row,) = deals(tmp_path / "one.duckdb")
    assert row["status"] == "duplicate" and "D-OTHER" in row["reason"], row


async def test_a_copied_ledger_engine_id_is_refused_while_the_other_engine_lives(tmp_path, nursery, caplog) -> None:
    """Engine one runs; engine two's ledger was copied from one's, `.engine` file included: the same id.
    Engine two sees one's heartbeat move, stops its channel naming the file to delete, and takes no
    message (before, it served, taking engine one's claims for its own).  With the file deleted it gets
    an id of its own and serves."""
    caplog.set_level(logging.ERROR, logger="bsp.channel")
    calls: list[str] = []
    port = await json_counterpart(nursery, lambda req: calls.append(req["ref"]) or {"status": "OK"})
    reg = nats_registry()

    def refused() -> str:
        return "\n".join(r.getMessage() for r in caplog.records if "stopped: EngineIdInUse" in r.getMessage())

    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        async with running(program(tmp_path, srv.url), tmp_path / "one.duckdb", registry=reg,
                           overrides=book(port)) as sb1:
            ch1 = sb1.channel("orders")
            await bound(ch1, "engine one consuming")
            copy = tmp_path / "two.duckdb.engine"
            shutil.copy(tmp_path / "one.duckdb.engine", copy)
            prog2 = program(tmp_path, srv.url, engine="two")
            async with running(prog2, tmp_path / "two.duckdb", registry=reg, overrides=book(port)) as sb2:
                ch2 = sb2.channel("orders")
                await eventually(lambda: value(bool(refused())), "engine two refused", timeout=10)
                why = refused()
                await nc.publish("orders.new", b'{"ref": "C-1"}')
                await eventually(lambda: value(ch1.acked == 1), "engine one took C-1")
                assert ch2.received == 0
            copy.unlink()
            async with running(prog2, tmp_path / "two.duckdb", registry=reg, overrides=book(port)) as sb2:
                ch2 = sb2.channel("orders")
                await bound(ch2, "engine two consuming with an id of its own")
                assert ch2.keys.engine != ch1.keys.engine and refused() == why
    assert "channel orders (nats consume) stopped: EngineIdInUse: channel orders: engine id " in why and "is in use by another running engine" in why
    assert f"delete {copy}" in why and "was this ledger copied" in why, why
    assert calls == ["C-1"]


async def test_a_heartbeat_left_by_a_crash_elsewhere_is_taken_over_after_key_lease(tmp_path, nursery) -> None:
    """The engine's previous run died on another host (its heartbeat is still in the bucket, not renewed):
    the engine waits key_lease to see it does not move, then serves under its id."""
    reg = nats_registry()
    port = await json_counterpart(nursery, lambda req: {"status": "OK"})
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = program(tmp_path, srv.url, lease="1s")
        async with running(prog, tmp_path / "one.duckdb", registry=reg, overrides=book(port)) as sb:
            await bound(sb.channel("orders"), "first run consuming")
            engine = sb.channel("orders").keys.engine
        kv = await nc.call(nc.js.key_value, "BSP_KEYS")
        await nc.call(kv.put, heartbeat_key(engine), orjson.dumps({"engine": engine, "nonce": "dead",
                                                                   "host": "elsewhere", "pid": 1}))
        t0 = trio.current_time()
        async with running(prog, tmp_path / "one.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await eventually(lambda: value(ch.keys.identity.revision is not None), "serving", timeout=10)
            waited = trio.current_time() - t0
            mine = orjson.loads((await nc.call(kv.get, heartbeat_key(engine))).value)
    assert mine["nonce"] == ch.keys.identity.nonce
    assert 1.0 <= waited < 5, waited


async def test_a_drain_hands_a_kept_deferred_message_back_at_once(tmp_path, nursery, monkeypatch) -> None:
    """A message kept deferred (its key held by another engine) is handed back (nak) when the engine stops,
    and the drain does not wait for it.  (It took 2 s, in about one run of three, before the channel's
    ack confirmation was shielded: nats-py then stopped answering the connection's PINGs and the
    heartbeat's delete waited for its timeout.)"""
    monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    port = await json_counterpart(nursery, lambda req: {"status": "OK"})
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        async with running(program(tmp_path, srv.url, lease="3s"), tmp_path / "one.duckdb",
                           registry=nats_registry(), overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consuming")
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            await nc.call(kv.create, bucket_key("take_order|D-2"), _claim("other:1", "running"))
            await nc.publish("orders.new", b'{"ref": "D-2"}')
            await eventually(lambda: value(ch.deferred == 1), "D-2 deferred")
            t0 = trio.current_time()
        drained = trio.current_time() - t0
        assert (ch.naked, ch.acked) == (1, 0)
        info = await nc.consumer("ORDERS", "bsp-orders")
        assert info.num_ack_pending == 1 and info.num_redelivered == 0      # handed back, waiting for another
    assert drained < 2.0, drained
    assert deals(tmp_path / "one.duckdb") == []
