"""Replies matched first-in first-out can only be trusted while every call gets its reply.  A counterpart
that never answers one request (it drops what it cannot read) would otherwise hand each later call the reply
meant for the call before it: a call that timed out closes the connection, the calls still waiting on it fail
``lost`` (in doubt, as a timeout is), and the next calls go on a new connection with their own replies.
Plain ``tcp connect`` and a ``pool`` without ``match``; real loopback sockets, MockClock."""
from __future__ import annotations

import functools

import pytest
import trio

from engine.channels.mux import MuxConnector
from engine.channels.tcp_connect import TcpConnector
from formats.framing import LengthPrefixFramer


async def _skipping_counterpart(nursery) -> int:
    """Answers each request with ``re:`` + the request, in order, except those starting ``D`` (never)."""
    async def handler(stream) -> None:
        f = LengthPrefixFramer(4)
        try:
            while data := await stream.receive_some(65536):
                out = [f.frame(b"re:" + req) for req in f.feed(data) if not req.startswith(b"D")]
                if out:
                    await stream.send_all(b"".join(out))
        except trio.BrokenResourceError:
            return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def _two_calls_together(c) -> dict[bytes, object]:
    got: dict[bytes, object] = {}

    async def call(ref: bytes) -> None:
        (got[ref],) = await c.request_many([ref], 5.0)

    async with trio.open_nursery() as n:
        n.start_soon(call, b"K1")
        n.start_soon(call, b"K2")
    return got


async def test_a_call_never_answered_does_not_give_later_calls_each_others_replies(nursery, autojump_clock) -> None:
    port = await _skipping_counterpart(nursery)
    c = TcpConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4"})
    await nursery.start(c.run)
    (r,) = await c.request_many([b"D1"], 1.0)
    assert getattr(r, "kind", None) == "timeout", r
    got = await _two_calls_together(c)
    # before: K1's reply went to D1's stale place, and K1 was given "re:K2"
    assert got == {b"K1": b"re:K1", b"K2": b"re:K2"}, got
    assert c.resets == 1 and c.connects == 2
    (r,) = await c.request_many([b"K3"], 5.0)
    assert r == b"re:K3" and c.resets == 1


async def test_the_calls_waiting_behind_a_timed_out_call_fail_lost_and_calls_made_after_go_through(
        nursery, autojump_clock) -> None:
    port = await _skipping_counterpart(nursery)
    c = TcpConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4"})
    await nursery.start(c.run)
    got: dict[bytes, object] = {}

    async def call(ref: bytes, limit: float) -> None:
        (got[ref],) = await c.request_many([ref], limit)

    async with trio.open_nursery() as n:
        n.start_soon(call, b"D1", 1.0)
        await trio.sleep(0.5)
        n.start_soon(call, b"D2", 10.0)          # written behind D1: in doubt once the connection is closed
    assert getattr(got[b"D1"], "kind", None) == "timeout"
    assert getattr(got[b"D2"], "kind", None) == "lost" and "closed before the reply came" in str(got[b"D2"])
    (r,) = await c.request_many([b"K1"], 5.0)
    assert r == b"re:K1"


async def test_a_pool_without_match_closes_the_connection_of_a_timed_out_call(nursery, autojump_clock) -> None:
    port = await _skipping_counterpart(nursery)
    c = MuxConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4", "pool": 1})
    await nursery.start(c.run)
    (r,) = await c.request_many([b"D1"], 1.0)
    assert getattr(r, "kind", None) == "timeout", r
    got = await _two_calls_together(c)
    assert got == {b"K1": b"re:K1", b"K2": b"re:K2"}, got
    assert c.resets == 1


async def test_a_call_made_as_another_times_out_goes_on_the_next_connection_and_gets_its_own_reply(
        nursery, autojump_clock) -> None:
    # R is made at the very moment D1 times out (same deadline): trio runs the two in either order. When R
    # came first, its wake of the writer raced the close: the writer took R's bytes from the outbox and was
    # cancelled before writing them, R stayed waiting, unsent, and took the reply meant for the next call (S)
    port = await _skipping_counterpart(nursery)
    for _ in range(16):                          # each order of the two is met (trio reverses half its batches)
        c = TcpConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4"})
        async with trio.open_nursery() as own:
            await own.start(c.run)
            got: dict[bytes, object] = {}

            async def call(ref: bytes, limit: float, at: float | None = None) -> None:
                if at is not None:
                    await trio.sleep_until(at)
                (got[ref],) = await c.request_many([ref], limit)

            async with trio.open_nursery() as n:
                start = trio.current_time()
                n.start_soon(call, b"D1", 1.0)
                n.start_soon(call, b"R", 5.0, start + 1.0)
                n.start_soon(call, b"S", 5.0, start + 1.5)
            own.cancel_scope.cancel()
        assert getattr(got[b"D1"], "kind", None) == "timeout", got
        assert got[b"R"] == b"re:R" and got[b"S"] == b"re:S", got


