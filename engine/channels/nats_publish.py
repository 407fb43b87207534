"""``nats.publish``: a ``call`` target that publishes each request to a NATS subject.

Two modes:

``mode = jetstream`` (default)
    A JetStream publish; the call's reply is the server's acknowledgement as
    JSON: ``{"stream": "PAYMENTS", "seq": 42, "duplicate": false}``.  The
    message id (``Nats-Msg-Id``) is the deal's reference (``deal { ref = ... }``
    declared before the call), so a request sent twice within the stream's
    duplicate window is stored once (``duplicate: true`` the second time).
``mode = request``
    Core NATS request/reply: the call's reply is the responder's answer.

One NATS connection per channel (trio-asyncio), reconnected by nats-py; at
most ``max_in_flight`` requests wait for an answer, more callers wait their
turn.  While the server cannot be reached calls fail at once with kind
``unreachable``; no answer in time gives ``timeout``.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from decimal import Decimal
from typing import Any

import orjson
import trio

from engine.channels.base import CallTimeout, ChannelError, Unreachable
from engine.channels.nats_auth import AUTH_OPTIONS
from engine.channels.nats_bridge import (
    CONNECT_TIMEOUT, RECONNECT_WAIT, SUBJECT, URL, LinkStop, NatsLink, describe, ensure_stream,
    subject_option, until_set_up,
)
from engine.channels.options import ChannelConfigError, built_check, duration_above_zero
from engine.runtime.limits import CountLimiter
from formats.component import ComponentSpec, OptionSpec

log = logging.getLogger("bsp.channel.nats")

MODES = ("jetstream", "request")
DEDUP = ("reference", "content", "none")


class NatsPublisher(LinkStop):
    role = "connect"
    takes_keys = True       # the call step passes each exchange's deal reference (message id)

    def __init__(self, name: str, options: dict[str, Any], *, load: bool = True) -> None:
        """``load`` false (``bsp check``): every option checked, no secret or TLS file read."""
        self.name = name
        self.link = NatsLink(name, options, load=load)
        self.subject = subject_option(name, options)
        if any(c in self.subject for c in "*>"):
            raise ChannelConfigError(f"channel {name}: option subject: a publish subject cannot hold wildcards "
                                     f"(* or >), got {self.subject!r}")
        self.mode = options.get("mode", "jetstream")
        # a JetStream ack is its own JSON: a call without `reply` reads it as JSON (engine/steps/call.py)
        self.answers_json = self.mode == "jetstream"
        if self.mode not in MODES:
            raise ChannelConfigError(f"channel {name}: option mode: expected one of {', '.join(MODES)}, "
                                     f"got {self.mode!r}")
        self.stream = options.get("stream")
        self.create_stream = bool(options.get("create_stream", True))
        self.dedup = options.get("dedup", "reference")
        if self.dedup not in DEDUP:
            raise ChannelConfigError(f"channel {name}: option dedup: expected one of {', '.join(DEDUP)}, "
                                     f"got {self.dedup!r}")
        self.dedup_window = duration_above_zero(name, options, "dedup_window", 120.0)
        self.timeout = duration_above_zero(name, options, "timeout", 5.0)
        limit = int(options.get("max_in_flight", 1024))
        if limit <= 0:
            raise ChannelConfigError(f"channel {name}: option max_in_flight: expected a positive count, got {limit}")
        self.in_flight = CountLimiter(limit)
        self._ready = trio.Event()
        self._setup_error = ""
        self.published = 0
        self.duplicates = 0

    @property
    def address(self) -> str:
        return f"{self.link.url} {self.subject}"

    # what engine/ops/health.py reads of a connector: whether it is connected, since when it is cut off
    # (a lost connection nats-py is reconnecting, or a refusal), and why; before, a NATS server that went
    # away left the channel "up" in bsp status until a call failed
    @property
    def _connected(self) -> bool:
        return self.link.connected

    @property
    def down_since(self) -> float | None:
        return None if self.link.connected else self.link.refused.since

    @property
    def _last_error(self) -> str:
        if self.link.connected:
            return ""
        return self.link.down_reason or self._setup_error or f"not connected to NATS at {self.link.url}"

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with self.link.session():
            task_status.started()
            await self.link.connect()
            if self.mode == "jetstream" and self.stream:
                def report(text: str) -> None:
                    self._setup_error = text

                await until_set_up(
                    lambda: ensure_stream(self.link, self.stream, [self.subject], create=self.create_stream,
                                          duplicate_window=self.dedup_window),
                    lambda exc: (f"channel {self.name}: cannot set up JetStream stream {self.stream} "
                                 f"on {self.link.url}: {describe(exc)} (is JetStream enabled: nats-server -js?)"),
                    report)
            self._ready.set()
            await trio.sleep_forever()

    async def request_many(self, payloads: list[bytes], timeout: float | None = None, *,
                           keys: list[str | None] | None = None) -> list[bytes | ChannelError]:
        if not payloads:
            return []
        limit = self.timeout if timeout is None else timeout
        link = self.link
        if not self._ready.is_set():
            if trio.current_time() < link.down_until or link.loop is None:
                return [Unreachable(link.unreachable_text(), channel=self.name)] * len(payloads)
            with trio.move_on_after(min(limit, link.connect_timeout)):
                await self._ready.wait()
            if not self._ready.is_set():
                text = self._setup_error or link.unreachable_text()
                return [Unreachable(text, channel=self.name)] * len(payloads)
        if not link.connected:     # reconnecting: fail now rather than leave a buffered publish behind
            return [Unreachable(f"channel {self.name}: connection to NATS at {link.url} lost, reconnecting",
                                channel=self.name)] * len(payloads)
        with trio.move_on_after(limit) as scope:
            taken = await self.in_flight.acquire(len(payloads))
        if scope.cancelled_caught:
            return [CallTimeout(f"channel {self.name}: {self.in_flight.total} requests already in flight for "
                                f"{limit:g}s", channel=self.name)] * len(payloads)
        try:
            if self.mode == "jetstream":
                ids = self._msg_ids(payloads, keys)
                results = await link.aio(self._publish_all)(payloads, ids, limit)
            else:
                results = await link.aio(self._request_all)(payloads, limit)
        finally:
            self.in_flight.release(taken)
        return [r if isinstance(r, bytes) else self._error(r, limit) for r in results]

    def _msg_ids(self, payloads: list[bytes], keys: list[str | None] | None) -> list[str | None]:
        if self.dedup == "none":
            return [None] * len(payloads)
        if self.dedup == "content":
            return [hashlib.sha256(p).hexdigest()[:32] for p in payloads]
        keys = keys or [None] * len(payloads)
        return [None if k is None or k == "" else str(k) for k in keys]

    # -- asyncio side: one trio -> asyncio hop per batch ---------------------------
    async def _publish_all(self, payloads: list[bytes], ids: list[str | None],
                           timeout: float) -> list[bytes | BaseException]:
        js = self.link.js

        async def one(p: bytes, msg_id: str | None) -> bytes | BaseException:
            try:
                ack = await js.publish(self.subject, p, timeout=timeout, stream=self.stream,
                                       headers={"Nats-Msg-Id": msg_id} if msg_id else None)
            except Exception as exc:
                return exc
            self.published += 1
            if ack.duplicate:
                self.duplicates += 1
            return orjson.dumps({"stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)})

        return list(await asyncio.gather(*[one(p, i) for p, i in zip(payloads, ids)]))

    async def _request_all(self, payloads: list[bytes], timeout: float) -> list[bytes | BaseException]:
        nc = self.link.nc

        async def one(p: bytes) -> bytes | BaseException:
            try:
                msg = await nc.request(self.subject, p, timeout=timeout)
            except Exception as exc:
                return exc
            self.published += 1
            return bytes(msg.data)

        return list(await asyncio.gather(*[one(p) for p in payloads]))

    def _error(self, exc: BaseException, limit: float) -> ChannelError:
        from nats import errors as ne
        from nats.js import errors as jse

        where = f"NATS at {self.link.url}, subject {self.subject}"
        if isinstance(exc, jse.NoStreamResponseError):     # what nats-py raises for a JetStream publish
            expected = f", expected stream {self.stream}" if self.stream else ""
            return Unreachable(f"channel {self.name}: no JetStream stream takes subject {self.subject} ({where}"
                               f"{expected}); create the stream or check `stream` on the channel", channel=self.name)
        if isinstance(exc, ne.NoRespondersError):
            return Unreachable(f"channel {self.name}: nobody answers on subject {self.subject} ({where})",
                               channel=self.name)
        if isinstance(exc, (ne.TimeoutError, asyncio.TimeoutError)):
            return CallTimeout(f"channel {self.name}: no answer from {where} within {limit:g}s", channel=self.name)
        if isinstance(exc, (ne.ConnectionClosedError, ne.OutboundBufferLimitError, ne.ConnectionReconnectingError,
                            ne.StaleConnectionError)):
            return Unreachable(f"channel {self.name}: {where}: {describe(exc)}", channel=self.name)
        if isinstance(exc, jse.APIError):
            return ChannelError(f"channel {self.name}: JetStream refused the message ({where}): "
                                f"{exc.description or describe(exc)}", channel=self.name)
        return ChannelError(f"channel {self.name}: {where}: {describe(exc)}", channel=self.name)


def build(decl: Any) -> NatsPublisher:
    return NatsPublisher(decl.name, dict(decl.options))


COMPONENT = ComponentSpec(
    category="channel",
    name="nats.publish",
    doc=(
        "Publish each `call` request to a NATS subject (nats-py under trio-asyncio, one connection per "
        "channel, reconnected automatically). `mode = jetstream`: a JetStream publish whose reply is the "
        "acknowledgement `{\"stream\", \"seq\", \"duplicate\"}` as JSON; the message id is the deal's "
        "reference (`dedup = reference`, declare `deal { ref = ... }` before the call), so a request "
        "repeated within the dedup window is stored once. `mode = request`: core NATS request/reply, the "
        "reply is the responder's answer. While the server is unreachable calls fail at once (kind "
        "`unreachable`); no answer in time fails with kind `timeout`."
    ),
    check=built_check(NatsPublisher, load=False),
    options=(
        URL,
        SUBJECT,
        OptionSpec("mode", "ident", "jetstream: store in a stream and return its ack; request: core "
                   "request/reply.", default="jetstream", choices=MODES),
        OptionSpec("stream", "string", "JetStream stream expected to take the subject (checked by the server)."),
        OptionSpec("create_stream", "bool", "Create `stream` (file storage, the channel's subject) when missing.",
                   default=True),
        OptionSpec("dedup", "ident", "Message id for JetStream de-duplication: reference (the deal's "
                   "reference), content (a hash of the request), none.", default="reference", choices=DEDUP),
        OptionSpec("dedup_window", "duration", "Duplicate window of a stream this channel creates.",
                   default=Decimal(120)),
        OptionSpec("timeout", "duration", "Time to wait for the ack or answer (a call's own timeout wins).",
                   default=Decimal(5)),
        OptionSpec("max_in_flight", "int", "Requests waiting for an answer at most; more callers wait.",
                   default=1024),
        CONNECT_TIMEOUT,
        RECONNECT_WAIT,
        *AUTH_OPTIONS,
    ),
    build=build,
    examples=(
        'channel settlement = nats publish {\n'
        '    url     = "nats://127.0.0.1:4222"\n'
        '    subject = "settlement.orders"\n'
        '    stream  = "SETTLEMENT"\n'
        '    timeout = 2s\n'
        '}',
    ),
)
