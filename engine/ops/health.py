"""Is each outbound channel's counterpart answering?  The engine's ``state`` (ready / degraded / not ready).

    health = CallHealth()            # installed by engine.ops.calls.observe_calls as ``channel.call_health``
    health.record(results)           # per call batch: a reply clears the streak, a failed call extends it
    outbound_health(ch)              # {"up", "down_since", "failed_calls", "circuit", "last_error"}
    engine_state(status, ready, why) # ("degraded", ["channel biller (127.0.0.1:7002) down since ..."])

An outbound channel (role ``connect`` or ``both``) is **down** when

- its connector knows it cannot reach the counterpart: a plain ``tcp connect``
  whose last connect failed (or whose connection closed before any answer to
  the requests written on it; an idle connection the counterpart closed is no
  failure: it reconnects at the next call and stays up),
  a MUX whose every connection is failing to connect (or closed before any
  answer to what was written on it; one closed idle reopens at the next call,
  engine/channels/pool.py) or whose circuit breaker is open or half-open
  (``down_since`` and ``circuit`` on the connector); or
- its last calls got no answer (kinds ``unreachable``, ``lost``, ``timeout``:
  engine.resilience.FAILURE_KINDS) and no reply came since: ``failed_calls``
  counts them.  Any reply makes it up again; so does, for a plain ``tcp connect``,
  a connection opened after those calls failed (it reconnects in the background
  after its first call, so it comes back up without traffic) -- but not the one
  it opens itself after closing a connection for a call that timed out (replies
  in order out of step: engine/channels/tcp_connect.py ``_out_of_step``): that
  timeout and the calls it failed carry no connection, only a reply ends them.

A channel not tried yet (a plain ``tcp connect`` connects on first use) is up.
A down channel does not make the engine *not ready* (``GET /ready``: another
instance would reach the same counterpart no better, and taking every instance
out of rotation is an outage); it makes it ``degraded`` in ``GET /status``, and
``bsp_channel_up{channel}`` 0.  ``GET /ready?strict=1`` answers 503 while one is
down (docs/admin-api.md).
"""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import trio

from engine.channels.base import ChannelError
from engine.metrics import CIRCUIT_STATES
from engine.outage_log import OutageLog
from engine.resilience import FAILURE_KINDS

READY, DEGRADED, NOT_READY = "ready", "degraded", "not_ready"

log = logging.getLogger("bsp.channel")


class CallHealth:
    """Consecutive calls of one outbound channel that got no answer, since its last reply.

    A streak with a ``timeout`` in it is logged once (a warning naming the channel, the counterpart and what to
    do), reminded at most once a minute while calls go on failing, and its end once, when a reply comes
    (``engine/outage_log.py``): no connector logs a counterpart that accepts calls and does not answer them in
    time (a failed connect or a lost connection its connector logs itself)."""

    __slots__ = ("failed", "since", "last_error", "last_at", "connection", "name", "outage")

    def __init__(self, name: str = "", peer: str = "") -> None:
        self.failed = 0
        self.since: float | None = None      # wall time of the first of them
        self.last_error = ""
        self.last_at: float | None = None    # wall time of the last of them
        self.connection: int | None = None   # the connection the last of them happened on (plain tcp connect)
        self.name = name                     # the channel's, for the log
        # the log of the streak (engine/outage_log.py): said when a timeout starts it, reminded, said when it ends;
        # failures of other kinds are counted in it, their connector says them
        self.outage = OutageLog(log, name, peer or f"channel {name}'s counterpart")

    @property
    def announced(self) -> bool:
        return self.outage.loud

    def record(self, results: Iterable[Any]) -> None:
        for r in results:
            if not isinstance(r, ChannelError):
                out = self.outage
                if out.down:
                    out.end(f"channel {self.name}: answers again: a reply came after {out.count} call(s) without "
                            f"one since {iso(out.since)} (bsp status: up again)")
                self.failed, self.since = 0, None
            elif r.kind in FAILURE_KINDS:
                if self.failed and stale(self.connection, r.connection):
                    self.failed = 0          # a connection opened since those: they are over
                if not self.failed:
                    self.since = time.time()
                self.failed += 1
                self.last_error = str(r)
                self.last_at = time.time()
                self.connection = r.connection
                self.outage.failed(
                    f"{str(r).rstrip('.')} (timeout): the counterpart takes calls but does not answer them in time; "
                    f"the channel is down (bsp status: degraded) until a reply comes. Its calls fail in doubt (it may "
                    f"have applied them): a route without compensation flags those deals for an operator (bsp deals "
                    f"--flagged --live). Ask the counterpart about its response time, or raise the channel's timeout "
                    f"(docs/operations.md#slow-or-silent-counterparts)" if r.kind == "timeout" else str(r),
                    key=r.kind, kind=r.kind, loud=r.kind == "timeout")


def stale(failed_on: int | None, connects: Any) -> bool:
    """Calls that failed on connection ``failed_on`` (a plain ``tcp connect`` numbers its connections)
    are over once a later connection opened: the counterpart accepts connections again."""
    return failed_on is not None and isinstance(connects, int) and connects > failed_on


