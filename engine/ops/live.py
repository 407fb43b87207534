"""The live engine: generations of a configuration, swapped under traffic without losing anything.

    engine = LiveEngine(registry, ledger, load=lambda: (route_files, overrides), observer=obs)
    await nursery.start(engine.run, program)       # returns once every inbound channel is listening
    result = await engine.reload(dry_run=False)     # engine.admin.backend.ReloadResult
    engine.drain()                                  # stop accepting, finish in-flight work, then run returns

A reload is transactional: the route files are compiled (in a worker thread),
every file they reference is fingerprinted, and the new generation is bound
completely (``engine.ops.generation.build_generation``: channel objects,
codecs, tables, routes) before anything changes.  On any error the running
generation stays and the rendered diagnostics come back (and are logged).

Then, in this order:
1. channels the plan adds, or changes on another address, start listening
   (a failure here stops what was started and keeps the running generation);
2. the new version and its sources go into the ledger (``record_config``);
3. the swap: every kept inbound channel's ``HandlerRef`` is pointed at the new
   generation's dispatcher (one assignment per channel, no await between them,
   so no batch sees a mix); the next batch read on any connection runs on the
   new generation, batches already running finish on the old one;
4. channels removed or changed stop accepting and reading, and finish what
   they read (drain); a changed ``tcp listen`` / ``http listen`` channel on
   the same address accepts on the old one's listening sockets, handed over
   open (engine/channels/listen_handoff.py: the port never closes, connections
   waiting in its accept queue are kept); another changed channel on the same
   address starts once the old socket is closed;
5. outbound channels only the old generation used are closed once its last
   in-flight batch has finished (``Generation.idle``).
"""
from __future__ import annotations

import errno
import logging
import re
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import trio

from engine import calexpiry
from engine.admin.backend import ReloadResult
from engine.certexpiry import OWN, REMIND_EVERY, log_notices, next_own_expiry
from engine.channels.listen_handoff import hand_over
from engine.ops.calls import observe_calls, unobserve
from engine.ops.channeltls import TLSRenewRefused, read_renewed, renew
from engine.ops.effective import with_deployment
from engine.ops.files import secret_digests, with_referenced_files
from engine.ops.generation import Generation, HandlerRef, build_generation
from engine.ops.plan import ReloadPlan, plan_reload
from engine.runtime.guard import channel_label, failure_text, guarded
from engine.runtime.internal_log import new_faults
from engine.txn import backlog, keyopen, saf
from engine.txn.safroute import strand_warnings

log = logging.getLogger("bsp.reload")
cert_log = logging.getLogger("bsp.certs")


class StartError(OSError):
    """A channel or the admin API could not start (its port is taken, a folder cannot be made);
    the message names it, its address, the system's reason and what to do."""


def start_error(what: str, address: str, exc: OSError, *, listens: bool = True,
                elsewhere: str = "in the route file, or per environment under `channels:` in the "
                                 "deployment file", place: str | None = None) -> StartError:
    """``exc`` from starting ``what`` (``channel NAME``, ``admin API``) as the error a user reads;
    ``elsewhere``: where another address is given; ``place``: where this one was (``address_place``)."""
    why = exc.strerror or str(exc)
    hint = {
        errno.EADDRINUSE: f"; something already listens there (another bsp?): stop it, or give it another "
                          f"address ({elsewhere})",
        errno.EACCES: "; the engine's user may not do that (ports below 1024 need privileges; check the "
                      "folder's permissions)",
        errno.EADDRNOTAVAIL: "; no network interface of this machine has that address",
    }.get(exc.errno or 0, "")
    verb = "cannot listen on" if listens else "cannot start at"
    at = f" (address set at {place})" if place else ""
    err = StartError(f"{what}: {verb} {address}{at}: {why}{hint}")
    err.errno = exc.errno
    return err