async def test_a_counterpart_that_answers_no_call_in_time_stays_down_though_each_timeout_reconnects(
        nursery, autojump_clock) -> None:
    # the reconnect after each timeout is the engine's own doing: it shows nothing of the counterpart, so it
    # must not end the streak of calls without an answer (a connection opened since made them stale: up)
    from engine.ops.health import CallHealth, outbound_health
    port = await _skipping_counterpart(nursery)
    c = TcpConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4"})
    c.call_health = CallHealth("back")
    await nursery.start(c.run)
    for ref in (b"D1", b"D2"):
        results = await c.request_many([ref], 1.0)
        c.call_health.record(results)
        await trio.sleep(0.5)                    # reconnected meanwhile
    assert c.resets == 2 and c._connected
    health = outbound_health(c)
    assert health["up"] is False and health["failed_calls"] == 2, health
    (r,) = await c.request_many([b"K1"], 5.0)   # a reply: up again
    c.call_health.record([r])
    assert outbound_health(c)["up"] is True


async def test_a_counterpart_answering_nothing_in_time_is_given_a_rest_not_more_calls_to_time_out(
        nursery, autojump_clock) -> None:
    # a counterpart far behind (under load) answers no call in time: each timeout closed the connection, failed
    # the other calls on it lost (in doubt: reversed, more load) and handed the new one more calls to time out.
    # The first close reconnects at once; a second with no call answered in time since backs off (doubling up
    # to reconnect_max), calls failing at once meanwhile, not sent; a call answered in time ends the streak
    seen: list[bytes] = []

    async def handler(stream) -> None:
        f = LengthPrefixFramer(4)
        try:
            while data := await stream.receive_some(65536):
                reqs = f.feed(data)
                seen.extend(reqs)
                out = [f.frame(b"re:" + req) for req in reqs if not req.startswith(b"D")]
                if out:
                    await stream.send_all(b"".join(out))
        except trio.BrokenResourceError:
            return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    c = TcpConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4", "reconnect_max": "1s"})
    await nursery.start(c.run)
    (r,) = await c.request_many([b"D1"], 1.0)
    (k1,) = await c.request_many([b"K1"], 5.0)          # the first close: reconnected at once
    assert r.kind == "timeout" and k1 == b"re:K1"
    (r,) = await c.request_many([b"D2"], 1.0)           # answered in time since: at once again
    (k2,) = await c.request_many([b"K2"], 5.0)
    assert k2 == b"re:K2"
    (r,) = await c.request_many([b"D3"], 1.0)
    (r,) = await c.request_many([b"D4"], 1.0)           # nothing answered in time since D3's close: a rest
    (k3,) = await c.request_many([b"K3"], 5.0)
    assert k3.kind == "unreachable" and "request not sent" in str(k3) and "backing off" in str(k3), k3
    assert b"K3" not in seen
    await trio.sleep(1.0)
    (k4,) = await c.request_many([b"K4"], 5.0)
    assert k4 == b"re:K4" and c.resets == 4


async def test_a_pool_connection_closed_for_a_timeout_matches_no_reply_read_after(nursery, autojump_clock) -> None:
    # the pool's writer blocked on a big write (the counterpart not reading, busy): closing the connection for
    # D1's timeout ended neither it nor the reader, which matched the replies that came next in order: D1's
    # place (never to be answered) took Y's reply and Y was given Z's
    async def handler(stream) -> None:
        f = LengthPrefixFramer(4)
        first: list[bytes] = []
        try:
            while len(first) < 3:
                first += f.feed(await stream.receive_some(65536))
            await trio.sleep(1.5)                    # busy: reads nothing meanwhile
            await stream.send_all(b"".join(f.frame(b"re:" + r) for r in first[:3] if not r.startswith(b"D")))
            while await stream.receive_some(1 << 20):
                pass
        except trio.BrokenResourceError:
            return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    c = MuxConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4", "pool": 1})
    await nursery.start(c.run)
    got: dict[bytes, object] = {}

    async def call(refs: list[bytes], limit: float, at: float) -> None:
        await trio.sleep(at)
        for ref, r in zip(refs, await c.request_many(refs, limit)):
            got[ref[:1]] = r

    async with trio.open_nursery() as n:
        n.start_soon(call, [b"D1"], 1.0, 0)
        n.start_soon(call, [b"Y", b"Z"], 5.0, 0.01)
        n.start_soon(call, [b"W" * 1_000_000] * 40, 5.0, 0.1)      # 40 MB: the writer blocks
    assert got[b"Y"] != b"re:Z", got
    assert all(getattr(got[k], "kind", None) in ("timeout", "lost") for k in (b"D", b"Y", b"Z")), got


