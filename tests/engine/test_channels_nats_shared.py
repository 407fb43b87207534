"""Two engines on the same durable pull consumer (one says `durable`, the other `queue`) share its
messages like a queue group:
every message is handled by exactly one of them (real nats-server -js, real TCP counterparts,
a DuckDB ledger per engine)."""
from __future__ import annotations

from collections import Counter


from kit import compile_text, deals
from natskit import eventually, nats_client, nats_registry, nats_server, two_engines

N = 120

SHARED_ROUTE = """
format Order = json
format Post  = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    batch      = 4
    workers    = 1
    fetch_wait = 100ms
}}

channel book = tcp connect {{
    address = "127.0.0.1:9"
    framing = length4
    timeout = 5s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{
        ref      = msg.ref
        amount   = msg.amount
        currency = "EUR"
    }}
    call post = book as Post reply Ack {{
        ref    = msg.ref
        amount = msg.amount
    }} expect post.status == "OK"
}}
"""


async def test_two_engines_on_one_durable_consumer_handle_each_message_once(tmp_path, nursery) -> None:
    seen: dict[str, list[str]] = {"one": [], "two": []}

    def counterpart(engine: str):
        def answer(req: dict) -> dict:
            seen[engine].append(req["ref"])
            return {"status": "OK"}
        return answer

    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        prog = compile_text(tmp_path, SHARED_ROUTE.format(url=srv.url), registry=reg)
        # the second engine says it the NATS way: a queue group (the same shared durable consumer)
        prog2 = compile_text(tmp_path, SHARED_ROUTE.format(url=srv.url).replace(
            'durable    = "bsp-orders"', 'queue      = "bsp-orders"'), registry=reg)
        answers = (counterpart("one"), counterpart("two"))
        async with two_engines(tmp_path, nursery, (prog, prog2), answers, reg) as (ch1, ch2):
            for i in range(N):
                await nc.publish("orders.new", b'{"ref": "Q-%03d", "amount": 1.25}' % i)

            async def all_acked():
                info = await nc.consumer("ORDERS", "bsp-orders")
                return (ch1.acked + ch2.acked == N and info.num_ack_pending == 0 and info.num_pending == 0
                        and info)

            info = await eventually(all_acked, f"{N} messages acked across the two engines")
            assert info.num_redelivered == 0
    refs = {name: [r["reference"] for r in deals(tmp_path / f"{name}.duckdb")] for name in ("one", "two")}
    everything = refs["one"] + refs["two"]
    assert sorted(everything) == [f"Q-{i:03d}" for i in range(N)]          # each message: exactly one deal
    assert Counter(seen["one"] + seen["two"]) == Counter(everything)       # and exactly one call
    assert refs["one"] and refs["two"], "one engine took every message: the work was not shared"
    assert sorted(refs["one"]) == sorted(seen["one"]) and sorted(refs["two"]) == sorted(seen["two"])
    for name in ("one", "two"):
        assert {r["status"] for r in deals(tmp_path / f"{name}.duckdb")} == {"committed"}
