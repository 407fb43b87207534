"""A counterpart that holds its answers until told (a gate): the deals that called it stay in flight, so a
test can reload while they are.  Real loopback TCP, length4-framed JSON.  Each request is counted by its
``ref`` (a side effect seen twice at the counterpart is a double payment)."""
from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

import orjson
import trio

from formats.framing import LengthPrefixFramer


class Gate:
    """``ordered``: answers each connection's requests in the order read (a first-in first-out channel);
    otherwise in the reverse order of arrival, once the gate opens (a ``match`` channel must pair them by key)."""

    def __init__(self, *, ordered: bool = True) -> None:
        self.ordered = ordered
        self.open = trio.Event()
        self.seen: Counter = Counter()
        self.arrived = 0
        self._arrival = trio.Condition()

    async def serve(self, nursery: trio.Nursery) -> int:
        listeners = await nursery.start(partial(trio.serve_tcp, self._handler, 0, host="127.0.0.1"))
        return listeners[0].socket.getsockname()[1]

    async def wait_for(self, n: int) -> None:
        """Until ``n`` requests have arrived in all (bounded by the caller's fail_after)."""
        async with self._arrival:
            while self.arrived < n:
                await self._arrival.wait()

    def _answer(self, req: dict[str, Any]) -> bytes:
        return orjson.dumps({"status": "OK", "ref": req["ref"], "via": req.get("via", "")})

    async def _handler(self, stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        lock = trio.Lock()
        tx, rx = trio.open_memory_channel(1000)
        async with stream, trio.open_nursery() as nursery:
            if self.ordered:
                nursery.start_soon(self._in_order, stream, lock, rx)
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    nursery.cancel_scope.cancel()
                    return
                for p in f.feed(data):
                    req = orjson.loads(p)
                    self.seen[req["ref"]] += 1
                    async with self._arrival:
                        self.arrived += 1
                        self._arrival.notify_all()
                    if self.ordered:
                        tx.send_nowait(f.frame(self._answer(req)))
                    else:
                        nursery.start_soon(self._later, stream, lock, f.frame(self._answer(req)), self.arrived)

    async def _in_order(self, stream: trio.SocketStream, lock: trio.Lock, rx: Any) -> None:
        async for frame in rx:
            await self.open.wait()
            await _send(stream, lock, frame)

    async def _later(self, stream: trio.SocketStream, lock: trio.Lock, frame: bytes, n: int) -> None:
        await self.open.wait()
        for _ in range(1000 - min(n, 999)):     # later arrivals answer first: out of order
            await trio.sleep(0)
        await _send(stream, lock, frame)


async def _send(stream: trio.SocketStream, lock: trio.Lock, frame: bytes) -> None:
    async with lock:
        try:
            await stream.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
