"""The serving process of ``bsp run``: ledger, live engine, admin API, signals, file watching.

    engine = await run_live(program, registry, ledger_path=..., load=..., overrides=..., grace=10,
                            ops=OpsOptions(watch=True, admin=AdminOptions(listen="127.0.0.1:7080", token=...)))

Signals: SIGINT / SIGTERM drain (stop accepting, finish in-flight exchanges,
flush the ledger, return); SIGHUP reloads (``bsp_reloads_total{source="signal"}``).
With ``watch`` the configuration's files are watched and reloaded on change
(``source="watch"``).  With ``admin`` the admin API serves on its own port
(loopback unless told otherwise) with bearer-token auth and optional mTLS; a reload renews its
certificate, key and CA when their files were rewritten (``AdminOptions.tls``: engine/ops/admintls.py).
"""
from __future__ import annotations

import logging
import signal
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import trio

from engine.ops.gauges import EngineMetrics
from engine.ops.live import LiveEngine, Loader, StartError, only_errors, start_error
from engine.ops.observe import Observer
from engine.txn.log import KEY_RETENTION

log = logging.getLogger("bsp.run")


@dataclass
class AdminOptions:
    listen: str = "127.0.0.1:7080"          # host:port; port 0 picks a free one
    token: str = ""                         # the token itself (read from its file / env var by the caller);
                                            # "" with named tokens only
    tokens: tuple[Any, ...] = ()            # engine.admin.auth.NamedToken: admin.tokens / --admin-named-token
    ssl_context: ssl.SSLContext | None = None
    access: Any = None                      # engine.access.AccessList
    cert_files: tuple[tuple[str, Path], ...] = ()    # (role server / ca, file) of its TLS, for their expiry
    tls: Any = None          # engine.ops.admintls.AdminTLS: ssl_context, renewed by a reload (None: as given)
    token_source: Any = None  # engine.ops.admintokens.AdminTokens: the tokens read again by a reload (None: as given)

    def host_port(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"admin listen address {self.listen!r}: expected HOST:PORT, e.g. 127.0.0.1:7080")
        if int(port) > 65535:
            raise ValueError(f"admin listen address {self.listen!r}: port {int(port)} out of range 1-65535 "
                             f"(e.g. 127.0.0.1:7080)")
        return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class OpsOptions:
    watch: bool = False
    debounce: float = 0.3
    admin: AdminOptions | None = None
    hooks: list[Callable[[LiveEngine], Any]] = field(default_factory=list)   # called once serving
    four_eyes: Any = None      # engine.four_eyes.Policy: the operator actions under dual control (operators:)
    four_eyes_source: str | None = None      # where it was read (the deployment file), recorded with it


async def run_live(program: Any, registry: Any, *, ledger_path: str | Path, load: Loader,
                   overrides: Mapping[str, Mapping[str, Any]] | None = None, grace: float = 10.0,
                   ready: Callable[[Any], Any] | None = None, ops: OpsOptions | None = None,
                   ledger_sync: str = "journal", key_retention: float | None = KEY_RETENTION,
                   keys: Any = None, reversal_alert_after: int | None = None,
                   txn_backlog: tuple[int | None, int | None] = (None, None),
                   business_day: tuple[str | None, str | None] | None = None,
                   calendar_warn_days: int | None = None) -> LiveEngine:
    """Serve until SIGINT/SIGTERM, then drain and flush the ledger.  Returns the stopped engine.

    ``ledger_sync``: journal (default: a reply leaves once its deal is fdatasync'ed in the
    write-ahead journal), duckdb (once its row is committed in DuckDB) or none (engine/journal.py).
    ``key_retention``: seconds a deal key stays in the transaction log's key store, None for good
    (default: ``engine.txn.log.KEY_RETENTION``, 35 days; docs/transactions.md).
    ``reversal_alert_after``: attempts after which a reversal not yet acknowledged is flagged for an
    operator (default ``engine.txn.saf.ALERT_AFTER``); it goes on all the same.
    ``txn_backlog``: (entries, bytes) waiting for a transaction log that cannot be written past which new
    work is refused (None: ``engine.txn.backlog.LATER_MAX`` / ``LATER_BYTES``; platform.yaml
    ``ledger.txn_backlog_entries`` / ``txn_backlog_bytes``).
    ``business_day``: (tz, cutoff) of the deployment's ``business_day``: the day ``limit`` totals with
    ``per = "day"`` start again (engine/totals.py); None: the UTC calendar day.
    ``calendar_warn_days``: days before a business-day calendar runs out from which the engine warns (log,
    ``bsp status``, ``bsp_calendar_warn_days``); None: ``engine.calexpiry.WARN_DAYS`` (platform.yaml
    ``calendars.warn_days``).
    ``keys``: the audit key and field keyring to write with (``engine.ops.runsettings.RunKeys``; None:
    the ledger reads BSP_AUDIT_KEY(_FILE) / BSP_FIELD_KEYS(_FILE) itself).
    """
    from engine.journal import open_ledger_sync

    ops = ops or OpsOptions()
    metrics = EngineMetrics()
    observer = Observer(metrics)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as stops, \
                trio.open_signal_receiver(signal.SIGHUP) as hups:
            key_options = {} if keys is None else {"audit_key": keys.audit_key, "keyring": keys.keyring}
            async with open_ledger_sync(ledger_path, ledger_sync, **key_options) as ledger:
                ledger.key_retention = key_retention      # read by engine.txn.manager when it opens the log
                ledger.reversal_alert_after = reversal_alert_after    # read by engine.txn.saf
                # read by engine.txn.manager.TxnManager (made when the first route binds, after this)
                ledger.txn_backlog_entries, ledger.txn_backlog_bytes = txn_backlog
                if business_day is not None:
                    from engine.totals import totals_for
                    totals_for(ledger).set_business_day(*business_day)
                engine = LiveEngine(registry, ledger, load=load, observer=observer, grace=grace)
                if calendar_warn_days is not None:
                    engine.calendar_warn_days = calendar_warn_days
                engine.four_eyes = ops.four_eyes      # read by the admin API (engine/ops/backend.py)
                from engine.four_eyes import record_policy
                # recorded when it changed: the commands on the ledger file keep to it (engine/four_eyes.py)
                if await ledger.with_store(record_policy, ops.four_eyes, ops.four_eyes_source):
                    log.info("four eyes: the policy in force is recorded in the ledger's audit chain")
                if ops.four_eyes is not None and ops.four_eyes.actions:
                    log.info("four eyes: %s need a second operator's approval (requests expire after %gs)",
                             ", ".join(ops.four_eyes.actions), ops.four_eyes.expire)
                    from engine.admin.auth import token_set
                    from engine.four_eyes import staffing_problem
                    try:
                        staff = None if ops.admin is None else token_set(ops.admin.token or None, ops.admin.tokens)
                    except ValueError:          # checked when the admin API starts, which says what is wrong
                        staff = ()
                    problem = staffing_problem(ops.four_eyes, staff)
                    if problem is not None:
                        log.error("%s", problem)
                if ops.admin is not None:      # a reload renews them when their files were rewritten
                    from engine.certexpiry import ADMIN, file_certs
                    engine.admin_tls = ops.admin.tls
                    engine.admin_certs = [e for role, path in ops.admin.cert_files
                                          for e in file_certs(ADMIN, role, path)]
                metrics.watch(engine)

                async def on_stop() -> None:
                    async for signum in stops:
                        log.warning("signal %s: draining", signal.Signals(signum).name)
                        engine.drain()

                await _serve(engine, program, overrides, ops, observer, metrics, hups, ready, on_stop)
    except BaseExceptionGroup as group:      # a channel or the admin API could not start, the ledger is held
        from engine.ledger_store import LedgerError
        from engine.runtime.binder import BindError
        from engine.txn.log import TxnLogError
        first = only_errors(group, (StartError, LedgerError, BindError, TxnLogError))
        if first is None:
            raise
        raise first from None
    return engine


