"""``idle_timeout`` and ``frame_timeout`` for inbound stream channels: a stream wrapper that ends a
quiet or stalled connection.

A peer that sends part of a frame and then goes quiet (or trickles it a byte
at a time, slowloris) would hold a connection, its buffer and a
``max_connections`` slot for ever.  ``IdleStream`` bounds each wait for input:

- ``frame``: a frame must be complete within this long of its first bytes
  (measured while bytes of one frame are held; any completed frame restarts it);
- ``idle``: nothing at all arrives for this long.

When either runs out inside a frame, the framer is first put in error, so the
channel's usual framing-error path runs (error reply, deal ``malformed``,
connection closed); a connection idle between frames is simply closed.
0 turns a limit off.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import trio

from formats.framing import STALLED, Framer

log = logging.getLogger("bsp.channel")


class IdleStream(trio.abc.Stream):
    def __init__(self, stream: trio.abc.Stream, framer: Framer, idle: float, *, channel: str, conn: Any,
                 frame: float = 0.0) -> None:
        self.stream = stream
        self.framer = framer
        self.idle = idle
        self.frame = frame
        self.channel = channel
        self.conn = conn
        self.timeouts = 0
        self._frame_at = -1                 # stream offset of the frame being timed
        self._frame_since = 0.0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        framer = self.framer
        now = trio.current_time()
        held = framer.buffered
        deadline = now + self.idle if self.idle > 0 else math.inf
        stalled = False
        if held and self.frame > 0:
            if framer.offset != self._frame_at:         # a new frame started since the last wait
                self._frame_at, self._frame_since = framer.offset, now
            if self._frame_since + self.frame < deadline:
                deadline, stalled = self._frame_since + self.frame, True
        with trio.move_on_at(deadline):
            return await self.stream.receive_some(max_bytes)
        self.timeouts += 1
        who = (self.channel, getattr(self.conn, "number", "?"), getattr(self.conn, "peer", "?"))
        if held and stalled:
            framer.fail(
                f"no complete {framer.name} frame within {self.frame:g}s of its first byte ({held} byte(s) "
                f"buffered); connection closed by frame_timeout",
                hint="the peer sent a partial frame and stalled or trickles it; check its framing, or raise "
                     "frame_timeout for a slow link", kind=STALLED)
            # the framing error this makes is logged by the connection's loop (engine/channels/base.py)
            log.debug("channel %s: connection %s from %s: frame not complete within %gs (%d bytes held); "
                      "closing", *who, self.frame, held)
        elif held:
            framer.fail(
                f"no byte for {self.idle:g}s inside a {framer.name} frame ({held} byte(s) buffered); "
                f"connection closed by idle_timeout",
                hint="the peer sent a partial frame and went quiet; check its framing or raise idle_timeout",
                kind=STALLED)
            log.debug("channel %s: connection %s from %s: idle %gs inside a frame (%d bytes held); closing",
                      *who, self.idle, held)
        else:
            log.info("channel %s: connection %s from %s: idle for %gs; closing", *who, self.idle)
        return b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:   # pragma: no cover - not used by the channels
        await self.stream.send_eof()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self.stream.aclose()
