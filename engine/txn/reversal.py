"""ISO 8583 reversals: an authorization or financial request that got no answer is reversed.

A 0100 / 0200 whose call timed out (or lost its connection) may have been
approved by the host; the engine cannot know, so it sends the reversal (0400 /
0420) carrying DE 90 (original data elements), and repeats it as 0401 / 0421
until the host acknowledges (0410 / 0430).  Every attempt is a trace line of
the deal (``reversal`` / ``reversal.repeat``) and an event.

On a channel that matches replies by key (``tcp connect`` with ``match =
iso8583``: MTI class + DE 11 + DE 41) the reversal goes over the channel's own
MUX pool connection like any request; a late answer to the original (class
02x0) cannot be taken for the reversal's (class 04x0).  A channel that pairs
replies first-in first-out (plain ``tcp connect``, or a pool without
``match``) would misalign them, so there the reversal goes on a connection of
its own to the channel's address, with its framing (and TLS), and waits for
the answer whose key matches.  Other channels (route tests' virtual channels,
memory channels) take it through ``request_many``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import trio

from engine.channels.base import ChannelError
from engine.txn.approval import approves
from engine.txn.plan import REVERSIBLE
from formats.errors import FormatError
from formats.iso8583.mux import mux_key

# the fields a reversal copies from its original (no PIN, track or chip data)
KEEP = ("2", "3", "4", "7", "11", "12", "13", "32", "33", "37", "41", "42", "49")
DEFAULT_ATTEMPTS = 5
# advices a route hands to store and forward (``call ... store and forward``): sent again as their own repeat
# (0420 -> 0421), not reversed; what the repeat carries is the advice as sent, less these (track 2 and 3, track
# 1, PIN block, chip data: never kept while queued)
ADVICES = frozenset({"0120", "0220", "0400", "0420"})
SECRET = ("35", "36", "45", "52", "55")


def is_advice(mti: Any) -> bool:
    """An advice (or reversal) that is repeated as itself (``call ... store and forward``): 0120, 0220, 0400, 0420
    and their repeats."""
    t = str(mti or "")
    return len(t) == 4 and t[:3] + "0" in ADVICES and t[3] in "01"


@dataclass
class Attempt:
    mti: str
    started_at: datetime
    duration_ms: float
    outcome: str          # "acknowledged", "timeout", "lost", "unreachable", "bad reply", "bad request"
    detail: str
    code: str | None = None   # acknowledged: the 0430's / 0410's DE 39 (None when it has none)

    @property
    def approved(self) -> bool:
        """Acknowledged with a DE 39 that says the reversal was applied (``engine.txn.approval.APPROVED``); an acknowledgement
        whose DE 39 says otherwise (original not found, reversal declined, ...) still ends the repeats: the
        host received it, and a repeat would get the same answer (docs/transactions.md)."""
        return self.outcome == "acknowledged" and approves(self.code)


def response_code(ans: dict[str, Any]) -> str | None:
    """DE 39 of an answer, as text (None when it has none)."""
    code = ans.get("39")
    return None if code is None else str(code).strip()


def original_data_elements(values: dict[str, Any]) -> str:
    """DE 90 (n 42): original MTI, STAN, transmission date-time, acquirer and forwarder ids."""
    de7 = values.get("7")
    if isinstance(de7, datetime):
        de7 = de7.strftime("%m%d%H%M%S")
    return (f"{values.get('t', ''):0>4}"[:4] + f"{values.get('11', '') or '':0>6}"[:6]
            + f"{de7 or '':0>10}"[:10] + f"{values.get('32', '') or '':0>11}"[:11]
            + f"{values.get('33', '') or '':0>11}"[:11])


def kept(values: dict[str, Any]) -> dict[str, Any]:
    """What a queued reversal keeps of its original's values (the ``rev`` entry of the transaction log,
    which stays until the host acknowledges): the MTI and ``KEEP``, all that ``reversal_of`` reads.
    Never the track data, PIN block or chip data of the original (``secret`` in the specs).  An advice handed
    to store and forward by its route (``is_advice``) keeps every field it was sent with but those."""
    if is_advice(values.get("t")):
        return {k: v for k, v in values.items() if k not in SECRET}
    return {k: values[k] for k in ("t", *KEEP) if k in values}


def reversal_of(values: dict[str, Any], *, repeat: bool = False) -> dict[str, Any]:
    """The reversal (or its repeat) of an original request's values; of an advice (``is_advice``), the advice
    itself (or its repeat: 0420 -> 0421), its fields as sent."""
    t = str(values.get("t"))
    if is_advice(t):
        out = {k: v for k, v in values.items() if k not in SECRET and v not in (None, "")}
        out["t"] = t[:3] + ("1" if repeat else "0")
        return out
    mti = REVERSIBLE.get(t)
    if mti is None:
        raise ValueError(f"MTI {values.get('t')!r} is not reversible (only {', '.join(REVERSIBLE)})")
    out = {k: values[k] for k in KEEP if values.get(k) not in (None, "")}
    out["t"] = mti[:3] + ("1" if repeat else "0")
    out["90"] = original_data_elements(values)
    return out


async def reverse(values: dict[str, Any], call: Any, *, attempts: int = DEFAULT_ATTEMPTS,
                  timeout: float | None = None, sent: int = 0) -> list[Attempt]:
    """Send the reversal of ``values`` through ``call``'s channel until acknowledged, inline (at
    most ``attempts``; route tests and replays: an engine's own reversals are stored and
    forwarded by ``engine.txn.saf``, which calls ``attempt`` until acknowledged).

    Returns every attempt; the last one's outcome is ``acknowledged`` when the
    host answered 0410/0430 (any response code: the host has the reversal).  ``sent``: attempts already
    made (an advice its call sent once: every attempt here is a repeat).
    """
    out: list[Attempt] = []
    for n in range(attempts):
        a = await attempt(values, call, repeat=n + sent > 0, timeout=timeout)
        out.append(a)
        if a.outcome == "acknowledged":
            break
    return out


def wait_of(call: Any, timeout: float | None = None) -> float:
    """How long one attempt waits for its answer: ``timeout``, else the call's, else its channel's."""
    return timeout if timeout is not None else (call.timeout or getattr(call.channel, "timeout", 30.0))


async def attempt(values: dict[str, Any], call: Any, *, repeat: bool, timeout: float | None = None) -> Attempt:
    """One reversal (``repeat``: its repeat, 0401 / 0421) through ``call``'s channel."""
    ch = call.channel
    codec = call.codec
    wait = wait_of(call, timeout)
    msg = reversal_of(values, repeat=repeat)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    if _fifo(ch):
        outcome, detail, *code = await _own_connection(ch, codec, msg, wait)
    else:
        outcome, detail, *code = await _through_channel(ch, codec, getattr(call, "reply_codec", None) or codec,
                                                        msg, wait)
    return Attempt(msg["t"], started, (time.perf_counter() - t0) * 1000.0, outcome, detail,
                   code[0] if code else None)


