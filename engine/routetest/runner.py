"""Discover route files, compile them, and run their tests in an isolated engine.

A folder is one configuration (all its ``*.route`` files together, like ``bsp
run``); its sub-folders are configurations of their own.  A file named on the
command line is compiled with what it ``use``s.  Each configuration with tests
gets one isolated engine (virtual channels, its own ledger in a temporary
folder) and its tests run one after the other, each with its own answers.

Time is virtual (``trio.testing.MockClock``): ``delay 2s`` and a channel's
timeout take no real time, and they still happen in the right order.  A test
written ``test "name" at "2026-11-25T10:00:00Z" { ... }`` runs with that
instant as ``now()`` (``dsl.clock``), so a date it computes from ``today()``
is the same on any day.
"""
from __future__ import annotations

import re
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import trio
import trio.testing

from dsl import clock
from dsl.clock import parse_instant
from dsl.compiler import EvalError, probing
from engine.channels.base import ConnectionLost, Unreachable
from engine.channels.file_origin import FILE_FIELDS
from dsl.fileend import END_FIELDS
from engine.replay.context import ExchangeCtx
from engine.replay.guide import FormatGuide
from engine.replay.virtual import isolated_engine
from engine.routetest import http
from engine.routetest.coverage import Coverage
from engine.routetest.expect import Checker
from engine.routetest.sendfile import send_file
from formats.errors import FormatError


