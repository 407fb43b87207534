"""Deferred messages kept by `nats consume` with `keys` are run again each on its own: one whose key is
now free and whose deal runs long does not hold back another that is now a duplicate.  Real nats-server
-js on loopback, a real TCP counterpart, a DuckDB ledger; a test client subscribed to the consumer's ack
subjects sees when each message is acknowledged."""
from __future__ import annotations

import trio

from engine.channels.nats_keys import bucket_key
from kit import deals, running
from natskit import ack_delivery, book, bound, eventually, nats_client, nats_registry, nats_server, value
from test_channels_nats_keys_guard import _claim, program
from test_channels_nats_robust import slow_counterpart


async def test_a_long_deal_in_a_retry_does_not_hold_back_the_other_deferred_messages(tmp_path, nursery,
                                                                                      monkeypatch) -> None:
    """S-1 and D-1 are both deferred (another engine holds their keys, renewing its claims).  Then S-1's
    key is freed (its deal now runs here: a 2 s call) and D-1's is done (a duplicate: answered at once).
    The kept messages were run again as one batch, one after the other: D-1 was acknowledged only once
    S-1's call had ended, 2 s later.  Each is run again on its own now: D-1 is acknowledged at once."""
    monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    calls: list[str] = []
    port = await slow_counterpart(nursery, 2.0, calls)
    acked: dict[int, float] = {}                  # stream sequence -> when its +ACK was seen

    async def on_ack(msg) -> None:
        if msg.data in (b"", b"+ACK"):            # nats-py acks with an empty payload
            acked.setdefault(ack_delivery(msg.subject)[0], trio.current_time())

    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        await nc.call(nc.nc.subscribe, "$JS.ACK.ORDERS.bsp-orders.>", cb=on_ack)
        async with running(program(tmp_path, srv.url), tmp_path / "one.duckdb", registry=nats_registry(),
                           overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consuming")
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            keys = [bucket_key("take_order|S-1"), bucket_key("take_order|D-1")]
            revs = [await nc.call(kv.create, bk, _claim("other:1", "running")) for bk in keys]
            for ref in ("S-1", "D-1"):                  # stream sequences 1 and 2
                await nc.publish("orders.new", b'{"ref": "%s"}' % ref.encode())
            await eventually(lambda: value(ch.deferred >= 4), "both deferred, and run again once")
            revs = [await nc.call(kv.update, bk, _claim("other:1", "running"), last=rev)
                    for bk, rev in zip(keys, revs)]     # renewed: alive, not stale (key_lease 900 ms)
            await nc.call(kv.delete, keys[0], last=revs[0])      # S-1's key free: runs here next time
            await nc.call(kv.update, keys[1], _claim("other:1", "done", status="committed", code="00",
                                                     reply=b'{"ref":"D-1","by":"other"}'.hex()), last=revs[1])
            freed = trio.current_time()
            await eventually(lambda: value(len(acked) == 2), "both acknowledged", timeout=10)
    assert calls == ["S-1"]
    assert acked[2] - freed < 1.0, (acked, freed)                   # not after S-1's 2 s call
    assert acked[1] - freed >= 2.0, (acked, freed)
    assert sorted((r["reference"], r["status"]) for r in deals(tmp_path / "one.duckdb")) == \
        [("D-1", "duplicate"), ("S-1", "committed")]
