"""nats consume with a shared key store (``keys``): the release of a freed key (a compare-and-set delete) whose
answer was lost must not delete the claim this engine makes next on the same key.  The delete landed (the
server applied it past the write's timeout), the message a nak brought back was claimed again here (the key
was free: ``kv.create`` succeeded, a new revision) and, until 2026-11-27, the release still pending for the
old deal was written again on the new claim's revision by the next round (``SharedKeys.keep``): the running
deal's claim was deleted and no longer held, so its final state was never written and another engine could
claim and run the key a second time.

A real nats-server; the lost answer is made by applying the delete from a second client (what the server did
with the engine's write), with the pending release as ``SharedKeys.finish`` leaves it after a timeout."""
from __future__ import annotations

import orjson

from kit import compile_text, running
from natskit import bound, nats_client, nats_registry, nats_server

ROUTE = """
format Order = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    fetch_wait = 100ms
    keys       = "BSP_KEYS"
    key_lease  = 60s
}}

channel book = tcp connect {{
    address = "127.0.0.1:9"
    framing = length4
    timeout = 5s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
}}
"""


async def test_a_lost_release_answer_does_not_delete_the_next_claim_of_the_key(tmp_path) -> None:
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            keys = ch.keys
            key = "take_order|R-1"
            bk = keys.name(key)
            (first,) = await keys.claim([(key, "D1")], 0)
            assert first.outcome == "claimed"
            rev = keys.held[bk][0]
            # D1 freed its key: SharedKeys.finish set its release pending; the delete reached the server, which
            # applied it, but its answer was lost (the round timed out: the release stays pending)
            keys.pending[bk] = {"deal": "D1", "freed": True}
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            await nc.call(kv.delete, bk, last=rev)
            # the nak brings the message back, here: the key is free, claimed again for the new deal
            (second,) = await keys.claim([(key, "D2")], 0)
            assert second.outcome == "claimed"
            await keys._write(list(keys.pending), final=True)        # the next round of SharedKeys.keep
            entry = await nc.call(kv.get, bk)
            assert orjson.loads(entry.value)["deal"] == "D2"          # D2's claim stands in the bucket
            assert bk in keys.held and keys.held[bk][1]["deal"] == "D2"   # and is still renewed, finished here
            assert bk not in keys.pending


async def test_a_lost_release_answer_then_another_engines_claim_is_no_takeover(tmp_path, caplog) -> None:
    """The release landed unanswered and another engine claimed the free key before the next round: the
    round's compare-and-set fails on that claim, which is no takeover of ours (it names no ``flagged``): the
    release is done, and no ERROR says that engine took the key over and flagged its copy."""
    import logging

    caplog.set_level(logging.ERROR, logger="bsp.channel.nats")
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            keys = ch.keys
            key = "take_order|R-2"
            bk = keys.name(key)
            (first,) = await keys.claim([(key, "D1")], 0)
            assert first.outcome == "claimed"
            keys.pending[bk] = {"deal": "D1", "freed": True}
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            await nc.call(kv.delete, bk, last=keys.held[bk][0])
            other = {"engine": "other-host:1234abcd", "deal": "E1", "run": "r", "at": "2026-11-27T09:00:00+00:00",
                     "state": "running"}
            await nc.call(kv.create, bk, orjson.dumps(other))          # the other engine's fresh claim
            await keys._write(list(keys.pending), final=True)
            assert bk not in keys.pending and bk not in keys.held      # the release is done
            assert orjson.loads((await nc.call(kv.get, bk)).value)["deal"] == "E1"    # its claim untouched
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors


async def test_a_lost_release_answer_is_settled_by_the_next_round(tmp_path) -> None:
    """Nobody claimed the key since: the next round's delete fails its compare-and-set on our own delete
    marker (nats-py raises a plain API error 10071 for a delete); it is recognised as ours and settled, not
    tried again every round for ever with the claim kept as held."""
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            keys = ch.keys
            key = "take_order|R-3"
            bk = keys.name(key)
            (first,) = await keys.claim([(key, "D1")], 0)
            assert first.outcome == "claimed"
            keys.pending[bk] = {"deal": "D1", "freed": True}
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            await nc.call(kv.delete, bk, last=keys.held[bk][0])
            await keys._write(list(keys.pending), final=True)
            assert bk not in keys.pending and bk not in keys.held
