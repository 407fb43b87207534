"""A shared deal-key store (`nats consume` with `keys`) keeps each deal's fingerprint (engine/txn/fingerprint.py)
with its final state; its party and `match` digests are keyed with the field keyring (until 2026-11-27 they
were unkeyed BLAKE2b: a reader of the bucket could try account numbers against them).  A final state written
by an engine of before (unkeyed digests) is still compared by an upgraded engine: the same order again is a
duplicate, the same order id naming another account a key_conflict.  Real nats-server -js on loopback, real
TCP counterparts, a DuckDB ledger per engine."""
from __future__ import annotations

import base64

import orjson

from engine.txn import fingerprint, manager_for
from kit import compile_text, deals, json_counterpart, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, value

KEYS = "k1:" + base64.b64encode(bytes(range(32))).decode()
IBAN, OTHER, THIRD = "DE89370400440532013000", "DE44500105175407324931", "FR1420041010050500013M02606"
ROUTE = """
format Order = json
format Ack   = json
channel orders = nats consume {{
    url = "{url}"  subject = "orders.new"  stream = "ORDERS"  durable = "bsp-orders"
    ack_wait = 1s  fetch_wait = 100ms  keys = "BSP_KEYS"  key_lease = 2s
}}
channel book = tcp connect {{ address = "127.0.0.1:9"  framing = length4  timeout = 10s }}
route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR"  party = msg.product  match = msg.iban }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
    reply Ack {{ ref = msg.ref }}
}}
"""


async def test_a_final_state_written_before_the_upgrade_still_compares(tmp_path, nursery, monkeypatch) -> None:
    monkeypatch.setenv("BSP_FIELD_KEYS", KEYS)
    calls: list[str] = []
    reg = nats_registry()

    def answer(req: dict) -> dict:
        calls.append(req["ref"])
        return {"status": "OK"}

    def order(ref: str, iban: str, product: str = "P1") -> bytes:
        return orjson.dumps({"ref": ref, "iban": iban, "product": product})

    port = await json_counterpart(nursery, answer)
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "one.duckdb", registry=reg, overrides=book(port)) as sb:
            manager_for(sb.ledger).digests = fingerprint.UNKEYED     # the engine as it was before
            ch = sb.channel("orders")
            await bound(ch, "engine one consuming")
            await nc.publish("orders.new", order("O-1", IBAN))
            await eventually(lambda: value(ch.acked == 1), "engine one: the order settled")
        async with running(prog, tmp_path / "two.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")                                 # upgraded
            await bound(ch, "engine two consuming")
            for n, body in enumerate((order("O-1", IBAN), order("O-1", OTHER), order("O-2", THIRD, "P2")), 1):
                await nc.publish("orders.new", body)
                await eventually(lambda: value(ch.acked == n), f"engine two: message {n} settled")
        kv = await nc.call(nc.js.key_value, "BSP_KEYS")
        fps = []
        for name in await nc.call(kv.keys):
            entry = orjson.loads((await nc.call(kv.get, name)).value)
            if isinstance(entry, dict) and entry.get("fp"):
                fps.append(entry["fp"])
    assert calls == ["O-1", "O-2"]
    two = deals(tmp_path / "two.duckdb")
    assert [(d["reference"], d["status"]) for d in two] == [
        ("O-1", "duplicate"), ("O-1", "rejected"), ("O-2", "committed")]
    assert two[1]["response_code"] == "12"
    assert "match (a different value; not shown)" in two[1]["reason"]
    old = f"1|EUR|{fingerprint.unkeyed('P1')}|{fingerprint.unkeyed(IBAN)}"
    (new,) = [fp for fp in fps if fp != old]
    assert sorted(fps) == sorted([old, new])
    _, _, party, match = new.split("|")
    assert party.startswith("k1:") and match.startswith("k1:")
    assert fingerprint.unkeyed(THIRD) not in new and fingerprint.unkeyed("P2") not in new