def circuit_state(ch: Any) -> str:
    """``closed``, ``half_open`` or ``open``: a channel with a circuit breaker (a MUX with
    ``breaker_failures``) reports its breaker; otherwise ``open`` while it backs off after a failed connect,
    ``half_open`` once the back-off is over and it has not reconnected yet, ``closed`` when connected or not
    tried since its last good connection."""
    state = getattr(ch, "circuit", None)          # a channel with a real breaker (tcp mux) says so itself
    if isinstance(state, str) and state in CIRCUIT_STATES:
        return state
    if getattr(ch, "_connected", False):
        return "closed"
    down_until = getattr(ch, "_down_until", -math.inf)
    if down_until == -math.inf:
        return "closed"
    try:
        now = trio.current_time()
    except RuntimeError:
        return "open"
    return "open" if now < down_until else "half_open"


def is_outbound(ch: Any) -> bool:
    return getattr(ch, "role", None) in ("connect", "both")


def outbound_health(ch: Any) -> dict[str, Any]:
    """``up``, and while down: ``down_since`` (wall time), ``failed_calls``, ``circuit``, ``last_error`` and
    ``last_error_at`` (wall time)."""
    calls = getattr(ch, "call_health", None)
    failed = calls.failed if calls is not None else 0
    if failed and getattr(ch, "_connected", False) and stale(calls.connection, getattr(ch, "connects", None)):
        failed = 0                      # they failed on an earlier connection; a new one is open now
    circuit = circuit_state(ch)
    since_connect = getattr(ch, "down_since", None)
    connector_down = not getattr(ch, "_connected", False) and (circuit != "closed" or since_connect is not None)
    up = not connector_down and not failed
    out: dict[str, Any] = {"up": up, "circuit": circuit}
    if up:
        return out
    starts = [t for t in (since_connect if connector_down else None, calls.since if failed and calls else None)
              if t is not None]
    out["down_since"] = min(starts) if starts else None
    out["failed_calls"] = failed
    mine = failed and calls is not None and calls.last_error
    last = calls.last_error if mine else getattr(ch, "_last_error", "")
    out["last_error"] = last.removeprefix(f"channel {getattr(ch, 'name', '')}: ")
    out["last_error_at"] = calls.last_at if mine else getattr(ch, "last_error_at", None)
    return out


def flapping(ch: Any) -> dict[str, Any] | None:
    """A channel that is up but keeps losing its connection with calls waiting (``tcp connect``, plain or MUX /
    ``pool``: FLAP_MIN or more in the last FLAP_WINDOW seconds; not the connections the engine closed itself
    after a timeout, ``resets``), the counterpart answering in between: ``{"lost_connections",
    "lost_calls", "window_s"}``, else None.  Each such loss fails its waiting calls (``lost``, in doubt)
    while the channel is back up at once: neither down nor well."""
    flaps = getattr(ch, "flaps", None)
    if flaps is None:
        return None
    from engine.channels.tcp_connect import FLAP_MIN, FLAP_WINDOW
    try:
        lost, calls = flaps(FLAP_WINDOW)
    except RuntimeError:           # outside trio
        return None
    if lost < FLAP_MIN:
        return None
    return {"lost_connections": lost, "lost_calls": calls, "window_s": int(FLAP_WINDOW)}


def flap_reason(name: str, row: Mapping[str, Any]) -> str:
    """One line for an operator: a channel whose counterpart keeps dropping the connection."""
    f = row["flapping"]
    where = f" ({row['address']})" if row.get("address") else ""
    return (f"channel {name}{where} flapping: {f['lost_connections']} connections lost in the last "
            f"{f['window_s']}s with calls waiting ({f['lost_calls']} calls failed in doubt, kind lost), reconnected each "
            f"time; ask the counterpart why it drops connections (its log, a load balancer or firewall idle "
            f"timeout, a connection limit)")


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def down_reason(name: str, row: Mapping[str, Any]) -> str:
    """One line for an operator: which channel, since when, how many calls failed, circuit, last error."""
    where = f" ({row['address']})" if row.get("address") else ""
    since = f" since {row['down_since']}" if row.get("down_since") else ""
    last = f"; last error: {row['last_error']}" if row.get("last_error") else ""
    if "circuit" not in row:        # an inbound channel that reaches out (nats consume): no calls, no circuit
        return f"channel {name}{where} down{since}: receives nothing meanwhile{last}"
    n = row.get("failed_calls") or 0
    calls = f"{n} call{'s' if n != 1 else ''} failed" if n else "no call failed yet"
    return f"channel {name}{where} down{since}: {calls}, circuit {row.get('circuit')}{last}"


def stranded_reason(channel: str, n: int) -> str:
    """One line for an operator: reversals owed to a channel the running configuration has no call for."""
    return (f"{n} ISO 8583 reversal{'s' if n != 1 else ''} owed to channel {channel} stranded: no call for channel "
            f"{channel} in the running configuration; kept queued, not sent, until a reload brings it back")


def storage_reason(fault: Mapping[str, Any]) -> str:
    """One line for an operator: a ledger file that cannot be written now (``engine.ledger.storage_faults``)."""
    n = fault.get("failures") or 0
    return f"{fault['what']} {fault['kind']} failing ({n} time{'s' if n != 1 else ''} so far): {fault['last']}"


def engine_state(channels: Mapping[str, Mapping[str, Any]], ready: bool, not_ready_reason: str = ""
                 ) -> tuple[str, list[str]]:
    """``(state, reasons)`` from the status' channel rows and the readiness."""
    reasons = [] if ready else [not_ready_reason or "not ready"]
    reasons += [down_reason(n, row) for n, row in sorted(channels.items()) if row.get("up") is False]
    reasons += [flap_reason(n, row) for n, row in sorted(channels.items())
                if row.get("up") is not False and row.get("flapping")]
    if not ready:
        return NOT_READY, reasons
    return (DEGRADED if reasons else READY), reasons