async def test_a_pool_without_match_rests_after_a_second_timeout_close_with_nothing_answered_in_time(
        nursery, autojump_clock) -> None:
    seen: list[bytes] = []

    async def handler(stream) -> None:
        f = LengthPrefixFramer(4)
        try:
            while data := await stream.receive_some(65536):
                reqs = f.feed(data)
                seen.extend(reqs)
                out = [f.frame(b"re:" + req) for req in reqs if not req.startswith(b"D")]
                if out:
                    await stream.send_all(b"".join(out))
        except trio.BrokenResourceError:
            return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    c = MuxConnector("back", {"address": f"127.0.0.1:{port}", "framing": "length4", "pool": 1,
                              "reconnect_max": "1s"})
    await nursery.start(c.run)
    (r,) = await c.request_many([b"D1"], 1.0)
    (k1,) = await c.request_many([b"K1"], 5.0)          # the first close: reconnected at once
    assert r.kind == "timeout" and k1 == b"re:K1"
    (r,) = await c.request_many([b"D2"], 1.0)           # K1 answered in time on that connection: at once
    (k2,) = await c.request_many([b"K2"], 5.0)
    assert k2 == b"re:K2"
    (r,) = await c.request_many([b"D3"], 1.0)
    (r,) = await c.request_many([b"D4"], 1.0)           # nothing answered in time since D3's close: a rest
    await trio.sleep(0.001)
    (k3,) = await c.request_many([b"K3"], 5.0)
    assert k3.kind == "unreachable" and "no call answered in time" in str(k3), k3
    assert b"K3" not in seen
    await trio.sleep(1.0)
    (k4,) = await c.request_many([b"K4"], 5.0)
    assert k4 == b"re:K4" and c.resets == 4


async def test_a_reply_read_as_the_connection_is_closed_for_a_timeout_goes_to_no_call_not_yet_written(
        autojump_clock) -> None:
    # W's late reply is read in the very step X times out (trio runs the two in either order). When X came
    # first it closed the connection and failed W, and the reader then matched W's reply to the head of the
    # queue left for the next connection: R, a call not even written
    import socket
    for _ in range(12):                          # each order of the two is met (trio reverses half its batches)
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        c = TcpConnector("back", {"address": f"127.0.0.1:{lsock.getsockname()[1]}", "framing": "length4"})
        got: dict[bytes, object] = {}

        async def call(ref: bytes, limit: float) -> None:
            (got[ref],) = await c.request_many([ref], limit)

        async with trio.open_nursery() as n:
            await n.start(c.run)
            n.start_soon(call, b"W", 5.0)
            await trio.sleep(0.01)
            start = trio.current_time()
            n.start_soon(call, b"X", 1.0)
            await trio.sleep(0.5)
            peer, _ = lsock.accept()
            await trio.sleep_until(start + 0.999)
            peer.sendall(LengthPrefixFramer(4).frame(b"re:W"))      # readable in the same step as ...
            autojump_clock.jump(0.001)                                # ... X's deadline, and R is made now
            await call(b"R", 5.0)
            n.cancel_scope.cancel()
        peer.close()
        lsock.close()
        assert got[b"R"] != b"re:W", got


@pytest.mark.parametrize("kind", ["plain", "pool"])
async def test_a_call_that_times_out_before_it_was_written_is_not_sent_later(nursery, autojump_clock, kind) -> None:
    # the counterpart reads nothing for a while (busy): a big request fills the socket and X waits behind it,
    # unwritten, until it times out. X was then failed in doubt (timeout) and written later all the same (on
    # the next connection, after the close for its timeout): its caller had given it up, reversed it maybe
    seen: list[bytes] = []

    async def handler(stream) -> None:
        f = LengthPrefixFramer(4)
        await trio.sleep(3)
        try:
            while data := await stream.receive_some(1 << 20):
                seen.extend(r[:1] for r in f.feed(data))
        except trio.BrokenResourceError:
            return

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    options = {"address": f"127.0.0.1:{port}", "framing": "length4"}
    c = TcpConnector("back", options) if kind == "plain" else MuxConnector("back", {**options, "pool": 1})
    await nursery.start(c.run)
    got: dict[bytes, object] = {}

    async def big() -> None:
        got[b"W"] = (await c.request_many([b"W" * 1_000_000] * 40, 6.0))[0]      # 40 MB: the writer blocks

    async with trio.open_nursery() as n:
        n.start_soon(big)
        await trio.sleep(0.1)
        (got[b"X"],) = await c.request_many([b"X"], 1.0)
    x = got[b"X"]
    assert x.kind == "unreachable" and "request not sent" in str(x), x      # not in doubt: never written
    await trio.sleep(10)
    assert b"X" not in seen and b"W" in seen, seen
    assert c.resets == 1                         # W timed out (written): that one closes the connection
