"""Feed a capture into a candidate configuration running in an isolated engine.

Every recorded inbound request is dispatched, in recording order, into the
candidate's channel of the same name.  Outbound calls reach virtual endpoints
that answer from the recording: a call the candidate makes while handling
recorded exchange E gets the answer of E's recorded call of the same identity
(engine/replay/pairing.py: a MUX key, ISO 8583 MTI class + STAN + terminal), or,
on a channel whose requests have none, of E's nth call to that channel (together:
the correlation key); a call with no such recorded call gets the answer of the
first rule of the answers script that matches it (``--answers``,
engine/replay/script.py), else by order an answer recorded outside any exchange
(never another exchange's); when none is left the call fails as ``unreachable``.  A recorded failure (timeout, lost, unreachable) is
answered as that failure.

An exchange whose request, or one of whose counterparts' answers, was recorded
without its bytes (``RecordedExchange.unreplayable``: ``--mask`` could not make
it safe) is not fed: it is returned in ``ReplayRun.not_replayable`` with the
reason, and its recorded answers are given to no other exchange.

A request a ``file watch`` channel fed is dispatched with the record's place as recorded
(``frames.origin``): the route reads the same ``file.*``; a capture without it gives null ``file.*``.
Who sent each request (``frames.peer``) is given back as ``peer.*`` (null in a capture without it), and an
``http listen`` request's line and headers (``frames.http``) as ``http.*`` (null in a capture without them).

Clock: ``recorded`` (default): while the candidate handles a recorded exchange, ``now()`` and
``today()`` read the instants that exchange read when recorded (``frames.clock``), in order, then the
time it was received (``recorded_at``), so a value date or a ``CreDtTm`` computed from them is what it
was when recorded, on any day (``engine.replay.clock``); ``now``: they read the wall clock (what
replays did before).  The instant is set per exchange in a context
variable (``dsl.clock``), so exchanges in flight at once each read their own.

Memory: the exchanges are read from the capture ``chunk`` at a time (``Capture.chunks``: a lazy capture
reads them from its file) and handed to ``on_result`` in replay order as they finish, then dropped (with
their recorded answers: ``RecordedAnswers.forget``); the feeder stays at most ``chunk`` (or ``2 *
concurrency`` if more) exchanges ahead of the oldest unfinished one.  So a replay holds the work in flight, not the
capture.  An interrupted run hands on the first ``ReplayRun.in_order`` exchanges of its slice exactly.

Pace: ``fast`` (as fast as possible, ``concurrency`` exchanges in flight),
``original`` (the recorded inter-arrival times and answer delays) or ``xN``
(original timing N times faster).
"""
from __future__ import annotations

import re
import signal
import tempfile
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import trio

from dsl.clock import using as using_clock
from engine.channels.base import CallTimeout, ConnectionLost, Unreachable
from engine.replay.capture import Capture, RecordedCall, RecordedExchange
from engine.replay.clock import replay_clock
from engine.replay.context import CallRecord, ExchangeCtx
from engine.replay.httpline import scope as http_scope
from engine.replay.origin import load as load_origin
from engine.replay.pairing import CallIdentity
from engine.replay.peer import load as load_peer
from engine.replay.virtual import isolated_engine
from engine.runtime.exchange import StepFailure
from formats.framing import FramingError

_ERRORS = {"timeout": CallTimeout, "lost": ConnectionLost, "unreachable": Unreachable}


class PaceError(ValueError):
    pass


CLOCKS = ("recorded", "now")


def check_clock(text: str) -> str:
    """``--clock``: ``recorded`` (now() is the recorded exchange's received time) or ``now`` (the wall clock)."""
    if text not in CLOCKS:
        raise PaceError(f"--clock {text!r}: expected recorded (now() and today() read the time each exchange was "
                        f"received when recorded: the default) or now (the wall clock)")
    return text


def parse_pace(text: str) -> float | None:
    """``fast`` -> None; ``original`` -> 1.0; ``x10`` / ``10x`` -> 10.0."""
    t = text.strip().lower()
    if t == "fast":
        return None
    if t == "original":
        return 1.0
    m = re.fullmatch(r"x?(\d+(?:\.\d+)?)x?", t)
    if m and (t.startswith("x") or t.endswith("x")) and float(m.group(1)) > 0:
        return float(m.group(1))
    raise PaceError(f"--pace {text!r}: expected fast, original, or a speed-up such as x10")


