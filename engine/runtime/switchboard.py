"""The switchboard: one Program bound to its channels, run in one trio nursery.

    sb = Switchboard(program, registry, ledger=ledger, overrides={"mainframe": {"address": "127.0.0.1:0"}})
    await nursery.start(sb.run)        # returns once every inbound channel is listening
    sb.drain()                         # stop accepting, finish in-flight exchanges, then return

``run_program`` adds the process concerns: opens the ledger, turns SIGINT /
SIGTERM into a drain, and waits at most ``grace`` seconds for in-flight work.
"""
from __future__ import annotations

import dataclasses
from functools import partial
import logging
import signal
from pathlib import Path
from typing import Any, Callable

import trio

from engine.statement_chains import chains_for
from engine.totals import totals_for
from engine.runtime.binder import Binder, BindError, plugin_note
from engine.runtime.dispatch import BoundRoute, Dispatcher, DispatchStats
from engine.runtime.guard import channel_label, guarded
from engine.runtime.internal_log import new_faults
from engine.runtime.stepfail import label_of
from engine.txn import backlog, keyopen, saf
from formats.versioned import versioned

log = logging.getLogger("bsp.switchboard")

DEFAULT_ROUTE_LIMIT = 4096
DEFAULT_GRACE = 10.0


class Switchboard:
    def __init__(self, program: Any, registry: Any, *, ledger: Any,
                 overrides: dict[str, dict[str, Any]] | None = None,
                 route_limit: int = DEFAULT_ROUTE_LIMIT, grace: float = DEFAULT_GRACE,
                 compile_expr: Callable[..., Any] | None = None,
                 load_table: Callable[..., Any] | None = None, store_and_forward: bool = True,
                 faults: Any = None) -> None:
        self.program = program
        # ISO 8583 reversals queued and sent in the background (engine/txn/saf.py); False: inline
        # (route tests and replays script them in call order)
        self.store_and_forward = store_and_forward
        self.saf: list[Any] = []
        self.registry = registry
        self.ledger = ledger
        self.grace = grace
        self.stats = DispatchStats()
        # internal errors, failed on error steps, calls failed in doubt: one line per kind, then counted
        # (engine/runtime/internal_log.py); its summaries are written when due and at the stop (by ``run``,
        # or by the owner of ``faults`` when given: ``bsp run`` has one for all its generations)
        self.faults = faults if faults is not None else new_faults()
        self._own_faults = faults is None        # run and flushed here only when this switchboard made it
        self.ctx = Binder(program, registry, compile_expr=compile_expr, load_table=load_table)
        self.ctx.faults = self.faults
        # the running totals `limit` steps count into: one per ledger, kept across reloads (engine/totals.py)
        self.ctx.totals = totals_for(ledger)
        # the statement chains `continuity` steps check against: one per ledger (engine/statement_chains.py)
        self.ctx.chains = chains_for(ledger)
        overrides = overrides or {}
        unknown = set(overrides) - set(program.channels)
        if unknown:
            raise BindError(f"overrides name unknown channel(s) {', '.join(sorted(unknown))}; "
                            f"declared: {', '.join(sorted(program.channels))}")
        self.channels: dict[str, Any] = {}
        for name, decl in program.channels.items():
            if name in overrides:
                decl = dataclasses.replace(decl, options={**decl.options, **overrides[name]})
            spec = registry.get("channel", decl.kind)
            if spec is None or spec.build is None:
                raise BindError(f"{_where(decl)}channel {name}: no channel kind {decl.kind!r} in the registry; "
                                f"known kinds: {', '.join(registry.names('channel'))}")
            try:
                # the files it names (a TLS cert / ca) as the version holds them, not read again (engine/tls.py)
                with versioned(getattr(program, "sources", None)):
                    self.channels[name] = spec.build(decl)
            except (ValueError, TypeError) as exc:
                note = plugin_note(registry, "channel", decl.kind)
                raise BindError(f"{_where(decl)}channel {name}{note}: {type(exc).__name__}: {exc}" if note
                                else f"{_where(decl)}{exc}") from exc
            except Exception as exc:      # a constructor's bug (a plugin's): the place, never a traceback
                raise BindError(f"{_where(decl)}channel {name}{plugin_note(registry, 'channel', decl.kind)}: "
                                f"cannot be built: {type(exc).__name__}: {exc}") from exc
        self.ctx.channels = self.channels
        for ch in self.channels.values():    # a channel whose own stop is bounded (NATS): by the grace period
            if hasattr(ch, "stop_within"):
                ch.stop_within = grace
        for name, ch in self.channels.items():          # channels that read with the program's formats
            bind = getattr(ch, "bind_codecs", None)
            if bind is not None:
                try:
                    bind(self.ctx)
                except (ValueError, TypeError) as exc:
                    raise BindError(f"{_where(program.channels[name])}channel {name}: {exc}") from exc
        base_scope = self.ctx.base_scope()
        self.dispatchers: dict[str, Dispatcher] = {}
        for name, decl in program.channels.items():
            ch = self.channels[name]
            routes = program.routes_for(name)
            if ch.role == "connect":
                if routes:
                    raise BindError(f"{_where(routes[0])}route {routes[0].name} receives from channel {name}, "
                                    f"which only makes calls ({decl.kind}); receive from a tcp.listen channel")
                continue
            if ch.role == "both" and not routes:
                continue
            bound = [BoundRoute(r, self.ctx, self._build_step, route_limit) for r in routes]
            error_reply = self._build_step(decl.error_reply, None) if decl.error_reply is not None else None
            self.dispatchers[name] = Dispatcher(
                name, bound, error_reply, ledger=ledger, version=program.version,
                base_scope=base_scope, stats=self.stats, faults=self.faults)
            # deal keys shared with other engines (nats consume `keys`): recovery writes its final states there
            self.dispatchers[name].keys = getattr(ch, "keys", None)
        self._drain = trio.Event()
        self.finished = trio.Event()
        self.draining = False
        self._rebuild_stopped = False       # the drain stopped a rebuild of the key index (its own warning)

    def _build_step(self, step: Any, route: Any) -> Any:
        spec = self.registry.get("step", step.kind)
        if spec is None or spec.build is None:
            raise BindError(f"{_where(step)}no step kind {step.kind!r} in the registry; known kinds: "
                            f"{', '.join(self.registry.names('step'))}")
        try:
            runner = spec.build(step, self.ctx, route)
            if spec.side_effects:
                runner.side_effects = True      # engine/txn/plan.py: its deal is admitted (logged) before it
            origin = self.registry.origin("step", step.kind) if hasattr(self.registry, "origin") else None
            if origin or spec.side_effects:     # its failures name it (engine/runtime/stepfail.py)
                runner.kind_label = label_of(step.kind, origin)
            return runner
        except BindError:
            raise
        except Exception as exc:
            note = plugin_note(self.registry, "step", step.kind)
            text = f"{type(exc).__name__}: {exc}" if note else str(exc)
            raise BindError(f"{_where(step)}{step.kind}{note}: {text}") from exc

    def _label(self, name: str) -> str:
        return channel_label(name, self.program.channels[name].kind, self.registry)

    def channel(self, name: str) -> Any:
        return self.channels[name]

    def drain(self) -> None:
        """Stop accepting and reading; in-flight exchanges finish, then ``run`` returns."""
        self.draining = True
        self._drain.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._run(task_status)
        finally:
            if self._own_faults:
                self.faults.flush()          # the counts of repeated internal errors not yet written
            self.finished.set()

    async def _run(self, task_status: Any) -> None:
        async with trio.open_nursery() as outer:
            if self._own_faults:       # a FaultLog has one run: a given one is run by its owner (live.py)
                outer.start_soon(self.faults.run)      # summaries of repeated internal errors, when due
            for name, ch in self.channels.items():
                if ch.role in ("connect", "both"):       # one that fails once started stops alone (guard.py)
                    await outer.start(partial(guarded, ch.run, what=self._label(name)))
            if self.store_and_forward:     # before recovery, which may queue reversals
                self.saf = saf.attach(self.dispatchers.values)
            # deals a crash left in flight are resolved before any channel takes traffic (while the key store's
            # index is made again, in the background: the channels listen, a drain stops it; engine/txn/keyopen.py)
            await keyopen.recover(outer, self.dispatchers.values())
            for q in self.saf:
                outer.start_soon(saf.serve, q)
            backlog.keep_all_up(outer, self.dispatchers.values())    # the log catches up once it has room
            with trio.CancelScope() as hard:
                outer.start_soon(self._watch_drain, hard)
                async with trio.open_nursery() as inbound:
                    for name, disp in self.dispatchers.items():
                        await inbound.start(partial(guarded, self.channels[name].serve, disp,
                                                    what=self._label(name)))
                    task_status.started(self)
            if hard.cancelled_caught and not self._rebuild_stopped:
                log.warning("drain: grace period of %gs over; in-flight exchanges were cancelled", self.grace)
            outer.cancel_scope.cancel()

    async def _watch_drain(self, hard: trio.CancelScope) -> None:
        await self._drain.wait()
        log.info("draining: no new connections or requests; finishing in-flight exchanges")
        for name in self.dispatchers:
            self.channels[name].stop_accepting()
        waiting = await keyopen.stop_all(self.dispatchers.values())
        if waiting is not None:         # a rebuild of the key index was stopped: its waiting requests cancelled
            self._rebuild_stopped = True
            log.warning(keyopen.stopped_warning(waiting))
        else:
            await trio.sleep(self.grace)
        hard.cancel()


