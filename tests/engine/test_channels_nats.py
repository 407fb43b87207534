"""nats.publish / nats.consume against a real nats-server -js on a loopback port."""
from __future__ import annotations

import dataclasses

from decimal import Decimal

import pytest

from engine.channels.nats_consume import NatsConsumer
from engine.channels.nats_publish import NatsPublisher
from engine.channels.options import ChannelConfigError
from engine.runtime.binder import BindError
from engine.runtime.switchboard import Switchboard
from kit import Client, compile_text, deals, json_counterpart, running
from natskit import book, bound, collect, eventually, nats_client, nats_registry, nats_server, value

PUBLISH_ROUTE = """
format Req    = json
format PubAck = json

channel teller = tcp listen {{
    address = "127.0.0.1:0"
    framing = length2
}}

channel bus = nats publish {{
    url     = "{url}"
    subject = "pay.out"
    stream  = "PAY"
    timeout = 2s
}}

route send {{
    receive from teller as Req
    deal PAYMENT {{
        ref      = msg.ref
        amount   = msg.amount
        currency = "EUR"
    }}
    call pub = bus as Req reply PubAck {{
        ref    = msg.ref
        amount = msg.amount
    }}
    reply PubAck {{
        ref       = msg.ref
        seq       = pub.seq
        duplicate = pub.duplicate
    }}
    on error reply PubAck {{
        ref   = msg.ref
        error = error.kind
        text  = error.detail
    }}
}}
"""

CONSUME_ROUTE = """
format Order = json
format Post  = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    ack_wait   = {ack_wait}
    nak_delay  = 100ms
    fetch_wait = 200ms
    on_failed  = {on_failed}
    max_deliver = {max_deliver}
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


def consume_program(tmp_path, url, *, ack_wait="30s", on_failed="ack", max_deliver=-1):
    return compile_text(tmp_path, CONSUME_ROUTE.format(url=url, ack_wait=ack_wait, on_failed=on_failed,
                                                       max_deliver=max_deliver),
                        registry=nats_registry())


async def test_publish_jetstream_dedup_by_deal_reference(tmp_path, nursery) -> None:
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        prog = compile_text(tmp_path, PUBLISH_ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "ledger.duckdb", registry=reg) as sb:
            client = await Client.open(sb.channel("teller").port)
            await client.send(b'{"ref": "P-1", "amount": 10.50}', b'{"ref": "P-2", "amount": 3.00}')
            first = await client.recv_json(2)
            await client.send(b'{"ref": "P-1", "amount": 10.50}')        # the same deal again
            (again,) = await client.recv_json(1)
            await client.aclose()
        assert [(r["ref"], r["duplicate"]) for r in first] == [("P-1", False), ("P-2", False)]
        assert sorted(r["seq"] for r in first) == [1, 2]
        assert again == {"ref": "P-1", "seq": first[0]["seq"], "duplicate": True}
        assert await nc.stream_messages("PAY") == 2                     # stored once
        sub = await nc.call(nc.js.pull_subscribe, "pay.out", durable="check", stream="PAY")
        msgs = await nc.call(sub.fetch, 2, timeout=2)
        assert {m.headers["Nats-Msg-Id"] for m in msgs} == {"P-1", "P-2"}
        assert b'"amount":10.50' in msgs[0].data or b'"amount":10.5' in msgs[0].data
    rows = deals(tmp_path / "ledger.duckdb")
    assert [r["status"] for r in rows] == ["committed"] * 3


async def test_publish_request_reply(tmp_path, nursery) -> None:
    route = PUBLISH_ROUTE.replace('stream  = "PAY"', "mode    = request")
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:

        async def answer(msg):
            await msg.respond(b'{"seq": 7, "duplicate": false, "echo": ' + msg.data + b"}")

        await nc.call(nc.nc.subscribe, "pay.out", cb=answer)
        reg = nats_registry()
        prog = compile_text(tmp_path, route.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "ledger.duckdb", registry=reg) as sb:
            client = await Client.open(sb.channel("teller").port)
            await client.send(b'{"ref": "R-1", "amount": 1}')
            (rsp,) = await client.recv_json(1)
            await client.aclose()
    assert rsp == {"ref": "R-1", "seq": 7, "duplicate": False}


async def test_publish_request_without_responder_is_unreachable(tmp_path, nursery) -> None:
    route = PUBLISH_ROUTE.replace('stream  = "PAY"', "mode    = request")
    async with nats_server(tmp_path / "nats") as srv:
        reg = nats_registry()
        prog = compile_text(tmp_path, route.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "ledger.duckdb", registry=reg) as sb:
            client = await Client.open(sb.channel("teller").port)
            await client.send(b'{"ref": "R-2", "amount": 1}')
            (rsp,) = await client.recv_json(1)
            await client.aclose()
    assert rsp["error"] == "unreachable"
    assert "nobody answers on subject pay.out" in rsp["text"] and srv.url in rsp["text"]


async def test_consume_each_message_is_a_deal_acked_after_commit(tmp_path, nursery) -> None:
    seen: list[dict] = []

    def answer(req):
        seen.append(req)
        return {"status": "OK", "ref": req["ref"]}

    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        port = await json_counterpart(nursery, answer)
        prog = consume_program(tmp_path, srv.url)
        reg = nats_registry()
        async with running(prog, tmp_path / "ledger.duckdb", registry=reg, overrides=book(port)) as sb:
            ch: NatsConsumer = sb.channel("orders")
            await bound(ch, "consumer ready")
            await nc.call(nc.nc.subscribe, "orders.replies", cb=collect(replies := []))
            for i in range(5):
                await nc.publish("orders.new", b'{"ref": "O-%d", "amount": %d.25}' % (i, i),
                                 headers={"Bsp-Reply-To": "orders.replies"})

            async def all_acked():
                info = await nc.consumer("ORDERS", "bsp-orders")
                return info.num_ack_pending == 0 and info.num_pending == 0 and ch.acked == 5 and info

            info = await eventually(all_acked, "5 messages acknowledged")
            assert info.delivered.stream_seq == 5 and info.num_redelivered == 0
            await eventually(lambda: value(len(replies) == 5), "5 replies published")
    rows = deals(tmp_path / "ledger.duckdb")
    assert sorted(r["reference"] for r in rows) == [f"O-{i}" for i in range(5)]
    assert {r["status"] for r in rows} == {"committed"} and {r["channel"] for r in rows} == {"orders"}
    assert sorted(r["amount"] for r in rows) == [Decimal(f"{i}.25") for i in range(5)]
    assert sorted(r["ref"] for r in seen) == [f"O-{i}" for i in range(5)]
    assert sorted(replies) == sorted(b'{"ref":"O-%d","status":"OK"}' % i for i in range(5))


def test_config_errors_name_channel_and_option() -> None:
    with pytest.raises(ChannelConfigError, match=r"channel bus: option url: 'localhost:4222' has no scheme"):
        NatsPublisher("bus", {"url": "localhost:4222", "subject": "a.b"})
    with pytest.raises(ChannelConfigError, match=r"channel bus: option subject: a publish subject cannot hold "
                                                 r"wildcards"):
        NatsPublisher("bus", {"url": "nats://127.0.0.1:1", "subject": "a.>"})
    with pytest.raises(ChannelConfigError, match=r"channel in: option stream: expected a stream name"):
        NatsConsumer("in", {"url": "nats://127.0.0.1:1", "subject": "a.b", "stream": "A.B"})
    with pytest.raises(ChannelConfigError, match=r"channel in: option on_failed: expected one of ack, nak, term"):
        NatsConsumer("in", {"url": "nats://127.0.0.1:1", "subject": "a", "stream": "A", "on_failed": "retry"})
    with pytest.raises(ChannelConfigError, match=r"channel in: options durable \('x'\) and queue \('y'\) name "
                                                 r"two consumers.*give only one"):
        NatsConsumer("in", {"url": "nats://127.0.0.1:1", "subject": "a", "stream": "A", "durable": "x", "queue": "y"})
    with pytest.raises(ChannelConfigError, match=r"channel in: option queue: expected a consumer name"):
        NatsConsumer("in", {"url": "nats://127.0.0.1:1", "subject": "a", "stream": "A", "queue": "work.ers"})
    base = {"url": "nats://127.0.0.1:1", "subject": "a", "stream": "A"}
    assert NatsConsumer("in", {**base, "queue": "workers"}).durable == "workers"
    assert NatsConsumer("in", {**base, "durable": "w", "queue": "w"}).durable == "w"
    assert NatsConsumer("in", base).durable == "in"


def test_bad_option_fails_bsp_check_at_the_option(tmp_path) -> None:
    """What the channel refuses when it is built, `bsp check` refuses first, at the option's place."""
    from dsl.load import compile_paths
    (tmp_path / "test.route").write_text(PUBLISH_ROUTE.format(url="127.0.0.1:4222"))
    res = compile_paths([tmp_path / "test.route"], nats_registry())
    (d,) = [d for d in res.diagnostics if d.severity == "error"]
    assert (d.code, d.pos.line, d.pos.col) == ("E055", 11, 5)
    assert d.message.startswith("channel bus: option url")