@dataclass
class Replayed:
    recorded: RecordedExchange
    produced: ExchangeCtx
    position: int = 0                 # in the slice replayed (0 the first), counting the not replayable ones


class RecordedAnswers:
    """The virtual endpoints' answers, from the capture.

    A call the candidate makes while handling recorded exchange E is answered from E's own recorded calls:
    the one of the same identity (``engine.replay.pairing``: a MUX's ``match`` key, an ISO 8583 message's
    MTI class + STAN + terminal), or on a channel whose requests have no identity, the one at the same
    position (E's nth call to that channel).  A call E never made gets no other exchange's answer: another
    exchange needs it, and giving it away made false differences there.  Only a call made outside any
    recorded exchange (or one the recording made outside any exchange, a store-and-forward repeat) is
    answered by order, and the report says how many were."""

    def __init__(self, capture: Capture, factor: float | None, script: Any = None) -> None:
        self.factor = factor
        self.script = script                 # engine.replay.script.AnswerScript (--answers) or None
        self.identity: Any = None            # engine.replay.pairing.CallIdentity (set once the engine runs)
        self.scripted: dict[str, int] = {}   # channel -> calls answered from the script
        self.missing: dict[str, int] = {}    # channel -> calls answered by nothing (failed as unreachable)
        self.missing_identity: dict[str, int] = {}   # channel -> of those, calls whose identity E never had
        self.recorded_channels = capture.call_channels()
        # the exchanges loaded (fed or about to be) and their calls; ``forget`` drops an exchange once compared,
        # so these hold the work in flight, not the capture
        self.by_exchange: dict[tuple[int, str], list[RecordedCall]] = {}
        self.by_channel: dict[str, deque[RecordedCall]] = {}
        self.loose: dict[str, deque[RecordedCall]] = {}
        self.exchanges: set[int] = set()
        self.used: set[int] = set()
        self._held: list[RecordedCall] = []  # loose answers given: kept, so their id() stays theirs
        self.taken = 0
        self.by_identity = 0
        self.by_position = 0
        self.by_order = 0
        self.unanswered = 0
        for c in capture.loose:
            if not _unstored(c):
                self.loose.setdefault(c.channel, deque()).append(c)
        if not capture.lazy:        # a capture read whole: all its exchanges at once
            self.load(capture.exchanges)

    def load(self, exchanges: list[RecordedExchange]) -> None:
        """Exchanges about to be fed (in replay order): their recorded calls answer the candidate's."""
        for ex in exchanges:
            if ex.unreplayable is not None:          # not fed: its answers are not handed to another exchange
                continue
            self.exchanges.add(ex.exchange)
            for c in ex.calls:
                self.by_exchange.setdefault((ex.exchange, c.channel), []).append(c)
                self.by_channel.setdefault(c.channel, deque()).append(c)

    def forget(self, ex: RecordedExchange) -> None:
        """An exchange compared (they are forgotten in replay order): its unused answers go too."""
        self.exchanges.discard(ex.exchange)
        for c in ex.calls:
            self.by_exchange.pop((ex.exchange, c.channel), None)
            self.used.discard(id(c))
            q = self.by_channel.get(c.channel)
            while q and q[0].request.exchange not in self.exchanges:
                q.popleft()

    def _take(self, rec: RecordedCall, call: CallRecord | None) -> RecordedCall:
        self.used.add(id(rec))
        self.taken += 1
        if call is not None:
            call.paired = rec               # the diff compares the call with the recorded one that answered it
        return rec

    def _by_key(self, channel: str, ctx: ExchangeCtx | None, call: CallRecord | None = None) -> RecordedCall | None:
        """The recorded exchange's own call: by identity, else by position, to a recorded call whose identity
        cannot be read (it has none, or ``--mask`` masked a key field): a recorded call of another identity is
        left to the candidate's call of that identity, which may come later."""
        if ctx is None:
            return None
        lst = self.by_exchange.get((ctx.exchange, channel), [])
        ident = self.identity
        key = ident.key(channel, call.request) if ident is not None and call is not None else None
        if key is not None:
            for rec in lst:
                if id(rec) not in self.used and ident.recorded_key(rec) == key:
                    self.by_identity += 1
                    return self._take(rec, call)
        nth = len(ctx.calls_to(channel)) - 1
        if 0 <= nth < len(lst) and id(lst[nth]) not in self.used and (
                key is None or _unreadable(ident.recorded_key(lst[nth]))):
            self.by_position += 1
            return self._take(lst[nth], call)
        return None

    def _by_order(self, channel: str, ctx: ExchangeCtx | None = None,
                  call: CallRecord | None = None) -> RecordedCall | None:
        """The channel's next unused answer: for a call of a recorded exchange, only one the recording made
        outside any exchange; for a call outside any recorded exchange, any."""
        own = ctx is not None and ctx.exchange in self.exchanges
        if not own:         # the calls of the exchanges loaded (in flight or about to be), then the loose ones
            for c in self.by_channel.get(channel, ()):
                if id(c) not in self.used:
                    self.by_order += 1
                    return self._take(c, call)
        q = self.loose.get(channel)
        while q:
            c = q.popleft()
            if id(c) not in self.used:
                self.by_order += 1
                self._held.append(c)
                return self._take(c, call)
        return None

    def _no_answer(self, channel: str, call: CallRecord, ctx: ExchangeCtx | None) -> str:
        """Why a call to a channel the recording called got no answer."""
        ident = self.identity
        key = ident.key(channel, call.request) if ident is not None else None
        own = self.by_exchange.get((ctx.exchange, channel), []) if ctx is not None else []
        if key is not None and own:
            self.missing_identity[channel] = self.missing_identity.get(channel, 0) + 1
            # no key values: a `match` field may be classified (an account), and this text reaches the log
            return (f"the recorded exchange made no call of this identity ({ident.label(channel)}): a call the "
                    f"candidate adds, or one whose key fields it changed")
        if ctx is not None and ctx.exchange in self.exchanges:
            return (f"the recorded exchange made {len(own)} call(s) to it and the candidate makes more (its "
                    f"answers are not taken from other exchanges)")
        return "the recording has no answer left for this call"

    @property
    def by_script(self) -> int:
        return sum(self.scripted.values())

    async def __call__(self, channel: str, call: CallRecord, ctx: ExchangeCtx | None) -> Any:
        """The recorded exchange's own call (by correlation key), else the first rule of the answers script
        that matches, else the channel's next unused recorded answer (by order), else unreachable."""
        rec = self._by_key(channel, ctx, call)
        if rec is None and self.script is not None:
            rule = self.script.find(channel, call.request)
            if rule is not None:
                self.scripted[channel] = self.scripted.get(channel, 0) + 1
                if ctx is not None:     # which calls of the exchange the script answered: --to-tests writes them
                    ctx.extra.setdefault("scripted", []).append(rule)
                return await self.script.give(rule, channel, ctx)
        if rec is None:
            rec = self._by_order(channel, ctx, call)
        if rec is None:
            self.unanswered += 1
            self.missing[channel] = self.missing.get(channel, 0) + 1
            how = ("the recording has no call to this channel" if channel not in self.recorded_channels
                   else self._no_answer(channel, call, ctx))
            return Unreachable(f"channel {channel}: {how} (replay: virtual endpoint; script its answer with "
                               f"--answers FILE)", channel=channel)
        reply = rec.reply
        if self.factor is not None and reply is not None:
            await trio.sleep(max(reply.t_ms - rec.request.t_ms, 0.0) / 1000.0 / self.factor)
        if reply is not None and reply.raw is not None and not reply.error:
            return reply.raw
        err = (reply.error if reply is not None else None) or "lost: no answer was recorded"
        kind, _, text = err.partition(": ")
        cls = _ERRORS.get(kind, ConnectionLost)
        return cls(f"{text or err} (as recorded)", channel=channel)


