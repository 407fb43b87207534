"""A peer reconnecting in a storm on a `tcp listen` channel: at 100 connections from one address within a
minute, one warning names the address and what to do; the storm going on is not a line per connection.
Before, a storm under every cap was served without a word: nothing said whose connections they were.
Real loopback sockets, a real switchboard."""
from __future__ import annotations

import logging

import trio

from engine.channels.churn import STORM_CONNECTS
from kit import compile_text, running

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route echo {
    receive from front as Req
    reply Req { ref = msg.ref }
}
"""


async def _connects(port: int, n: int) -> None:
    for _ in range(n):
        s = await trio.open_tcp_stream("127.0.0.1", port)
        await s.aclose()


async def test_a_reconnect_storm_from_one_address_is_said_once_naming_it(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bsp.channel.tcp")
    async with running(compile_text(tmp_path, ROUTE), tmp_path / "l.duckdb") as sb:
        ch = sb.channel("front")
        ch.churn.window = 3600.0                     # the test's connections all fall in one window
        await _connects(ch.port, STORM_CONNECTS - 1)
        with trio.fail_after(10):                    # a guard: each connection reaches the channel
            while ch.connections < STORM_CONNECTS - 1:
                await trio.sleep(0.01)
        assert not [r for r in caplog.records if "storm" in r.getMessage()]
        await _connects(ch.port, 50)
        with trio.fail_after(10):
            while ch.connections < STORM_CONNECTS + 49:
                await trio.sleep(0.01)
    said = [r.getMessage() for r in caplog.records if "storm" in r.getMessage()]
    assert said == [f"channel front: {STORM_CONNECTS} connections from 127.0.0.1 within 3600s: a peer reconnecting "
                    f"in a storm (each is served; the rate is bsp_channel_accepted_total); ask that peer why it "
                    f"reconnects (a timeout shorter than the replies take, a crash loop), and if it also holds many "
                    f"connections open at once, cap them with max_connections_per_client"], said
    assert ch.churn.storms == 1
