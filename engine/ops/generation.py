"""One configuration generation, bound; and the handler indirection that lets generations swap.

    gen = build_generation(number, program, registry, ledger=ledger, overrides=..., reuse={"mainframe": ch})
    ref = HandlerRef(gen, gen.dispatchers["mainframe"])
    await nursery.start(channel.serve, ref)      # the channel calls ref.handle(...) for every batch
    ref.point(new_gen, new_gen.dispatchers["mainframe"])    # atomic: the next batch runs on new_gen

``build_generation`` does everything that can fail before traffic moves: it
builds every channel object that is not reused, every codec (also formats no
route uses yet), loads every table and compiles every route, through the
ordinary ``Switchboard`` constructor (which is never ``run`` here).  Channels
kept from the running generation are handed in by ``reuse`` so their sockets
and open connections stay.

A batch of frames runs entirely on the generation it started on:
``HandlerRef.handle`` reads (generation, dispatcher) once, counts the batch
in that generation's ``in_flight`` and awaits the dispatcher.  A retired
generation's ``idle`` event is set once its last batch has finished.
"""
from __future__ import annotations

import dataclasses
import time
import weakref
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import trio

from engine.runtime.binder import BindError
from engine.runtime.switchboard import Switchboard


ALIVE: "weakref.WeakSet[Generation]" = weakref.WeakSet()     # every generation not yet freed (bookkeeping)


class Generation:
    def __init__(self, number: int, program: Any, sb: Switchboard) -> None:
        self.number = number
        self.program = program
        self.version = program.version
        self.sb = sb
        self.channels: dict[str, Any] = sb.channels
        self.dispatchers: dict[str, Any] = sb.dispatchers
        self.started_at = time.time()
        self.in_flight = 0
        self.batches = 0
        self.retired = False
        self.idle = trio.Event()
        self.overrides: dict[str, dict[str, Any]] = {}     # the channel overrides it was bound with
        self.certs: list[Any] = []       # engine.certexpiry.CertExpiry of its channels' cert / ca files
        self.secrets: dict[str, Any] = {}   # keyed digests of its secret files (engine.ops.files.secret_digests)
        self.calendars: list[Any] = []   # engine.calexpiry.CalendarSpan of the calendar tables its routes use
        ALIVE.add(self)

    def enter(self) -> None:
        self.in_flight += 1
        self.batches += 1

    def hold(self) -> None:
        """In use beyond one batch (a file being run, batch after batch): not idle until ``leave``."""
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.retired and self.in_flight == 0:
            self.idle.set()

    def retire(self) -> None:
        self.retired = True
        if self.in_flight == 0:
            self.idle.set()

    def routes(self) -> dict[str, Any]:
        """route name -> BoundRoute."""
        return {br.name: br for d in self.dispatchers.values() for br in d.routes}


