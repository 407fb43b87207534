"""A biller counterpart: JSON over length-prefixed TCP, one reply per request, in order.

Answers ``{"status": "OK", "confirmation": "..."}``; refuses (``{"status":
"REFUSED", ...}``) every request whose reference ends with a digit in
``refuse_digits``.  Replies to one chunk's requests leave in one write.
"""
from __future__ import annotations

import functools
from typing import Any

import orjson
import trio

from formats.framing import make_framer


class BillerSim:
    def __init__(self, *, framing: str = "length4", refuse_digits: str = "7") -> None:
        self.framing = framing
        self.refuse_digits = refuse_digits
        self.port = 0
        self.requests = 0
        self.refused = 0

    def answer(self, req: Any) -> dict[str, Any]:
        ref = str(req.get("reference", "")) if isinstance(req, dict) else ""
        self.requests += 1
        if ref and ref[-1] in self.refuse_digits:
            self.refused += 1
            return {"status": "REFUSED", "confirmation": None, "reason": "account closed"}
        return {"status": "OK", "confirmation": "CF" + ref[-12:]}

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
                out = [framer.frame(orjson.dumps(self.answer(orjson.loads(p)))) for p in framer.feed(data)]
                if out:
                    try:
                        await stream.send_all(b"".join(out))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(trio.serve_tcp, self._conn, port, host=host))
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self.port)