def _unreadable(key: tuple[str, ...] | None) -> bool:
    """A recorded call's identity that cannot be compared: none, or a key field masked (``*``)."""
    return key is None or any("*" in part for part in key)


def _unstored(c: RecordedCall) -> bool:
    """An answer recorded without its bytes (and not a failure): it cannot be given again."""
    return c.reply is not None and c.reply.raw is None and not c.reply.error


@dataclass
class NotReplayed:
    exchange: int
    key: str | None
    channel: str
    reason: str                       # RecordedExchange.unreplayable
    position: int = 0                 # in the slice (as Replayed.position)


@dataclass
class ReplayRun:
    replayed: list[Replayed]          # the exchanges that finished, in recorded arrival order (none with on_result)
    answers: RecordedAnswers
    interrupted: bool = False         # SIGINT stopped it: ``replayed`` is only part of the capture
    not_replayable: list[NotReplayed] = field(default_factory=list)    # not fed, in recorded order
    fed: int = 0                      # exchanges fed
    finished: int = 0                 # of those, finished (each given to on_result, in recorded order)
    in_order: int = 0                 # the first in_order exchanges of the slice were all compared or not
                                      # replayable: an interrupted run goes on from there (--from)


class _InOrder:
    """Finished exchanges handed on in replay order: one that finishes early waits for those fed before it.
    The feeder stays at most ``window`` exchanges ahead of the oldest unfinished one, so what waits here
    (and the chunk read ahead) is the work in flight, not the capture."""

    def __init__(self, window: int, sink: Callable[[Replayed], None]) -> None:
        self.window = window
        self.sink = sink
        self.done: dict[int, Replayed] = {}
        self.next = 0                   # the position of the next exchange to hand on
        self.moved = trio.Event()
        self.handed = 0

    async def room(self, pos: int) -> None:
        while pos - self.next >= self.window:
            self.moved = trio.Event()
            await self.moved.wait()

    def finished(self, pos: int, r: Replayed) -> None:
        self.done[pos] = r
        before = self.next
        while self.next in self.done:
            self.sink(self.done.pop(self.next))
            self.next += 1
        if self.next != before:
            self.moved.set()