def only_errors(group: BaseExceptionGroup, types: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``group`` when all it holds are of ``types`` (a channel that could not
    start, a ledger another engine holds: errors to report in a line, not bugs to trace)."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                walk(e)
            else:
                leaves.append(e)

    walk(group)
    return leaves[0] if leaves and all(isinstance(e, types) for e in leaves) else None

Loader = Callable[[], tuple[list[Path], Mapping[str, Mapping[str, Any]]]]
CERT_LOOK_EVERY = 60.0         # seconds between two looks for the next certificate bsp presents to expire
REBIND_WAIT = 5.0              # seconds a changed channel waits for its old socket on the same address


_SNIPPET = re.compile(r"^\s*\d*\s*\|")     # a rendered diagnostic's source line or caret line: ` 75 |  ...`


def log_diagnostics(diagnostics: list[str]) -> str:
    """The rendered diagnostics on one log line: each one's place, text and help, without its source
    snippet, ``; `` between them.  (The log escapes line breaks, so the snippet and its carets read as one
    line full of ``\\n``; `bsp reload` and `bsp check` print them whole.)"""
    return "; ".join(" ".join(line.strip() for line in d.splitlines() if line.strip() and not _SNIPPET.match(line))
                     for d in diagnostics)


class ReloadFailed(Exception):
    """``refused``: "files" (the new configuration has problems), "start" (a channel of it could not
    start) or "draining" (the engine is stopping; nothing was read)."""

    def __init__(self, diagnostics: list[str], plan: ReloadPlan | None = None, version: str | None = None,
                 refused: str = "files") -> None:
        super().__init__("\n".join(diagnostics))
        self.diagnostics = diagnostics
        self.plan = plan
        self.version = version
        self.refused = refused


def restart_warning(started: Mapping[str, Any], now: Mapping[str, Any], source: str) -> list[str]:
    """A warning when settings read only at start (ledger, admin) differ in the file read again."""
    from engine.deploy import KEY_FILE_SUFFIX
    changed = [k for k in now if started.get(k) != now.get(k)]
    files = [k.removesuffix(KEY_FILE_SUFFIX) for k in changed if k.endswith(KEY_FILE_SUFFIX)]
    changed = [k for k in changed if not k.endswith(KEY_FILE_SUFFIX)]
    files = [k for k in files if k not in changed and not any(k.startswith(c + ".") for c in changed)]
    out = []
    if changed:
        out.append(f"{' / '.join(changed)} changed in {source or 'the deployment file'}: "
                   f"{'it takes' if len(changed) == 1 else 'they take'} effect at the next restart")
    if files:
        one = len(files) == 1
        out.append(f"{' / '.join(files)}: {'its file was' if one else 'their files were'} rewritten since the "
                   f"engine started; a reload does not read {'it' if one else 'them'} again: the engine goes on "
                   f"with what it read at start until the next restart")
    return out


def _with_admin(plan: dict[str, Any], change: Any, tokens: Any = None) -> dict[str, Any]:
    """The reload plan's ``admin API`` entry when its TLS files are (or would be) read again, or its tokens
    changed (``tokens``: engine.ops.admintokens.TokenChange; names only)."""
    if change is not None:
        plan["admin API"] = {"changed": ["tls"]}
        plan.setdefault("why", {})["admin API"] = {
            "tls": f"{change.summary()} rewritten: new connections get it, open ones keep theirs"}
    if tokens is not None:
        plan.setdefault("admin API", {"changed": []})["changed"].append("tokens")
        plan.setdefault("why", {}).setdefault("admin API", {})["tokens"] = (
            f"{tokens.summary()}: the next request is checked against the new set")
    return plan


def address_place(program: Any, overrides: Mapping[str, Mapping[str, Any]] | None, name: str) -> str | None:
    """Where channel ``name``'s address was written: the deployment file's override
    (``platform.yaml:LINE:COL, environments.uat.channels.NAME.address``) when one set it, else the route
    file's option (``FILE:LINE:COL``; the declaration when the kind's default applies).  None: not known."""
    place = getattr(overrides, "place", None)
    if overrides is not None and "address" in overrides.get(name, {}):
        if place is None:
            return None
        where, key = place(name, "address")
        return f"{where}, {key}"
    decl = program.channels.get(name)
    if decl is None:
        return None
    pos = getattr(decl, "option_pos", {}).get("address") or decl.pos
    return str(pos) if pos is not None else None


async def _probe_listen(gen: Generation, names: list[str],
                        overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[StartError]:
    """For a dry run: bind, and close at once, the TCP address of each listening channel a reload would
    start on a new address; the addresses that cannot be bound now (a port taken) as ``StartError``s."""
    errors: list[StartError] = []
    for name in names:
        ch = gen.channels[name]
        host, port = getattr(ch, "host", None), getattr(ch, "port", None)
        if ch.role != "listen" or not isinstance(host, str) or not isinstance(port, int) or not port:
            continue
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            errors.append(start_error(f"channel {name}", f"{host}:{port}", exc,
                                      place=address_place(gen.program, overrides, name)))
            continue
        for listener in listeners:
            await listener.aclose()
    return errors


def drain_lines(report: list[tuple[str, list[str | None], str]]) -> list[str]:
    """``LiveEngine.in_flight_report`` as text, one item per route."""
    lines = []
    for route, refs, fate in report:
        known = [r for r in refs if r]
        shown = f" (references {', '.join(known[:20])}{' ...' if len(known) > 20 else ''})" if known else ""
        lines.append(f"route {route}: {len(refs)}{shown}: {fate}")
    return lines


class LiveEngine:
    def __init__(self, registry: Any, ledger: Any, *, load: Loader, observer: Any = None,
                 grace: float = 10.0) -> None:
        self.registry = registry
        self.ledger = ledger
        self.observer = observer
        self.view = observer.ledger(ledger) if observer is not None else ledger
        self.load = load
        self.grace = grace
        self.current: Generation | None = None
        self.overrides: Mapping[str, Mapping[str, Any]] = {}
        self._settings: dict[str, Any] = {}              # ledger / admin settings read at start
        self._warnings: list[str] = []                   # of the reload running now
        self.cancelled: list[tuple[str, list[str | None], str]] = []   # in flight when the grace ran out
        self.refs: dict[str, HandlerRef] = {}           # inbound channel name -> its handler indirection
        self.history: list[dict[str, Any]] = []         # reloads: at, source, ok, version, dry_run
        self.started_at = time.time()
        self.draining = False
        self.admin_port: int | None = None                 # set by engine.ops.serve when the admin API runs
        from engine.ops.looplag import LoopLag
        self.loop_lag = LoopLag()                          # the probe engine.ops.serve runs: bsp status "event_loop"
        self.finished = trio.Event()
        self._lock = trio.Lock()
        self._drain = trio.Event()
        self._scopes: dict[int, list[trio.CancelScope]] = {}     # id(channel object) -> its task scopes
        # id(channel object) -> (the object, why): channels whose task failed after they started
        # (engine/runtime/guard.py); ``bsp status`` shows them and ``/ready`` answers not ready
        self.stopped: dict[int, tuple[Any, str]] = {}
        self._listeners: set[trio.CancelScope] = set()           # serve tasks still running
        self._listeners_done = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._numbers = 0
        from engine.runtime.dispatch import DispatchStats
        self._retired_stats = DispatchStats()                   # the counts of generations that have finished
        self._all_stats: list[Any] = [self._retired_stats]      # ... and of those running
        self._retiring: list[Generation] = []                   # old generations with work still running
        self._stopping: dict[str, set[int]] = {}                # exclusive channel -> ids of its stopped objects
        self.saf: list[Any] = []                                  # the reversal queues (engine/txn/saf.py)
        self.admin_certs: list[Any] = []          # the admin API's certificates (engine/certexpiry.py)
        self.admin_tls: Any = None                # engine.ops.admintls.AdminTLS: a reload renews it (set by serve)
        self.admin_tokens: Any = None             # engine.ops.admintokens.AdminTokens: a reload reads them again
        self.cert_remind_every = REMIND_EVERY     # seconds between two certificate expiry reminders in the log
        self.calendar_remind_every = calexpiry.REMIND_EVERY   # ... and between two calendar ones (engine/calexpiry.py)
        self.calendar_warn_days = calexpiry.WARN_DAYS   # days before a calendar runs out it is warned about (calendars.warn_days)
        # internal errors, failed on error steps, calls failed in doubt: one line per kind, then counted
        # (engine/runtime/internal_log.py), for every generation: a reload does not log them in full again
        self.faults = new_faults()

    # ------------------------------------------------------------ running
    async def run(self, program: Any, overrides: Mapping[str, Mapping[str, Any]] | None = None, *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind and serve ``program``; ``task_status.started(self)`` once listening; returns after ``drain``."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.faults.run)       # summaries of repeated internal errors, when due
                self.overrides = overrides if overrides is not None else {}   # (an empty ChannelOverrides knows its file)
                self._settings = dict(getattr(overrides, "settings", {}) or {})
                program = with_deployment(with_referenced_files(program), self.overrides, self.registry)
                program = self._with_admin_tls(program)
                gen = self._bind(program, {})
                await self.ledger.record_config(gen.version, gen.program.sources)
                # ISO 8583 reversals are stored and forwarded (engine/txn/saf.py): queued before the
                # recovery in _start (which may queue some), worked once the outbound channels run
                boot = [gen]              # until self.current is set (not held after: see the del below)
                self.saf = saf.attach(lambda: (self.current or boot[0]).dispatchers.values())
                self.refs.update(await self._start(gen, list(gen.channels)))
                for q in self.saf:
                    nursery.start_soon(saf.serve, q)
                nursery.start_soon(self._remind_certs)
                nursery.start_soon(calexpiry.remind, self.calendars, lambda: self.calendar_remind_every,
                                   lambda: self.calendar_warn_days)
                backlog.keep_all_up(nursery, gen.dispatchers.values())   # one per ledger: reloads keep it
                self.current = gen
                self._loaded(gen)
                log_notices(cert_log, self.admin_certs, time.time())
                boot.clear()
                del gen, program          # this frame lives as long as the engine: a reload must free them
                task_status.started(self)
                await self._drain.wait()
                await self._drain_all()
                nursery.cancel_scope.cancel()
        finally:
            self.faults.flush()          # the counts of repeated internal errors not yet written
            self.finished.set()

    def drain(self) -> None:
        """Stop accepting and reading on every channel; in-flight exchanges finish, then ``run`` returns."""
        self.draining = True
        self._drain.set()

    async def _drain_all(self) -> None:
        log.info("draining: no new connections or requests; finishing in-flight exchanges")
        for gen_ch in self._all_channels():
            self._stop_accepting(gen_ch)
        waiting = await keyopen.stop_all(self.current.dispatchers.values() if self.current is not None else ())
        self._listeners_done = trio.Event()
        with trio.move_on_after(0 if waiting is not None else self.grace) as timer:
            if self._listeners:
                await self._listeners_done.wait()
        if waiting is not None:         # a rebuild of the key index was stopped: its waiting requests cancelled
            log.warning(keyopen.stopped_warning(waiting))
            return
        if timer.cancelled_caught:
            self.cancelled = self.in_flight_report()
            n = sum(len(refs) for _, refs, _ in self.cancelled)
            if not n:
                log.warning("drain: grace period of %gs over; in-flight work was cancelled", self.grace)
                return
            log.warning("drain: grace period of %gs over; %d exchange(s) still in flight were cancelled: %s",
                        self.grace, n, "; ".join(drain_lines(self.cancelled)))

    def key_index(self) -> list[Any]:
        """The rebuilds of the key store's index under way (``answers.Rebuild``; ``bsp status``)."""
        return keyopen.rebuilds(self.current.dispatchers.values() if self.current is not None else ())

    def in_flight_report(self) -> list[tuple[str, list[str | None], str]]:
        """(route, the references of its exchanges running now (None: not known yet), what becomes of
        them when they are cancelled), over every generation still running."""
        from engine.txn.plan import plan_of
        out: list[tuple[str, list[str | None], str]] = []
        gens = ([self.current] if self.current is not None else []) + list(self._retiring)
        for gen in gens:
            for br in gen.routes().values():
                refs = [getattr(ex, "reference", None) for group in list(br.running.values()) for ex in group]
                if not refs:
                    continue
                try:
                    plan = plan_of(br)
                except Exception:         # a plan that cannot be built: say what we know
                    plan = None
                if plan is not None and plan.active:
                    fate = (f"its accepted requests are in the transaction log; the next start resolves them "
                            f"by the route's on-restart policy ({plan.policy})")
                else:
                    fate = ("nothing of them is recorded (the route makes no call, so nothing left the engine); "
                            "their clients get no reply and may send them again")
                out.append((br.name, refs, fate))
        return out

    def _all_channels(self) -> list[Any]:
        return list(self.current.channels.values()) if self.current is not None else []

    @staticmethod
    def _stop_accepting(ch: Any) -> None:
        if ch is not None and hasattr(ch, "stop_accepting"):
            ch.stop_accepting()

    # ------------------------------------------------------------ channel tasks
    async def _channel_task(self, ch: Any, ref: HandlerRef | None, what: str, *, task_status: Any) -> None:
        key = id(ch)
        with trio.CancelScope() as scope:
            self._scopes.setdefault(key, []).append(scope)
            if ref is not None:
                self._listeners.add(scope)
            try:
                # a channel that fails once started stops alone (engine/runtime/guard.py)
                stopped = partial(self._stopped, ch)
                if ref is None:
                    await guarded(ch.run, what=what, on_failure=stopped, task_status=task_status)
                else:
                    await guarded(ch.serve, ref, what=what, on_failure=stopped, task_status=task_status)
            finally:
                scopes = self._scopes.get(key, [])
                if scope in scopes:
                    scopes.remove(scope)
                if not scopes:
                    self._scopes.pop(key, None)
                self._listeners.discard(scope)
                if not self._listeners:
                    self._listeners_done.set()

    def _stopped(self, ch: Any, why: str) -> None:
        self.stopped[id(ch)] = (ch, why)

    def stopped_reason(self, ch: Any) -> str | None:
        """Why ``ch`` (a channel object) stopped taking traffic, or None while it runs."""
        got = self.stopped.get(id(ch))
        return got[1] if got is not None and got[0] is ch else None

    def _cancel(self, ch: Any) -> None:
        self.stopped.pop(id(ch), None)            # retired: a reload replaced or removed it
        for scope in self._scopes.get(id(ch), []):
            scope.cancel()

    async def _start(self, gen: Generation, names: list[str]) -> dict[str, HandlerRef]:
        """Start these channels of ``gen``; returns the new inbound channels' handler refs."""
        assert self._nursery is not None
        refs: dict[str, HandlerRef] = {}
        for name in names:                      # outbound first: routes may call them at once
            ch = gen.channels[name]
            if ch.role in ("connect", "both"):
                await self._start_channel(name, ch, None, gen)
        # deals a crash left in flight are resolved before these channels take traffic (engine/txn)
        # (in the background while the key store's index is made again in a worker thread: engine/txn/keyopen.py)
        await keyopen.recover(self._nursery, [gen.dispatchers[n] for n in names if n in gen.dispatchers])
        for name in names:
            disp = gen.dispatchers.get(name)
            if disp is not None:
                ref = HandlerRef(name, gen, disp, self.observer)
                await self._start_channel(name, gen.channels[name], ref, gen)
                refs[name] = ref
        return refs

    async def _start_channel(self, name: str, ch: Any, ref: HandlerRef | None, gen: Generation) -> None:
        """Start one channel (``ref``: inbound); an OSError (its port taken, say) becomes a
        ``StartError`` naming the channel and its address."""
        assert self._nursery is not None
        decl = gen.program.channels.get(name)
        what = channel_label(name, decl.kind if decl is not None else "?", self.registry)
        try:
            await self._nursery.start(self._channel_task, ch, ref, what)
        except StartError:
            raise
        except OSError as exc:
            raise start_error(f"channel {name}", getattr(ch, "address", "?"), exc, listens=ref is not None,
                              place=address_place(gen.program, self.overrides, name)) from exc
        except Exception as exc:      # a channel's bug (a plugin's) before it started: named, no traceback
            raise StartError(f"{what}: cannot start at {getattr(ch, 'address', '?')}: {failure_text(exc)}") from exc

    # ------------------------------------------------------------ binding
    def _secrets(self, program: Any, overrides: Any) -> dict[str, Any]:
        """The digests of the secret files ``program`` is bound with (``engine.ops.files.secret_digests``);
        read before the channels read them (a file rewritten in between is told changed by the next reload)."""
        from engine.ops.overrides import resolve_paths
        try:
            resolved = resolve_paths(overrides, program, self.registry)
        except Exception:          # overrides that do not check: build_generation says why
            resolved = overrides
        return secret_digests(program, resolved)

    def _bind(self, program: Any, reuse: Mapping[str, Any], secrets: Any = None) -> Generation:
        self._numbers += 1
        secrets = self._secrets(program, self.overrides) if secrets is None else secrets
        gen = build_generation(self._numbers, program, self.registry, ledger=self.view,
                               overrides=self.overrides, reuse=reuse, grace=self.grace, faults=self.faults)
        gen.secrets = secrets
        if self.observer is not None:
            self.observer.learn(gen)
            metrics = getattr(self.observer, "metrics", None)
            for ch in gen.channels.values():
                if metrics is None or ch in reuse.values():
                    continue
                attach = getattr(ch, "attach_metrics", None)
                if attach is not None:                # channels that report their own events (tcp mux)
                    attach(metrics)
                if ch.role == "connect":              # outbound calls: sent, replies, errors, latency
                    observe_calls(ch, metrics)
        self._all_stats.append(gen.sb.stats)
        return gen

    def _loaded(self, gen: Generation) -> None:
        metrics = getattr(self.observer, "metrics", None)
        if metrics is not None:
            metrics.config_loaded(gen.version)
            channels = gen.channels.items()
            metrics.bound(routes=list(gen.routes()),
                          outbound=[n for n, ch in channels if getattr(ch, "role", None) == "connect"],
                          capped=[n for n, ch in channels if hasattr(ch, "capped")])
            metrics.certs_bound(list(gen.certs) + list(self.admin_certs))
            metrics.calendars_bound(gen.calendars, calexpiry.engine_today, self.calendar_warn_days)
        log_notices(cert_log, gen.certs, time.time())
        calexpiry.log_notices(gen.calendars, warn_days=self.calendar_warn_days)

    def calendars(self) -> list[Any]:
        """The calendar tables the running configuration's routes use (``engine.calexpiry.CalendarSpan``)."""
        return list(self.current.calendars) if self.current is not None else []

    # ------------------------------------------------------------ certificates
    def certificates(self) -> list[Any]:
        """Every certificate of the running configuration (``engine.certexpiry.CertExpiry``): its
        channels' files, the admin API's, and the last certificate each calling channel's counterpart
        presented (role peer)."""
        gen = self.current
        if gen is None:
            return list(self.admin_certs)
        peers = [p for ch in gen.channels.values() if (p := getattr(ch, "peer_cert", None)) is not None]
        return list(gen.certs) + list(self.admin_certs) + peers

    def cert_notices(self, now: float | None = None) -> int:
        """Log a warning for every certificate expiring within WARN_DAYS, an error for every expired one;
        returns how many lines."""
        return log_notices(cert_log, self.certificates(), time.time() if now is None else now)

    async def _remind_certs(self) -> None:
        """Every ``cert_remind_every`` seconds, every notice; and at the moment a certificate bsp presents
        expires, its error line (not up to a day later: ``bsp status`` says degraded from then on)."""
        due = trio.current_time() + self.cert_remind_every
        while True:
            now = time.time()
            expiry = next_own_expiry(self.certificates(), now)
            wake = min(due, trio.current_time() + CERT_LOOK_EVERY)   # a reload may bind an earlier one
            if expiry is not None:
                wake = min(wake, trio.current_time() + (expiry - now) + 0.01)
            await trio.sleep_until(wake)
            if self.current is None or self.draining:
                continue
            if trio.current_time() >= due:
                due = trio.current_time() + self.cert_remind_every
                self.cert_notices()
            else:                             # those that expired since the last look
                log_notices(cert_log, [e for e in self.certificates() if e.role in OWN
                                       and now < e.not_after <= time.time()], time.time())

    async def _compile(self) -> tuple[Any, Mapping[str, Mapping[str, Any]]]:
        from dsl.diagnostics import render
        from dsl.load import compile_paths
        try:
            paths, overrides = self.load()
        except Exception as exc:         # a bad deployment file: DeploymentError lists file:line:col
            raise ReloadFailed(str(exc).splitlines() or [repr(exc)]) from exc
        missing = [str(p) for p in paths if not Path(p).exists()]
        if missing:
            raise ReloadFailed([f"{p}: error: no such file (it was a route file of the running configuration)"
                                for p in missing])
        res = await trio.to_thread.run_sync(partial(compile_paths, paths, self.registry,
                                                              calendar_warn_days=self.calendar_warn_days))
        if res.program is None:
            errors = [d for d in res.diagnostics if d.is_error]
            raise ReloadFailed([render(d, res.sources) for d in errors])
        program = await trio.to_thread.run_sync(with_referenced_files, res.program)
        return self._with_admin_tls(with_deployment(program, overrides, self.registry)), overrides

    def _with_admin_tls(self, program: Any) -> Any:
        """``program`` whose version also records the admin API's TLS certificates as its files hold them now
        (what it serves from this bind on: a reload reads renewed ones; engine/ops/admintls.py)."""
        tls = self.admin_tls
        if tls is None:
            return program
        from engine.ops.admintls import with_admin_tls
        return with_admin_tls(program, tls.cert, tls.ca)

    # ------------------------------------------------------------ reload
    async def reload(self, dry_run: bool = False, source: str = "admin", by: str | None = None) -> ReloadResult:
        """Compile, bind, and (unless ``dry_run``) swap to the new generation.  Never raises for bad files.
        ``by``: the admin token's name that asked (in the log and the ``history`` entry)."""
        who = source if by is None else f"{source}, token {by!r}"
        async with self._lock:
            old = self.current
            prev = old.version if old is not None else None
            self._warnings = []
            try:
                if self.draining:
                    raise ReloadFailed(["the engine is draining; nothing reloaded"], refused="draining")
                if old is None:
                    raise ReloadFailed(["the engine is still starting; nothing reloaded"], refused="draining")
                result = await self._reload(old, dry_run, who)
            except ReloadFailed as exc:
                log.error("reload (%s) failed; the running configuration %s is kept: %s", who, prev,
                          log_diagnostics(exc.diagnostics))
                result = ReloadResult(ok=False, dry_run=dry_run, version=exc.version, previous_version=prev,
                                      plan=exc.plan.as_dict() if exc.plan else {}, diagnostics=exc.diagnostics,
                                      refused=exc.refused, warnings=self._warnings)
            for warning in result.warnings:
                log.warning("reload (%s): %s", who, warning)
            # why a reload failed, for `bsp status` / `bsp top` (a --watch or SIGHUP reload has nobody to print it to)
            error = None if result.ok else (log_diagnostics(result.diagnostics) or "see the engine's log")[:500]
            self.history.append({"at": time.time(), "source": source, "ok": result.ok, "dry_run": dry_run,
                                 "version": result.version, "previous_version": prev, "error": error,
                                 **({"by": by} if by is not None else {})})
            del self.history[:-50]
            return result

    async def _reload(self, old: Generation, dry_run: bool, who: str = "") -> ReloadResult:
        from engine.runtime.binder import BindError
        from engine.steps.screen_prepare import prepare as prepare_screen_lists

        self._warnings = []
        program, overrides = await self._compile()
        # the screened lists' indexes, built in a worker thread while this generation serves (seconds for a
        # large list): the bind below finds them built (engine/steps/screen_prepare.py)
        await prepare_screen_lists(program)
        self._warnings = restart_warning(self._settings, getattr(overrides, "settings", {}),
                                         getattr(overrides, "source", ""))
        secrets = self._secrets(program, overrides)
        plan = plan_reload(old.program, program, overrides, old.overrides, secrets=(old.secrets, secrets))
        admin_change = await self._admin_tls_change(plan, program.version)
        token_change = await self._admin_token_change(overrides, plan, program.version)
        rebind = set(plan.rebind) | set(plan.names("channels", "added"))
        reuse = {n: ch for n, ch in old.channels.items() if n in program.channels and n not in rebind}
        saved = self.overrides
        self.overrides = overrides
        try:
            gen = self._bind(program, reuse, secrets)
        except (BindError, ValueError, TypeError, OSError) as exc:
            self.overrides = saved
            self._numbers -= 1
            raise ReloadFailed([f"error: {line}" for line in getattr(exc, "problems", None) or [exc]],
                               plan, program.version) from exc
        try:          # certificates renewed at the same path: read now, given to the channels at the swap
            renewed = await read_renewed(gen, plan.renew_tls)
        except TLSRenewRefused as exc:
            self.overrides = saved
            self._numbers -= 1
            self._all_stats.remove(gen.sb.stats)
            raise ReloadFailed([f"error: {line}" for line in exc.lines], plan, program.version) from None
        if any(q.items for q in self.saf):      # reversals owed to a channel the new configuration lacks
            self._warnings += strand_warnings(self.saf, gen.dispatchers.values, dry_run=dry_run)
        # started after the swap, once the old one stops accepting: a listener on the same address, and a
        # channel two generations of which must never run at once (a timer would tick twice)
        same_address = {n for n in rebind if n in old.channels
                        and (getattr(old.channels[n], "address", None) == getattr(gen.channels[n], "address", 0)
                             or getattr(gen.channels[n], "exclusive", False))}
        early = [n for n in gen.channels if n in rebind and n not in same_address]
        if dry_run:
            self.overrides = saved
            self._numbers -= 1
            self._all_stats.remove(gen.sb.stats)
            taken = await _probe_listen(gen, early, overrides)
            if taken:
                raise ReloadFailed([f"error: {exc}" for exc in taken], plan, gen.version, refused="start")
            return ReloadResult(ok=True, dry_run=True, version=gen.version, previous_version=old.version,
                                plan=_with_admin(plan.as_dict(), admin_change, token_change), warnings=self._warnings)
        try:
            started = await self._start(gen, early)
        except OSError as exc:
            for n in early:
                self._cancel(gen.channels[n])
            self.overrides = saved
            raise ReloadFailed([f"error: {exc}"], plan, gen.version, refused="start") from exc
        await self.ledger.record_config(gen.version, gen.program.sources)
        # ---- the swap: no await from here to the end of the loop
        for name, disp in gen.dispatchers.items():
            ref = self.refs.get(name)
            if ref is not None and name not in rebind and gen.channels[name] is old.channels.get(name):
                ref.point(gen, disp)
        for name in old.channels:
            if name not in gen.channels:
                self.refs.pop(name, None)
        self.refs.update(started)
        self.current = gen
        renew(gen, renewed)                   # their new connections get it; the socket and open ones stay
        if admin_change is not None:          # the admin API's new connections get it; open ones keep theirs
            self.admin_tls.swap(admin_change)
            self.admin_certs = list(admin_change.certs)
            log_notices(cert_log, self.admin_certs, time.time())
            log.warning("reload: admin API: %s read again; new connections get it, open ones keep theirs",
                        admin_change.summary())
        if token_change is not None:          # the next admin request is checked against the new set
            self.admin_tokens.swap(token_change)
            log.warning("reload: admin API tokens: %s", token_change.summary())
        for q in self.saf:           # queued reversals go by the new configuration's calls (or are stranded)
            q.reconfigured()
        for name, ch in gen.channels.items():      # kept channels read with the new formats from now on (MUX keys)
            adopt = getattr(ch, "adopt", None)
            if adopt is not None and ch is old.channels.get(name):
                adopt(gen.sb.ctx)
        for name in rebind:          # a channel object replaced: its counts since start go on in the new one
            was, now = old.channels.get(name), gen.channels.get(name)
            take_over = getattr(now, "take_over", None)
            if was is not None and take_over is not None and type(was) is type(now):
                take_over(was)
        old.retire()
        self._retiring.append(old)
        # listening channels on the same address: the new one adopts the old one's sockets, which stay open
        # (stop_accepting below stops the old one's accept() without closing them); never before this point,
        # so a reload refused above leaves the old listener as it was
        for name in same_address:
            if getattr(old.channels[name], "address", None) == getattr(gen.channels[name], "address", 0):
                hand_over(old.channels[name], gen.channels[name])
        # ---- drain what the new generation no longer uses
        for name, ch in old.channels.items():
            if gen.channels.get(name) is not ch:
                self._stop_accepting(ch)
        for name in same_address:
            if getattr(gen.channels[name], "exclusive", False):
                # a timer: the new one starts once the old one's running tick (a route that may take its
                # time) has finished, never beside it; the reload does not wait for it
                self._stopping.setdefault(name, set()).add(id(old.channels[name]))
                self._nursery.start_soon(self._start_after_stop, gen.channels[name], name)
            else:
                await self._start_when_free(gen, name)
        assert self._nursery is not None
        self._nursery.start_soon(self._close_after, old, gen)
        self._loaded(gen)
        # at warning, the default level: a configuration change is in the log whoever asked (SIGHUP, --watch,
        # bsp reload / POST /reload with the token's name)
        log.warning("reloaded: version %s -> %s (generation %d)%s%s", old.version, gen.version, gen.number,
                 f" ({who})" if who else "", "".join(_plan_text(plan.lines())))
        return ReloadResult(ok=True, dry_run=False, version=gen.version, previous_version=old.version,
                            plan=_with_admin(plan.as_dict(), admin_change, token_change), warnings=self._warnings)

    async def _admin_tls_change(self, plan: ReloadPlan, version: str) -> Any:
        """The admin API's certificate, key and CA read again when one of their files was rewritten (None:
        none was, or the admin API has no TLS); files that cannot be used refuse the reload, as a channel's
        would: the admin API keeps serving with what it has."""
        if self.admin_tls is None:
            return None
        from engine.ops.admintls import AdminTLSRefused
        try:
            return await trio.to_thread.run_sync(self.admin_tls.prepare, time.time())
        except AdminTLSRefused as exc:
            raise ReloadFailed([f"error: {exc}; the admin API keeps serving the certificate it has"],
                               plan, version) from None

    async def _admin_token_change(self, overrides: Any, plan: ReloadPlan, version: str) -> Any:
        """The admin tokens read again from their files and variables (None: the same set, or no admin API);
        a set that cannot be used refuses the reload as a whole: the tokens in force stay."""
        if self.admin_tokens is None:
            return None
        from engine.ops.admintokens import AdminTokensRefused
        try:
            return await trio.to_thread.run_sync(self.admin_tokens.prepare, getattr(overrides, "admin", None))
        except AdminTokensRefused as exc:
            raise ReloadFailed([f"error: {exc}; the admin tokens in force are kept"], plan, version) from None

    async def _start_when_free(self, gen: Generation, name: str) -> None:
        """Start a changed channel whose old socket on the same address is closing (or, a listening channel,
        is handed over to it: engine/channels/listen_handoff.py)."""
        deadline = trio.current_time() + REBIND_WAIT
        while True:
            try:
                self.refs.update(await self._start(gen, [name]))
                return
            except OSError as exc:
                sockets = getattr(gen.channels[name], "sockets", None)
                if sockets is not None:          # sockets handed over to it that it could not take: closed
                    sockets.drop()
                if trio.current_time() >= deadline:
                    log.error("reload: channel %s: cannot listen on %s again after %gs: %s; it stays down "
                              "until the next reload", name, getattr(gen.channels[name], "address", "?"),
                              REBIND_WAIT, exc)
                    return
                await trio.sleep(0.02)

    async def _start_after_stop(self, ch: Any, name: str) -> None:
        """Start ``ch`` (an ``exclusive`` channel a reload changed) once every earlier object of channel
        ``name`` has stopped running, on the generation current then; not when a later reload replaced it
        meanwhile or the engine drains."""
        stopping = self._stopping.get(name, set())
        while any(key in self._scopes for key in stopping):
            await trio.sleep(0.005)
        stopping.intersection_update(self._scopes)          # keep only those still running (none)
        gen = self.current
        if self.draining or gen is None or gen.channels.get(name) is not ch:
            return
        self.refs.update(await self._start(gen, [name]))

    async def _close_after(self, old: Generation, new: Generation) -> None:
        """Once the old generation's last batch is done, close the channels only it used."""
        await old.idle.wait()
        kept = {id(ch) for ch in new.channels.values()}
        gone = [ch for ch in old.channels.values() if id(ch) not in kept]
        for q in self.saf:        # a reversal waiting for its answer on one of them: read it there first
            await q.done_with(gone)
        if old in self._retiring:
            self._retiring.remove(old)
        self._forget(old)
        for ch in old.channels.values():
            if id(ch) not in kept:
                if hasattr(ch, "stop_accepting"):
                    ch.stop_accepting()
                if ch.role in ("connect", "both"):
                    self._cancel(ch)
        log.info("generation %d (version %s) finished its last exchange", old.number, old.version)

    def _forget(self, old: Generation) -> None:
        """What the engine kept of a generation that has finished its last exchange: its outcome counts
        are added to the retired total, and the observer forgets its classification tags unless a running
        generation has its version (a long run with many reloads keeps one entry each, not one per reload),
        and the counts and metric series of the routes and channels no running generation has."""
        stats = old.sb.stats
        if stats is not self._retired_stats and any(p is stats for p in self._all_stats):
            self._all_stats = [p for p in self._all_stats if p is not stats]
            total = self._retired_stats
            for name in ("committed", "rejected", "failed", "duplicate", "unrecorded"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
        running = [g for g in [self.current, *self._retiring] if g is not None]
        keep = getattr(self.observer, "keep_versions", None)
        if keep is not None:
            keep({g.version for g in running})
        # the counts and metric series of the routes and channels no running generation has any more
        forget = getattr(self.observer, "forget", None)
        if forget is not None:
            routes = set(old.routes()) - {n for g in running for n in g.routes()}
            channels = set(old.channels) - {n for g in running for n in g.channels}
            for name in channels:       # what still runs on them (a reversal repeated) must not report again
                unobserve(old.channels[name])
            if routes or channels:
                forget(routes, channels)

    # ------------------------------------------------------------ reading
    @property
    def channels(self) -> dict[str, Any]:
        return self.current.channels if self.current is not None else {}

    @property
    def version(self) -> str | None:
        return self.current.version if self.current is not None else None

    @property
    def stats(self) -> "TotalStats":
        """Outcome counts over every generation this engine ran."""
        return TotalStats(self._all_stats)

    def generations_in_flight(self) -> int:
        """Generations with batches running now: 1 normally, more just after a reload."""
        gens = ([self.current] if self.current is not None else []) + self._retiring
        return sum(1 for g in gens if g.in_flight)


def _plan_text(lines: list[str]) -> str:
    """The plan on the reload's log line, which stays one line: ``: routes changed: a (a: declaration
    changed); channels kept: b`` (the text log would show line breaks as a literal ``\n``)."""
    out: list[str] = []
    for line in lines:
        if line.startswith("    ") and out:          # a change's reason, under its ``KIND changed:`` line
            out[-1] += f" ({line.strip()})"
        else:
            out.append(line)
    return ": " + "; ".join(out) if out else ""


class TotalStats:
    def __init__(self, parts: list[Any]) -> None:
        self.committed = sum(p.committed for p in parts)
        self.rejected = sum(p.rejected for p in parts)
        self.failed = sum(p.failed for p in parts)
        self.duplicate = sum(p.duplicate for p in parts)
        self.unrecorded = sum(p.unrecorded for p in parts)

    @property
    def total(self) -> int:
        return self.committed + self.rejected + self.failed + self.duplicate