class SetupError(ValueError):
    """A path that does not exist (``missing``: a usage error); route files that do not compile are
    ``RunResult.broken``, not an exception."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass
class Outcome:
    name: str
    where: str
    suite: str
    file_name: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Broken:
    """A configuration with tests whose route files do not compile: its tests did not run."""
    suite: str
    diagnostics: list[Any]
    sources: dict[str, Any]


@dataclass
class RunResult:
    outcomes: list[Outcome] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    configurations: int = 0
    warnings: list[tuple[Any, dict]] = field(default_factory=list)   # (diagnostic, sources) of compiled tests
    broken: list[Broken] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    def summary(self) -> str:
        n, f = len(self.outcomes), len(self.failed)
        text = f"{n - f} passed, {f} failed, {n} test(s) in {self.configurations} configuration(s)"
        if self.broken:
            b = len(self.broken)
            text += (f"; {b} configuration{'s do' if b > 1 else ' does'} not compile (error{'s' if b > 1 else ''}: "
                     f"{'their' if b > 1 else 'its'} tests did not run): " + ", ".join(x.suite for x in self.broken))
        return text


class Listener:
    """What ``run_paths`` reports as it goes (``bsp test`` prints each as it comes): override what you need."""

    def warnings(self, suite: str, warnings: list[Any], sources: dict[str, Any]) -> None:
        """The warnings of a configuration that compiled, before its tests run."""

    def outcome(self, outcome: Outcome) -> None:
        """One test finished."""

    def broken(self, broken: Broken) -> None:
        """A configuration does not compile; the others still run."""


def discover(paths: Iterable[str | Path]) -> list[list[Path]]:
    groups: list[list[Path]] = []
    for p in map(Path, paths):
        if not p.exists():
            raise SetupError(f"{p}: no such file or directory", missing=True)
        if p.is_file():
            groups.append([p])
            continue
        for d in [p, *sorted(x for x in p.rglob("*") if x.is_dir())]:
            files = sorted(d.glob("*.route"))
            if files:
                groups.append(files)
    return groups


_TEST_DECL = re.compile(r'^\s*test\s+"', re.M)


def has_tests(files: list[Path]) -> bool:
    """Whether any of the files declares a test (configurations without tests are not compiled:
    ``bsp check`` is the tool for that)."""
    return any(_TEST_DECL.search(f.read_text(encoding="utf-8", errors="replace")) for f in files)


def run_paths(paths: Iterable[str | Path], registry: Any, *, autojump: float = 0.02,
              listener: Listener | None = None) -> RunResult:
    """Each configuration is compiled and its tests run before the next one is compiled: one that does not
    compile is recorded in ``result.broken`` (and told to ``listener``) and the others still run.  A path
    that does not exist raises ``SetupError`` before any test runs."""
    from dsl.load import compile_paths

    listener = listener or Listener()
    result = RunResult()
    for files in discover(paths):
        if not has_tests(files):
            continue
        suite = str(files[0].parent) if len(files) > 1 else str(files[0])
        res = compile_paths(files, registry)
        if res.program is None:
            broken = Broken(suite, list(res.diagnostics), dict(res.sources))
            result.broken.append(broken)
            listener.broken(broken)
            continue
        program = res.program
        if not program.tests:
            continue
        result.warnings.extend((d, res.sources) for d in res.warnings)
        if res.warnings:
            listener.warnings(suite, list(res.warnings), res.sources)
        result.configurations += 1
        result.coverage.add_program(program, suite)
        trio.run(run_program_tests, program, registry, result, suite, listener,
                 clock=trio.testing.MockClock(autojump_threshold=autojump))
    return result


async def run_program_tests(program: Any, registry: Any, result: RunResult, suite: str,
                            listener: Listener | None = None) -> None:
    reg = result.coverage.registry(registry)
    current: dict[str, Any] = {}

    async def answer(channel: str, call: Any, ctx: ExchangeCtx | None) -> Any:
        if ctx is None:
            return Unreachable(f"channel {channel}: a call outside a test", channel=channel)
        q = ctx.extra["script"].get(channel)
        if not q:
            ctx.extra["problems"].append(
                f"{ctx.extra['where']}: the route called {channel} (call #{call.seq + 1}) but the test gives no "
                f"answer for it: add `given {channel} answers FORMAT {{ ... }}`")
            return Unreachable(f"channel {channel}: the test gives no answer for this call", channel=channel)
        a = q.popleft()
        if a.delay:
            await trio.sleep(float(a.delay))
        if a.mode == "timeout":
            await trio.sleep_forever()
        if a.mode == "error":
            return ConnectionLost(f"channel {channel}: connection broken (given {channel} answers error, "
                                  f"at {a.pos})", channel=channel)
        if a.mode == "unreachable":
            return Unreachable(f"channel {channel}: not reachable, the request never left (given {channel} "
                               f"answers unreachable, at {a.pos})", channel=channel)
        binder = current["binder"]
        try:
            values = binder.assigns(a.fields)(ctx.extra["scope"])
            body = binder.codec(a.format).encode(values)
        except (FormatError, EvalError) as exc:
            # the test's own scripted answer is bad: fail this test with the place, never crash `bsp test`
            ctx.extra["problems"].append(
                f"{a.pos}: given {channel} answers {a.format}: cannot encode the scripted answer: {exc}")
            return Unreachable(f"channel {channel}: the test's scripted answer could not be encoded", channel=channel)
        if http.is_kind(program, channel, "http.call"):
            try:
                headers = binder.assigns(a.headers)(ctx.extra["scope"]) if a.headers else None
            except EvalError as exc:
                ctx.extra["problems"].append(f"{a.pos}: given {channel} answers ... headers {{ ... }}: a value could "
                                             f"not be evaluated: {exc}")
                return Unreachable(f"channel {channel}: the test's scripted answer could not be built",
                                   channel=channel)
            return http.answer(program.channels[channel], a.status, headers, body)
        return body

    cov = result.coverage
    with tempfile.TemporaryDirectory(prefix="bsp-test-") as tmp, probing(cov.probe):
        async with isolated_engine(program, reg, answer, Path(tmp)) as engine:
            cov.instrument(engine.switchboard)
            binder = engine.switchboard.ctx
            current["binder"] = binder
            guide = FormatGuide(program, binder.codec)

            def decode(channel: str, role: str, direction: str, raw: bytes, prefer: str | None) -> Any:
                if prefer is not None:
                    try:
                        return prefer, binder.codec(prefer).decode(raw)
                    except Exception:   # noqa: BLE001 - reported as "does not decode"
                        return None, None
                return guide.decode(channel, role, direction, raw)

            listeners: dict[str, Any] = {}

            async def send(t: Any, raw: bytes, ctx: ExchangeCtx, scope: dict[str, Any],
                           extra: dict[str, Any], who: dict[str, Any] | None) -> None:
                ch = t.send.channel
                if not http.is_kind(program, ch, "http.listen"):
                    await engine.send(ch, raw, ctx, extra=extra, who=who)
                    return
                listener = listeners.get(ch)
                if listener is None:   # the real channel, built from its declaration (it opens no socket)
                    decl = program.channels[ch]
                    listener = listeners[ch] = registry.get("channel", decl.kind).build(decl)
                try:
                    fields = binder.assigns(t.send.http)(scope) if t.send.http else {}
                except EvalError as exc:   # the test's own expression: this test fails, with the place
                    raise http.HttpSetupError(f"{t.send.pos}: given {ch} sends ... http {{ ... }}: a value could "
                                              f"not be evaluated: {exc}") from None
                request = http.build_request(listener, fields, raw, f"{t.send.pos}: given {ch} sends", who)
                await http.send_http(listener, engine.handler(ch), request, ctx)

            async def file_sent(t: Any, i: int, script: dict[str, Any], scope: dict[str, Any],
                                where: str) -> list[ExchangeCtx]:
                return await send_file(program, binder, engine.handler(t.send.channel), Path(tmp), t, i, script,
                                       scope, where)
            send.file = file_sent        # ``sends file "NAME.csv"`` (engine/routetest/sendfile.py)

            for i, t in enumerate(program.tests, 1):
                outcome = await _run_one(t, i, send, binder, guide, decode, suite)
                result.outcomes.append(outcome)
                if listener is not None:
                    listener.outcome(outcome)


async def _run_one(t: Any, i: int, send: Any, binder: Any, guide: Any, decode: Any, suite: str) -> Outcome:
    where = str(t.pos) if t.pos is not None else "?"
    file_name = Path(t.pos.file).name if t.pos is not None else "?"
    out = Outcome(t.name, where, suite, file_name, True)
    t0 = time.perf_counter()
    at = getattr(t, "at", None)
    try:
        # ``at "..."``: now() and today() read that instant, in the test's own values and in the routes
        # (a context variable: the exchange's tasks inherit it, nothing outside the test sees it)
        with clock.fixed(parse_instant(at)[0] if at is not None else None):
            await _run_test(t, i, send, binder, guide, decode, where, out)
    finally:
        out.seconds = time.perf_counter() - t0       # wall time (delays are virtual), a failed test's too
    return out


async def _run_test(t: Any, i: int, send: Any, binder: Any, guide: Any, decode: Any, where: str,
                    out: Outcome) -> None:
    scope = dict(binder.base_scope())
    if getattr(t.send, "path", None) is not None:
        await _run_file_test(t, i, send, binder, guide, decode, where, out, scope)
        return
    try:
        sent = binder.assigns(t.send.fields)(scope)
        raw = binder.codec(t.send.format).encode(sent)
    except Exception as exc:   # noqa: BLE001 - a test that cannot build its request fails, with the reason
        out.passed = False
        out.failures.append(f"{t.send.pos}: given {t.send.channel} sends {t.send.format}: cannot encode the "
                            f"request: {exc}")
        return
    scope["msg"] = sent
    extra: dict[str, Any] = {}
    if t.send.file is not None:
        try:
            extra["origins"] = [GivenOrigin(binder.assigns(t.send.file)(scope))]
        except Exception as exc:   # noqa: BLE001 - a value that cannot be computed fails the test, with the place
            out.passed = False
            out.failures.append(f"{t.send.pos}: given {t.send.channel} sends ... file {{ ... }}: {exc}")
            return
    who = None
    if t.send.peer is not None:     # ``peer { cn = "PARTNER-A" }``: who the channel authenticated (peer.*)
        try:
            who = given_peer(binder.assigns(t.send.peer)(scope))
        except Exception as exc:   # noqa: BLE001 - a value that cannot be computed fails the test, with the place
            out.passed = False
            out.failures.append(f"{t.send.pos}: given {t.send.channel} sends ... peer {{ ... }}: {exc}")
            return
    script: dict[str, deque] = {}
    for a in t.answers:
        script.setdefault(a.endpoint, deque()).append(a)
    ctx = ExchangeCtx(i, t.send.channel, str(i), raw)
    ctx.extra.update(script=script, problems=[], scope=scope, where=where)
    ctxs = [ctx]
    if t.send.twice:
        # the repeat: the same bytes, once the first exchange has finished (its reply sent); it shares the
        # scripted answers, so a call it makes takes the next one (or has none: "no answer for it")
        again = ExchangeCtx(i, t.send.channel, str(i), raw)
        again.extra.update(script=script, problems=[], scope=scope, where=f"{t.send.pos}: the repeat")
        ctxs.append(again)
    try:
        for x in ctxs:
            await send(t, raw, x, scope, extra, who)
    except http.HttpSetupError as exc:
        out.passed = False
        out.failures.append(str(exc))
        return
    chk = Checker(binder, guide, scope, decode)
    failures = [p for x in ctxs for p in x.extra["problems"]]
    if len(ctxs) > 1:
        failures.extend(chk.repeat_differs(t.send.pos, t.send.channel, ctxs[0], ctxs[1]))
    for e in t.expects:
        failures.extend(chk.check(e, ctxs, t.send.channel))
    unused = [a for q in script.values() for a in q]
    for a in unused:
        failures.append(f"{a.pos}: given {a.endpoint} answers ...: never used (the route made fewer calls "
                        f"to {a.endpoint})")
    why = _deal_reason(ctx)
    if failures and why and not any(ctx.deal.reason in f for f in failures):
        failures.append(f"{where}: note: {why}")     # why it went wrong, when an `on error` reply hides it
    out.failures = failures
    out.passed = not failures


async def _run_file_test(t: Any, i: int, send: Any, binder: Any, guide: Any, decode: Any, where: str,
                         out: Outcome, scope: dict[str, Any]) -> None:
    """A test that sends a whole file (``sends file "NAME.csv"``): its records and end message are the
    exchanges its expectations read."""
    scope["msg"] = None
    script: dict[str, deque] = {}
    for a in t.answers:
        script.setdefault(a.endpoint, deque()).append(a)
    # no exchange at all: a file refused unrun on a channel without end_message (`expect no call` holds)
    ctxs = await send.file(t, i, script, scope, where) or [ExchangeCtx(i, t.send.channel, "0", b"")]
    failures = [p for x in ctxs for p in x.extra.get("problems", ())]
    chk = Checker(binder, guide, scope, decode)
    for e in t.expects:
        failures.extend(chk.check(e, ctxs, t.send.channel))
    failures += [f"{a.pos}: given {a.endpoint} answers ...: never used (the route made fewer calls to "
                 f"{a.endpoint})" for q in script.values() for a in q]
    out.failures = failures
    out.passed = not failures


def given_peer(values: dict[str, Any]) -> dict[str, Any]:
    """``peer { cn san address }`` of a test as the routes read it (``engine.tls.peer_values``' shape):
    what the test does not give is null (``san``: empty)."""
    san = values.get("san")
    return {"cn": values.get("cn"), "san": [] if san is None else [san] if isinstance(san, str) else list(san),
            "address": values.get("address")}


class GivenOrigin:
    """``given ... sends ... file { name = "X.csv" line = 3 }``: the record's place in its batch file, as
    ``file watch`` hands it to the dispatcher (``engine.channels.file_origin.RecordOrigin``): the routes
    read it as ``file.*``; the fields the test does not give are null.  The request is the test's own
    bytes, not a file's: a decoding error keeps its offsets."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.scope = {"file": {k: values.get(k) for k in FILE_FIELDS + END_FIELDS}}
        # ``file { end = true  status = "done" ... }``: the channel's end-of-file message (end_message = true),
        # offered, as by the channel, only to the routes whose `when` reads file.end
        self.end = values.get("end") is True
        self.scope["file"]["end"] = self.end

    def relocate(self, exc: Any, frame: bytes) -> Any:
        return exc


def _deal_reason(ctx: ExchangeCtx) -> str:
    """``the deal failed (code 96): <reason>``: the ledger's reason of a deal that did not commit."""
    d = ctx.deal
    reason = getattr(d, "reason", None) if d is not None else None
    if not reason or getattr(d, "status", None) == "committed":
        return ""
    code = getattr(d, "response_code", None)
    return f"the deal {d.status}" + (f" (code {code})" if code else "") + f": {reason}"
