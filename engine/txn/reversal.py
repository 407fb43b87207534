"""ISO 8583 reversals: an authorization or financial request that got no answer is reversed.

A 0100 / 0200 whose call timed out (or lost its connection) may have been
approved by the host; the engine cannot know, so it sends the reversal (0400 /
0420) carrying DE 90 (original data elements), and repeats it as 0401 / 0421
until the host acknowledges (0410 / 0430).  Every attempt is a trace line of
the deal (``reversal`` / ``reversal.repeat``) and an event.

The reversal goes on a connection of its own to the call channel's address,
with the channel's framing, and waits for the answer whose MTI class and STAN
(DE 11) match (``formats.iso8583.mux.mux_key``), so a late answer to the
original request on the pipelined channel cannot be taken for it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import trio

from engine.txn.plan import REVERSIBLE
from formats.errors import FormatError
from formats.iso8583.mux import mux_key

# the fields a reversal copies from its original (no PIN, track or chip data)
KEEP = ("2", "3", "4", "7", "11", "12", "13", "32", "33", "37", "41", "42", "49")
DEFAULT_ATTEMPTS = 5


@dataclass
class Attempt:
    mti: str
    started_at: datetime
    duration_ms: float
    outcome: str          # "acknowledged", "timeout", "unreachable", "bad reply"
    detail: str


def original_data_elements(values: dict[str, Any]) -> str:
    """DE 90 (n 42): original MTI, STAN, transmission date-time, acquirer and forwarder ids."""
    de7 = values.get("7")
    if isinstance(de7, datetime):
        de7 = de7.strftime("%m%d%H%M%S")
    return (f"{values.get('t', ''):0>4}"[:4] + f"{values.get('11', '') or '':0>6}"[:6]
            + f"{de7 or '':0>10}"[:10] + f"{values.get('32', '') or '':0>11}"[:11]
            + f"{values.get('33', '') or '':0>11}"[:11])


def reversal_of(values: dict[str, Any], *, repeat: bool = False) -> dict[str, Any]:
    """The reversal (or its repeat) of an original request's values."""
    mti = REVERSIBLE.get(str(values.get("t")))
    if mti is None:
        raise ValueError(f"MTI {values.get('t')!r} is not reversible (only {', '.join(REVERSIBLE)})")
    out = {k: values[k] for k in KEEP if values.get(k) not in (None, "")}
    out["t"] = mti[:3] + ("1" if repeat else "0")
    out["90"] = original_data_elements(values)
    return out


async def reverse(values: dict[str, Any], call: Any, *, attempts: int = DEFAULT_ATTEMPTS,
                  timeout: float | None = None) -> list[Attempt]:
    """Send the reversal of ``values`` through ``call``'s channel until acknowledged.

    Returns every attempt; the last one's outcome is ``acknowledged`` when the
    host answered 0410/0430 (any response code: the host has the reversal).
    """
    ch = call.channel
    codec = call.codec
    wait = timeout if timeout is not None else (call.timeout or getattr(ch, "timeout", 30.0))
    out: list[Attempt] = []
    for n in range(attempts):
        msg = reversal_of(values, repeat=n > 0)
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        outcome, detail = await _one(ch, codec, msg, wait)
        out.append(Attempt(msg["t"], started, (time.perf_counter() - t0) * 1000.0, outcome, detail))
        if outcome == "acknowledged":
            break
    return out


async def _one(ch: Any, codec: Any, msg: dict[str, Any], wait: float) -> tuple[str, str]:
    host, port = getattr(ch, "host", None), getattr(ch, "port", None)
    if host is None or not hasattr(ch, "_new_framer"):
        return "unreachable", f"channel {getattr(ch, 'name', '?')} is not a tcp connect channel"
    framer = ch._new_framer()
    want = mux_key(msg)
    try:
        payload = codec.encode(msg)
    except FormatError as exc:
        return "bad reply", f"cannot encode the {msg['t']}: {exc}"
    with trio.move_on_after(wait):
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            return "unreachable", f"{host}:{port}: {exc}"
        async with stream:
            try:
                await stream.send_all(framer.frame(payload))
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        return "lost", f"{host}:{port} closed the connection before the {msg['t']} answer"
                    for frame in framer.feed(data):
                        try:
                            ans = codec.decode(frame)
                        except FormatError as exc:
                            return "bad reply", f"answer to the {msg['t']} is not valid ISO 8583: {exc}"
                        if mux_key(ans) == want and str(ans.get("t", ""))[2] in "13":
                            return "acknowledged", f"{ans.get('t')} response code {ans.get('39')!r}"
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, FormatError) as exc:
                return "lost", f"{host}:{port}: {exc}"
    return "timeout", f"no {msg['t'][:2]}{int(msg['t'][2]) + 1}{msg['t'][3]} from {host}:{port} within {wait:g}s"
