"""``EngineBackend``: the admin API's ``AdminBackend`` over a running ``LiveEngine``.

    backend = EngineBackend(engine, observer)
    app = AdminApp(backend, TokenAuth(token), metrics)

``status()`` shape (what ``bsp status`` and ``bsp top`` read)::

    {"version": "0.1.0", "config_version": "3f2a...", "deployment": "platform.yaml", "environment": "uat",
     "generation": 4, "uptime_s": 812.4,
     "key_index": None,      # a rebuild of the key store's index under way (engine/txn/keyopen.py): {"state":
                             # "rebuilding", "answers", "bytes_read", "bytes_total", "phase", "text": "rebuilding
                             # key index: N of M MB read ..."}; the engine is not_ready meanwhile
     "draining": false, "generations_in_flight": 1,
     "generation_started_at": "2026-11-26T08:56:53.123456+00:00",     # times: ISO 8601, UTC
     "reloads": [{"at": "2026-11-26T09:12:03.5+00:00", "source": "signal", "ok": true, "version": ..., ...}],
                                                                     # newest last
     "channels": {"mainframe": {"kind": "tcp.listen", "role": "listen", "address": "127.0.0.1:7001",
                                "connections": 4, "connections_total": 9, "frames_in": 1200, "frames_out": 1200,
                                "tls": true, "tls_failures": 0, "refused": 0,    # with cert / allow only
                                "cert_expiry": {"role": "server", "subject": "CN=bsp.bank.example",   # its first
                                                "path": "/etc/bsp/server.pem", "not_after": "2026-12-06T21:05:00+00:00",
                                                "days_left": 9.9}},  # to expire: cert, ca, or the counterpart's (peer)
                  "biller": {"kind": "tcp.connect", "role": "connect", "address": ..., "connected": false,
                             "connects": 1, "resets": 0, "circuit": "half_open", "up": false,   # ops/health.py
                             # resets: connections closed by bsp after a call timed out (no `match`)
                             # joined (a MUX): reversals not sent, sharing the same one in flight (not errors)
                             "down_since": "2026-11-26T09:20:01.2+00:00", "failed_calls": 12,
                             "last_error": "cannot connect to 127.0.0.1:7002: ...",   # while down; up again:
                             "last_error_at": "2026-11-26T09:21:40.5+00:00",   # previous_error(_at) instead
                             "frames_in": 1180, "frames_out": 1197}},     # outbound: replies in, requests out
     "certificates": [{"channel": "mainframe", "role": "server", ...}, ...],   # every one, first to expire first
                                 # (engine/certexpiry.py; channel "admin API" for the admin API's); the one served,
                                 # and when its file holds another now (renewed, not yet reloaded) also
                                 # "on_disk": {"subject", "not_after", "days_left"} and "note": "renewed on disk,
                                 # reload to serve it: ..." (on_disk null: the file cannot be read now)
     "calendars": [{"table": "cn_exchange", "path": "/srv/bsp/routes/common/calendars/cn_exchange.csv",
                    "covers": "2026", "last_year": 2026, "runs_out": "2027-01-01", "days_left": 35,
                    "routes": ["fund_order", ...],
                    "warning": "calendar cn_exchange (...) lists dates for 2026 and runs out on ..."}],
                                 # the calendar tables the routes use, first to run out first; "warning" within
                                 # calendars.warn_days of platform.yaml (60 unless told; engine/calexpiry.py);
                                 # one that has run out (days_left 0) is a reason
     "state": "degraded",        # ready | degraded (an outbound channel is down or flapping, a certificate bsp presents
                                 # expired while it ran, reversals stranded, a ledger file cannot be
                                 # written: ledger.faults) | not_ready (as GET /ready)
     "reasons": ["channel biller (127.0.0.1:7002) down since ...: 12 calls failed, circuit half_open; ..."],
     "routes": {"bill_payment": {"channel": "mainframe", "received": 1200, "committed": 1180, "rejected": 15,
                                 "failed": 5, "duplicate": 0, "unrecorded": 0, "flagged": 1, "resolved": 0,
                                 "in_flight": 0, "avg_latency_ms": 1.9}},
                                 # flagged: of the failed, flagged for an operator (engine/txn/flagging.py);
                                 # unrecorded: the ledger could not store the deal (a full disk), so no reply
     "flagged_deals": 1,         # the routes' flagged, summed (since the engine started; never drops)
     "resolved_deals": 0,        # the routes' resolved, summed: resolutions through this engine's admin API
     "open_flags": 1,            # deals whose flag is open now, waiting for an operator (engine/ops/openflags.py;
                                 # null until read from the ledger at the start)
     "dead_letters_new": 3,      # dead letters waiting now (status new), whatever run wrote them; counted in the
                                 # ledger every 5 s, null until the first count (engine/ops/deadcount.py)
     "dead_letters_new_by_kind": {"unreachable": 2, "rejected": 1},   # the same by error kind
     "totals": {"day": "2026-11-25", "business_day": "Asia/Shanghai, day ends 17:00", "buckets": 2,
                "fullest": [{"total": "issue_quota", "key": "CND100012343", "currency": "CNY", "day": null,
                             "confirmed": "1250000.00", "reserved": "5000.00"}, ...]},
                                 # `limit` running totals (engine/totals.py), once read from the ledger; the
                                 # 100 fullest buckets; a classified key is shown as its digest ("#...")
     "ledger": {"path": "var/bsp.duckdb", "schema": 9, "pending": 0, "batches": 80, "rows": 1200, "avg_batch": 15.0,
                "avg_commit_ms": 0.9,
                # files that cannot be written now (engine.ledger.storage_faults): each also a line of
                # "reasons" and the state degraded; [] when all is well
                "faults": [{"what": "journal", "kind": "write", "failures": 12, "last": "var/bsp.duckdb.journal/
                            000000000003.wal: byte 16776804: ... (ENOSPC); free space on that disk ..."}],
                # the audit chain (engine.ledger.audit_state): sealed with an audit key or not, and the
                # `audit break` this start recorded (records cut while stopped, a restore) or null
                "audit": {"keyed": true, "break_at_start": {"seq": 8969, "at": "...", "what": "the chain head ..."}}}}
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from engine.totals import existing_totals
from typing import Any, Mapping, Sequence

from engine import __version__
from engine.admin.backend import DeadLetterQuery, DealQuery, Readiness, ReloadResult
from engine.ops.health import (DEGRADED, READY, down_reason, engine_state, flapping, is_outbound, iso,
                               outbound_health, storage_reason, stranded_reason)
from engine.ledger import storage_faults
from engine.ledger_store import SCHEMA_VERSION
from engine.calexpiry import WARN_DAYS, engine_today, run_out
from engine.certexpiry import ADMIN, expired_running, nearest, on_disk, served_dict
from engine.ledger_query import get_deal, letter_history, letter_purge, query_dead_letters, query_deals
from engine.ops.ledger_reads import read_in_process
from engine.ops.observe import RouteCounts

log = logging.getLogger("bsp.admin")

SNAPSHOT_LOAD_WAIT = 30.0     # seconds a snapshot waits for the journal's acknowledged deals to be in DuckDB


def _iso(epoch: float) -> str:
    """An engine-side ``time.time()`` as the API writes every time: ISO 8601, UTC."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def ledger_status(ledger: Any) -> tuple[dict[str, Any], list[str]]:
    """``status()``'s ``ledger`` row, and a line for its ``reasons`` per storage fault failing now (the
    journal, DuckDB or the transaction log cannot be written: what, where, the errno, what to do); each
    makes the engine ``degraded``, not not ready: it still answers what it can, and the next write is what
    finds the room again."""
    stats = getattr(ledger, "stats", None)
    # schema: the ledger schema version of the file, which this engine migrated it to when it opened it (upgrade day)
    row: dict[str, Any] = {"path": str(getattr(ledger, "path", "")), "schema": SCHEMA_VERSION,
                           "pending": getattr(ledger, "pending", None)}
    if stats is not None:
        row.update(batches=stats.batches, rows=stats.rows, failed_rows=stats.failed_rows,
                   avg_batch=round(stats.avg_batch, 2), avg_commit_ms=round(stats.avg_commit_ms, 3))
    row["faults"] = storage_faults(ledger)
    from engine.ledger import audit_state
    audit = audit_state(ledger)
    if audit is not None:     # tamper evidence: keyed or not, and a cut this start found and recorded
        row["audit"] = audit
    return row, [storage_reason(f) for f in row["faults"]]


