"""Outbound channel metrics through the ops path: a real engine (run_live + admin API) whose route calls a
loopback counterpart over `tcp connect`; /metrics counts every call sent, every reply received, each reply's
round trip in `bsp_channel_latency_seconds`, and a call the counterpart drops under `kind="lost"`; a call that
could not be sent (the counterpart refuses connections: `kind="unreachable"`) is not counted as sent."""
from __future__ import annotations

import re
from pathlib import Path

import orjson
import trio

from engine.channels.tcp_connect import TcpConnector
from engine.ledger import open_ledger
from engine.ops.live import LiveEngine
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import CALL, CLOSE, compile_file, json_counterpart, serve_with_admin

TOKEN = "ops-outbound-token-" + "q" * 20


async def _counterpart(nursery: trio.Nursery, seen: list[str]) -> int:
    """Answers every request OK, except `drop`: then it closes the connection without a reply."""
    def answer(req: dict) -> object:
        seen.append(req["ref"])
        return CLOSE if req["ref"] == "drop" else {"status": "OK", "via": "back"}
    return await json_counterpart(nursery, answer)


def _sample(text: str, name: str, labels: str) -> float | None:
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


async def test_outbound_calls_fill_sent_received_latency_and_errors(nursery, tmp_path: Path) -> None:
    seen: list[str] = []
    back = await _counterpart(nursery, seen)
    route = tmp_path / "pay.route"
    route.write_text(CALL % {"back": back, "timeout": "10s", "reply": "via = post.via"})
    engine, admin = await serve_with_admin(route, tmp_path, nursery, TOKEN)
    calls = 7
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    async with admin as client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        with trio.fail_after(10):
            for i in range(calls):                   # one call at a time: each is its own batch
                await stream.send_all(tx.frame(orjson.dumps({"ref": f"r{i}"})))
                got: list[bytes] = []
                while not got:
                    data = await stream.receive_some(65536)
                    assert data, f"front closed the connection before the reply to r{i}"
                    got.extend(rx.feed(data))
                assert orjson.loads(got[0]) == {"ref": f"r{i}", "via": "back"}

        text = (await client.get("/metrics")).text
        ch = 'channel="back"'
        assert _sample(text, "bsp_channel_sent_total", ch) == calls
        assert _sample(text, "bsp_channel_received_total", ch) == calls
        assert _sample(text, "bsp_channel_latency_seconds_count", ch) == calls
        assert _sample(text, "bsp_channel_latency_seconds_bucket", ch + ',le="+Inf"') == calls
        assert _sample(text, "bsp_channel_latency_seconds_sum", ch) > 0
        assert _sample(text, "bsp_channel_in_flight", ch) == 0
        assert _sample(text, "bsp_channel_errors_total", ch + ',kind="lost"') == 0      # there, at 0, for the alert
        # `bsp status` / `bsp top` read the same counts: requests out, replies in
        back_row = (await client.get("/status")).json()["channels"]["back"]
        assert (back_row["frames_in"], back_row["frames_out"]) == (calls, calls)

        # the counterpart drops one call: it is sent, gets no reply, and counts as a `lost` error
        await stream.send_all(tx.frame(orjson.dumps({"ref": "drop"})))
        with trio.fail_after(10):
            while engine.stats.failed < 1:
                await trio.sleep(0.01)
        text = (await client.get("/metrics")).text
        assert seen.count("drop") == 1
        assert _sample(text, "bsp_channel_errors_total", ch + ',kind="lost"') == 1
        assert _sample(text, "bsp_channel_sent_total", ch) == calls + 1
        assert _sample(text, "bsp_channel_received_total", ch) == calls
        assert _sample(text, "bsp_channel_latency_seconds_count", ch) == calls
        assert _sample(text, "bsp_channel_in_flight", ch) == 0
        back_row = (await client.get("/status")).json()["channels"]["back"]
        assert (back_row["frames_in"], back_row["frames_out"]) == (calls, calls + 1)
        # the inbound channel keeps its own meaning: frames in / replies out
        assert _sample(text, "bsp_channel_received_total", 'channel="front"') == calls + 1
        await stream.aclose()
    engine.drain()


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting to it is refused."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_call_that_could_not_be_sent_is_not_counted_as_sent(nursery, tmp_path: Path) -> None:
    # the biller is down (connection refused): each call fails `unreachable` and left nothing on the wire, so
    # `bsp_channel_sent_total` and the status row's `frames_out` (documented as requests sent) stay 0
    route = tmp_path / "pay.route"
    route.write_text(CALL % {"back": _closed_port(), "timeout": "10s", "reply": "via = post.via"})
    engine, admin = await serve_with_admin(route, tmp_path, nursery, TOKEN)
    calls = 3
    tx = LengthPrefixFramer(2)
    async with admin as client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        with trio.fail_after(10):
            for i in range(calls):                   # no `on error reply`: a failed deal is answered with nothing
                await stream.send_all(tx.frame(orjson.dumps({"ref": f"u{i}"})))
                while engine.stats.failed < i + 1:
                    await trio.sleep(0.01)
        text = (await client.get("/metrics")).text
        ch = 'channel="back"'
        assert _sample(text, "bsp_channel_errors_total", ch + ',kind="unreachable"') == calls
        assert not _sample(text, "bsp_channel_sent_total", ch), "a call refused before it left counted as sent"
        assert _sample(text, "bsp_channel_received_total", ch) in (None, 0)
        assert _sample(text, "bsp_channel_in_flight", ch) == 0
        back_row = (await client.get("/status")).json()["channels"]["back"]
        assert (back_row["frames_in"], back_row["frames_out"]) == (0, 0)
        assert back_row["up"] is False and back_row["failed_calls"] == calls
        await stream.aclose()
    engine.drain()


async def test_without_metrics_the_channel_is_not_wrapped(nursery, tmp_path: Path) -> None:
    back = await _counterpart(nursery, [])
    route = tmp_path / "pay.route"
    route.write_text(CALL % {"back": back, "timeout": "10s", "reply": "via = post.via"})
    registry = default_registry()
    program = compile_file(route, registry)
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        eng = LiveEngine(registry, ledger, load=lambda: ([route], {}), observer=None)
        async with trio.open_nursery() as inner:
            await inner.start(eng.run, program)
            ch = eng.channels["back"]
            assert isinstance(ch, TcpConnector)
            assert "request_many" not in vars(ch)        # the class's own method: no wrapper, no cost
            eng.drain()
