"""The simulators' pipelined sender (engine.sim.framed.pipelined) when its deadline ends the sending.

A batch counted as sent must be on the wire: the deadline stops new batches, it never cancels one half
way (it used to, when it fell between building a batch and writing it: those requests were counted sent,
never left, and a --duration run reported them as got no reply).  Real sockets on 127.0.0.1; the clock is
a MockClock, moved by the test (the deadline passes exactly where the test puts it)."""
from __future__ import annotations

import trio
import trio.testing

from engine.sim.framed import FramedServer, pipelined


class Echo(FramedServer):
    framing = "length2"

    def reply_frame(self, payload: bytes) -> bytes:
        return payload


def test_a_batch_built_when_the_deadline_passes_still_leaves_and_is_answered():
    clock = trio.testing.MockClock(autojump_threshold=3.0)     # idle 3 s: the clock jumps (a hang fails)
    handed: list[bytes] = []
    replies: list[bytes] = []

    async def pace(room: int) -> int:
        if not handed:                   # the sender wakes (a checkpoint) just as its deadline passes
            clock.jump(0.15)
            await trio.lowlevel.cancel_shielded_checkpoint()
        return room

    def payloads(sent: int, count: int) -> list[bytes]:
        batch = [b"req%d" % (sent + i) for i in range(count)]
        handed.extend(batch)
        return batch

    async def main():
        server = Echo()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            why = await pipelined("127.0.0.1", port, "length2", 1000, 8, payloads=payloads,
                                  on_reply=lambda frame, now: replies.append(bytes(frame)),
                                  deadline=0.05, drain_deadline=5, pace=pace)
            nursery.cancel_scope.cancel()
        return why

    assert trio.run(main, clock=clock) is None
    assert len(handed) == 8              # the one batch built, at the deadline; none after it
    assert replies == handed             # ... and it left whole, and was answered


def test_the_drain_after_the_deadline_ends_when_what_was_sent_is_answered():
    """Waiting for the last replies ends with them, not at drain_deadline (it waited for all n)."""
    clock = trio.testing.MockClock(autojump_threshold=3.0)     # idle 3 s: the clock jumps (the old drain's end)
    got: list[int] = []

    async def pace(room: int) -> int:
        clock.jump(0.01)                 # each batch takes 10 ms of the clock: the deadline ends the 20th
        return room

    async def main():
        server = Echo()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            t0 = trio.current_time()
            await pipelined("127.0.0.1", port, "length2", 10_000_000, 16, payloads=lambda s, c: [b"x"] * c,
                            on_reply=lambda frame, now: got.append(1), deadline=0.2, drain_deadline=30,
                            pace=pace)
            took = trio.current_time() - t0
            nursery.cancel_scope.cancel()
        return took

    took = trio.run(main, clock=clock)
    assert 0 < len(got) <= 20 * 16
    assert took < 30, f"the drain waited its whole drain_deadline ({took:.1f} s of the clock) for requests never sent"
