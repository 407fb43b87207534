"""Claims a crashed engine's previous run left in the shared key store (`nats consume` with `keys`), settled
by the restarted engine itself, so that another engine getting their messages does not flag them.  Found by
bench/chaos_nats.py: an engine SIGKILLed between claiming a key and logging its deal restarted within a
second, the message went to the other engine, which deferred it for key_lease and then flagged it 96
("which has not renewed its claim ... gone"), although no call had been made.  Real nats-server -js on
loopback, two engines (real switchboards, DuckDB ledgers, transaction logs), a real TCP counterpart."""
from __future__ import annotations

import socket
import subprocess
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
    url        = "{url}"
    subject    = "{subject}"
    stream     = "{stream}"
    durable    = "bsp-orders"
    batch      = 4
    ack_wait   = 1s
    fetch_wait = 100ms
    nak_delay  = 100ms
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
    reply Ack {{ ref = msg.ref  by = post.by  code = "00" }}
    on error reply Ack {{ ref = msg.ref  code = error.code }}
}}
"""


def dead_pid() -> int:
    """The pid of a process of this host that has ended (what a SIGKILLed engine leaves in its heartbeat)."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


async def test_a_restarted_engine_settles_the_claims_its_previous_run_left(tmp_path, nursery) -> None:
    """Engine one (its own stream, the same route and bucket as engine two) ran O-2 and stopped.  Then what a
    SIGKILL leaves: its heartbeat (a process gone) and, written after it, two claims `running` of that run:
    O-1, claimed and never logged (the kill came before the log record: no call made), and O-2, whose deal
    its log holds as committed (the final state did not reach the bucket).  Engine one restarts (well
    within key_lease) and engine two gets O-1 and O-2: O-1 runs there once, O-2 is a duplicate answered
    with engine one's reply.  Before, engine two deferred both for key_lease and then flagged each (96,
    "which has not renewed its claim ... gone"): O-1 never ran, O-2 had two deals for one key."""
    calls: list[tuple[str, str]] = []

    def answer(engine: str):
        def reply(req: dict) -> dict:
            calls.append((engine, req["ref"]))
            return {"status": "OK", "by": engine}
        return reply

    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        replies: list[bytes] = []

        async def got(msg) -> None:
            replies.append(bytes(msg.data))

        await nc.call(nc.nc.subscribe, "orders.replies", cb=got)
        prog1 = compile_text(tmp_path, ROUTE.format(url=srv.url, subject="orders.one", stream="ONE"),
                             name="one.route", registry=reg)
        prog2 = compile_text(tmp_path, ROUTE.format(url=srv.url, subject="orders.new", stream="ORDERS"),
                             name="two.route", registry=reg)
        p1, p2 = await json_counterpart(nursery, answer("one")), await json_counterpart(nursery, answer("two"))
        ledger1 = tmp_path / "one.duckdb"
        async with running(prog1, ledger1, registry=reg, overrides=book(p1)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "engine one consuming")
            await nc.publish("orders.one", b'{"ref": "O-2", "amount": 2}')
            await eventually(lambda: value(ch.acked == 1), "O-2 run by engine one")
            engine = ch.keys.engine
        (o2,) = deals(ledger1)
        kv = await nc.call(nc.js.key_value, "BSP_KEYS")
        now = datetime.now(timezone.utc).isoformat()
        await nc.call(kv.put, heartbeat_key(engine), orjson.dumps(
            {"engine": engine, "nonce": "0123456789abcdef", "host": socket.gethostname(), "pid": dead_pid(),
             "at": now}))
        await nc.call(kv.create, bucket_key("take_order|O-1"),
                      orjson.dumps({"engine": engine, "deal": "D-NEVER-LOGGED", "at": now, "state": "running"}))
        done = await nc.call(kv.get, bucket_key("take_order|O-2"))
        assert orjson.loads(done.value)["state"] == "done"
        await nc.call(kv.update, bucket_key("take_order|O-2"), orjson.dumps(
            {"engine": engine, "deal": o2["deal_id"], "at": now, "state": "running"}), last=done.revision)

        async with running(prog1, ledger1, registry=reg, overrides=book(p1)) as sb1, \
                running(prog2, tmp_path / "two.duckdb", registry=reg, overrides=book(p2)) as sb2:
            ch1, ch2 = sb1.channel("orders"), sb2.channel("orders")
            await bound(ch1, "engine one restarted")
            await bound(ch2, "engine two consuming")
            for ref in ("O-1", "O-2"):      # O-2 as engine one ran it (another amount would be a key conflict)
                await nc.publish("orders.new", b'{"ref": "%s", "amount": 2}' % ref.encode(),
                                 headers={"Bsp-Reply-To": "orders.replies"})
            # within 15 s, a quarter of key_lease (60s): nothing waits for a claim that never moves (a wait
            # for the lease fails here, with no timed assertion)
            await eventually(lambda: value(ch2.acked == 2), "O-1 and O-2 settled by engine two", timeout=15)
            await eventually(lambda: settled(nc), "nothing pending")
            with trio.move_on_after(30):            # both come (a hang guard: the assertion below says what came)
                while len(replies) < 2:
                    await trio.sleep(0.02)
    rows = deals(tmp_path / "two.duckdb")
    by_ref = {r["reference"]: r for r in rows}
    # the code answered (the reply's `code`, which `on error reply` fills with error.code: docs/ledger.md); until
    # 2026-11 a committed deal recorded none. O-2's duplicate carries its original's, run by engine one: the
    # code travels with the answer engine one settled in the shared key store
    assert (by_ref["O-1"]["status"], by_ref["O-1"]["response_code"]) == ("committed", "00"), by_ref["O-1"]
    assert (by_ref["O-2"]["status"], by_ref["O-2"]["response_code"]) == ("duplicate", "00"), by_ref["O-2"]
    assert by_ref["O-2"]["reason"].startswith(f"duplicate of deal {o2['deal_id']}"), by_ref["O-2"]
    assert sorted(calls) == [("one", "O-2"), ("two", "O-1")]          # each once, O-2 not again
    assert sorted(replies) == [b'{"ref":"O-1","by":"two","code":"00"}', b'{"ref":"O-2","by":"one","code":"00"}']
    assert [(r["status"], r["response_code"]) for r in deals(ledger1)] == [("committed", "00")]
