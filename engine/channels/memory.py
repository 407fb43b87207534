"""``memory``: an in-process channel for tests and simulators; no sockets.

Inbound: ``await channel.connect()`` returns the client end of an in-memory
stream (``trio.testing.memory_stream_pair``); the engine serves the other end
exactly like a TCP connection (same framing, batching and error replies).

Outbound (a ``call`` target): ``channel.attach(responder)`` installs an async
function ``responder(payload: bytes) -> bytes``; calls fail with kind
``unreachable`` while nothing is attached.
"""
from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, Awaitable, Callable

import trio
import trio.testing

from engine.channels.base import (
    CallTimeout, ChannelError, ConnInfo, ExchangeHandler, Unreachable, serve_stream,
)
from engine.channels.retire import StopReading
from engine.channels.options import FRAMING, MAX_FRAME, framing_options, seconds
from formats.component import ComponentSpec, OptionSpec
from formats.framing import check_framing, make_framer

Responder = Callable[[bytes], Awaitable[bytes]]
_NUMBERS = itertools.count(1)


class MemoryChannel:
    role = "both"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.framing, self.max_frame = framing_options(name, options)
        self.timeout = seconds(options.get("timeout"), 30.0)
        self.address = f"memory:{name}"
        self._handler: ExchangeHandler | None = None
        self._nursery: trio.Nursery | None = None
        self._responder: Responder | None = None
        self._read_scopes: set[StopReading] = set()
        self._draining = False
        self._stopped = trio.Event()

    # -- inbound ----------------------------------------------------------
    async def serve(self, handler: ExchangeHandler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._handler, self._nursery = handler, nursery
            task_status.started()
            await self._stopped.wait()
            # connections already open finish what they read, then the nursery closes

    async def connect(self) -> trio.abc.Stream:
        """A new client connection; returns the client's end of the stream."""
        if self._nursery is None or self._handler is None or self._draining:
            raise Unreachable(f"channel {self.name}: not serving", channel=self.name)
        client, server = trio.testing.memory_stream_pair()
        stop = StopReading()
        conn = ConnInfo(channel=self.name, peer="memory", number=next(_NUMBERS))

        async def run() -> None:
            self._read_scopes.add(stop)
            try:
                assert self._handler is not None
                await serve_stream(server, make_framer(self.framing, self.max_frame), self._handler, conn, stop)
            finally:
                self._read_scopes.discard(stop)

        self._nursery.start_soon(run)
        return client

    def framer(self) -> Any:
        """A fresh framer matching this channel (for the client side)."""
        return make_framer(self.framing, self.max_frame)

    def stop_accepting(self) -> None:
        self._draining = True
        self._stopped.set()
        for scope in list(self._read_scopes):
            scope.cancel()

    # -- outbound ---------------------------------------------------------
    def attach(self, responder: Responder | None) -> None:
        self._responder = responder

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def request_many(self, payloads: list[bytes], timeout: float | None = None) -> list[bytes | ChannelError]:
        responder = self._responder
        if responder is None:
            return [Unreachable(f"channel {self.name}: no responder attached", channel=self.name)] * len(payloads)
        limit = self.timeout if timeout is None else timeout
        out: list[bytes | ChannelError] = []
        with trio.move_on_after(limit) as scope:
            for p in payloads:
                out.append(await responder(p))
        if scope.cancelled_caught:
            err = CallTimeout(f"channel {self.name}: no reply within {limit:g}s", channel=self.name)
            out.extend([err] * (len(payloads) - len(out)))
        return out


def build(decl: Any) -> MemoryChannel:
    return MemoryChannel(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="memory",
    check=check_framing,
    doc=(
        "An in-process channel for tests and simulators. As a receiving channel, "
        "`connect()` gives a client stream served exactly like a TCP connection "
        "(same framing, batching and error replies). As a `call` target, it hands each "
        "request to a responder function attached by the test (`attach`)."
    ),
    options=(
        FRAMING,
        MAX_FRAME,
        OptionSpec("timeout", "duration", "Default time to wait for a responder's answer.", default=Decimal(30)),
    ),
    build=build,
    examples=('channel teller = memory {\n    framing = length2\n}',),
)
