"""A retired tcp.listen connection (drain, or a reload that changed its channel) stops reading at a frame
boundary: a frame half read when the retirement comes is read to its end and answered, nothing of the next
frame is taken, and the connection then ends cleanly (EOF after the last reply, never a reset), even when
the client's next requests already sit in the kernel's receive buffer.  A connection idle when retired first
answers the requests already in its receive buffer (ARRIVED_WINDOW), then ends.  Real loopback sockets."""
from __future__ import annotations

import socket

import trio
import trio.testing

from engine.channels.retire import ARRIVED_WINDOW
from engine.channels.tcp_listen import TcpListener
from formats.framing import DelimiterFramer, LengthPrefixFramer


class Echo:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def handle(self, conn, frames):
        self.frames.extend(frames)
        return [f.upper() for f in frames]

    async def framing_error(self, conn, err):
        return b"BAD FRAME"


async def _serve(nursery, handler, **opts) -> TcpListener:
    lst = TcpListener("inbound", {"address": "127.0.0.1:0", **opts})
    await nursery.start(lst.serve, handler)
    return lst


async def _read_to_eof(stream) -> bytes:
    got = b""
    with trio.fail_after(5):
        while True:
            data = await stream.receive_some(65536)   # a reset would raise BrokenResourceError here
            if not data:
                return got
            got += data


async def test_a_frame_half_read_at_retirement_is_completed_and_answered_then_a_clean_close(nursery) -> None:
    h = Echo()
    lst = await _serve(nursery, h, framing="length2")
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    f = LengthPrefixFramer(2)
    whole = f.frame(b"first")
    await s.send_all(whole[:4])                    # half a frame: the engine holds it
    await trio.testing.wait_all_tasks_blocked()
    lst.stop_accepting()
    await s.send_all(whole[4:] + f.frame(b"second") + f.frame(b"third"))
    replies = LengthPrefixFramer(2).feed(await _read_to_eof(s))
    assert replies == [b"FIRST"]                  # the frame under way is finished; the next ones not read
    assert h.frames == [b"first"]
    await s.aclose()


async def test_requests_waiting_in_the_kernel_buffer_get_a_clean_close_not_a_reset(nursery) -> None:
    h = Echo()
    lst = await _serve(nursery, h, framing="delimiter")
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    d = DelimiterFramer()
    await s.send_all(d.frame(b"one") + b"tw")
    with trio.fail_after(5):
        while h.frames != [b"one"]:
            await trio.sleep(0.01)
    lst.stop_accepting()
    await s.send_all(b"o\n" + d.frame(b"three") * 200)  # the rest of "two", then requests never read
    got = await _read_to_eof(s)
    assert got == b"ONE\nTWO\n", got[:40]
    assert h.frames == [b"one", b"two"]
    await s.aclose()


async def test_a_client_that_reads_no_reply_cannot_hold_a_retired_connection_for_ever(nursery) -> None:
    # the client sends and never reads: the replies fill its receive buffer and the engine's send buffer,
    # so the engine's send of the replies it owes waits for ever; once retired, that wait is bounded
    h = Echo()
    lst = await _serve(nursery, h, framing="length4")
    lst.retire_send_wait = 0.5
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    frame = LengthPrefixFramer(4).frame(b"x" * 60000)

    async def flood() -> None:
        try:
            while True:
                await s.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    nursery.start_soon(flood)
    seen = -1
    with trio.fail_after(10):
        while len(h.frames) != seen or not seen:     # stops growing: the engine's send of replies waits
            seen = len(h.frames)
            await trio.sleep(0.3)
    lst.stop_accepting()
    with trio.fail_after(5):                # was: for ever
        while lst._read_scopes:
            await trio.sleep(0.05)
    await trio.aclose_forcefully(s)


def _connect_sync(port: int):
    """A client socket whose sends need no trio checkpoint: a request written with ``raw.send`` is in the
    engine's receive buffer and the engine has not run since (not read it), when the next line retires."""
    raw = socket.create_connection(("127.0.0.1", port))
    return raw, trio.SocketStream(trio.socket.from_stdlib_socket(raw))


async def test_a_request_already_arrived_on_an_idle_connection_at_retirement_is_answered(nursery) -> None:
    # the measured case: a connection accepted just before accepting stopped, its first request in the
    # kernel's receive buffer, not yet read, when the retirement comes; it was closed with no reply
    h = Echo()
    lst = await _serve(nursery, h, framing="length2")
    raw, s = _connect_sync(lst.port)
    with trio.fail_after(5):
        while lst.connections != 1:            # the old channel accepted it and waits for its request
            await trio.sleep(0.01)
    await trio.testing.wait_all_tasks_blocked()
    f = LengthPrefixFramer(2)
    raw.send(f.frame(b"pay 1") + f.frame(b"pay 2"))   # arrived, not read: the engine has not run since
    lst.stop_accepting()
    replies = LengthPrefixFramer(2).feed(await _read_to_eof(s))
    assert replies == [b"PAY 1", b"PAY 2"]        # answered by the retiring channel, then a clean close
    assert h.frames == [b"pay 1", b"pay 2"]
    await s.aclose()


async def test_a_request_cut_in_the_arrived_bytes_is_read_to_its_end_and_answered(nursery) -> None:
    h = Echo()
    lst = await _serve(nursery, h, framing="length2")
    raw, s = _connect_sync(lst.port)
    with trio.fail_after(5):
        while lst.connections != 1:
            await trio.sleep(0.01)
    await trio.testing.wait_all_tasks_blocked()
    whole = LengthPrefixFramer(2).frame(b"first")
    raw.send(whole[:4])
    lst.stop_accepting()
    await trio.sleep(0.2)                          # well past ARRIVED_WINDOW: the frame under way is waited for
    await s.send_all(whole[4:] + LengthPrefixFramer(2).frame(b"second"))
    assert LengthPrefixFramer(2).feed(await _read_to_eof(s)) == [b"FIRST"]
    await s.aclose()


async def test_an_idle_connection_ends_within_the_arrived_window(nursery) -> None:
    lst = await _serve(nursery, Echo(), framing="length2")
    s = await trio.open_tcp_stream("127.0.0.1", lst.port)
    with trio.fail_after(5):
        while lst.connections != 1:
            await trio.sleep(0.01)
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    lst.stop_accepting()
    assert await _read_to_eof(s) == b""
    assert trio.current_time() - start < ARRIVED_WINDOW + 0.5
    await s.aclose()