async def _serve(engine: LiveEngine, program: Any, overrides: Any, ops: OpsOptions, observer: Observer,
                 metrics: EngineMetrics, hups: Any, ready: Any, on_stop: Any) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(on_stop)
        await nursery.start(engine.run, program, overrides)
        from engine.ops.looplag import watch_loop_lag
        nursery.start_soon(watch_loop_lag, engine.loop_lag, metrics)                # bsp_event_loop_lag_seconds
        from engine.ops.openflags import load_open_flags
        nursery.start_soon(load_open_flags, observer.open_flags, engine.ledger)    # bsp_deals_flagged_open
        from engine.ops.deadcount import watch_new_dead_letters
        nursery.start_soon(watch_new_dead_letters, observer.dead_letters, engine)  # bsp_dead_letters_new
        from engine.ops.watch import reload_on_sighup, watch_and_reload
        nursery.start_soon(reload_on_sighup, engine, metrics, hups)
        if ops.watch:
            await nursery.start(watch_and_reload, engine, metrics, ops.debounce)
        if ops.admin is not None:
            try:
                engine.admin_port = await nursery.start(_serve_admin, engine, observer, metrics, ops.admin)
            except OSError as exc:
                host, port = ops.admin.host_port()
                engine.drain()
                raise start_error("admin API", f"{host}:{port}", exc,
                                  elsewhere="--admin, or `admin: listen:` in the deployment file") from exc
        if ready is not None:
            ready(engine)
        for hook in ops.hooks:
            hook(engine)
        await engine.finished.wait()
        nursery.cancel_scope.cancel()


async def _serve_admin(engine: LiveEngine, observer: Observer, metrics: EngineMetrics, opts: AdminOptions, *,
                       task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    from engine.admin.app import AdminApp, serve_admin
    from engine.admin.auth import TokenAuth
    from engine.ops.backend import EngineBackend

    host, port = opts.host_port()
    class Backend(EngineBackend):
        """Deal and dead-letter queries see every deal already acknowledged (the journal loads DuckDB behind)."""

        async def deals(self, query: Any) -> Any:
            await self._loaded()
            return await super().deals(query)

        async def deal(self, deal_id: str) -> Any:
            await self._loaded()
            return await super().deal(deal_id)

        async def dead_letters(self, query: Any) -> Any:
            await self._loaded()            # a failed deal's dead letter travels in its journal record
            return await super().dead_letters(query)

        async def dead_letter(self, letter_id: str) -> Any:
            await self._loaded()
            return await super().dead_letter(letter_id)

        async def _loaded(self) -> None:
            wait = getattr(self.engine.ledger, "wait_loaded", None)
            if wait is not None:
                await wait()

    app = AdminApp(Backend(engine, observer), TokenAuth(opts.token or None, tokens=opts.tokens), metrics)
    if opts.token_source is not None:      # a reload reads the tokens again (engine/ops/admintokens.py)
        opts.token_source.auth = app.auth
        engine.admin_tokens = opts.token_source
    # the holder is read per connection accepted: a reload's new certificate applies to new connections
    await serve_admin(app, host, port, opts.tls if opts.tls is not None else opts.ssl_context,
                      access=opts.access, task_status=task_status)
