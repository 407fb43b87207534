"""Recording taps at the channel edges, installed from outside the runtime.

``recording_registry(registry, recorder, channels)`` returns a registry clone
whose channel kinds build the real channel wrapped in a ``TapChannel``:

* inbound (``serve``): the handler (the channel's dispatcher) is wrapped in a
  ``TapHandler``.  Each frame of a batch is dispatched on its own, under its own
  ``ExchangeCtx`` (see context.py), so every call and the deal it causes are tied
  to it; the frames of a batch still run concurrently and the replies leave in
  one write.  Recording changes nothing the channel learns: each frame gets its own
  framing header and outcome list (``frame_conns``), and ``handle_via`` /
  ``with_dispatcher`` reach the dispatcher behind the tap, so an http listen,
  file watch or timer still learns each deal's outcome.  The dispatcher's ledger
  is wrapped in a ``LedgerTap`` that notes the committed deal (id, reference,
  status) in the context.
* outbound (``request_many``): each request and its reply (or error) is added
  to the current exchange's calls.

When the exchange is answered, the ``Recorder`` turns the context into frame
rows for the ``CaptureWriter`` (masking classified fields when asked).
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import trio

from dsl.clock import Clock, using as using_clock
from engine.replay.capture import CaptureWriter
from engine.replay.clock import dump as dump_clock
from engine.replay.context import CURRENT, CallRecord, ExchangeCtx, error_text
from engine.replay.dealrow import dump as dump_deal
from engine.replay.deadrow import dump as dump_dead
from engine.replay.httpline import ALWAYS_SECRET, dump as dump_http, secret_names
from engine.replay.origin import dump as dump_origin, dump_names, frame_origin
from engine.replay.peer import dump as dump_peer
from engine.replay.names import mask_names, name_tags

_UTC = timezone.utc


class Recorder:
    """Turns finished exchanges into capture rows."""

    def __init__(self, writer: CaptureWriter, guide: Any = None) -> None:
        self.writer = writer
        self.guide = guide            # a FormatGuide when classified fields are masked
        self._guides: dict[str, Any] = {}    # config version -> its FormatGuide (masking follows reloads)
        self._tags: dict[int, tuple[Any, dict]] = {}   # id(program) -> (program, its name_tags)
        self._ids = itertools.count(1)
        self._loose = itertools.count(0)
        self._t0 = time.monotonic()
        self._at0 = datetime.now(_UTC)
        self.exchanges = 0

    def new_ctx(self, channel: str, conn: str, raw: bytes) -> ExchangeCtx:
        now = time.monotonic()
        return ExchangeCtx(next(self._ids), channel, conn, raw, t_in=now,
                           at=self._at0 + timedelta(seconds=now - self._t0))

    def note_generation(self, version: str, program: Any, codec: Callable[[str], Any]) -> None:
        """A configuration serves exchanges from now on: when masking, its frames are masked with its own
        formats' classification (a reload may add channels and formats, or classify a field)."""
        if self.guide is not None and version not in self._guides:
            from engine.replay.guide import FormatGuide
            self._guides[version] = FormatGuide(program, codec)

    def guide_for(self, version: str | None) -> Any:
        return self._guides.get(version, self.guide) if version is not None else self.guide

    def _row(self, t: float, channel: str, role: str, direction: str, raw: bytes | None,
             known: dict[str, str] | None = None, *, guide: Any = None, **kw: Any) -> dict:
        masked = None
        guide = guide or self.guide
        if raw is not None and guide is not None:
            raw, masked = guide.mask(channel, role, direction, raw, known)
        return {"recorded_at": self._at0 + timedelta(seconds=t - self._t0), "t_ms": (t - self._t0) * 1000.0,
                "channel": channel, "role": role, "direction": direction, "raw": raw, "masked": masked, **kw}

    def exchange_done(self, ctx: ExchangeCtx) -> None:
        self.exchanges += 1
        deal = ctx.deal
        key = getattr(deal, "reference", None)
        common = {"exchange": ctx.exchange, "correlation_key": key,
                  "deal_id": getattr(deal, "deal_id", None),
                  "config_version": ctx.config_version or getattr(self.writer, "config_version", None)}
        add = self.writer.add
        known: dict[str, str] = {}          # classified texts seen so far in this exchange (masking)
        error = (f"framing: {ctx.framing_error}" if ctx.framing_error
                 else f"refused: {ctx.refused}" if ctx.refused else None)
        guide = self.guide_for(ctx.config_version)      # the classification of the version that served it
        row = self._row(ctx.t_in, ctx.channel, "inbound", "in",
                        ctx.request if ctx.framing_error is None else None, known, guide=guide, conn=ctx.conn,
                        call_seq=0, deal_status=getattr(deal, "status", None), error=error,
                        origin=dump_origin(ctx.extra.get("origin")), peer=dump_peer(ctx.extra.get("peer")),
                        **common)
        # the ledger's deal, masked as the request was (its classified values, gathered by _row)
        row["deal"] = dump_deal(deal, known if guide is not None else None)
        row["clock"] = dump_clock(ctx.clock_reads)      # what now() / today() read: given back on replay
        row["status"] = ctx.extra.get("http_status")    # an http listen's answer: its status (compared on replay)
        # an http listen's request line and headers (http.* on replay): secret headers never written, the rest
        # masked as the request is
        row["http"] = dump_http(ctx.extra.get("http"), ctx.extra.get("http_secrets", ALWAYS_SECRET),
                                known if guide is not None else None)
        # the dead letters it wrote (compared on replay), their reasons masked as the request is
        row["dead_letters"] = dump_dead(ctx.dead_letters, known if guide is not None else None)
        add(row)
        for c in ctx.calls:
            self._call_rows(c, common, known, guide)
        if ctx.reply is not None:
            add(self._row(ctx.t_out, ctx.channel, "inbound", "out", ctx.reply, known, guide=guide, conn=ctx.conn,
                          call_seq=0, **common))

    def _call_rows(self, c: CallRecord, common: dict, known: dict[str, str] | None = None,
                   guide: Any = None) -> None:
        row = self._row(c.t_out, c.channel, "outbound", "out", c.request, known, guide=guide,
                        conn=c.channel, call_seq=c.seq, **common)
        guide = guide or self.guide
        if c.names is not None:
            # masked as the request is (engine/replay/names.py): a value bsp check found classified
            # (``who = upper(msg.payee)``: a text the request does not hold) masked whole, and from now on
            # in the exchange's frames (the answer's file name); any other wherever it holds a classified value
            row["names"] = dump_names(c.names if guide is None else
                                      mask_names(c.names, known if known is not None else {},
                                                 self._name_tags(guide).get(c.channel)))
        self.writer.add(row)
        self.writer.add(self._row(c.t_in, c.channel, "outbound", "in", c.reply, known, guide=guide,
                                  conn=c.channel, call_seq=c.seq, error=c.error, **common))

    def _name_tags(self, guide: Any) -> dict[str, dict[str, str]]:
        program = getattr(guide, "program", None)
        got = self._tags.get(id(program))
        if got is None or got[0] is not program:
            got = self._tags[id(program)] = (program, name_tags(program))
        return got[1]

    def loose_call(self, c: CallRecord) -> None:
        """A call made outside any inbound exchange (none today; kept for plugins)."""
        c.seq = next(self._loose)
        self._call_rows(c, {"exchange": None, "correlation_key": None, "deal_id": None})