class HandlerRef:
    """The ``ExchangeHandler`` a listening channel is given: it forwards to the current dispatcher."""

    __slots__ = ("channel", "_target", "observer")

    def __init__(self, channel: str, gen: Generation, dispatcher: Any, observer: Any = None) -> None:
        self.channel = channel
        self._target = (gen, dispatcher)
        self.observer = observer

    @property
    def generation(self) -> Generation:
        return self._target[0]

    @property
    def dispatcher(self) -> Any:
        """The dispatcher batches go to now (changes on reload)."""
        return self._target[1]

    def point(self, gen: Generation, dispatcher: Any) -> None:
        self._target = (gen, dispatcher)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Keep the current generation in use while the block runs (a ``file watch`` channel runs a file in
        many batches): a reload that retires it meanwhile closes its outbound channels only after the
        block, not between two batches (the file's later records would find them closed)."""
        gen = self._target[0]
        gen.hold()
        try:
            yield
        finally:
            gen.leave()

    async def handle(self, conn: Any, frames: list[bytes]) -> list[bytes | None]:
        return await self.handle_via(conn, frames, None)

    async def handle_via(self, conn: Any, frames: list[bytes], via: Any) -> list[bytes | None]:
        """``handle`` through ``via(dispatcher)``, the current dispatcher as a caller wraps it (a file or
        HTTP channel learns each deal's outcome that way: engine.channels.http_listen_dispatch)."""
        gen, disp = self._target
        if via is not None:
            disp = via(disp)
        gen.enter()
        obs = self.observer
        if obs is not None:
            obs.frames_in(self.channel, len(frames))
        try:
            replies = await disp.handle(conn, frames)
        finally:
            gen.leave()
        if obs is not None:
            obs.frames_out(self.channel, sum(r is not None for r in replies))
        return replies

    async def with_dispatcher(self, fn: Any, *, refusing: Any = None) -> Any:
        """``await fn(dispatcher)`` with the current dispatcher, inside its generation (a channel that
        answers a request itself, such as an http listen refusing a bad signature, still records the
        deal and the dead letter through it: engine.channels.http_listen_dispatch.refuse_one).
        ``refusing`` (conn, request bytes, StepFailure) is for a recording tap; unused here."""
        gen, disp = self._target
        gen.enter()
        obs = self.observer
        if obs is not None:
            obs.frames_in(self.channel, 1)
        try:
            out = await fn(disp)
        finally:
            gen.leave()
        if obs is not None and getattr(out, "reply", None) is not None:
            obs.frames_out(self.channel, 1)
        return out

    async def reply_not_sent(self, conn: Any, unsent: list[tuple[str, str]]) -> int:
        """The dispatcher's ``reply_not_sent`` (an event on each deal), counted in
        ``bsp_channel_errors_total{kind="reply_not_sent"}``."""
        if self.observer is not None:
            for _ in unsent:
                self.observer.channel_error(self.channel, "reply_not_sent")
        return await self._target[1].reply_not_sent(conn, unsent)

    async def framing_error(self, conn: Any, err: Any) -> bytes | None:
        gen, disp = self._target
        gen.enter()
        if self.observer is not None:
            self.observer.channel_error(self.channel, "framing")
        try:
            return await disp.framing_error(conn, err)
        finally:
            gen.leave()


class _ReusingRegistry:
    """A registry view whose channel kinds hand back the running channel objects named in ``reuse``."""

    def __init__(self, registry: Any, reuse: Mapping[str, Any]) -> None:
        self._registry = registry
        self._reuse = reuse

    def get(self, category: str, name: str) -> Any:
        spec = self._registry.get(category, name)
        if category != "channel" or spec is None or spec.build is None or not self._reuse:
            return spec
        build, reuse = spec.build, self._reuse

        def build_or_reuse(decl: Any) -> Any:
            kept = reuse.get(decl.name)
            return kept if kept is not None else build(decl)

        return dataclasses.replace(spec, build=build_or_reuse)

    def names(self, category: str) -> list[str]:
        return self._registry.names(category)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)


def build_generation(number: int, program: Any, registry: Any, *, ledger: Any,
                     overrides: Mapping[str, Mapping[str, Any]] | None = None,
                     reuse: Mapping[str, Any] | None = None, grace: float = 10.0, faults: Any = None) -> Generation:
    """Bind ``program`` completely (raises ``BindError`` naming the place); nothing starts.

    ``overrides`` are checked first (``engine.ops.overrides``): an override of a channel the program
    does not declare, of an option its kind does not have, or with a value the option cannot take
    raises ``OverrideError`` naming its place in the deployment file."""
    from engine.certexpiry import expired_own, program_certs
    from engine.ops.overrides import OverrideError, check_overrides, resolve_paths
    from formats.versioned import versioned
    problems = check_overrides(overrides, program, registry)
    if problems:
        raise OverrideError(problems)
    resolved = resolve_paths(overrides, program, registry)
    sb = Switchboard(program, _ReusingRegistry(registry, reuse or {}), ledger=ledger,
                     overrides=resolved, grace=grace, faults=faults)
    # the certificates' expiry, read once here (start and reload); a channel built now whose own
    # certificate has expired cannot work: refused (one kept running is reported, not refused)
    with versioned(getattr(program, "sources", None)):     # the certificates the channels were built with
        certs = program_certs(program, resolved)
    expired = expired_own(certs, time.time(), [n for n in program.channels if n not in (reuse or {})])
    if expired:
        err = BindError("; ".join(expired))
        err.problems = expired                 # type: ignore[attr-defined]
        raise err
    for name in program.formats:        # formats no route uses yet are built (and checked) too
        sb.ctx.codec(name)
    missing = [n for n in program.channels if n not in sb.channels]
    if missing:
        raise BindError(f"channels not bound: {', '.join(missing)}")
    gen = Generation(number, program, sb)
    gen.overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    gen.certs = certs
    from engine.calexpiry import program_calendars
    gen.calendars = program_calendars(program)      # the years each calendar lists, read once here
    return gen
