"""What a shared deal-key store (`nats consume` with `keys`, a JetStream key-value bucket) holds of a deal
(docs/security.md, Shared deal keys): the key hashed (keyed with the field keyring), and in the final state the reply bytes as sent,
sealed with the field keyring.  Without a keyring the reply is kept as it was sent (a name or card number
in it readable by whoever can read the bucket): the engine says so when the channel starts.  Real
nats-server -js on loopback, a real TCP counterpart, a DuckDB ledger."""
from __future__ import annotations

import base64
import logging

import orjson
import pytest

from engine.channels.nats_keys import bucket_key
from engine.channels.nats_keys_names import keyed
from engine.fieldcrypt import keyring_from_list
from kit import compile_text, json_counterpart, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, value

NAME = "Zanzibar Quux"
KEYS = "k1:" + base64.b64encode(bytes(range(32))).decode()
ROUTE = """
format Order = json classify ["holder:personal"]
format Ack   = json classify ["holder:personal"]
channel orders = nats consume {{
    url = "{url}"  subject = "orders.new"  stream = "ORDERS"  durable = "bsp-orders"
    ack_wait = 1s  fetch_wait = 100ms  keys = "BSP_KEYS"
}}
channel book = tcp connect {{ address = "127.0.0.1:9"  framing = length4  timeout = 10s }}
route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = 1  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
    reply Ack {{ ref = msg.ref  holder = msg.holder }}
}}
"""


@pytest.mark.parametrize("keyring", [False, True], ids=["no keyring", "keyring"])
async def test_the_bucket_holds_the_reply_sealed_or_says_it_is_not(tmp_path, nursery, caplog, monkeypatch,
                                                                    keyring: bool) -> None:
    if keyring:
        monkeypatch.setenv("BSP_FIELD_KEYS", KEYS)
    else:
        monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
        monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    caplog.set_level(logging.WARNING, logger="bsp.channel")
    reg = nats_registry()
    port = await json_counterpart(nursery, lambda req: {"status": "OK"})
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            await nc.publish("orders.new", orjson.dumps({"ref": "O-1", "holder": NAME}))
            await eventually(lambda: value(ch.acked == 1), "the order settled")
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            name = keyed(keyring_from_list(KEYS, "test"), "k1")("take_order|O-1") if keyring else \
                bucket_key("take_order|O-1")
            stored = (await nc.call(kv.get, name)).value
    final = orjson.loads(stored)
    assert final["state"] == "done" and b"O-1" not in stored          # the key is hashed
    clear = NAME.encode() in stored or NAME.encode().hex().encode() in stored
    warned = [r.getMessage() for r in caplog.records if "no field keyring" in r.getMessage()]
    if keyring:
        assert not clear and not warned
    else:
        assert clear                     # by design: the reply bytes as sent, for a repeat on any engine
        assert warned and "orders" in warned[0] and "BSP_KEYS" in warned[0], warned
