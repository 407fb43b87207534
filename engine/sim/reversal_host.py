"""An ISO 8583 issuer that is down for purchases and answers reversals on demand, for the store-and-forward
tests (tests/txn/safkit.py) and benchmark (bench/bench_saf.py).

    host = ReversalHost(ack)                          # ack(nth reversal, message) -> bool, awaited
    port = await host.serve(nursery)

It never answers a 0200 (the engine's call times out and queues a reversal); it answers a reversal
(0420 / 0421 -> 0430, DE 39 "00") only when ``ack`` returns True - ``ack`` may wait (an event, a
latency) and decides per reversal.  ``code`` sets the 0430's DE 39: a string for every reversal (e.g.
"25": original not found, "12": reversal declined), or ``code(nth reversal, message) -> str``.  One task per request, so it suits a MUX channel (match = iso8583)."""
from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable

import trio

from formats.framing import LengthPrefixFramer
from formats.iso8583 import codec_for

CODEC = codec_for("iso8583_1987_ascii", validate=False)


class ReversalHost:
    """Over TCP, length2 framing.  ``held``: the reversals it is holding now (``ack`` not returned yet),
    ``peak``: the most it held at once; ``reversals`` / ``acked``: received / answered.  With ``keep``
    (the default) ``seen`` keeps every message received and ``at`` each reversal's (trio time, DE 11, MTI);
    a benchmark measuring memory passes ``keep=False``."""

    def __init__(self, ack: Callable[[int, dict], Awaitable[bool]], *, keep: bool = True,
                 code: str | Callable[[int, dict], str] = "00") -> None:
        self.ack = ack
        self.code = code
        self.keep = keep
        self.seen: list[dict] = []
        self.reversals = 0
        self.acked = 0
        self.saw_reversal = trio.Event()
        self.held = 0
        self.peak = 0
        self.at: list[tuple[float, str, str]] = []

    async def serve(self, nursery: trio.Nursery) -> int:
        ls = await nursery.start(functools.partial(trio.serve_tcp, self._conn, 0, host="127.0.0.1"))
        return ls[0].socket.getsockname()[1]

    async def _conn(self, stream: Any) -> None:
        f = LengthPrefixFramer(2)
        lock = trio.Lock()
        async with stream, trio.open_nursery() as n:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    n.cancel_scope.cancel()
                    return
                for p in f.feed(data):
                    n.start_soon(self._one, stream, f, lock, CODEC.decode(p))

    async def _one(self, stream: Any, f: Any, lock: trio.Lock, msg: dict) -> None:
        if self.keep:
            self.seen.append(msg)
        if msg["t"] not in ("0420", "0421"):
            return                                   # the 0200 is never answered: the engine times out
        self.reversals += 1
        if self.keep:
            self.at.append((trio.current_time(), msg.get("11"), msg["t"]))
        self.saw_reversal.set()
        self.held += 1
        self.peak = max(self.peak, self.held)
        try:
            if not await self.ack(self.reversals, msg):
                return
        finally:
            self.held -= 1
        self.acked += 1
        code = self.code(self.reversals, msg) if callable(self.code) else self.code
        async with lock:
            try:
                await stream.send_all(f.frame(CODEC.encode({**msg, "t": "0430", "39": code})))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
