"""How a shared deal-key store (`nats consume` with `keys`) names deal keys in its bucket
(engine/channels/nats_keys_names.py): with a field keyring an HMAC-SHA256 under a key derived from the
ring, so that a reader of the bucket cannot find a card number by hashing guesses; the bucket says which
key (`_bsp_names`), so that an engine whose keyring was rotated still names keys alike; an engine that
cannot is refused, naming the key.  Real nats-server -js on loopback, real TCP counterparts, DuckDB
ledgers."""
from __future__ import annotations

import base64
import hashlib
import logging

import orjson

from engine.channels.nats_keys_names import MARKER
from kit import compile_text, deals, json_counterpart, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, value

K1 = base64.b64encode(bytes(range(32))).decode()
K2 = base64.b64encode(bytes(range(32, 64))).decode()
CARD = "4111111111111111"
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
    deal ORDER {{ key = msg.acct  ref = msg.ref  amount = 1  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
    reply Ack {{ ref = msg.ref }}
}}
"""


async def test_keyed_names_survive_a_rotation_and_a_foreign_keyring_is_refused(tmp_path, nursery, monkeypatch,
                                                                               caplog) -> None:
    """Engine one (keyring k1) runs the deal keyed by a card number: the bucket holds no SHA-256 of the
    deal key (a guess of the card number hashed does not find it; before, it did).  Engine two, whose
    keyring was rotated (k2 current, k1 kept), names the key as the bucket says (k1) and answers a repeat
    as a duplicate, calling nobody.  Engine three, whose keyring lacks k1, does not bind the bucket: it
    says which key it needs and takes no message."""
    caplog.set_level(logging.ERROR, logger="bsp.channel")
    calls: list[str] = []
    reg = nats_registry()

    def answer(req: dict) -> dict:
        calls.append(req["ref"])
        return {"status": "OK"}

    port = await json_counterpart(nursery, answer)
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        order = orjson.dumps({"ref": "O-1", "acct": CARD})
        for engine, keys in (("one", f"k1:{K1}"), ("two", f"k2:{K2},k1:{K1}")):
            monkeypatch.setenv("BSP_FIELD_KEYS", keys)
            async with running(prog, tmp_path / f"{engine}.duckdb", registry=reg, overrides=book(port)) as sb:
                ch = sb.channel("orders")
                await bound(ch, f"engine {engine} consuming")
                await nc.publish("orders.new", order)
                await eventually(lambda: value(ch.acked == 1), f"engine {engine}: the order settled")
        kv = await nc.call(nc.js.key_value, "BSP_KEYS")
        names = await nc.call(kv.keys)
        marker = orjson.loads((await nc.call(kv.get, MARKER)).value)
        guess = hashlib.sha256(f"take_order|{CARD}".encode()).hexdigest()

        monkeypatch.setenv("BSP_FIELD_KEYS", f"k3:{K2}")
        async with running(prog, tmp_path / "three.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await eventually(lambda: value("field key 'k1'" in ch.setup_error), "engine three refused")
            await nc.publish("orders.new", orjson.dumps({"ref": "O-2", "acct": "1"}))
            await eventually(lambda: value("field key 'k1'" in caplog.text), "logged")
            assert ch.received == 0 and not ch.ready.is_set()
    assert guess not in names and len([n for n in names if n != MARKER and not n.startswith("engine_")]) == 1
    assert (marker["names"], marker["kid"]) == ("hmac-sha256", "k1")
    assert calls == ["O-1"]
    assert [r["status"] for r in deals(tmp_path / "two.duckdb")] == ["duplicate"]
    text = ch.setup_error
    assert "channel orders: key-value bucket BSP_KEYS" in text and "not in this engine's field keyring" in text \
        and "keep key 'k1' in the ring" in text, text


async def test_without_a_keyring_the_names_are_unkeyed_and_the_engine_says_so(tmp_path, nursery, monkeypatch,
                                                                              caplog) -> None:
    monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    caplog.set_level(logging.WARNING, logger="bsp.channel")
    reg = nats_registry()
    port = await json_counterpart(nursery, lambda req: {"status": "OK"})
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "one.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consuming")
            await nc.publish("orders.new", orjson.dumps({"ref": "O-1", "acct": CARD}))
            await eventually(lambda: value(ch.acked == 1), "the order settled")
        kv = await nc.call(nc.js.key_value, "BSP_KEYS")
        names = await nc.call(kv.keys)
        marker = orjson.loads((await nc.call(kv.get, MARKER)).value)
    assert hashlib.sha256(f"take_order|{CARD}".encode()).hexdigest() in names
    assert marker == {"names": "sha256"}
    assert "deal keys are named there by their unkeyed SHA-256" in caplog.text
