"""A flapping counterpart: it answers, then drops the connection with a call waiting, again and again.  The
channel reconnects at once each time, so it is never down: `bsp status` used to say `ready` with nothing
wrong while one call in two was lost (in doubt), and the log had one warning per drop.  Now the channel row
has `flapping` (connections lost with calls waiting in the last 60 s, calls lost), the engine is `degraded`
with a reason naming the channel and what to ask the counterpart, `bsp status --table` says FLAPPING, and the
log says the first drop in full and counts the next ones (engine/faultlog.py).  Real loopback sockets."""
from __future__ import annotations

import logging
from pathlib import Path

import orjson
import trio

from formats.framing import LengthPrefixFramer
from opskit import CALL

ROUTE = CALL.replace("    reply Req { ref = msg.ref  %(reply)s }\n",
                     "    reply Req { ref = msg.ref  %(reply)s }\n    on error reply Req { ref = msg.ref  code = error.code }\n")
from test_ops_degraded import _serve, _table


async def _flapper(nursery: trio.Nursery) -> int:
    """A JSON counterpart (length4) that answers the first request of each connection and closes the
    connection on the second, unanswered."""
    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        seen = 0
        async with stream:
            while data := await stream.receive_some(65536):
                for req in f.feed(data):
                    seen += 1
                    if seen == 2:
                        return
                    await stream.send_all(f.frame(orjson.dumps({"status": "OK", "ref": orjson.loads(req)["ref"]})))

    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    return listeners[0].socket.getsockname()[1]


async def test_a_counterpart_that_keeps_dropping_the_connection_degrades_the_engine(nursery, tmp_path: Path,
                                                                                   caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bsp.channel.tcp")
    port = await _flapper(nursery)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % {"back": port, "timeout": "5s", "reply": ""})
    engine, client = await _serve(route, tmp_path, nursery)
    tx = LengthPrefixFramer(2)
    front = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
    answers = []
    for i in range(7):                       # answered, lost, answered, lost, answered, lost, answered
        await front.send_all(tx.frame(orjson.dumps({"ref": f"r{i}"})))
        buf = b""
        with trio.fail_after(10):
            while not (frames := tx.feed(buf)):
                buf = await front.receive_some(65536)
        answers.append(frames[0])
    await front.aclose()
    assert [orjson.loads(a).get("code") for a in answers] == [None, "91", None, "91", None, "91", None], answers
    async with client:
        doc = (await client.get("/status")).json()
    back = doc["channels"]["back"]
    assert back["up"] is True
    assert back["flapping"] == {"lost_connections": 3, "lost_calls": 3, "window_s": 60}, back
    assert doc["state"] == "degraded", doc["reasons"]
    assert doc["reasons"] == [
        f"channel back (127.0.0.1:{port}) flapping: 3 connections lost in the last 60s with calls waiting (3 calls "
        f"failed in doubt, kind lost), reconnected each time; ask the counterpart why it drops connections (its log, a load "
        f"balancer or firewall idle timeout, a connection limit)"]
    table = _table({**doc, "ready": True})
    assert "DEGRADED (1 channel flapping)" in table and "FLAPPING 3 lost/60s" in table, table
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].startswith(f"channel back: connection to 127.0.0.1:{port} lost ("), lost
    engine.drain()
