"""Resilience per call (timeout, retries for idempotent calls, circuit breaker, in-flight cap), MockClock."""
from __future__ import annotations

import functools
import logging

import pytest
import trio

from engine.channels.base import ChannelError
from engine.channels.mux import MuxConnector
from engine.metrics import Metrics
from engine.resilience import BreakerStateError, CircuitBreaker, Rejected, RetryPolicy
from engine.sim.iso_host import IsoHost
from formats.iso8583 import codec_for

ISO = codec_for("iso8583_1987_ascii")


def req(stan: int) -> bytes:
    return ISO.encode({"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000",
                       "7": "0101120000", "11": f"{stan:06d}", "41": "TERM0001", "49": "978"})




async def host_on(nursery, port: int = 0, **kw) -> IsoHost:
    host = IsoHost(**kw)
    await nursery.start(functools.partial(host.serve, "127.0.0.1", port))
    return host


async def mux(nursery, port: int, **opts) -> MuxConnector:
    ch = MuxConnector("issuer", {"address": f"127.0.0.1:{port}", "framing": "length2", "match": "iso8583",
                                 "timeout": 2, "reconnect_max": 0.5, **opts})
    ch.use_codecs(ISO)
    await nursery.start(ch.run)
    return ch


# ------------------------------------------------------------------ the breaker's state table

def test_breaker_opens_on_n_failures_within_window_only() -> None:
    now = [0.0]
    b = CircuitBreaker("x", failures=3, window=10, reset=5, clock=lambda: now[0])
    for t in (0, 6, 12):          # three failures, never three within 10s
        now[0] = t
        b.failure("down")
    assert b.state == "closed"
    now[0] = 14
    b.failure("down")             # 6, 12, 14: three within 10s
    assert b.state == "open" and not b.allow()
    now[0] = 19
    assert b.allow() and b.state == "half_open"
    assert not b.allow()          # one probe at a time
    b.failure("still down")
    assert b.state == "open" and b.opened_at == 19
    now[0] = 24
    assert b.allow()
    b.success()
    assert b.state == "closed"
    assert dict(b.changes) == {("closed", "open"): 1, ("open", "half_open"): 2, ("half_open", "open"): 1,
                               ("half_open", "closed"): 1}


def test_breaker_table_refuses_unknown_transition() -> None:
    b = CircuitBreaker("x", failures=1)
    with pytest.raises(BreakerStateError, match="no transition from 'closed' on 'probe_ok'"):
        b._fire("probe_ok", "")