class LedgerTap:
    """The ledger as the dispatcher sees it: commits go through; the committed deal is noted."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit(self, record: Any) -> None:
        await self._inner.commit(record)
        ctx = CURRENT.get()
        if ctx is not None:
            ctx.deal = record

    async def commit_many(self, records: list[Any], **kw: Any) -> list[Any]:
        errors = await self._inner.commit_many(records, **kw)
        ctx = CURRENT.get()
        if ctx is not None and len(records) == 1 and errors[0] is None:
            ctx.deal = records[0]          # the taps dispatch one frame at a time
            if getattr(records[0], "dead_letter", None) is not None:    # stored with its deal
                ctx.dead_letters.append(records[0].dead_letter)
        return errors

    async def dead_letter(self, letter: Any) -> None:
        await self._inner.dead_letter(letter)
        ctx = CURRENT.get()
        if ctx is not None:
            ctx.dead_letters.append(letter)


def tap_ledger(handler: Any) -> None:
    """Wrap the ledger of ``handler`` (a dispatcher, or a holder such as engine.ops'
    HandlerRef whose ``dispatcher`` changes on reload) so committed deals are noted."""
    handler = getattr(handler, "dispatcher", handler)
    led = getattr(handler, "ledger", None)
    if led is not None and not isinstance(led, LedgerTap):
        handler.ledger = LedgerTap(led)
    # dead letters are written by the transaction manager (engine/txn), which holds the ledger itself
    txn = getattr(handler, "txn", None)
    led = getattr(txn, "ledger", None)
    if led is not None and not isinstance(led, LedgerTap):
        txn.ledger = LedgerTap(led)


class TapHandler:
    """Wraps a channel's ExchangeHandler: one ExchangeCtx per frame."""

    def __init__(self, inner: Any, recorder: Recorder | None, channel: str,
                 done: Callable[[ExchangeCtx], None] | None = None, secrets: tuple[str, ...] = ALWAYS_SECRET) -> None:
        self.inner = inner
        self.recorder = recorder
        self.channel = channel
        self.secrets = secrets            # an http listen's headers never recorded (engine.replay.httpline)
        self.done = done or (recorder.exchange_done if recorder is not None else None)
        tap_ledger(inner)

    async def handle(self, conn: Any, frames: list[bytes]) -> list[bytes | None]:
        return await self.handle_via(conn, frames, None)

    async def handle_via(self, conn: Any, frames: list[bytes], via: Any) -> list[bytes | None]:
        """``handle`` through ``via(dispatcher)`` (a channel that learns each deal's outcome:
        engine.channels.http_listen_dispatch), passed on to the handler the tap wraps: recording does
        not change what the channel learns.  Each frame runs on its own ``ConnInfo`` (``frame_conns``)."""
        if len(frames) == 1:
            return [await self._one(conn, frames[0], via)]
        conns = frame_conns(conn, len(frames))
        out: list[bytes | None] = [None] * len(frames)

        async def one(i: int, frame: bytes) -> None:
            out[i] = await self._one(conns[i], frame, via)

        async with trio.open_nursery() as nursery:
            for i, f in enumerate(frames):
                nursery.start_soon(one, i, f)
        for k in ("outcomes", "deals"):      # a consumer's per-message outcomes (and deals), in frame order
            sink = conn.extra.get(k) if conn.extra else None
            if sink is not None:
                for c in conns:
                    sink.extend(c.extra[k])
        return out

    async def with_dispatcher(self, fn: Any, *, refusing: Any = None) -> Any:
        """``await fn(dispatcher)`` on the dispatcher the wrapped handler forwards to (an http listen
        refusing a bad signature records the deal and the dead letter through it).  ``refusing``
        (conn, request bytes, StepFailure): the request the channel refused, recorded as an exchange
        whose request row carries ``error = "refused: KIND: detail"`` (a replay refuses it again)."""
        inner = getattr(self.inner, "with_dispatcher", None)
        if refusing is None:
            return await (inner(fn) if inner is not None else fn(self.inner))
        conn, frame, failure = refusing
        ctx = self._ctx(conn, frame)
        ctx.refused = f"{failure.kind}: {failure.detail}"
        tap_ledger(self.inner)
        ctx.config_version = self._version()
        with self._exchange(ctx):
            out = await (inner(fn) if inner is not None else fn(self.inner))
        self._finish(ctx, getattr(out, "reply", None), conn)
        return out

    def _version(self) -> str | None:
        """The version the wrapped handler runs the next batch on (a HandlerRef follows reloads; read
        with no await before the dispatch, so it is the version that serves it)."""
        gen = getattr(self.inner, "generation", None)
        version = getattr(gen, "version", None)
        if version is not None and self.recorder is not None:      # its sources, once per version
            self.recorder.writer.add_version(version, getattr(gen.program, "sources", None) or {})
            binder = getattr(getattr(gen, "sb", None), "ctx", None)
            if binder is not None:
                self.recorder.note_generation(version, gen.program, binder.codec)
        return version

    async def _one(self, conn: Any, frame: bytes, via: Any = None) -> bytes | None:
        ctx = self._ctx(conn, frame)
        ctx.extra["origin"] = frame_origin(conn)     # a file watch record's place: file.* on replay
        tap_ledger(self.inner)            # a reload may have pointed the holder at a new dispatcher
        ctx.config_version = self._version()
        with self._exchange(ctx):
            inner_via = getattr(self.inner, "handle_via", None)
            if inner_via is not None:
                (reply,) = await inner_via(conn, [frame], via)
            elif via is not None:
                (reply,) = await via(self.inner).handle(conn, [frame])
            else:
                (reply,) = await self.inner.handle(conn, [frame])
        return self._finish(ctx, reply, conn)

    async def reply_not_sent(self, conn: Any, unsent: list[tuple[str, str]]) -> int:
        tell = getattr(self.inner, "reply_not_sent", None)
        return await tell(conn, unsent) if tell is not None else 0

    async def framing_error(self, conn: Any, err: Any) -> bytes | None:
        ctx = self._ctx(conn, b"")
        ctx.framing_error = str(err)
        ctx.config_version = self._version()
        with self._exchange(ctx):
            reply = await self.inner.framing_error(conn, err)
        return self._finish(ctx, reply)

    @contextmanager
    def _exchange(self, ctx: ExchangeCtx) -> Iterator[None]:
        """``ctx`` is the exchange the dispatch adds to (``CURRENT``); when recording, the routes read the wall
        clock and each instant they read is kept (``ctx.clock_reads``: ``frames.clock``, given back on replay)."""
        token = CURRENT.set(ctx)
        try:
            with using_clock(Clock(log=ctx.clock_reads) if self.recorder is not None else None):
                yield
        finally:
            CURRENT.reset(token)

    def _finish(self, ctx: ExchangeCtx, reply: bytes | None, conn: Any = None) -> bytes | None:
        ctx.reply = reply
        ctx.t_out = time.monotonic()
        done = self.done
        if done is None:
            return reply
        answered = (getattr(conn, "extra", None) or {}).get("answered")
        if isinstance(answered, list):
            # an http listen answers a status with the body once it knows the deal's outcome: the exchange is
            # written then, with that status (frames.status), which a replay compares
            def with_status(status: int | None) -> None:
                ctx.extra["http_status"] = status
                done(ctx)
            answered.append(with_status)
        else:
            done(ctx)
        return reply

    def _ctx(self, conn: Any, frame: bytes) -> ExchangeCtx:
        cid = str(getattr(conn, "number", conn))
        if self.recorder is not None:
            ctx = self.recorder.new_ctx(self.channel, cid, frame)
        else:
            ctx = ExchangeCtx(0, self.channel, cid, frame, t_in=time.monotonic())
        ctx.extra["peer"] = getattr(conn, "who", None)      # who sent it: peer.* on replay
        http = (getattr(conn, "extra", None) or {}).get("http")
        if http is not None:        # an http listen's request line and headers: http.* on replay
            ctx.extra["http"] = http
            ctx.extra["http_secrets"] = self.secrets
        return ctx


