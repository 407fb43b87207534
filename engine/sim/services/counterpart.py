"""A counterpart system on loopback: decodes each request with the route's own
request format, answers with ``Counterpart.answer`` encoded in the reply
format, in order, one write per received chunk.  ``stall=True`` makes it read
and never answer (a hung counterpart, for timeout tests).
"""
from __future__ import annotations

import functools
import logging
from typing import Any

import trio

from formats.errors import FormatError
from formats.framing import make_framer

log = logging.getLogger("bsp.sim.counterpart")


class CounterpartSim:
    def __init__(self, name: str, request_codec: Any, reply_codec: Any, answer: Any, *,
                 framing: str = "length4") -> None:
        self.name = name
        self.request_codec = request_codec
        self.reply_codec = reply_codec
        self.answer_fn = answer
        self.framing = framing
        self.port = 0
        self.requests = 0
        self.bad_requests = 0
        self.seen: list[Any] = []          # decoded requests, for tests (bounded)
        self.keep = 256
        self.stall = False

    def answer(self, payload: bytes) -> bytes:
        self.requests += 1
        try:
            req = self.request_codec.decode(payload)
        except FormatError as exc:
            self.bad_requests += 1
            log.warning("%s: undecodable request: %s", self.name, exc)
            req = None
        if len(self.seen) < self.keep:
            self.seen.append(req)
        return self.reply_codec.encode(self.answer_fn(req))

    async def _conn(self, stream: trio.SocketStream) -> None:
        framer = make_framer(self.framing)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                frames = framer.feed(data)
                if self.stall:
                    continue
                out = b"".join(framer.frame(self.answer(p)) for p in frames)
                if out:
                    try:
                        await stream.send_all(out)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(trio.serve_tcp, self._conn, port, host=host))
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self.port)