def _where(obj: Any) -> str:
    pos = getattr(obj, "pos", None)
    return f"{pos}: " if pos is not None else ""


async def run_program(program: Any, registry: Any, *, ledger_path: str | Path,
                      overrides: dict[str, dict[str, Any]] | None = None, grace: float = DEFAULT_GRACE,
                      ready: Callable[[Switchboard], Any] | None = None,
                      ledger_sync: str = "journal") -> Switchboard:
    """Run until SIGINT/SIGTERM, then drain and flush the ledger.  Returns the stopped switchboard.

    ``ledger_sync``: ``journal`` (a reply waits for its deal in the write-ahead
    journal; DuckDB follows within ~0.2 s and fully on shutdown), ``duckdb``
    (a reply waits for the DuckDB commit) or ``none`` (not durable).  See
    engine/journal.py.
    """
    from engine.journal import open_ledger_sync

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_ledger_sync(ledger_path, ledger_sync) as ledger:
            await ledger.record_config(program.version, program.sources)
            sb = Switchboard(program, registry, ledger=ledger, overrides=overrides, grace=grace)

            async def on_signal() -> None:
                async for signum in signals:
                    log.info("signal %s: draining", signal.Signals(signum).name)
                    sb.drain()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(on_signal)
                await nursery.start(sb.run)
                if ready is not None:
                    ready(sb)
                await sb.finished.wait()      # run returns only after a drain
                nursery.cancel_scope.cancel()
            # leaving open_ledger writes every queued deal and closes the file
    return sb