def frame_conns(conn: Any, n: int) -> list[Any]:
    """One ``ConnInfo`` per frame of a batch of ``n`` that the tap dispatches one by one: the frame's
    own framing header (``extra["headers"]``), its own outcome list (``extra["outcomes"]``, and
    ``extra["deals"]``, merged back in frame order) and its place in the batch (``extra["batch_index"]``: a channel that learns the
    outcomes of a batch puts them back in order, engine.channels.http_listen_dispatch)."""
    extra = conn.extra or {}
    heads = extra.get("headers")
    out = []
    for i in range(n):
        own = {**extra, "batch_index": i}
        if heads is not None and len(heads) == n:
            own["headers"] = [heads[i]]
        for k in ("outcomes", "deals"):
            if k in extra:
                own[k] = []
        out.append(dataclasses.replace(conn, extra=own))
    return out


class TapChannel:
    """A real channel with taps on its edges; everything else passes through."""

    def __init__(self, inner: Any, name: str, recorder: Recorder) -> None:
        self._inner = inner
        self._name = name
        self._rec = recorder
        if hasattr(inner, "serve"):
            self.serve = self._serve
        if hasattr(inner, "request_many"):
            self.request_many = self._request_many

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _serve(self, handler: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self._inner.serve(TapHandler(handler, self._rec, self._name, secrets=secret_names(self._inner)),
                                task_status=task_status)

    async def _request_many(self, payloads: list[bytes], timeout: float | None = None, **kw: Any) -> list[Any]:
        """``kw``: what the call step hands the channel with the requests (``keys``, ``names``), passed on;
        ``names`` (a file write's name values) is recorded with each call."""
        t_out = time.monotonic()
        results = await self._inner.request_many(payloads, timeout, **kw)
        t_in = time.monotonic()
        ctx = CURRENT.get()
        names = kw.get("names") or [None] * len(payloads)
        for p, r, nv in zip(payloads, results, names):
            ok = isinstance(r, (bytes, bytearray))
            call = CallRecord(self._name, ctx.next_call_seq() if ctx is not None else 0, bytes(p),
                              bytes(r) if ok else None, None if ok else error_text(r), t_out, t_in,
                              names=dict(nv) if nv is not None else None)
            if ctx is not None:
                ctx.calls.append(call)
            else:
                self._rec.loose_call(call)
        return results


def recording_registry(registry: Any, recorder: Recorder, channels: Iterable[str], *,
                       all_channels: bool | None = None) -> Any:
    """A registry clone whose channel kinds wrap the channels named in ``channels`` in taps.

    ``all_channels`` (True: ``--record``, False: only ``record = true``) decides for every channel built
    later from its own declaration instead (``should_record``): a channel a reload adds, or whose
    ``record`` option it changes, is recorded as it would have been from the start.  The writer's list
    of recorded channels (``capture_info.channels``) grows with them."""
    wanted = set(channels)
    reg = registry.clone()
    for name in registry.names("channel"):
        spec = registry.get("channel", name)
        if spec is None or spec.build is None:
            continue

        def build(decl: Any, _real: Any = spec.build) -> Any:
            ch = _real(decl)
            tapped = (decl.name in wanted if all_channels is None
                      else should_record(decl, all_channels=all_channels))
            if not tapped:
                return ch
            note = getattr(recorder.writer, "add_channel", None)
            if note is not None:
                note(decl.name)
            return TapChannel(ch, decl.name, recorder)

        reg.register(dataclasses.replace(spec, build=build), replace=True)
    return reg


def channels_to_record(program: Any, *, all_channels: bool) -> list[str]:
    """``--record``: every channel except those with ``record = false``; without it, the
    channels with ``record = true``."""
    return sorted(name for name, decl in program.channels.items() if should_record(decl, all_channels=all_channels))


def should_record(decl: Any, *, all_channels: bool) -> bool:
    flag = decl.options.get("record")
    return flag is True or (all_channels and flag is not False)


def classified_fields(program: Any, registry: Any) -> list[str]:
    """``FORMAT.field`` for each field a format of the configuration classifies (pan, secret, personal)."""
    from engine.runtime.binder import Binder
    from formats.classify import tags_of
    codec = Binder(program, registry).codec
    out = []
    for name in sorted(getattr(program, "formats", {}) or {}):
        try:
            tags = tags_of(codec(name))
        except Exception:   # noqa: BLE001 - a format whose codec cannot be built classifies nothing we can name
            continue
        out.extend(f"{name}.{path}" for path in sorted(tags))
    return out


def default_capture_path() -> Path:
    return Path("var") / f"capture-{datetime.now(_UTC):%Y%m%dT%H%M%SZ}.duckdb"


@contextmanager
def recording(program: Any, registry: Any, path: Path | None, *, mask: bool = False,
              echo: Callable[[str], Any] | None = None,
              mask_hint: str | None = "--mask",
              clear_reason: str | None = None) -> Iterator[tuple[Any, Recorder | None]]:
    """``with recording(program, registry, path) as (registry, recorder):`` run with the
    returned registry; the capture file is complete when the block ends.  ``echo`` is told where it
    records and, recording without ``mask`` a configuration that classifies fields, a one-line warning
    naming ``mask_hint`` (the option or setting that masks them; None: no warning, clear was chosen).
    ``clear_reason`` (``bsp run --no-mask --clear-reason``): clear was chosen, for that reason: it is written
    into the capture's header (``capture_info.clear_reason``, ``clear_by``, ``clear_host``) and the
    warning is loud, at the start and again at the stop."""
    every = path is not None            # --record FILE: every channel; else those saying `record = true`
    channels = channels_to_record(program, all_channels=every)
    if not channels:
        yield registry, None
        return
    path = path or default_capture_path()
    guide = None
    if mask:
        from engine.replay.guide import FormatGuide
        from engine.runtime.binder import Binder
        guide = FormatGuide(program, Binder(program, registry).codec)
    clear = None
    if not mask and clear_reason is not None:
        import socket

        from engine.operator import os_user
        clear = {"clear_reason": clear_reason, "clear_by": os_user(), "clear_host": socket.gethostname()}
    writer = CaptureWriter(path, program=program, masked=mask, channels=channels, clear=clear)
    rec = Recorder(writer, guide)
    loud: list[str] = []
    if echo is not None:
        echo(f"recording channel(s) {', '.join(channels)} to {path}" + (" (classified fields masked)" if mask else ""))
        named = [] if mask or (mask_hint is None and clear is None) else classified_fields(program, registry)
        shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
        if clear is not None:
            what = f" ({shown})" if named else ""
            loud = [f"WARNING: recording IN CLEAR (--no-mask): {path} holds classified fields{what} unmasked: card "
                    f"numbers, track data, PIN blocks, accounts, secrets; cardholder data under PCI DSS",
                    f"WARNING: reason recorded in the capture's header: {clear_reason!r} (by {clear['clear_by']} on "
                    f"{clear['clear_host']}); keep {path} as you keep production data and delete it when done"]
            for line in loud:
                echo(line)
        elif named:
            echo(f"warning: the capture holds classified fields in clear ({shown}: card numbers, accounts, "
                 f"secrets); add {mask_hint} to mask them, and keep {path} as you keep production data")
    refused = False
    try:
        yield recording_registry(registry, rec, channels, all_channels=every), rec
    except BaseException:
        refused = True
        raise
    finally:
        writer.close()
        if refused and not writer.rows and not writer.dropped and not rec.exchanges:
            # the engine stopped on an error before recording anything (a ledger a newer bsp wrote, a wrong
            # key, a locked file): no empty capture left behind at each refused start (a rollback attempt)
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
            if echo is not None:
                echo(f"capture {path}: removed, nothing was recorded")
        elif echo is not None:
            echo(f"capture {path}: {writer.rows} frame(s) of {rec.exchanges} exchange(s)"
                 + (f"; {writer.dropped} frame(s) dropped (recorder behind)" if writer.dropped else ""))
            if loud:
                echo(loud[0])
