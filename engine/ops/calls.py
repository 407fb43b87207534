"""Outbound call metrics: a thin wrapper the ops layer installs on each outbound channel's ``request_many``.

    observe_calls(channel, metrics)      # done by LiveEngine._bind for every new ``role == "connect"`` channel

Per ``request_many`` (one call batch: every call step, reversal, ... goes
through it) on channel ``C``:

  bsp_channel_sent_total{channel=C}            += requests of the batch that left (all but the ``unreachable``:
                                                  those were never written), counted when the batch returns
  bsp_channel_in_flight{channel=C}             + requests while the batch waits, - when it returns
  bsp_channel_received_total{channel=C}        += replies (results that are not a ``ChannelError``)
  bsp_channel_latency_seconds{channel=C}       one observation per reply: the batch's round trip
  bsp_channel_errors_total{channel=C,kind=K}   += failed requests, by the ``ChannelError``'s kind
                                                  (timeout, lost, unreachable, refused, internal, failed)
  channel.call_health                          calls without an answer since the last reply
                                                  (engine/ops/health.py: status, bsp_channel_up)

A reply's latency is the time from the batch leaving to ``request_many``
returning (the requests of a batch travel in one write and are answered
together; a reply that arrived before the batch's last one is observed at the
batch's end).  A channel's own retries (tcp mux ``retries``) are inside one
call: a request is counted once, with its final result.  Nothing is installed
without metrics, so an engine without them pays nothing.  ``unobserve(channel)``
(a reload removed the channel and its series went) stops it: a call still running
on it, such as a stored-and-forwarded reversal, writes no series again.
"""
from __future__ import annotations

from typing import Any

import trio

from engine.channels.base import ChannelError
from engine.ops.health import CallHealth


def observe_calls(channel: Any, metrics: Any) -> bool:
    """Wrap ``channel.request_many`` (on this instance) to report every call to ``metrics``.

    Returns False, and changes nothing, for a channel that makes no calls or is
    already observed.
    """
    inner = getattr(channel, "request_many", None)
    if inner is None or getattr(inner, "_bsp_observed", False):
        return False
    name = channel.name
    sent = metrics.channel_sent.labels(name)
    received = metrics.channel_received.labels(name)
    in_flight = metrics.channel_in_flight.labels(name)
    latency = metrics.channel_latency.labels(name)
    errors = metrics.channel_errors
    health = channel.call_health = CallHealth(name, str(getattr(channel, "address", "") or ""))  # read by health.outbound_health
    observed = [True]                                   # False once ``unobserve``d

    async def request_many(payloads: list[bytes], timeout: float | None = None, **kw: Any) -> list[Any]:
        n = len(payloads)
        if not n or not observed[0]:
            return await inner(payloads, timeout, **kw)
        in_flight.inc(n)
        t0 = trio.current_time()
        results: list[Any] | None = None
        try:
            results = await inner(payloads, timeout, **kw)
        finally:
            in_flight.dec(n)
            if observed[0]:              # unobserved while it ran: its series are gone, do not bring them back
                # an `unreachable` request never left (no connection, breaker, max_in_flight, still queued
                # when the connection broke): not sent.  Cancelled mid-batch: counted as sent (it may have).
                sent.inc(n if results is None else sum(not _unsent(r) for r in results))
        if not observed[0]:
            return results
        seconds = trio.current_time() - t0
        ok = 0
        for res in results:
            if isinstance(res, ChannelError):
                errors.labels(name, res.kind).inc()
            else:
                ok += 1
                latency.observe(seconds)
        if ok:
            received.inc(ok)
        health.record(results)
        return results

    def unobserved() -> None:
        observed[0] = False

    request_many._bsp_observed = True  # type: ignore[attr-defined]
    request_many._bsp_unobserve = unobserved  # type: ignore[attr-defined]
    channel.request_many = request_many
    return True


def _unsent(result: Any) -> bool:
    """An ``unreachable`` result: the request was never written (docs/operations.md, metrics)."""
    return isinstance(result, ChannelError) and result.kind == "unreachable"


def unobserve(channel: Any) -> None:
    """Stop reporting ``channel``'s calls and events to the metrics: a reload removed it and its series
    went (``Metrics.forget``).  A call still running on it (a stored-and-forwarded reversal, repeated
    until acknowledged, is not part of the generation's exchanges) must not bring them back."""
    off = getattr(getattr(channel, "request_many", None), "_bsp_unobserve", None)
    if off is not None:
        off()
    if getattr(channel, "metrics", None) is not None and hasattr(channel, "attach_metrics"):
        channel.attach_metrics(None)                    # a MUX's own counts and its breaker's circuit state