def _key_index(eng: Any) -> dict[str, Any] | None:
    """``status()``'s ``key_index``: the rebuild under way, with its line (``rebuilding key index: N of M MB``)."""
    rebuilding = eng.key_index() if hasattr(eng, "key_index") else []
    if not rebuilding:
        return None
    r = rebuilding[0]
    return {**r.as_dict(), "text": r.text()}


class EngineBackend:
    def __init__(self, engine: Any, observer: Any = None) -> None:
        self.engine = engine
        self.observer = observer
        self._resolving: Any = None       # a trio.Lock, made in the engine's run (one resolution at a time)

    async def status(self) -> Mapping[str, Any]:
        eng = self.engine
        gen = eng.current
        out: dict[str, Any] = {
            "version": __version__,
            "config_version": gen.version if gen else None,
            # the deployment file and its environment (--env / BSP_ENV); None: route files given alone
            "deployment": getattr(eng.overrides, "source", None) or None,
            "environment": getattr(eng.overrides, "env", None),
            "generation": gen.number if gen else 0,
            "generation_started_at": _iso(gen.started_at) if gen else None,
            "uptime_s": round(time.time() - eng.started_at, 3),
            "event_loop": eng.loop_lag.as_dict(),       # how late the loop runs (engine/ops/looplag.py)
            # the key store's index made again in a worker thread (engine/txn/keyopen.py); None: not under way
            "key_index": _key_index(eng),
            "draining": eng.draining,
            "generations_in_flight": eng.generations_in_flight(),
            "reloads": [{**r, "at": _iso(r["at"])} for r in eng.history[-10:]],
            "channels": {},
            "routes": {},
        }
        if gen is not None:
            out["channels"] = {name: self._channel(name, ch, gen) for name, ch in gen.channels.items()}
            counts = self.observer.routes if self.observer is not None else {}
            for name, br in gen.routes().items():
                c = counts.get(name)
                row = c.as_dict() if c is not None else RouteCounts().as_dict()
                row["channel"] = br.route.channel
                row["in_flight"] = br.limiter.borrowed
                out["routes"][name] = row
        certs = eng.certificates() if hasattr(eng, "certificates") else []
        if certs:           # TLS certificates by expiry (engine/certexpiry.py); each channel's nearest in its row
            now = time.time()
            disk = on_disk(certs)      # served (read at bind) vs. the file now: a renewal not yet reloaded
            out["certificates"] = [{"channel": e.channel, **served_dict(e, now, disk)}
                                   for e in sorted(certs, key=lambda e: e.not_after)]
            for name, e in nearest(certs).items():
                if name in out["channels"]:
                    out["channels"][name]["cert_expiry"] = served_dict(e, now, disk)
        spans = eng.calendars() if hasattr(eng, "calendars") else []
        today = engine_today()
        if spans:           # business-day calendars by the day they run out (engine/calexpiry.py)
            warn_days = getattr(eng, "calendar_warn_days", WARN_DAYS)    # platform.yaml calendars.warn_days
            out["calendars"] = [s.as_dict(today, warn_days) for s in sorted(spans, key=lambda s: (s.days_left(today), s.table))]
        if self.observer is not None:    # failed deals flagged for an operator since the engine started
            out["flagged_deals"] = sum(c.flagged for c in self.observer.routes.values())
            out["resolved_deals"] = sum(c.resolved for c in self.observer.routes.values())
            flags = getattr(self.observer, "open_flags", None)
            if flags is not None:      # deals whose flag is open now (None: not read from the ledger yet)
                out["open_flags"] = flags.value
            dead = getattr(self.observer, "dead_letters", None)
            if dead is not None:       # dead letters waiting now (None: not counted yet; engine/ops/deadcount.py)
                out["dead_letters_new"] = dead.value
                out["dead_letters_new_by_kind"] = dict(dead.by_kind)
        totals = existing_totals(getattr(eng, "ledger", None))
        if totals is not None and totals.loaded:     # `limit` running totals (engine/totals.py)
            out["totals"] = totals.view()
        from engine.statement_chains import existing_chains
        chains = existing_chains(getattr(eng, "ledger", None))
        if chains is not None and chains.loaded and (chains.confirmed or chains.statements):
            out["statement_chains"] = chains.view()      # `continuity` steps (engine/statement_chains.py)
        queues = [q.status() for q in getattr(eng, "saf", ())]
        if queues:       # ISO 8583 reversals stored and forwarded (engine/txn/saf.py)
            out["reversals"] = {
                "pending": sum(q["pending"] for q in queues), "flagged": sum(q["flagged"] for q in queues),
                "stranded": sum(q.get("stranded", 0) for q in queues),
                "stranded_channels": _merged(q.get("stranded_channels", {}) for q in queues),
                "attempts": sum(q["attempts"] for q in queues),
                "acknowledged": sum(q["acknowledged"] for q in queues),
                "flagged_total": sum(q.get("flagged_total", 0) for q in queues),
                # acknowledged with a DE 39 that is not an approval (original not found, reversal declined)
                "not_approved": sum(q.get("not_approved", 0) for q in queues),
                "not_approved_channels": _merged(q.get("not_approved_channels", {}) for q in queues),
                # dropped since the start because an operator resolved their deal (engine/txn/safcancel.py)
                "cancelled": sum(q.get("cancelled", 0) for q in queues),
                "alert_after": queues[0]["alert_after"],
                "in_flight": {ch: lane for q in queues for ch, lane in q.get("in_flight", {}).items()},
                "queue": [r for q in queues for r in q["reversals"]][:50]}
        readiness = await self.ready()
        out["state"], out["reasons"] = engine_state(out["channels"], readiness.ready, readiness.reason)
        expired = expired_running(certs, time.time())
        if expired:          # a certificate bsp presents expired while it ran: still serving, peers refuse it
            out["reasons"] += expired
            if out["state"] == READY:
                out["state"] = DEGRADED
        ended = run_out(spans, today)
        if ended:            # a calendar that lists no date for this year: every deal needing one fails
            out["reasons"] += ended
            if out["state"] == READY:
                out["state"] = DEGRADED
        stranded = (out.get("reversals") or {}).get("stranded_channels") or {}
        if stranded:         # reversals owed to a counterpart the running configuration has no call for
            out["reasons"] += [stranded_reason(name, n) for name, n in sorted(stranded.items())]
            if out["state"] == READY:
                out["state"] = DEGRADED
        out["ledger"], faults = ledger_status(eng.ledger)
        if faults:           # a ledger file that cannot be written now (a full or read-only disk)
            out["reasons"] += faults
            if out["state"] == READY:
                out["state"] = DEGRADED
        return out

    def _channel(self, name: str, ch: Any, gen: Any) -> dict[str, Any]:
        decl = gen.program.channels.get(name)
        row: dict[str, Any] = {"kind": decl.kind if decl else None, "role": ch.role,
                               "address": getattr(ch, "address", None)}
        if ch.role in ("listen", "both"):
            row["connections"] = len(getattr(ch, "_read_scopes", ()))
            row["connections_total"] = getattr(ch, "connections", None)
            if self.observer is not None:
                row["frames_in"] = self.observer.channel_frames_in.get(name, 0)
                row["frames_out"] = self.observer.channel_frames_out.get(name, 0)
        if ch.role == "connect":
            sent, received = self._call_counts(name)
            if sent is not None:                  # outbound calls: requests sent, replies received
                row["frames_in"], row["frames_out"] = received, sent
        if ch.role in ("connect", "both"):
            row["connected"] = bool(getattr(ch, "_connected", False))
            row["connects"] = getattr(ch, "connects", None)
            resets = getattr(ch, "resets", None)
            if isinstance(resets, int):           # closed by the engine after a call timed out (no `match`)
                row["resets"] = resets
            joined = getattr(ch, "joined", None)
            if isinstance(joined, int):           # a MUX: reversals that shared the same one in flight (not errors)
                row["joined"] = joined
            health = outbound_health(ch)
            row["circuit"], row["up"] = health["circuit"], health["up"]
            if not health["up"]:
                row["down_since"], row["failed_calls"] = iso(health["down_since"]), health["failed_calls"]
                if health.get("last_error"):
                    row["last_error"], row["last_error_at"] = health["last_error"], iso(health["last_error_at"])
            else:
                flaps = flapping(ch)            # up, but losing its connection with calls waiting, again and again
                if flaps is not None:
                    row["flapping"] = flaps
                if getattr(ch, "_last_error", ""):
                    # up again: its last error is past, not current (shown as last_error, it read as the state)
                    row["previous_error"] = ch._last_error
                    row["previous_error_at"] = iso(getattr(ch, "last_error_at", None))
        room = getattr(ch, "room", None)           # tcp listen at max_connections (engine.channels.conn_room)
        if room is not None and isinstance(getattr(room, "evicted", None), int):
            row["evicted"], row["capped"] = room.evicted, room.capped
        clients = getattr(ch, "clients", None)     # tcp/http listen: max_connections_per_client (per_client.py)
        if clients is not None and isinstance(getattr(clients, "refused", None), int):
            row["client_refused"] = clients.refused
        gate = getattr(ch, "gate", None)           # tcp listen: TLS / mutual TLS / access list (tcp_tls.Gate)
        if gate is not None:
            row["tls"] = gate.ssl_context is not None
            row["tls_failures"], row["refused"] = gate.tls_failures, gate.refused
        elif ch.role == "listen" and isinstance(getattr(ch, "tls_failures", None), int):    # http listen
            row["tls"] = getattr(ch, "ssl_context", None) is not None
            row["tls_failures"], row["refused"] = ch.tls_failures, getattr(ch, "refused", 0)
            if isinstance(getattr(ch, "bad_requests", None), int):      # refused before they were whole
                row["bad_requests"] = ch.bad_requests
        own = getattr(ch, "status", None)          # what a channel kind reports of itself (timer: ticks)
        if callable(own):
            row.update(own())
        why = self.engine.stopped_reason(ch) if hasattr(self.engine, "stopped_reason") else None
        if why is not None:                          # its task failed after it started (engine/runtime/guard.py)
            row["stopped"] = why
        return row

    def _call_counts(self, name: str) -> tuple[int | None, int | None]:
        """Requests sent and replies received by an outbound channel, as ``/metrics`` counts them
        (``engine/ops/calls.py``); (None, None) without metrics."""
        metrics = getattr(self.observer, "metrics", None)
        if metrics is None:
            return None, None
        labels = {"channel": name}
        sent = metrics.value("bsp_channel_sent_total", labels)
        received = metrics.value("bsp_channel_received_total", labels)
        return int(sent or 0), int(received or 0)

    async def ready(self, strict: bool = False) -> Readiness:
        """Can this instance take traffic.  A down outbound channel does not count (engine/ops/health.py),
        unless ``strict``."""
        eng = self.engine
        if eng.draining:
            return Readiness(False, "draining: the engine is stopping")
        if eng.current is None:
            return Readiness(False, "starting: channels are not listening yet")
        rebuilding = eng.key_index() if hasattr(eng, "key_index") else []
        if rebuilding:          # requests are read and wait for it (engine/txn/keyopen.py)
            return Readiness(False, "; ".join(r.text() for r in rebuilding) + ": requests wait until it is done")
        reason = getattr(eng, "stopped_reason", None)
        if reason is not None:
            for name, ch in eng.current.channels.items():
                why = reason(ch)
                if why is not None:
                    return Readiness(False, f"channel {name} stopped: {why}; it takes no traffic until the "
                                            f"engine restarts or a reload changes it")
        if strict:
            down = [(name, outbound_health(ch)) for name, ch in eng.current.channels.items() if is_outbound(ch)]
            down = [(name, h) for name, h in down if not h["up"]]
            certs = eng.certificates() if hasattr(eng, "certificates") else []
            expired = expired_running([e for e in certs if e.role == "server" and e.channel != ADMIN], time.time())
            if expired:              # a listening channel whose certificate expired: peers refuse every handshake
                return Readiness(False, "strict: " + "; ".join(expired))
            if down:
                return Readiness(False, "strict: " + "; ".join(
                    down_reason(name, {**h, "down_since": iso(h["down_since"]),
                                       "address": getattr(eng.current.channels[name], "address", None)})
                    for name, h in down))
        return Readiness(True)

    async def reload(self, dry_run: bool, by: str | None = None) -> ReloadResult:
        return await self.engine.reload(dry_run=dry_run, source="admin", by=by)

    async def deals(self, query: DealQuery) -> Sequence[Mapping[str, Any]]:
        return await read_in_process(query_deals, Path(self.engine.ledger.path), deal_type=query.deal_type,
                                     status=query.status, reference=query.reference, since=query.since,
                                     until=query.until, limit=query.limit,
                                     flagged=getattr(query, "flagged", False), before=getattr(query, "before", None),
                                     resolved=getattr(query, "resolved", False),
                                     currency=getattr(query, "currency", None), party=getattr(query, "party", None),
                                     statement_breaks=getattr(query, "statement_breaks", False))

    async def deal(self, deal_id: str) -> Mapping[str, Any] | None:
        return await read_in_process(get_deal, Path(self.engine.ledger.path), deal_id=deal_id)

    async def held_deals(self, include_decided: bool, limit: int) -> Sequence[Mapping[str, Any]]:
        """The deals a screening held (``engine.deal_hold.held_deals``), newest first."""
        from engine.deal_hold import held_deals

        return await read_in_process(held_deals, Path(self.engine.ledger.path), include_decided=include_decided,
                                     limit=limit)

    async def archived(self, kind: str, ident: str) -> Mapping[str, Any] | None:
        from engine.archive_lookup import archived_where

        return await read_in_process(archived_where, Path(self.engine.ledger.path), ident=ident, kind=kind)

    async def resolve_deal(self, deal_id: str, outcome: str, note: str, by: str,
                           client: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """An operator's resolution of a flagged deal, written by the engine's ledger writer (the audit chain
        continues): the deal read, its flag checked open, the event ``resolved`` appended, one resolution at
        a time (two operators resolving one deal at once: the second is refused).  A deal acknowledged but
        still in the journal is waited for (``SNAPSHOT_LOAD_WAIT``)."""
        import trio

        from engine.deal import DealEvent
        from engine.deal_resolve import (HOLD_OUTCOMES, RELEASED, RESOLVED, event_detail, recounts, refusal,
                                         releases, reversal_lines)
        from engine.totals import COUNTED, Hold, existing_totals
        from engine.ledger_snapshot import SnapshotError
        from engine.txn import safcancel

        ledger = self.engine.ledger
        if self._resolving is None:
            self._resolving = trio.Lock()
        if outcome in HOLD_OUTCOMES:        # a deal held by a screening: released (run on) or rejected
            # one decision at a time, but not one resolution for the whole run of a release (its call may wait
            # for a counterpart up to its timeout): the lock is held while the decision is recorded only
            return await self._decide_hold(deal_id, outcome, note, by, client)
        async with self._resolving:
            wait = getattr(ledger, "wait_loaded", None)
            if wait is not None:
                with trio.move_on_after(SNAPSHOT_LOAD_WAIT) as waited:
                    await wait()
                if waited.cancelled_caught:
                    raise SnapshotError(f"{ledger.path}: acknowledged deals in the journal are not yet in DuckDB "
                                        f"after {SNAPSHOT_LOAD_WAIT:g}s; ask again once `bsp status` shows the "
                                        f"ledger's pending near 0")
            deal = await read_in_process(get_deal, Path(ledger.path), deal_id=deal_id)
            if deal is None:
                return None
            refusal(deal, "bsp deals --flagged --live")
            full = deal["deal_id"]
            at = datetime.now(timezone.utc)
            detail = event_detail(outcome, note, by, "admin API", peer=client.get("peer"),
                                  client_cert=client.get("client_cert"), token=client.get("token"),
                                  stated_by=client.get("stated_by"), **(client.get("four_eyes") or {}))
            # its queued ISO 8583 reversals are held while the event is written, then cancelled: none reaches
            # the host after the operator settled the deal (engine.txn.safcancel)
            queues = list(getattr(self.engine, "saf", ()))
            held = [(q, safcancel.pause(q, full)) for q in queues]
            # not applied or undone: what its `limit` totals counted is given back (event `released` per total,
            # read back at a restart), and at once in the running engine's totals
            given = releases(deal, outcome)
            # applied or written-off of a deal that counts nothing now (it failed and gave its reservation back,
            # then its reversal was flagged): counted again, as its reservation was
            again = recounts(deal, outcome)
            try:
                await ledger.append_story(full, [], [*(DealEvent(at, None, RELEASED, g) for g in given),
                                                     *(DealEvent(at, None, COUNTED, g) for g in again),
                                                     DealEvent(at, None, RESOLVED, detail)])
            except BaseException:
                for q, items in held:
                    safcancel.resume(q, items)
                raise
            totals = existing_totals(ledger) if given or again else None
            if totals is not None and totals.loaded:
                totals.uncount([Hold.of(g) for g in given])
                totals.confirm([Hold.of(g) for g in again])
            elif (given or again) and wait is not None:
                await wait()        # not read back yet: the totals' first read (engine/totals.py) finds it
            resolution = {"outcome": outcome, "by": by, "at": at.isoformat()}
            reversals = [r for q in queues for r in safcancel.cancel(q, full, resolution)]
            joined_to = getattr(ledger, "joined_to", None)
            for r in reversals:
                if joined_to is not None and r.get("state") != "acknowledged":
                    r["joined_by"] = [j["deal_id"] for j in await joined_to(full, str(r["call"]))]
        if self.observer is not None and hasattr(self.observer, "resolved"):
            self.observer.resolved(deal["route"], full)
        return {"deal_id": full, "at": at, **detail, "reversals": reversals, "warnings": reversal_lines(reversals)[1],
                "released": given, "counted": again}

    async def _decide_hold(self, deal_id: str, outcome: str, note: str, by: str,
                           client: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """A compliance officer's decision on a deal held by a screening (``engine.deal_hold``): a release runs
        its request on through the current generation (a reload waits for it), once."""
        from engine.deadletter import switchboard_injector
        from engine.deal_hold import decide

        eng = self.engine
        gen = eng.current
        if gen is None and outcome == "release":
            raise ValueError("the engine is not serving (starting or stopping): release the deal once it serves")
        inject = switchboard_injector(gen.sb, eng.refs) if gen is not None else None
        return await decide(eng.ledger, deal_id, outcome, note, by, via="admin API", injector=inject,
                            lock=self._resolving, keyring=getattr(eng.ledger, "keyring", None),
                            hint_list="bsp deals --held --live",
                            peer=client.get("peer"), client_cert=client.get("client_cert"), token=client.get("token"),
                            stated_by=client.get("stated_by"), **(client.get("four_eyes") or {}))

    async def dead_letters(self, query: DeadLetterQuery) -> Sequence[Mapping[str, Any]]:
        return await read_in_process(query_dead_letters, Path(self.engine.ledger.path), channel=query.channel,
                                     route=query.route, status=query.status, reason=query.reason,
                                     since=query.since, until=query.until, limit=query.limit,
                                     before=getattr(query, "before", None), kind=getattr(query, "kind", None),
                                     open_only=getattr(query, "open", False), code=getattr(query, "code", None))

    async def snapshot_ledger(self) -> Any:
        """A consistent copy of the ledger (``engine.ledger_snapshot``): first every deal acknowledged so far
        is loaded into DuckDB (a journaled ledger lags its journal), then the copy is made beside the ledger,
        in a worker thread joining the engine's DuckDB instance (the writer goes on committing)."""
        import trio

        from engine.ledger_snapshot import SnapshotError, take_snapshot

        ledger = self.engine.ledger
        wait = getattr(ledger, "wait_loaded", None)
        if wait is not None:
            with trio.move_on_after(SNAPSHOT_LOAD_WAIT) as waited:
                await wait()
            if waited.cancelled_caught:
                raise SnapshotError(
                    f"{ledger.path}: {getattr(ledger, 'pending', '?')} acknowledged deal(s) in the journal are not "
                    f"yet in DuckDB after {SNAPSHOT_LOAD_WAIT:g}s (the loader is behind or cannot write: see the "
                    f"bsp log); a snapshot now would miss them. Ask again once `bsp status` shows the ledger's "
                    f"pending near 0")
        return await trio.to_thread.run_sync(take_snapshot, Path(ledger.path))

    async def dead_letter(self, letter_id: str) -> Mapping[str, Any] | None:
        import base64

        rows = await read_in_process(query_dead_letters, Path(self.engine.ledger.path), ids=[letter_id], limit=1,
                                     with_raw=True)
        if not rows:
            return None
        row = dict(rows[0])
        raw = row.pop("raw", None)
        row["raw_base64"] = base64.b64encode(bytes(raw)).decode() if raw is not None else None
        # the letters of its message when a retry refused again left it in another (both ways)
        row["history"] = await read_in_process(letter_history, Path(self.engine.ledger.path), letter_id=letter_id)
        # a purged letter: when and by whom (its status event), as `bsp dead show` says on the ledger file
        row["purge"] = (await read_in_process(letter_purge, Path(self.engine.ledger.path), letter_id=row["id"])
                        if row.get("status") == "purged" else None)
        row["approvals"] = await self._approvals_of(row["id"])
        return row

    async def _approvals_of(self, target: str) -> list[dict[str, Any]]:
        """The four-eyes requests about one deal or dead letter, oldest first (engine/four_eyes.py)."""
        from engine.four_eyes import listing

        now, running = self._clock()(), frozenset(self._running())

        def read(path: Path, con: Any = None) -> list[dict[str, Any]]:
            return listing(con, every=True, target=target, limit=None, now=now, running=running)[::-1]

        return await read_in_process(read, Path(self.engine.ledger.path))

    async def record_reveal(self, kind: str, ident: str, fields: Sequence[str], by: str,
                            client: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Record in the audit chain that ``by`` saw ``fields`` of the ``kind`` (``deal``, ``dead letter``)
        ``ident`` in clear (engine/reveal_log.py): the event ``revealed`` on its id, written by the engine's
        ledger writer; ``{"id", "at", ...detail}``, None when there is no such deal or dead letter."""
        from engine.reveal_log import detail

        path = Path(self.engine.ledger.path)
        if kind == "deal":
            found = await read_in_process(get_deal, path, deal_id=ident)
            full = found["deal_id"] if found is not None else None
        else:
            rows = await read_in_process(query_dead_letters, path, ids=[ident], limit=1)
            full = rows[0]["id"] if rows else None
        if full is None:
            return None
        event = detail(kind, fields, by, "admin API", peer=client.get("peer"), client_cert=client.get("client_cert"),
                       token=client.get("token"), stated_by=client.get("stated_by"), request=client.get("request"))
        at = await self.engine.ledger.record_reveal(full, event)
        return {"id": full, "at": at, **event}

    async def retry_dead_letter(self, letter_id: str, *, again: bool = False, by: str | None = None,
                                requested_by: str | None = None, request: str | None = None
                                ) -> Mapping[str, Any] | None:
        """``by``: the admin token's name, recorded with the outcome (``retry_outcome``: "committed (admin API,
        token 'ops')") and returned."""
        from engine.deadletter import retry_once, switchboard_injector

        eng = self.engine
        rows = await read_in_process(query_dead_letters, Path(eng.ledger.path), ids=[letter_id], limit=1,
                                     with_raw=True)
        if not rows:
            return None
        letter = rows[0]
        gen = eng.current
        if gen is None:
            return {"id": letter_id, "ok": False, "outcome": "failed: the engine is not serving (starting or "
                    "stopping)", "at": None}
        # through the channel's handler: the retry runs inside the current generation (a reload waits for it)
        # claimed in the ledger first (status retrying, on its writer's thread): two retries of one letter at
        # once, or one of a letter already retried, do not run it twice (unless again)
        if requested_by is not None:      # four eyes: both operators on its outcome (engine/four_eyes.py)
            res = await retry_once(eng.ledger, letter, switchboard_injector(gen.sb, eng.refs),
                                   keyring=getattr(eng.ledger, "keyring", None), again=again,
                                   who=f"the engine's admin API (four eyes request {request}, approved by token "
                                       f"{by!r})", again_hint="request it again with again",
                                   by=by, via=f"admin API, four eyes: requested by {requested_by!r}",
                                   by_what="approved by token")
            return {"id": res.id, "ok": res.ok, "outcome": res.outcome, "at": res.at, "skipped": res.skipped,
                    "by": by, "requested_by": requested_by}
        res = await retry_once(eng.ledger, letter, switchboard_injector(gen.sb, eng.refs),
                               keyring=getattr(eng.ledger, "keyring", None), again=again,
                               who="the engine's admin API" + (f" (token {by!r})" if by else ""),
                               again_hint="add --again (?again=true)", by=by)
        return {"id": res.id, "ok": res.ok, "outcome": res.outcome, "at": res.at, "skipped": res.skipped,
                **({"by": by} if by is not None else {})}


    # ------------------------------------------------------------ four eyes (engine/four_eyes.py)
    @property
    def four_eyes(self) -> Any:
        """The actions under dual control (the deployment file's ``operators``), None: none."""
        from engine.four_eyes import policy_of

        return policy_of(getattr(self.engine, "four_eyes", None))

    def _clock(self) -> Any:
        """The time the requests are stamped and checked with: the policy's (a test's clock), else the wall's."""
        from engine.four_eyes import utc_now

        return getattr(getattr(self.engine, "four_eyes", None), "now", None) or utc_now

    def _running(self) -> set[str]:
        """The requests this engine is carrying out now (approved, not yet done): kept on the engine, so a new
        backend of the same engine sees them and a restarted engine does not (theirs are interrupted)."""
        running = getattr(self.engine, "four_eyes_running", None)
        if running is None:
            running = set()
            self.engine.four_eyes_running = running
        return running

    async def _target(self, action: str, ident: str) -> str | None:
        """The whole id of the deal (``deal.*``: its first 8 or more hex digits will do) or dead letter; a
        reload's request has an id of its own."""
        from engine.four_eyes import OWN_TARGET

        if action in OWN_TARGET:
            from engine.deal import new_deal_id

            return new_deal_id()
        path = Path(self.engine.ledger.path)
        if action.startswith("deal."):
            found = await read_in_process(get_deal, path, deal_id=ident)
            return found["deal_id"] if found is not None else None
        rows = await read_in_process(query_dead_letters, path, ids=[ident], limit=1)
        return rows[0]["id"] if rows else None

    async def request_approval(self, action: str, ident: str, params: Mapping[str, Any], by: str,
                               client: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Record a four-eyes request (``engine.four_eyes.record_request``) on the engine's writer; None when
        there is no such deal or dead letter."""
        from engine.four_eyes import record_request

        import trio

        from engine.ledger_snapshot import SnapshotError

        policy = self.four_eyes
        assert policy is not None
        wait = getattr(self.engine.ledger, "wait_loaded", None)
        if wait is not None and action.startswith("deal."):    # a deal still in the journal: as resolve_deal waits
            with trio.move_on_after(SNAPSHOT_LOAD_WAIT) as waited:
                await wait()
            if waited.cancelled_caught:
                raise SnapshotError(f"{self.engine.ledger.path}: acknowledged deals in the journal are not yet in "
                                    f"DuckDB after {SNAPSHOT_LOAD_WAIT:g}s; ask again")
        full = await self._target(action, ident)
        if full is None:
            return None
        return await self.engine.ledger.with_store(
            record_request, action, full, dict(params), by, "admin API", policy.expire, now=self._clock(),
            peer=client.get("peer"), client_cert=client.get("client_cert"), token=client.get("token"),
            stated_by=client.get("stated_by"))

    async def approvals(self, every: bool = False, limit: int = 100) -> Sequence[Mapping[str, Any]]:
        from engine.four_eyes import listing

        now, running = self._clock()(), frozenset(self._running())

        def read(path: Path, con: Any = None) -> list[dict[str, Any]]:
            return listing(con, every=every, limit=limit, now=now, running=running)

        return await read_in_process(read, Path(self.engine.ledger.path))

    async def decide_approval(self, request_id: str, approve: bool, reason: str, by: str,
                              client: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Approve (then carry out, once) or reject a four-eyes request; ``by``: the approver's token name.  An
        action the engine carries out is *running* from its approval (recorded in the same transaction of the
        writer) to its ``approval done``, written whatever its outcome; one a crash cut stays interrupted."""
        from engine.four_eyes import RUN_BY_ENGINE, decide

        where = {"peer": client.get("peer"), "client_cert": client.get("client_cert"), "token": client.get("token")}
        policy = self.four_eyes
        running = self._running()

        def decided(store: Any) -> Any:
            # on the writer's thread: the decision and the request marked running before the next decision is read
            done = decide(store, request_id, approve, by, "admin API", reason, now=self._clock(),
                          running=frozenset(running), expire=policy.expire if policy is not None else None, **where)
            if done is not None and approve and done.get("action") in RUN_BY_ENGINE:
                running.add(done["id"])
            return done

        done = await self.engine.ledger.with_store(decided)
        if done is None or not approve:
            return done
        if done.get("action") not in RUN_BY_ENGINE:
            return {**done, "run": await self._carry_out(done, by, client)}
        try:
            run = await self._carry_out(done, by, client)
            # only an outcome the action returned is recorded: one cut short (an error, the engine stopping) may
            # or may not have taken effect, so it stays interrupted (the next approval reads its own record)
            await self._finished(done["id"], run)
        finally:
            running.discard(done["id"])
        return {**done, "run": run}

    async def _finished(self, request_id: str, run: Mapping[str, Any]) -> None:
        """Record the approved action's outcome (``approval done``), even while the engine is being cancelled."""
        import trio

        from engine.four_eyes import finish

        outcome = str(run.get("outcome") or ("done" if run.get("ok", True) else "failed"))[:2000]
        # a release: its run's deal and where its reply went (the reply's values stay on that deal, under its
        # fields' rules, as the event `hold release ran` keeps them)
        reply = run.get("reply")
        more = {"deal": run.get("deal"),
                "reply": {k: v for k, v in reply.items() if k != "values"} if isinstance(reply, Mapping) else None}
        with trio.CancelScope(shield=True):
            try:
                await self.engine.ledger.with_store(finish, request_id, bool(run.get("ok", True)), outcome,
                                                    now=self._clock(), **more)
            except Exception as exc:      # noqa: BLE001 - the ledger cannot write: the request shows interrupted
                log.error("four eyes: request %s: its outcome could not be recorded (%s): it shows as interrupted "
                          "until decided again", request_id, exc)

    async def fetch_reveal(self, request_id: str, by: str, client: Mapping[str, Any],
                           raw: bool = True) -> Mapping[str, Any] | None:
        """The requester fetching an approved ``deal.reveal`` (``engine.four_eyes.take_reveal``): recorded first
        (``approval done``, ``revealed``), then the deal read and its sealed fields decrypted with the engine's
        keyring, for this answer only (nothing of the values is written or logged).  A ``dead.reveal``: the
        dead letter with its message in clear (``raw``: the token has the role raw, which it needs).  None: no
        such request."""
        from engine import fieldcrypt
        from engine.four_eyes import Refused, find, take_reveal
        from engine.reveal_log import sealed_paths

        keyring = getattr(self.engine.ledger, "keyring", None)
        path = Path(self.engine.ledger.path)
        found = await read_in_process(lambda p, con=None: find(con, request_id), path)
        if found is None:
            return None
        target, req = found
        if req.get("action") == "dead.reveal":
            return await self._fetch_letter(request_id, target, by, client, raw)
        if req.get("action") == "deal.reveal" and keyring is None:
            raise Refused("the engine runs without a field keyring (ledger.field_keys): it has nothing to decrypt "
                          "a deal's sealed fields with; nothing was revealed", "no_keyring")
        deal = await read_in_process(get_deal, path, deal_id=target) if req.get("action") == "deal.reveal" else None
        if req.get("action") == "deal.reveal" and deal is None:
            raise Refused(f"deal {target} is no longer in the ledger (archived?); nothing was revealed", "stale")
        fields = (sealed_paths(deal["request"], "request") + sealed_paths(deal["response"], "response")
                  if deal is not None else [])
        taken = await self.engine.ledger.with_store(
            take_reveal, request_id, by, fields, now=self._clock(), peer=client.get("peer"),
            client_cert=client.get("client_cert"), token=client.get("token"))
        if taken is None:
            return None
        problems: list[str] = []
        shown = dict(deal or {})
        for k in ("request", "response"):
            shown[k] = fieldcrypt.reveal(shown.get(k), keyring, context=target, root=k, problems=problems)
        return {"request": taken, "deal": shown, "fields": fields, "warnings": problems}

    async def _fetch_letter(self, request_id: str, target: str, by: str, client: Mapping[str, Any],
                            raw: bool) -> Mapping[str, Any] | None:
        """An approved ``dead.reveal`` fetched by its requester: the letter's message decrypted (or as stored in
        clear) and its deal's request with the sealed fields decrypted; recorded first, as a deal's reveal."""
        import base64

        from engine import fieldcrypt
        from engine.deadletter import raw_bytes
        from engine.fieldcrypt import KeyringError
        from engine.four_eyes import Refused, take_reveal
        from engine.reveal_log import sealed_paths

        if not raw:
            raise Refused(f"a dead letter's message goes to a token with the role raw, and token {by!r} does not "
                          f"have it: nothing was revealed (docs/admin-api.md#roles)", "not_raw")
        keyring = getattr(self.engine.ledger, "keyring", None)
        path = Path(self.engine.ledger.path)
        rows = await read_in_process(query_dead_letters, path, ids=[target], limit=1, with_raw=True)
        if not rows or rows[0].get("raw") is None:
            raise Refused(f"dead letter {target} is no longer in the ledger, or its message was purged; nothing was "
                          f"revealed", "stale")
        letter = dict(rows[0])
        if letter.get("raw_key") is not None and keyring is None:
            raise Refused(f"dead letter {target} is sealed with field key {letter['raw_key']!r} and the engine runs "
                          f"without a field keyring (ledger.field_keys): nothing was revealed", "no_keyring")
        deal = await read_in_process(get_deal, path, deal_id=target) if len(target) == 32 else None
        request = (deal or {}).get("request") if (deal or {}).get("deal_id") == target else None
        if not isinstance(request, (dict, list)):
            request = None
        fields = ["message"] + (sealed_paths(request, "deal.request") if request is not None else [])
        taken = await self.engine.ledger.with_store(
            take_reveal, request_id, by, fields, now=self._clock(), peer=client.get("peer"),
            client_cert=client.get("client_cert"), token=client.get("token"))
        if taken is None:
            return None
        problems: list[str] = []
        try:
            clear = raw_bytes(letter, keyring)
        except KeyringError as exc:
            problems.append(str(exc))
            clear = None
        letter.pop("raw", None)
        letter["raw_base64"] = base64.b64encode(clear).decode() if clear is not None else None
        letter["raw_key"] = None if clear is not None else letter.get("raw_key")
        if request is not None:
            letter["deal_request"] = (fieldcrypt.reveal(request, keyring, context=target, root="request",
                                                        problems=problems) if keyring is not None else request)
        return {"request": taken, "dead_letter": letter, "fields": fields, "warnings": problems}

    async def _carry_out(self, req: Mapping[str, Any], approver: str, client: Mapping[str, Any]) -> dict[str, Any]:
        """Run the approved request's action once, through its own guard, recording both operators."""
        from engine.deal_resolve import Refused

        action, target, params = req["action"], req["target"], req.get("params") or {}
        requester = str(req.get("by"))
        both = {"four_eyes": req["id"], "requested_by": requester, "approved_by": approver}
        try:
            if action == "dead.retry":
                return dict(await self.retry_dead_letter(target, again=bool(params.get("again")), by=approver,
                                                         requested_by=requester, request=req["id"]) or
                            {"ok": False, "outcome": f"failed: dead letter {target} is no longer in the ledger"})
            if action in ("deal.release", "deal.resolve"):
                # who asked stays `by`; who approved beside it, with the approver's address and certificate
                done = await self.resolve_deal(target, str(params.get("outcome")), str(params.get("note")),
                                               requester, {"peer": client.get("peer"),
                                                           "client_cert": client.get("client_cert"),
                                                           "four_eyes": both})
                if done is None:
                    return {"ok": False, "outcome": f"failed: deal {target} is no longer in the ledger"}
                run = dict(done.get("run") or {})
                # a release: its run's deal and where its reply went, as the direct release answers them
                ran = {k: run[k] for k in ("deal", "reply") if run.get(k) is not None}
                return {**dict(done), "ok": bool(run.get("ok", True)), "outcome": run.get("outcome") or
                        f"{params.get('outcome')} recorded by {requester}, approved by {approver}", **ran}
            if action == "config.reload":
                return await self._reload_approved(req, requester, approver)
            if action == "dead.purge":
                # approved, carried out later on the ledger file: not a failure (`bsp approvals approve` exits 0)
                return {"ok": True, "outcome": "approved: the purge is carried out on the ledger file with the "
                                               "engine stopped: `bsp dead purge ID` (it checks this approval)"}
            if action == "ledger.archive":
                from engine.archive_approval import command

                return {"ok": True, "outcome": f"approved: the archive is carried out on the ledger file with the "
                                               f"engine stopped: `{command(params)}` (it checks this approval and "
                                               f"claims it, once)"}
            if action in ("deal.reveal", "dead.reveal"):
                return {"ok": True, "outcome": f"approved: {requester} fetches the revealed fields once "
                                               f"(`bsp approvals reveal {req['id']} --live`, POST /approvals/"
                                               f"{{id}}/reveal) until {(req.get('decision') or {}).get('fetch_until')}"}
        except Refused as exc:
            return {"ok": False, "outcome": f"not carried out: {exc}", "why": exc.why}
        return {"ok": False, "outcome": f"not carried out: unknown action {action!r}"}

    async def _reload_approved(self, req: Mapping[str, Any], requester: str, approver: str) -> dict[str, Any]:
        """An approved ``config.reload``: the version a dry run compiles now must be the one the request was made
        for (the files unchanged since); one running already (a reload cut by a crash took effect, or a start
        loaded the files) is not reloaded again; else the reload runs, by both operators."""
        asked = (req.get("params") or {}).get("version")
        gen = getattr(self.engine, "current", None)
        running_version = getattr(gen, "version", None)
        if asked is not None and running_version == asked:
            return {"ok": True, "outcome": f"not reloaded: version {asked} runs already (the engine switched to it "
                                           f"before, or started with it); nothing runs twice", "version": asked}
        dry = await self.engine.reload(dry_run=True, source="admin", by=approver)
        if not dry.ok or dry.version != asked:
            now = dry.version if dry.ok else "none: the files do not compile"
            return {"ok": False, "outcome": f"not reloaded: the files changed since the request (version {asked} "
                                            f"asked, {now} now); ask again for the files as they are",
                    "version": dry.version}
        result = await self.engine.reload(dry_run=False, source="admin",
                                          by=f"{requester}, approved by {approver} (four eyes {req['id']})")
        return {"ok": bool(result.ok), "version": result.version, "previous_version": result.previous_version,
                "outcome": (f"reloaded: version {result.previous_version} -> {result.version}" if result.ok else
                            f"not reloaded: {'; '.join(result.diagnostics) or 'see the engine log'}"),
                "diagnostics": list(result.diagnostics)}


def _merged(counts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for name, n in c.items():
            out[name] = out.get(name, 0) + n
    return out
