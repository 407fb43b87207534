"""nats consume while its NATS server is away: said once (not a warning every reconnection attempt), and shown
by ``bsp status`` (the channel ``up`` false, the engine degraded naming it), until it is back."""
from __future__ import annotations

import logging

from engine.ops.health import engine_state
from kit import compile_text, running
from natskit import bound, eventually, nats_registry, nats_server, value

ROUTE = """
format Order = json

channel orders = nats consume {{
    url            = "{url}"
    subject        = "orders.new"
    stream         = "ORDERS"
    durable        = "bsp-orders"
    fetch_wait     = 200ms
    reconnect_wait = 100ms
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ ref = msg.ref  amount = msg.amount  currency = "EUR" }}
}}
"""


async def test_a_nats_outage_is_said_once_and_shown_by_the_consume_channel_s_status(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bsp.channel.nats")
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv:
        prog = compile_text(tmp_path, ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            assert ch.status() == {"connected": True, "up": True, "acked": 0, "naked": 0, "termed": 0,
                                   "deferred": 0}
            await srv.stop()
            await eventually(lambda: value(ch.link.refused.count >= 12), "a dozen reconnection attempts failed")
            row = ch.status()
            assert (row["up"], row["connected"]) == (False, False), row
            assert row["down_since"].endswith("Z") and "Connect call failed" in row["last_error"], row
            assert row["last_error"].startswith(f"cannot reach NATS at {srv.url}: ConnectionRefusedError"), row
            state, reasons = engine_state({"orders": {"address": ch.address, **row}}, True)
            assert state == "degraded"
            assert reasons == [f"channel orders ({ch.address}) down since {row['down_since']}: receives nothing "
                               f"meanwhile; last error: {row['last_error']}"]
            during = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            await srv.start()
            await eventually(lambda: value(ch.status()["up"]), "reconnected")
    said = [m for m in during if m.startswith("channel orders:")]
    # before: "channel orders: NATS error: ConnectionRefusedError ..." at every attempt (every 100 ms)
    # at most: the cut (EOF), disconnected, a fetch that failed then, connection refused
    assert len(said) <= 4, said
    assert any(m.startswith(f"channel orders: disconnected from NATS at {srv.url}; reconnecting [outage start:")
               for m in said), said
    assert any(m.startswith(f"channel orders: cannot reach NATS at {srv.url}: ConnectionRefusedError") for m in said)
    assert any(r.getMessage().startswith(f"channel orders: reconnected to NATS at {srv.url} [outage end:")
               for r in caplog.records if r.levelno == logging.WARNING)


PUBLISH = """
format Req = json
channel front = tcp listen {{
    address = "127.0.0.1:0"
    framing = length2
}}
channel bus = nats publish {{
    url            = "{url}"
    subject        = "pay.out"
    mode           = request
    reconnect_wait = 100ms
}}
route pay {{
    receive from front as Req
    deal PAY {{ ref = msg.ref  amount = 1.00  currency = "CNY" }}
    call p = bus as Req reply Req {{ ref = msg.ref }}
    reply Req {{ ref = msg.ref }}
}}
"""


async def test_a_nats_publish_channel_cut_off_from_its_server_is_down_before_any_call_fails(tmp_path) -> None:
    """The server goes away while no call is made: `bsp status` says the publish channel is down (since the
    cut, why), the engine degraded, at once; before, it read `up` (and `connected: false` even while
    connected) until a call failed."""
    from engine.ops.health import outbound_health
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv:
        prog = compile_text(tmp_path, PUBLISH.format(url=srv.url), registry=reg)
        async with running(prog, tmp_path / "l.duckdb", registry=reg) as sb:
            ch = sb.channel("bus")
            await eventually(lambda: value(ch.link.connected), "connected")
            assert outbound_health(ch) == {"up": True, "circuit": "closed"}
            # (bsp status: connected: false while connected, before)
            assert getattr(ch, "_connected", False) is True and outbound_health(ch) == {"up": True, "circuit": "closed"}
            await srv.stop()
            await eventually(lambda: value(not outbound_health(ch)["up"]), "down without a call")
            h = outbound_health(ch)
            assert h["failed_calls"] == 0 and h["down_since"] is not None, h
            assert "NATS" in h["last_error"], h
            # and once a reconnection attempt failed (every reconnect_wait): its cause, saying what and where;
            # before, the bare exception ("ConnectionRefusedError: [Errno 111] ..."), naming neither NATS nor the
            # server, as soon as the first attempt failed (read before it, "not connected to NATS at ...")
            await eventually(lambda: value("ConnectionRefusedError" in ch.link.last_error), "a reconnection refused")
            h = outbound_health(ch)
            assert h["last_error"].startswith(f"cannot reach NATS at {srv.url}: ConnectionRefusedError"), h
            await srv.start()
            await eventually(lambda: value(outbound_health(ch)["up"]), "up again once reconnected", timeout=20)
