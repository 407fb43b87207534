"""nats consume bounds a message's size itself (``max_message``): one over it is not decoded nor run, but recorded
as a malformed deal with its dead letter (the reason names its size and stream sequence) and acked, so that the
server does not deliver it again and again.  Before, only the server's max_payload bounded it.  A real
nats-server on a loopback port."""
from __future__ import annotations

import duckdb
import pytest

from engine.channels.nats_consume import NatsConsumer
from engine.channels.options import ChannelConfigError
from kit import compile_text, deals, json_counterpart, running
from natskit import book, bound, collect, eventually, nats_client, nats_registry, nats_server, value

ROUTE = """
format Order = json
format Post  = json
format Ack   = json

channel orders = nats consume {{
    url         = "{url}"
    subject     = "orders.new"
    stream      = "ORDERS"
    durable     = "bsp-orders"
    fetch_wait  = 200ms
    nak_delay   = 100ms
    max_message = 1024
    on error reply Ack {{ status = "refused"  kind = error.kind }}
}}

channel book = tcp connect {{
    address = "127.0.0.1:9"
    framing = length4
    timeout = 10s
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
    reply Ack {{
        ref    = msg.ref
        status = post.status
    }}
}}
"""


def dead_letters(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT channel, error_kind, reason, octet_length(raw) FROM dead_letters").fetchall()
    finally:
        con.close()


async def test_a_message_over_max_message_is_dead_lettered_and_acked_not_run(tmp_path, nursery, caplog) -> None:
    calls: list[str] = []
    port = await json_counterpart(nursery, lambda req: calls.append(req["ref"]) or {"status": "OK", "ref": req["ref"]})
    reg = nats_registry()
    big = b'{"ref": "BIG-1", "amount": 1, "pad": "' + b"x" * 4000 + b'"}'
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg, overrides=book(port)) as sb:
            ch: NatsConsumer = sb.channel("orders")
            await bound(ch)
            await nc.call(nc.nc.subscribe, "orders.replies", cb=collect(replies := []))
            headers = {"Bsp-Reply-To": "orders.replies"}
            await nc.publish("orders.new", big, headers=headers)
            await nc.publish("orders.new", b'{"ref": "OK-1", "amount": 2}', headers=headers)

            async def both_acked():
                info = await nc.consumer("ORDERS", "bsp-orders")
                return info.num_ack_pending == 0 and info.num_pending == 0 and ch.acked == 2 and info

            info = await eventually(both_acked, "both messages acknowledged")
            assert info.num_redelivered == 0 and ch.naked == 0
            await eventually(lambda: value(len(replies) == 2), "2 replies published")
    assert calls == ["OK-1"]                                      # the big one never reached a route
    rows = {r["reference"]: r["status"] for r in deals(tmp_path / "l.duckdb")}
    assert rows.get("OK-1") == "committed" and len(rows) == 2, rows
    (letter,) = dead_letters(tmp_path / "l.duckdb")
    channel, kind, reason, raw_len = letter
    assert (channel, kind, raw_len) == ("orders", "malformed", len(big))        # the message kept as received
    assert f"message of {len(big)} bytes (stream ORDERS sequence 1, subject orders.new) is over max_message = " \
           f"1024" in reason, reason
    assert b'{"status":"refused","kind":"malformed"}' in replies
    assert f"stream seq 1: {len(big)} bytes, over max_message = 1024" in caplog.text


def test_max_message_is_a_positive_byte_count_defaulting_to_the_tcp_max_frame() -> None:
    from formats.framing import DEFAULT_MAX_FRAME
    base = {"url": "nats://127.0.0.1:1", "subject": "a", "stream": "A"}
    assert NatsConsumer("in", base).max_message == DEFAULT_MAX_FRAME == 1 << 20
    with pytest.raises(ChannelConfigError, match=r"channel in: option max_message: expected a positive whole number"):
        NatsConsumer("in", {**base, "max_message": 0})
