"""Reload and channels: a changed channel drains (its in-flight exchange finishes on the old generation),
an added channel serves at once, a removed one stops, a changed outbound channel is replaced, a changed
table file reloads, and `--watch` reloads on a file change."""
from __future__ import annotations

import functools
from pathlib import Path

import orjson
import trio

from engine.ops.watch import watch_and_reload
from formats.framing import LengthPrefixFramer
from opskit import free_port, live, rows

CONFIG = """
format Req = json
table codes = csv "codes.csv" key code
channel front = tcp listen {
    address = "127.0.0.1:%(port)d"
    framing = length2
    max_frame = %(max_frame)d
}
channel back = tcp connect {
    address = "127.0.0.1:%(back)d"
    framing = length4
    timeout = 10s
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  tag = "%(tag)s"  text = codes["00"].text  via = post.via }
}
"""

SIDE = """
channel side = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route side_echo {
    receive from side as Req
    reply Req { ref = msg.ref  side = "yes" }
}
"""




async def _counterpart(nursery: trio.Nursery, gate: trio.Event, name: str, seen: list) -> int:
    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                frames = f.feed(data)
                seen.extend(frames)
                await gate.wait()
                await stream.send_all(b"".join(f.frame(orjson.dumps({"status": "OK", "via": name})) for _ in frames))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


class Conn:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream, self.tx, self.rx, self.got = stream, LengthPrefixFramer(2), LengthPrefixFramer(2), []

    @classmethod
    async def open(cls, port: int) -> "Conn":
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send(self, ref: str) -> None:
        await self.stream.send_all(self.tx.frame(orjson.dumps({"ref": ref})))

    async def recv(self) -> dict | None:
        while not self.got:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.got.extend(self.rx.feed(data))
        return orjson.loads(self.got.pop(0))


async def test_changed_channel_drains_added_serves_removed_stops(nursery, tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    open_gate, held_gate = trio.Event(), trio.Event()
    open_gate.set()
    seen_a: list = []
    seen_b: list = []
    back_a = await _counterpart(nursery, held_gate, "A", seen_a)
    back_b = await _counterpart(nursery, open_gate, "B", seen_b)
    port = free_port()
    route = tmp_path / "pay.route"
    route.write_text(CONFIG % dict(port=port, max_frame=4096, back=back_a, tag="1"))
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        v1 = eng.version
        old_front, old_back = eng.channels["front"], eng.channels["back"]
        c1 = await Conn.open(port)
        await c1.send("r1")                                  # held by counterpart A: in flight
        with trio.fail_after(5):
            while not seen_a:
                await trio.sleep(0.01)

        # front changes (same address, new max_frame), back moves to counterpart B, a channel is added
        route.write_text(CONFIG % dict(port=port, max_frame=2048, back=back_b, tag="2") + SIDE)
        with trio.fail_after(10):
            result = await eng.reload()
        assert result.ok, result.diagnostics
        assert result.plan["channels"]["changed"] == ["front", "back"]
        assert result.plan["channels"]["added"] == ["side"]
        assert eng.channels["front"] is not old_front and eng.channels["back"] is not old_back

        side = await Conn.open(eng.channels["side"].port)    # the added channel serves at once
        await side.send("s1")
        assert (await side.recv())["side"] == "yes"

        c2 = await Conn.open(port)                           # the same address, the new listener
        await c2.send("r2")
        assert (await c2.recv()) == {"ref": "r2", "tag": "2", "text": "ok", "via": "B"}

        held_gate.set()                                      # the in-flight exchange finishes on generation 1
        assert (await c1.recv()) == {"ref": "r1", "tag": "1", "text": "ok", "via": "A"}
        assert (await c1.recv()) is None                     # then the drained connection is closed cleanly

        # the added channel removed again: it stops accepting
        route.write_text(CONFIG % dict(port=port, max_frame=2048, back=back_b, tag="3"))
        result = await eng.reload()
        assert result.ok and result.plan["channels"]["removed"] == ["side"]
        assert (await side.recv()) is None
        await c2.send("r3")
        assert (await c2.recv())["tag"] == "3"               # front kept this time: same connection

        # a table file changed, route text the same: a reload picks up the new rows
        (tmp_path / "codes.csv").write_text("code,text\n00,fine\n")
        result = await eng.reload()
        assert result.ok and result.plan["tables"]["changed"] == ["codes"]
        await c2.send("r4")
        assert (await c2.recv())["text"] == "fine"
        for c in (c1, c2, side):
            await c.stream.aclose()
        with trio.fail_after(5):                              # generation 1 finished: its connector is closed
            while not old_back._closed:
                await trio.sleep(0.01)
    versions = dict(rows(ledger, "SELECT reference, config_version FROM deals WHERE route = 'pay'"))
    assert versions["r1"] == v1 and versions["r2"] != v1 and len(set(versions.values())) == 4


async def test_watch_reloads_on_file_change(nursery, tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    gate = trio.Event()
    gate.set()
    back = await _counterpart(nursery, gate, "A", [])
    route = tmp_path / "pay.route"
    route.write_text(CONFIG % dict(port=0, max_frame=4096, back=back, tag="1"))
    async with live([route], tmp_path / "l.duckdb") as eng:
        await nursery.start(watch_and_reload, eng, None, 0.05)
        c = await Conn.open(eng.channels["front"].port)
        (tmp_path / "codes.csv").write_text("code,text\n00,watched\n")      # a referenced file
        with trio.fail_after(10):
            while eng.current.number < 2:
                await trio.sleep(0.02)
        await c.send("w1")
        assert (await c.recv())["text"] == "watched"
        route.write_text(CONFIG % dict(port=0, max_frame=4096, back=back, tag="2"))   # the route file
        with trio.fail_after(10):
            while eng.current.number < 3:
                await trio.sleep(0.02)
        await c.send("w2")
        assert (await c.recv())["tag"] == "2"
        await c.stream.aclose()
