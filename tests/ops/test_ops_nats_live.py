"""nats consume under `bsp run` (the live engine: the channel is handed a forwarding handler that follows
reloads), also with `--record`: each message is settled by its own deal — committed and rejected acked,
failed by `on_failed` — across a reload, and recording does not mix up which message gets which verdict.

Real nats-server -js on a loopback port (engine.testing.nats_server), real sockets, real DuckDB ledger."""
from __future__ import annotations

import functools
from pathlib import Path

import trio

from engine.registry import default_registry
from engine.replay.tap import recording
from engine.testing.nats_server import eventually, nats_client, nats_server
from opskit import compile_file, live, rows

ROUTE = '''
format Order = json

channel orders = nats consume {
    url         = "%(url)s"
    subject     = "orders.new"
    stream      = "ORDERS"
    durable     = "bsp-orders"
    fetch_wait  = 100ms
    workers     = 1
    on_failed   = %(on_failed)s
    nak_delay   = 50ms
    max_deliver = %(max_deliver)s
}
channel back = tcp connect { address = "127.0.0.1:%(back)d"  framing = length2  timeout = %(timeout)s }

route take {
    receive from orders as Order when msg.ref != "F1"
    validate {
        msg.amount > 0 else reject "13" "amount must be positive"
    }
    deal %(deal)s { ref = msg.ref  amount = msg.amount  currency = "EUR" }
}

route forward {
    receive from orders as Order when msg.ref == "F1"
    deal FORWARD { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call sent = back as Order { ref = msg.ref }
}
'''


def route_text(url: str, *, deal: str = "ORDER", on_failed: str = "term", max_deliver: int = -1,
               back: int = 1, timeout: str = "200ms") -> str:
    return ROUTE % {"url": url, "deal": deal, "on_failed": on_failed, "max_deliver": max_deliver,
                    "back": back, "timeout": timeout}


async def _v(value: object) -> object:
    return value


async def test_nats_consume_under_bsp_run_settles_each_message_by_its_deal_across_a_reload(tmp_path: Path) -> None:
    route = tmp_path / "orders.route"
    ledger = tmp_path / "l.duckdb"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        route.write_text(route_text(srv.url))
        async with live([route], ledger) as eng:
            ch = eng.channels["orders"]
            await eventually(lambda: _v(ch.ready.is_set()), "consumer set up")
            await nc.publish("orders.new", b'{"ref": "C1", "amount": 5}')
            await nc.publish("orders.new", b'{"ref": "R1", "amount": -1}')
            await nc.publish("orders.new", b'{"ref": "F1", "amount": 7}')
            await eventually(lambda: _v(ch.acked == 2 and ch.termed == 1), "C1, R1 acked; F1 terminated")
            route.write_text(route_text(srv.url, deal="ORDER2"))
            with trio.fail_after(10):
                result = await eng.reload()
            assert result.ok and result.plan["channels"].get("changed", []) == [], result
            assert eng.channels["orders"] is ch            # kept: the same consumer, now on the new routes
            await nc.publish("orders.new", b'{"ref": "C2", "amount": 6}')
            await eventually(lambda: _v(ch.acked == 3), "C2 acked after the reload")
            assert ch.naked == 0
    got = rows(ledger, "SELECT deal_type, status, response_code FROM deals ORDER BY received_at")
    assert got == [("ORDER", "committed", None), ("take", "rejected", "13"), ("FORWARD", "failed", "91"),
                   ("ORDER2", "committed", None)], got


async def test_under_record_each_message_of_a_batch_gets_its_own_verdict(nursery, tmp_path: Path) -> None:
    """Two messages in one batch, dispatched one by one by the recording tap: F1 fails slowly (its
    counterpart never answers), C1 commits at once.  Their outcomes used to be listed in the order the
    deals finished, so F1 was acked (lost) and C1 nak'ed and run twice."""
    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some(65536):
                pass

    listeners = await nursery.start(functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    back = listeners[0].socket.getsockname()[1]
    route = tmp_path / "orders.route"
    ledger = tmp_path / "l.duckdb"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        route.write_text(route_text(srv.url, on_failed="nak", max_deliver=2, back=back, timeout="300ms"))
        registry = default_registry()
        program = compile_file(route, registry)
        with recording(program, registry, tmp_path / "cap.duckdb") as (reg, _):
            async with live([route], ledger, registry=reg) as eng:       # sets up stream and consumer
                await eventually(lambda: _v(eng.channels["orders"].ready.is_set()), "consumer set up")
            await nc.publish("orders.new", b'{"ref": "F1", "amount": 7}')
            await nc.publish("orders.new", b'{"ref": "C1", "amount": 5}')
            async with live([route], ledger, registry=reg) as eng:       # both waiting: one batch
                ch = eng.channels["orders"]
                await eventually(lambda: _v(ch.naked == 2 and ch.acked == 1), "F1 nak'ed twice, C1 acked")
                await trio.sleep(0.3)                                    # nothing more comes
                assert (ch.acked, ch.naked, ch.received) == (1, 2, 3)
    got = rows(ledger, "SELECT reference, status FROM deals ORDER BY reference, received_at")
    assert got == [("C1", "committed"), ("F1", "failed"), ("F1", "failed")], got


async def test_bsp_channel_up_follows_a_nats_consume_channel_s_server(tmp_path: Path) -> None:
    """``bsp_channel_up{channel}`` had a series for outbound channels only: an alert on it never saw a
    ``nats consume`` channel cut off from its server (it receives nothing meanwhile)."""
    from engine.ops.gauges import EngineMetrics

    route = tmp_path / "orders.route"
    async with nats_server(tmp_path / "nats") as srv:
        route.write_text(route_text(srv.url))
        async with live([route], tmp_path / "l.duckdb") as eng:
            ch = eng.channels["orders"]
            await eventually(lambda: _v(ch.ready.is_set()), "consumer set up")
            metrics = EngineMetrics()
            metrics.watch(eng)

            def up() -> list[bytes]:
                return [ln for ln in metrics.render().splitlines() if ln.startswith(b'bsp_channel_up{channel="orders"}')]
            assert up() == [b'bsp_channel_up{channel="orders"} 1.0']
            await srv.stop()
            await eventually(lambda: _v(up() == [b'bsp_channel_up{channel="orders"} 0.0']), "down while NATS is away")
            await srv.start()
            await eventually(lambda: _v(up() == [b'bsp_channel_up{channel="orders"} 1.0']), "up again", timeout=15)
