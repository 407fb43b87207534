"""Virtual channels and the isolated engine (replay and route tests).

``virtual_registry(registry, answer)`` is a registry clone whose every channel
kind builds a ``VirtualChannel`` instead of sockets: an inbound channel keeps
its handler (the dispatcher) so requests can be fed in directly; an outbound
channel hands each request to ``answer(channel, call, ctx)``, an async function
returning the reply bytes or a ``ChannelError`` (it may sleep; the channel's
timeout applies, as on a real connection).

``isolated_engine(program, registry, answer, workdir)`` runs a Switchboard on
those channels with its own ledger file under ``workdir``;
``engine.send(channel, raw, ctx)`` dispatches one request under ``ctx`` and
returns the reply bytes (or None).
"""
from __future__ import annotations

import dataclasses
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

from engine.channels.base import CallTimeout, ConnInfo
from engine.replay.context import CURRENT, CallRecord, ExchangeCtx, error_text
from engine.replay.tap import tap_ledger

Answer = Callable[[str, CallRecord, "ExchangeCtx | None"], Awaitable[Any]]


class VirtualChannel:
    def __init__(self, name: str, role: str, answer: Answer, timeout: float, real: Any = None) -> None:
        self.name = name
        self.role = role
        self.real = real            # the channel the declaration builds (no socket): an http listen's statuses
        self.answer = answer
        self.timeout = timeout
        self.address = f"virtual:{name}"
        self.port = 0
        self.handler: Any = None
        self._stopped = trio.Event()

    async def serve(self, handler: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        tap_ledger(handler)
        self.handler = handler
        task_status.started()
        await self._stopped.wait()

    def stop_accepting(self) -> None:
        self._stopped.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def request_many(self, payloads: list[bytes], timeout: float | None = None,
                           **kw: Any) -> list[Any]:
        """``kw``: what the call step hands the channel (``names``: a file write's name values, kept
        with the call for the replay's diff and the route tests' ``expect call``)."""
        limit = self.timeout if timeout is None else timeout
        out: list[Any] = []
        names = kw.get("names") or [None] * len(payloads)
        for p, nv in zip(payloads, names):
            ctx = CURRENT.get()
            call = CallRecord(self.name, ctx.next_call_seq() if ctx is not None else 0, bytes(p),
                              t_out=trio.current_time(), names=dict(nv) if nv is not None else None)
            if ctx is not None:
                ctx.calls.append(call)
            res: Any = None
            with trio.move_on_after(limit) as scope:
                res = await self.answer(self.name, call, ctx)
            if scope.cancelled_caught:
                res = CallTimeout(f"channel {self.name}: no reply within {limit:g}s", channel=self.name)
            call.t_in = trio.current_time()
            if isinstance(res, (bytes, bytearray)):
                call.reply = bytes(res)
            else:
                call.error = error_text(res)
            out.append(res)
        return out


def virtual_registry(registry: Any, answer: Answer) -> Any:
    reg = registry.clone()
    for kind in registry.names("channel"):
        spec = registry.get("channel", kind)
        if spec is None or spec.build is None:
            continue

        def build(decl: Any, _real: Any = spec.build) -> VirtualChannel:
            real = _real(decl)          # builds no sockets; tells the role and the timeout
            return VirtualChannel(decl.name, real.role, answer, float(getattr(real, "timeout", 30.0)), real)

        reg.register(dataclasses.replace(spec, build=build), replace=True)
    return reg


class IsolatedEngine:
    def __init__(self, switchboard: Any, ledger_path: Path) -> None:
        self.switchboard = switchboard
        self.ledger_path = ledger_path
        self._conns = 0

    def handler(self, channel: str) -> Any:
        ch = self.switchboard.channels.get(channel)
        if ch is None or getattr(ch, "handler", None) is None:
            raise KeyError(f"no route receives from channel {channel!r}; receiving channels: "
                           f"{', '.join(sorted(self.switchboard.dispatchers)) or '(none)'}")
        return ch.handler

    async def send(self, channel: str, raw: bytes, ctx: ExchangeCtx, *, conn: int | None = None,
                   framing_error: Any = None, refused: Any = None,
                   extra: dict[str, Any] | None = None, who: dict[str, Any] | None = None,
                   http: dict[str, Any] | None = None) -> bytes | None:
        """``refused``: the StepFailure with which the channel refused the request when it was recorded
        (an http listen's signature check, which a replay does not repeat: the signing time has passed); it is
        refused again through the candidate's dispatcher, which records it and answers its error reply.
        ``extra``: the connection's extras, as a channel gives them (``origins``: a file record's place);
        ``who``: the peer the channel authenticated, what the routes read as ``peer.*`` (None: none);
        ``http``: an http listen request's line and headers as recorded (``frames.http``), what the routes read
        as ``http.*`` (None: a capture of before they were kept, ``http.*`` null)."""
        handler = self.handler(channel)
        listener = getattr(self.switchboard.channels.get(channel), "real", None)
        if conn is None:
            self._conns += 1
            conn = self._conns
        info = ConnInfo(channel=channel, peer="virtual", number=conn, extra=dict(extra or {}), who=who)
        if http is not None:
            info.extra["http"] = http
        token = CURRENT.set(ctx)
        try:
            if framing_error is not None:
                reply = await handler.framing_error(info, framing_error)
            elif refused is not None:
                from engine.channels.http_listen_dispatch import refuse_one
                out = await refuse_one(handler, info, raw, http or {}, refused)
                reply = out.reply
                _http_status(ctx, listener, out, refused=True)
            elif callable(getattr(listener, "status_for", None)):
                # an http listen: the status its answer would carry, from the deal's outcome and the candidate's
                # status_ok / status_map (compared with the recorded one, frames.status)
                from engine.channels.http_listen_dispatch import dispatch_one
                out = await dispatch_one(handler, info, raw, http or {})
                reply = out.reply
                _http_status(ctx, listener, out)
            else:
                (reply,) = await handler.handle(info, [raw])
        finally:
            CURRENT.reset(token)
        ctx.reply = reply
        return reply


def _http_status(ctx: ExchangeCtx, listener: Any, out: Any, *, refused: bool = False) -> None:
    """``ctx.extra["http_status"]``: the status the candidate's http listen answers ``out`` with.  A request
    refused as malformed that was answered 415 when recorded (a Content-Type the routes do not read, which a
    capture of bodies cannot tell from other malformed bodies) is answered 415 again."""
    status_for = getattr(listener, "status_for", None)
    if not callable(status_for):
        return
    unsupported = (refused and out.kind == "malformed" and ctx.extra.get("recorded_status") == 415)
    ctx.extra["http_status"] = status_for(out, unsupported=unsupported)


@asynccontextmanager
async def isolated_engine(program: Any, registry: Any, answer: Answer, workdir: Path,
                          overrides: dict[str, dict[str, Any]] | None = None) -> AsyncIterator[IsolatedEngine]:
    from engine.ledger import open_ledger
    from engine.runtime.switchboard import Switchboard

    ledger_path = Path(workdir) / "ledger.duckdb"
    async with open_ledger(ledger_path, audit_key=None, keyring=None) as ledger:
        await ledger.record_config(program.version, program.sources)
        sb = Switchboard(program, virtual_registry(registry, answer), ledger=ledger, grace=1.0,
                         store_and_forward=False, overrides=overrides)      # reversals inline: tests script them in call order
        async with trio.open_nursery() as nursery:
            await nursery.start(sb.run)
            try:
                yield IsolatedEngine(sb, ledger_path)
            finally:
                sb.drain()
