"""A mainframe reconnecting in a storm: `bsp_channel_accepted_total{channel}` counts the connections a `tcp
listen` channel accepted and `bsp_channel_connections{channel}` those open now, so that a storm shows on a
graph and can be alerted on (before, only `bsp status` had `connections_total`; /metrics had nothing).
Real loopback sockets, a real engine and its admin API."""
from __future__ import annotations

import re
from pathlib import Path

import trio

from opskit import CALL
from test_ops_degraded import _refused_port, _serve


def _value(text: str, name: str, channel: str) -> float | None:
    m = re.search(rf'^{name}\{{channel="{channel}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


async def test_connections_accepted_and_open_are_metrics(nursery, tmp_path: Path) -> None:
    route = tmp_path / "pay.route"
    route.write_text(CALL % {"back": await _refused_port(), "timeout": "5s", "reply": ""})
    engine, client = await _serve(route, tmp_path, nursery)
    port = engine.current.channels["front"].port
    async with client:
        text = (await client.get("/metrics")).text
        assert _value(text, "bsp_channel_accepted_total", "front") == 0
        assert _value(text, "bsp_channel_connections", "front") == 0
        streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(40)]
        with trio.fail_after(10):                  # a guard against a hang: the engine accepts them all
            while engine.current.channels["front"].connections < 40:
                await trio.sleep(0.01)
        text = (await client.get("/metrics")).text
        assert _value(text, "bsp_channel_accepted_total", "front") == 40
        assert _value(text, "bsp_channel_connections", "front") == 40
        assert _value(text, "bsp_channel_accepted_total", "back") is None      # outbound: no such series
        for s in streams:
            await s.aclose()
        with trio.fail_after(10):
            while _value((await client.get("/metrics")).text, "bsp_channel_connections", "front") != 0:
                await trio.sleep(0.02)
        for _ in range(10):                        # ten more, each closed at once
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.aclose()
        with trio.fail_after(10):
            while engine.current.channels["front"].connections < 50:
                await trio.sleep(0.01)
        assert _value((await client.get("/metrics")).text, "bsp_channel_accepted_total", "front") == 50
    engine.drain()