def test_bad_option_is_a_bind_error_with_the_route_file_place(tmp_path) -> None:
    """A program compiled against a registry without the check (a plugin's, say) still fails to bind."""
    reg = nats_registry()
    good = compile_text(tmp_path, PUBLISH_ROUTE.format(url="nats://127.0.0.1:4222"), registry=reg)
    bad = dict(good.channels["bus"].options, url="127.0.0.1:4222")
    prog = dataclasses.replace(good, channels={**good.channels,
                                               "bus": dataclasses.replace(good.channels["bus"], options=bad)})
    with pytest.raises(BindError, match=r"test\.route:\d+:\d+: channel bus: option url"):
        Switchboard(prog, reg, ledger=None)


def test_docs_examples_compile(tmp_path) -> None:
    """Every ```route block of docs/channels-nats.md and each kind's COMPONENT example compiles."""
    import re
    from pathlib import Path

    from engine.channels import nats_consume, nats_publish

    doc = (Path(__file__).resolve().parents[2] / "docs" / "channels-nats.md").read_text()
    blocks = re.findall(r"```route\n(.*?)```", doc, re.S)
    assert len(blocks) == 5
    reg = nats_registry()
    for i, block in enumerate(blocks):
        compile_text(tmp_path, block, name=f"doc{i}.route", registry=reg)
    for comp in (nats_publish.COMPONENT, nats_consume.COMPONENT):
        for j, example in enumerate(comp.examples):
            compile_text(tmp_path, example, name=f"{comp.name}{j}.route", registry=reg)
        documented = set(re.findall(r"^\| `([a-z_]+)`", doc, re.M))
        assert set(comp.option_names) <= documented | {"connect_timeout", "reconnect_wait"}, comp.name
