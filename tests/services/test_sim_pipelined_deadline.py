"""The simulators' pipelined sender (engine.sim.framed.pipelined) when its deadline ends the sending.

A batch counted as sent must be on the wire: the deadline stops new batches, it never cancels one half
way (it used to, when it fell between building a batch and writing it: those requests were counted sent,
never left, and a --duration run reported them as got no reply)."""
from __future__ import annotations

import time

import trio

from engine.sim.framed import FramedServer, pipelined


class Echo(FramedServer):
    framing = "length2"

    def reply_frame(self, payload: bytes) -> bytes:
        return payload


async def test_a_batch_built_when_the_deadline_passes_still_leaves_and_is_answered():
    handed: list[bytes] = []
    replies: list[bytes] = []

    async def pace(room: int) -> int:
        if not handed:                   # woken (here: by a checkpoint) only as the deadline passes
            time.sleep(0.15)
            await trio.lowlevel.cancel_shielded_checkpoint()
        return room

    def payloads(sent: int, count: int) -> list[bytes]:
        batch = [b"req%d" % (sent + i) for i in range(count)]
        handed.extend(batch)
        return batch

    server = Echo()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        with trio.fail_after(10):
            why = await pipelined("127.0.0.1", port, "length2", 1000, 8, payloads=payloads,
                                  on_reply=lambda frame, now: replies.append(bytes(frame)),
                                  deadline=0.05, drain_deadline=5, pace=pace)
        nursery.cancel_scope.cancel()
    assert why is None
    assert handed, "the first batch is built before the deadline"
    assert len(handed) < 1000
    assert replies == handed


async def test_the_drain_after_the_deadline_ends_when_what_was_sent_is_answered():
    """Waiting for the last replies ends with them, not at drain_deadline (it waited for all n)."""
    def payloads(sent: int, count: int) -> list[bytes]:
        return [b"x"] * count

    server = Echo()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        t0 = trio.current_time()
        await pipelined("127.0.0.1", port, "length2", 10_000_000, 16, payloads=payloads,
                        on_reply=lambda frame, now: None, deadline=0.2, drain_deadline=30)
        took = trio.current_time() - t0
        nursery.cancel_scope.cancel()
    assert took < 15, f"the drain waited {took:.1f} s for requests never sent"
