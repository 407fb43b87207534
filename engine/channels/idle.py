"""``idle_timeout`` for inbound stream channels: a stream wrapper that ends a quiet connection.

A peer that sends part of a frame and then goes quiet would hold a connection
(and its buffer) for ever.  ``IdleStream`` bounds each wait for input: when
nothing arrives within ``idle`` seconds it reports end of input.  If a frame
was half read, the framer is first put in error, so the channel's usual
framing-error path runs (error reply, deal ``malformed``, connection closed);
a connection idle between frames is simply closed.
"""
from __future__ import annotations

import logging
from typing import Any

import trio

from formats.framing import Framer

log = logging.getLogger("bsp.channel")


class IdleStream(trio.abc.Stream):
    def __init__(self, stream: trio.abc.Stream, framer: Framer, idle: float, *, channel: str, conn: Any) -> None:
        self.stream = stream
        self.framer = framer
        self.idle = idle
        self.channel = channel
        self.conn = conn
        self.timeouts = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        with trio.move_on_after(self.idle):
            return await self.stream.receive_some(max_bytes)
        self.timeouts += 1
        held = self.framer.buffered
        if held:
            self.framer.fail(
                f"no byte for {self.idle:g}s inside a {self.framer.name} frame ({held} byte(s) buffered); "
                f"connection closed by idle_timeout",
                hint="the peer sent a partial frame and went quiet; check its framing or raise idle_timeout")
            log.warning("channel %s: connection %s from %s: idle %gs inside a frame (%d bytes held); closing",
                        self.channel, getattr(self.conn, "number", "?"), getattr(self.conn, "peer", "?"),
                        self.idle, held)
        else:
            log.info("channel %s: connection %s from %s: idle for %gs; closing",
                     self.channel, getattr(self.conn, "number", "?"), getattr(self.conn, "peer", "?"), self.idle)
        return b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:   # pragma: no cover - not used by the channels
        await self.stream.send_eof()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self.stream.aclose()
