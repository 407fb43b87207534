"""A `tcp connect` without `match` closes its connection when a call times out (replies matched in order can
no longer be trusted: engine/channels/tcp_connect.py ``_out_of_step``).  Each such close is counted: `bsp status`
has `resets` on the channel's row (and the table says so), /metrics has `bsp_channel_resets_total{channel}`.
A counterpart that answers no call in time stays down though each timeout opens a new connection.  Real
loopback sockets."""
from __future__ import annotations

import re
from pathlib import Path

import orjson
import trio

from formats.framing import LengthPrefixFramer
from opskit import CALL
from test_ops_degraded import _serve, _table

ROUTE = CALL.replace("    reply Req { ref = msg.ref  %(reply)s }\n",
                     "    reply Req { ref = msg.ref  %(reply)s }\n    on error reply Req { ref = msg.ref  code = error.code }\n")


async def _skipper(nursery: trio.Nursery) -> int:
    """A JSON counterpart (length4) answering OK, in order, every request but those whose ref starts with D."""
    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    for req in f.feed(data):
                        ref = orjson.loads(req)["ref"]
                        if not ref.startswith("D"):
                            await stream.send_all(f.frame(orjson.dumps({"status": "OK", "ref": ref})))
            except trio.BrokenResourceError:
                return

    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    return listeners[0].socket.getsockname()[1]


async def _ask(front: trio.SocketStream, ref: str) -> dict:
    tx = LengthPrefixFramer(2)
    await front.send_all(tx.frame(orjson.dumps({"ref": ref})))
    buf = b""
    with trio.fail_after(10):
        while not (frames := tx.feed(buf)):
            buf = await front.receive_some(65536)
    return orjson.loads(frames[0])


async def test_resets_are_in_status_and_metrics_and_a_silent_counterpart_stays_down(nursery, tmp_path: Path) -> None:
    port = await _skipper(nursery)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % {"back": port, "timeout": "1s", "reply": ""})
    engine, client = await _serve(route, tmp_path, nursery)
    front = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
    assert (await _ask(front, "K1")).get("code") is None
    assert (await _ask(front, "D1")).get("code") == "68"          # timed out: in doubt
    assert (await _ask(front, "D2")).get("code") == "68"
    await trio.sleep(0.2)                                         # reconnected meanwhile
    async with client:
        doc = (await client.get("/status")).json()
        back = doc["channels"]["back"]
        assert back["resets"] == 2 and back["connects"] == 3, back
        assert back["up"] is False and back["failed_calls"] == 2, back     # no reply since: down
        assert "2 resets" in _table({**doc, "ready": True})
        text = (await client.get("/metrics")).text
        m = re.search(r'^bsp_channel_resets_total\{channel="back"\} (\S+)$', text, re.M)
        assert m and float(m.group(1)) == 2.0, text
        assert (await _ask(front, "K2")).get("code") is None
        doc = (await client.get("/status")).json()
        assert doc["channels"]["back"]["up"] is True
    await front.aclose()
    engine.drain()