def test_retry_backoff_grows_and_is_capped_with_jitter() -> None:
    p = RetryPolicy(5, base=0.2, cap=1.0)
    assert [p.ceiling(i) for i in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    waits = [p.delay(2) for _ in range(200)]
    assert all(0.4 <= w <= 0.8 for w in waits) and len(set(waits)) > 100


# ------------------------------------------------------------------ on a channel, over loopback

async def test_slow_host_times_out_and_late_reply_is_unmatched(nursery, autojump_clock) -> None:
    host = await host_on(nursery, delay=10)
    ch = await mux(nursery, host.port)
    t0 = trio.current_time()
    (r,) = await ch.request_many([req(1)])
    assert isinstance(r, ChannelError) and r.kind == "timeout" and "within 2s" in str(r)
    assert 2 <= trio.current_time() - t0 < 2.5
    await trio.sleep(10)
    assert ch.unmatched == 1


async def test_retries_only_for_idempotent_calls(nursery, autojump_clock) -> None:
    seen: set[str] = set()

    def first_time(r) -> bool:       # drop the first attempt of each request
        new = r["11"] not in seen
        seen.add(r["11"])
        return new

    host = await host_on(nursery, drop=first_time)
    plain = await mux(nursery, host.port)
    (r,) = await plain.request_many([req(1)])
    assert isinstance(r, ChannelError) and r.kind == "timeout" and plain.retried == 0

    retrying = await mux(nursery, host.port, idempotent=True, retries=2, backoff=0.5, backoff_max=4)
    t0 = trio.current_time()
    (r,) = await retrying.request_many([req(2)])
    assert not isinstance(r, ChannelError) and ISO.decode(r)["11"] == "000002"
    assert retrying.retried == 1 and host.dropped == 2
    assert 2.25 <= trio.current_time() - t0 <= 2.5 + 0.01     # timeout 2s + back-off in [0.25, 0.5]


async def test_retry_backoff_against_a_down_endpoint(nursery, autojump_clock, dead_port) -> None:
    ch = await mux(nursery, dead_port, idempotent=True, retries=3, backoff=1, backoff_max=4)
    await trio.sleep(0.1)                 # the pool has tried and is backing off
    t0 = trio.current_time()
    (r,) = await ch.request_many([req(1)])
    assert isinstance(r, ChannelError) and r.kind == "unreachable" and "cannot connect" in str(r)
    assert ch.retried == 3
    assert 3.5 <= trio.current_time() - t0 <= 7.0 + 0.01      # (0.5..1) + (1..2) + (2..4)


async def test_circuit_opens_rejects_at_once_then_half_open_probe_closes_it(nursery, autojump_clock, caplog, held_port) -> None:
    port = held_port.port
    ch = await mux(nursery, port, breaker_failures=3, breaker_window=10, breaker_reset=5)
    metrics = Metrics()
    ch.attach_metrics(metrics)
    await trio.sleep(0.1)
    with caplog.at_level(logging.INFO, "bsp.resilience"):
        for i in range(3):
            (r,) = await ch.request_many([req(i)])
            assert r.kind == "unreachable"
        assert ch.breaker.state == "open"
        t0 = trio.current_time()
        (r,) = await ch.request_many([req(9)])
        assert isinstance(r, Rejected) and "circuit open" in str(r) and trio.current_time() == t0
        assert metrics.value("bsp_channel_circuit_state", {"channel": "issuer"}) == 2
        assert metrics.value("bsp_channel_errors_total", {"channel": "issuer", "kind": "circuit_open"}) >= 1
        host = await host_on(nursery, port=held_port.release())
        await trio.sleep(5)
        with trio.fail_after(5):
            while not ch.pool.connected:
                await trio.sleep(0.05)
        first, second = await ch.request_many([req(10), req(11)])   # half-open: one probe only
        assert not isinstance(first, ChannelError) and isinstance(second, Rejected)
        assert ch.breaker.state == "closed"
        assert not isinstance(await ch.request(req(12)), ChannelError)
    assert "circuit closed -> open (3 failures within 10s" in caplog.text
    assert "circuit half_open -> closed" in caplog.text
    assert metrics.value("bsp_channel_circuit_state", {"channel": "issuer"}) == 0
    assert host.requests == 2


@pytest.mark.parametrize("breaker", [{}, {"breaker_failures": 3, "breaker_window": 10, "breaker_reset": 5}])
async def test_a_stopped_mux_counts_its_calls_lost_not_circuit_open(nursery, autojump_clock, breaker) -> None:
    """A MUX whose run ended (a drain, or a reload removed it) fails calls at once as lost, "engine
    stopping": no breaker refused them, so ``circuit_open`` is not counted (it was, for every call,
    even on a MUX without a breaker)."""
    host = await host_on(nursery)
    ch = MuxConnector("issuer", {"address": f"127.0.0.1:{host.port}", "framing": "length2", "match": "iso8583",
                                 "timeout": 2, "reconnect_max": 0.5, **breaker})
    ch.use_codecs(ISO)
    metrics = Metrics()
    ch.attach_metrics(metrics)
    async with trio.open_nursery() as own:
        await own.start(ch.run)
        assert not isinstance(await ch.request(req(1)), ChannelError)
        own.cancel_scope.cancel()
    for i in range(3):
        (r,) = await ch.request_many([req(2 + i)])
        assert isinstance(r, ChannelError) and r.kind == "lost" and "engine stopping" in str(r)
    assert metrics.value("bsp_channel_errors_total", {"channel": "issuer", "kind": "circuit_open"}) is None
    assert ch.breaker is None or ch.breaker.state == "closed"


async def test_in_flight_cap_fails_extra_requests_at_once(nursery, autojump_clock) -> None:
    host = await host_on(nursery, delay=1)
    ch = await mux(nursery, host.port, max_in_flight=2)
    results: dict[int, object] = {}

    async def one(i: int) -> None:
        (results[i],) = await ch.request_many([req(i)])

    async with trio.open_nursery() as n:
        n.start_soon(one, 1)
        n.start_soon(one, 2)
        await trio.sleep(0.01)
        n.start_soon(one, 3)
    assert isinstance(results[3], Rejected) and "max_in_flight = 2" in str(results[3])
    assert not isinstance(results[1], ChannelError) and not isinstance(results[2], ChannelError)
    assert ch.cap.in_flight == 0 and ch.cap.rejected == 1