async def replay(capture: Capture, program: Any, registry: Any, *, pace: str = "fast",
                 concurrency: int = 64, workdir: Path | None = None,
                 progress: Callable[[int, int], None] | None = None, interruptible: bool = False,
                 overrides: dict[str, dict[str, Any]] | None = None, clock: str = "recorded",
                 script: Any = None, on_result: Callable[[Replayed], None] | None = None,
                 start: int = 0, count: int | None = None, chunk: int = 500) -> ReplayRun:
    """Feed every recorded exchange to the candidate (``overrides``: a deployment file's channel options,
    bound as ``bsp run`` binds them: a timeout, ...).  ``clock``: ``recorded`` (now() and today() read each
    exchange's recorded received time) or ``now`` (the wall clock).  ``script``: answers for calls the
    recording lacks (``engine.replay.script.AnswerScript``, ``--answers``).  ``progress(done, total)`` after each one;
    ``interruptible``: SIGINT (main thread) stops feeding and cancels the exchanges in flight, and the
    run returns what finished, marked ``interrupted``.

    ``on_result(replayed)``: each finished exchange, in replay order, as it can be compared (its recorded
    frames and the candidate's are then dropped: ``bsp replay``'s memory is the work in flight); without it
    they are returned in ``ReplayRun.replayed``.  ``start`` / ``count``: the slice of the capture's exchanges
    (in replay order, ``start`` 0 the first) to replay; ``chunk``: exchanges read from the capture at a time."""
    factor = parse_pace(pace)
    recorded_clock = check_clock(clock) == "recorded"
    answers = RecordedAnswers(capture, factor, script)
    out: list[Replayed] = []
    run = ReplayRun(out, answers)
    if count is None:
        total = max(capture.count() - start, 0) - (capture.unreplayable_count() if start == 0 else 0)
    else:
        total = count
    window = max(concurrency * 2, chunk)

    def sink(r: Replayed) -> None:
        run.finished += 1
        run.in_order = r.position + 1
        answers.forget(r.recorded)
        if on_result is not None:
            on_result(r)
        else:
            out.append(r)

    order = _InOrder(window, sink)
    with tempfile.TemporaryDirectory(prefix="bsp-replay-") as tmp, \
            (trio.open_signal_receiver(signal.SIGINT) if interruptible else _no_signals()) as signals:
        wd = Path(workdir) if workdir is not None else Path(tmp)
        async with isolated_engine(program, registry, answers, wd, overrides=overrides) as engine:
            # a call is paired with the recorded one of its identity (STAN + terminal, a MUX's match key)
            answers.identity = CallIdentity(program, engine.switchboard.ctx.codec)
            if script is not None:          # scripted answers are encoded by the candidate's codec
                from engine.replay.guide import FormatGuide
                script.program, script.binder = program, engine.switchboard.ctx
                script.guide = FormatGuide(program, engine.switchboard.ctx.codec)
            missing = sorted(capture.request_channels() - set(engine.switchboard.dispatchers))
            if missing:     # session.check_channels says so before anything starts; kept for direct callers
                raise ValueError(f"the candidate configuration has no route receiving from channel(s) "
                                 f"{', '.join(missing)}, which the capture recorded requests on")
            sem = trio.Semaphore(concurrency) if factor is None else None
            t0 = trio.current_time()
            # the recorded times from the first request fed: the quiet while the recording engine started
            # (or before the day's traffic) is not waited out again (the first fed is the earliest: replay order)
            first: list[float] = []

            async def one(pos: int, idx: int, ex: RecordedExchange) -> None:
                f = ex.request
                if factor is not None:
                    await trio.sleep_until(t0 + max((f.t_ms or 0.0) - first[0], 0.0) / 1000.0 / factor)
                ctx = ExchangeCtx(ex.exchange, f.channel, f.conn or "0", f.raw or b"",
                                  t_in=trio.current_time())
                if f.status is not None:
                    ctx.extra["recorded_status"] = f.status     # the HTTP status it was answered (engine/replay/virtual.py)
                ferr = refused = None
                if f.error and f.error.startswith("framing: "):
                    ferr = FramingError(f.error[len("framing: "):])
                elif f.error and f.error.startswith("refused: "):     # the channel refused it (a signature)
                    kind, _, detail = f.error[len("refused: "):].partition(": ")
                    refused = StepFailure(kind, detail)
                conn = int(f.conn) if f.conn and f.conn.isdigit() else None
                origin = load_origin(f.origin)          # a file watch record's place, given back as file.*
                try:
                    # now() / today(): the time it was received when recorded (this task's context only)
                    with using_clock(replay_clock(f) if recorded_clock else None):
                        await engine.send(f.channel, f.raw or b"", ctx, conn=conn, framing_error=ferr,
                                          refused=refused, extra={"origins": [origin]} if origin else None,
                                          who=load_peer(f.peer),      # who sent it, given back as peer.*
                                          http=http_scope(f.http))     # the request line: http.*
                finally:
                    if sem is not None:
                        sem.release()
                ctx.t_out = trio.current_time()
                order.finished(pos, Replayed(ex, ctx, idx))
                if progress is not None:
                    progress(run.finished, total)

            async with trio.open_nursery() as outer:
                async def watch_sigint() -> None:
                    async for _ in signals:
                        run.interrupted = True
                        outer.cancel_scope.cancel()
                        return

                async def tick() -> None:          # progress also while nothing finishes (slow pace, timeouts)
                    while True:
                        await trio.sleep(1.0)
                        progress(run.finished, total)   # type: ignore[misc]

                if interruptible:
                    outer.start_soon(watch_sigint)
                if progress is not None:
                    outer.start_soon(tick)
                async with trio.open_nursery() as nursery:
                    idx = -1
                    for exchanges in capture.chunks(chunk, start, count):
                        if capture.lazy:
                            answers.load(exchanges)
                        for ex in exchanges:
                            idx += 1
                            why = ex.unreplayable
                            if why is not None:
                                run.not_replayable.append(NotReplayed(ex.exchange, ex.key, ex.request.channel, why,
                                                                      idx))
                                continue
                            if not first:
                                first.append(ex.request.t_ms or 0.0)
                            await order.room(run.fed)
                            if sem is not None:
                                await sem.acquire()         # at most `concurrency` exchanges in flight
                            nursery.start_soon(one, run.fed, idx, ex)
                            run.fed += 1
                        del exchanges
                outer.cancel_scope.cancel()             # all fed and finished: stop watching for SIGINT
    # interrupted: the exchanges that finished after one still in flight are not compared, so the report
    # covers the first ``in_order`` exchanges of the slice exactly and a later run goes on from there (--from)
    if run.interrupted:
        run.not_replayable = [n for n in run.not_replayable if n.position < run.in_order]
    return run


@contextmanager
def _no_signals() -> Iterator[tuple[()]]:
    yield ()