def _fifo(ch: Any) -> bool:
    """Does ``ch`` pair replies with requests in order (plain tcp connect, a pool without ``match``)?"""
    if hasattr(ch, "_new_framer"):
        return True
    return hasattr(ch, "pool") and getattr(ch, "key_of", None) is None


def _answer_mti(msg: dict[str, Any]) -> str:
    t = msg["t"]
    return f"{t[:2]}{int(t[2]) + 1}0"


async def _through_channel(ch: Any, codec: Any, reply_codec: Any, msg: dict[str, Any],
                           wait: float) -> tuple[Any, ...]:
    """The reversal as one request on the call's channel (its MUX connection when it matches by key)."""
    try:
        payload = codec.encode(msg)
    except FormatError as exc:
        return "bad request", f"cannot encode the {msg['t']}: {exc}"
    (res,) = await ch.request_many([payload], wait)
    name = getattr(ch, "name", "?")
    if isinstance(res, ChannelError):
        kind = res.kind if res.kind in ("timeout", "lost", "unreachable") else "failed"
        if kind == "timeout":
            return kind, f"no {_answer_mti(msg)} on channel {name} within {wait:g}s"
        return kind, str(res)
    try:
        ans = reply_codec.decode(res) if reply_codec is not None else None
    except FormatError as exc:
        return "bad reply", f"the answer to the {msg['t']} on channel {name} is not valid ISO 8583: {exc}"
    t = str(ans.get("t", "")) if isinstance(ans, dict) else ""
    if len(t) == 4 and t[2] in "13" and mux_key(ans, ()) == mux_key(msg, ()):
        return "acknowledged", f"{t} response code {ans.get('39')!r}", response_code(ans)
    return "bad reply", (f"the answer to the {msg['t']} on channel {name} is a {t or '(no MTI)'}, "
                         f"expected {_answer_mti(msg)}")


async def _own_connection(ch: Any, codec: Any, msg: dict[str, Any], wait: float) -> tuple[Any, ...]:
    host, port = getattr(ch, "host", None), getattr(ch, "port", None)
    new_framer = getattr(ch, "_new_framer", None) or getattr(getattr(ch, "pool", None), "new_framer", None)
    if host is None or new_framer is None:
        return "unreachable", f"channel {getattr(ch, 'name', '?')} is not a tcp connect channel"
    framer = new_framer()
    want = mux_key(msg)
    try:
        payload = codec.encode(msg)
    except FormatError as exc:
        return "bad request", f"cannot encode the {msg['t']}: {exc}"
    tls = getattr(ch, "ssl_context", None)
    with trio.move_on_after(wait):
        try:
            stream: Any = await trio.open_tcp_stream(host, port)
            if tls is not None:
                stream = trio.SSLStream(stream, tls, server_hostname=host)
                await stream.do_handshake()
        except (OSError, trio.BrokenResourceError) as exc:
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
                            return ("acknowledged", f"{ans.get('t')} response code {ans.get('39')!r}",
                                    response_code(ans))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, FormatError) as exc:
                return "lost", f"{host}:{port}: {exc}"
    return "timeout", f"no {_answer_mti(msg)} from {host}:{port} within {wait:g}s"
