"""NATS channels under stress: a route slower than ack_wait, a stream that does not take the channel's
subject or was deleted, options the channel cannot work with, a server that forgets acks (SIGKILL).
Real nats-server -js on loopback, real TCP counterparts, real DuckDB ledgers."""
from __future__ import annotations

import functools
import logging

import orjson
import pytest
import trio

from formats.framing import LengthPrefixFramer
from kit import compile_text, deals, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, value

ROUTE = """
format Order = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    fetch_wait = 100ms
    nak_delay  = 100ms
    {extra}
}}

channel book = tcp connect {{
    address = "127.0.0.1:9"
    framing = length4
    timeout = 10s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ {key} ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
}}
"""


def program(tmp_path, url, *, extra="", key="", name="orders.route"):
    return compile_text(tmp_path, ROUTE.format(url=url, extra=extra, key=key), name=name, registry=nats_registry())


async def slow_counterpart(nursery: trio.Nursery, delay: float, calls: list[str]) -> int:
    """A real TCP JSON counterpart answering each request `{"status": "OK"}` after ``delay`` seconds."""

    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while data := await stream.receive_some(65536):
                for p in f.feed(data):
                    calls.append(orjson.loads(p)["ref"])
                    await trio.sleep(delay)
                    await stream.send_all(f.frame(b'{"status": "OK"}'))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def test_a_route_slower_than_ack_wait_is_not_redelivered_while_it_runs(tmp_path, nursery) -> None:
    """A deal still running when ack_wait passes: the channel tells the server it is in progress, so the
    message is not handed out again meanwhile (it was: the same call ran a second time, here or on
    another engine sharing the consumer, and a second deal row was written)."""
    calls: list[str] = []
    port = await slow_counterpart(nursery, 1.2, calls)
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        prog = program(tmp_path, srv.url, extra="ack_wait = 400ms\n    batch = 1")
        async with running(prog, tmp_path / "l.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            await nc.publish("orders.new", b'{"ref": "SLOW-1", "amount": 1}')
            await eventually(lambda: value(ch.acked >= 1), "SLOW-1 settled")
            await trio.sleep(0.5)                       # more than ack_wait: a redelivery would be here
            info = await nc.consumer("ORDERS", "bsp-orders")
            assert (ch.received, ch.acked, info.num_redelivered, info.num_ack_pending) == (1, 1, 0, 0)
    assert calls == ["SLOW-1"]
    assert [(r["reference"], r["status"]) for r in deals(tmp_path / "l.duckdb")] == [("SLOW-1", "committed")]


async def test_a_stream_that_does_not_take_the_subject_is_one_clear_error(tmp_path, caplog) -> None:
    """An existing stream whose subjects do not cover the channel's subject: nats-server (2.15) accepts
    such a consumer, which then never receives anything, and a publish to it fails with "no response
    from stream".  Both channels now refuse it at set-up, naming the channel, the stream, its subjects
    and the fix; a call made meanwhile fails `unreachable` with that text."""
    from nats.js.api import StreamConfig

    from kit import Client
    from test_channels_nats import PUBLISH_ROUTE

    caplog.set_level(logging.ERROR, logger="bsp.channel.nats")
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        await nc.call(nc.js.add_stream, StreamConfig(name="ORDERS", subjects=["orders.in.>"]))
        await nc.call(nc.js.add_stream, StreamConfig(name="PAY", subjects=["pay.in"]))
        async with running(program(tmp_path, srv.url), tmp_path / "c.duckdb", registry=reg) as sc:
            ch = sc.channel("orders")
            await eventually(lambda: value("does not take" in ch.setup_error), "the consumer's set-up refused",
                             timeout=5)
            assert not ch.ready.is_set()
        assert ch.setup_error == (
            f"channel orders: JetStream stream 'ORDERS' on {srv.url} does not take subject 'orders.new' (its "
            f"subjects: orders.in.>); use a subject the stream takes, another stream, or add the subject to "
            f"the stream (nats stream edit ORDERS --subjects ...)")
        with pytest.raises(Exception):                    # no consumer was made on the wrong stream
            await nc.consumer("ORDERS", "bsp-orders")

        pub = compile_text(tmp_path, PUBLISH_ROUTE.format(url=srv.url), name="pub.route", registry=reg)
        async with running(pub, tmp_path / "p.duckdb", registry=reg) as sp:
            await eventually(lambda: value("does not take" in sp.channel("bus")._setup_error),
                             "the publish channel's set-up refused", timeout=5)
            client = await Client.open(sp.channel("teller").port)
            with trio.fail_after(5):
                await client.send(b'{"ref": "W-1", "amount": 1}')
                (rsp,) = await client.recv_json(1)
            await client.aclose()
    assert rsp["error"] == "unreachable"
    assert "channel bus: JetStream stream 'PAY'" in rsp["text"] and "does not take subject 'pay.out'" in rsp["text"]
    assert "channel orders: JetStream stream 'ORDERS'" in caplog.text


async def test_publish_to_a_deleted_stream_says_which_and_what_to_do(tmp_path) -> None:
    """nats-py raises NoStreamResponseError (not NoRespondersError) when no stream takes a JetStream
    publish: the call failed with kind `failed` and "nats: no response from stream"; it is
    `unreachable`, naming the subject and the stream, as documented."""
    from kit import Client
    from test_channels_nats import PUBLISH_ROUTE

    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        pub = compile_text(tmp_path, PUBLISH_ROUTE.format(url=srv.url), name="pub.route", registry=reg)
        async with running(pub, tmp_path / "p.duckdb", registry=reg) as sp:
            client = await Client.open(sp.channel("teller").port)
            with trio.fail_after(5):
                await client.send(b'{"ref": "D-1", "amount": 1}')
                assert (await client.recv_json(1))[0]["seq"] == 1
                await nc.call(nc.js.delete_stream, "PAY")          # an operator, a lost store
                await client.send(b'{"ref": "D-2", "amount": 1}')
                (rsp,) = await client.recv_json(1)
            await client.aclose()
    assert rsp["error"] == "unreachable", rsp
    assert rsp["text"] == (f"call pub: channel bus: no JetStream stream takes subject pay.out (NATS at {srv.url}, "
                           f"subject pay.out, expected stream PAY); create the stream or check `stream` on the "
                           f"channel"), rsp


def test_stream_takes_subject_with_wildcards() -> None:
    from engine.channels.nats_bridge import stream_takes

    assert stream_takes("orders.>", "orders.new") and stream_takes("orders.>", "orders.*.x")
    assert stream_takes("orders.*", "orders.new") and stream_takes("orders.*", "orders.*")
    assert stream_takes("orders.new", "orders.new") and stream_takes(">", "a.b.c")
    assert not stream_takes("orders.>", "orders") and not stream_takes("orders.*", "orders.>")
    assert not stream_takes("orders.new", "orders.*") and not stream_takes("orders.in.>", "orders.new")
    assert not stream_takes("orders.*", "orders.a.b") and not stream_takes("orders.a", "orders.a.b")


CHECKED = """
format Order = json
channel orders = nats consume {{
    url     = "nats://127.0.0.1:4222"
    subject = "orders.new"
    stream  = "ORDERS"
    {option}
}}
route take {{
    receive from orders as Order
    deal ORDER {{ ref = msg.ref  amount = msg.amount  currency = "EUR" }}
}}
"""


@pytest.mark.parametrize("option, expected", [
    # the server takes 0 as "its default" (30s) and the channel then "updated" the consumer at every start
    ("ack_wait = 0s", "option ack_wait: expected a duration above 0"),
    ("fetch_wait = 0s", "option fetch_wait: expected a duration above 0"),      # every fetch: ValueError
    ("connect_timeout = 0s", "option connect_timeout: expected a duration above 0"),   # never connects
    ("max_deliver = 0", "option max_deliver: expected -1 (no limit) or a count from 1"),
    ("max_deliver = -5", "option max_deliver: expected -1 (no limit) or a count from 1"),
])
def test_bsp_check_refuses_nats_options_the_channel_cannot_work_with(tmp_path, option, expected) -> None:
    from dsl.load import compile_paths

    (tmp_path / "t.route").write_text(CHECKED.format(option=option))
    res = compile_paths([tmp_path / "t.route"], nats_registry())
    (d,) = [d for d in res.diagnostics if d.severity == "error"]
    assert (d.code, d.pos.line) == ("E055", 7), d
    assert d.message.startswith(f"channel orders: {expected}"), d.message


@pytest.mark.parametrize("option, expected", [
    ("timeout = 0s", "option timeout: expected a duration above 0"),
    ("dedup_window = 0s", "option dedup_window: expected a duration above 0"),
])
def test_bsp_check_refuses_nats_publish_options_the_channel_cannot_work_with(tmp_path, option, expected) -> None:
    from dsl.load import compile_paths
    from test_channels_nats import PUBLISH_ROUTE

    text = PUBLISH_ROUTE.format(url="nats://127.0.0.1:4222").replace("timeout = 2s", option)
    (tmp_path / "t.route").write_text(text)
    res = compile_paths([tmp_path / "t.route"], nats_registry())
    (d,) = [d for d in res.diagnostics if d.severity == "error"]
    assert d.code == "E055" and d.message.startswith(f"channel bus: {expected}"), d.message


async def test_acks_forgotten_by_a_killed_server_come_back_as_duplicates_of_a_keyed_deal(tmp_path, nursery) -> None:
    """A nats-server killed (SIGKILL) just after acknowledging forgets acks it had already taken (its
    consumer state is written behind): after the restart the messages come again.  With a deal `key`
    each comes back as a `duplicate` row, acked, and the counterpart is not called again."""
    from collections import Counter

    from kit import json_counterpart

    calls: list[str] = []

    def ok(req: dict) -> dict:
        calls.append(req["ref"])
        return {"status": "OK"}

    n = 100
    port = await json_counterpart(nursery, ok)
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        prog = program(tmp_path, srv.url, key="key = msg.ref", extra="ack_wait = 1s")
        async with running(prog, tmp_path / "l.duckdb", registry=reg, overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            for i in range(n):
                await nc.publish("orders.new", b'{"ref": "K-%03d", "amount": 1}' % i)
            await eventually(lambda: value(ch.acked == n), "all acked")
            srv.kill()
            await srv.stop()
            await srv.start()                                   # same port, same store

            async def settled():
                i = await nc.consumer("ORDERS", "bsp-orders")
                return i.num_pending == 0 and i.num_ack_pending == 0 and ch.acked == ch.received and i

            await eventually(settled, "everything settled after the restart")
    statuses = Counter(r["status"] for r in deals(tmp_path / "l.duckdb"))
    assert statuses["committed"] == n and set(statuses) <= {"committed", "duplicate"}, statuses
    assert sorted(calls) == [f"K-{i:03d}" for i in range(n)]                 # no call made twice
    # (how many acks the server forgot varies: 0 to all of them; see docs/channels-nats.md)


def test_a_nats_url_s_user_and_password_never_reach_a_message() -> None:
    """``nats://user:pass@host`` (or a token as the user) is how NATS credentials are often given: the link's
    shown address (logs, errors, ``bsp status``) and a refused url's error mask them."""
    from engine.channels.nats_bridge import NatsLink, parse_servers
    from engine.channels.options import ChannelConfigError

    link = NatsLink("orders", {"url": "nats://bsp:s3cr3t-pass@127.0.0.1:4222,nats://tok3n-abc@127.0.0.2:4222"})
    assert link.servers[0] == "nats://bsp:s3cr3t-pass@127.0.0.1:4222"          # kept for connecting
    assert link.url == "nats://***@127.0.0.1:4222,nats://***@127.0.0.2:4222"
    assert "s3cr3t" not in link.unreachable_text() and "tok3n" not in link.unreachable_text()
    with pytest.raises(ChannelConfigError) as bad:
        parse_servers("orders", "bsp:s3cr3t-pass@127.0.0.1:4222")
    assert "s3cr3t" not in str(bad.value) and "has no scheme" in str(bad.value)
