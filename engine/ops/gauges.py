"""Metrics read from the live engine when scraped: in-flight gauges, circuit states, reconnects, ledger batches.

    metrics = EngineMetrics()
    metrics.watch(engine)        # a LiveEngine
    metrics.render()             # refreshes the gauges from the running generation, then renders

Outbound calls (sent, replies, errors, latency and ``bsp_channel_in_flight``)
are reported as they happen by ``engine.ops.calls``.  Counters that the
runtime does not report as events are sampled here:
``bsp_channel_reconnects_total`` grows by the connector's new connects since
the last sample (its first connect is not a reconnect), ``bsp_channel_resets_total`` by the connections
it closed after a call timed out (a ``tcp connect`` without ``match``),
``bsp_channel_reversals_joined_total`` by the reversals a MUX did not send because the same one was at the
counterpart (``MuxConnector.joined``), and every ledger group
commit since the last sample is observed in ``bsp_ledger_batch_size`` /
``bsp_ledger_commit_seconds`` with the mean size and time of those commits
(the ledger keeps totals, not each batch).  ``bsp_bookkeeping_entries{structure}``
is the size of each per-exchange structure of the engine (engine/ops/bookkeeping.py:
a leak shows as one that grows with traffic or reloads).  Circuit state of an outbound
channel: ``closed`` when connected or not yet tried, ``open`` while it backs
off after a failed connect, ``half_open`` when the back-off is over and it has
not reconnected yet.  ``bsp_channel_up`` and ``bsp_channel_circuit_state`` have a series per
outbound channel of the running configuration (``bsp_channel_up`` also one per ``nats consume`` channel: 0
while it cannot reach its NATS server and receives nothing): a channel a reload removed loses its series (at the next
scrape), so an alert on ``bsp_channel_up == 0`` does not fire for ever on a channel that is gone.
``bsp_reversals_pending{channel,state}`` counts the stored-and-forwarded ISO 8583 reversals not acknowledged
yet (engine/txn/saf.py) by channel and ``queued`` / ``flagged`` / ``stranded``; a channel a reload removed
keeps this series while reversals owed to it are stranded.  ``bsp_reversals_not_approved{channel}`` counts
the reversals acknowledged since the start with a DE 39 that is not an approval (``Saf.not_approved``).
``bsp_deals_flagged_open`` is the number of deals whose flag for an operator is open now (engine/ops/openflags.py:
read from the ledger at the start, then kept as flags are raised and closed); NaN until that read is done.
``bsp_deals_flagged_open_by_route{route}`` is the same by route (their sum is the total), with no series until then.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

from engine.metrics import Metrics
from engine.ops.bookkeeping import bookkeeping
from engine.ops.health import circuit_state, is_outbound, outbound_health

__all__ = ["EngineMetrics", "circuit_state"]


class EngineMetrics(Metrics):
    def __init__(self, namespace: str = "bsp") -> None:
        super().__init__(namespace)
        self.engine: Any = None
        self._connects: dict[int, int] = {}
        self._resets: dict[int, int] = {}          # each outbound connector's resets at the last sample
        self._joined: dict[int, int] = {}          # ... and each MUX's reversals joined to one in flight
        self._accepted: dict[int, int] = {}   # tcp listen: connections accepted at the last sample, by channel object
        self._tls_failed: dict[int, int] = {}   # tcp/http listen with TLS: failed handshakes at the last sample
        self._refused: dict[int, int] = {}      # ... and connections its access list refused, by counting object
        self._outbound: set[str] = set()     # channels with a bsp_channel_up / circuit series
        self._ledger_seen = (0, 0, 0.0)      # batches, rows, total_commit_ms
        self.bookkeeping = Gauge("bookkeeping_entries", "Entries a per-exchange structure of the engine holds "
                                 "now (engine/ops/bookkeeping.py); one that grows with traffic or reloads "
                                 "is a leak.", ["structure"], namespace=namespace, registry=self.registry)

        self.reversals = Gauge("reversals_pending", "ISO 8583 reversals queued and not acknowledged yet, by the "
                               "outbound channel they are owed to and state: queued (being sent), flagged (being "
                               "sent, flagged for an operator), stranded (not sent: no call for the channel in "
                               "the running configuration).", ["channel", "state"], namespace=namespace,
                               registry=self.registry)
        self.reversals_not_approved = Gauge(
            "reversals_not_approved", "ISO 8583 reversals acknowledged since the engine started with a response "
            "code (DE 39) that is not an approval (original not found, reversal declined), by outbound channel: "
            "not repeated, for an operator to check with the host.", ["channel"], namespace=namespace,
            registry=self.registry)

        self.flagged_open = Gauge("deals_flagged_open", "Deals flagged for an operator whose flag is open now "
                                  "(not resolved, nor closed by the host's acknowledgement of the reversal): "
                                  "what bsp deals --flagged lists; NaN until read from the ledger at the start.",
                                  namespace=namespace, registry=self.registry)
        self.flagged_open.set(float("nan"))
        self.flagged_open_by_route = Gauge(
            "deals_flagged_open_by_route", "bsp_deals_flagged_open by route: a series per route of the running "
            "configuration (0 when none), and per route a reload removed while deals of it are still open; no "
            "series until read from the ledger at the start.", ["route"], namespace=namespace, registry=self.registry)
        self.dead_letters_new = Gauge("dead_letters_new", "Dead letters waiting for an operator now (status new, "
                                      "never retried into a deal), whatever run wrote them, by error kind "
                                      "(unreachable, timeout, rejected, malformed, ...): what bsp dead list --status "
                                      "new lists; counted in the ledger every 5 s; no series until then.", ["kind"],
                                      namespace=namespace, registry=self.registry)
        self._dead_kinds: set[str] = set()
        self.ledger_pending = Gauge("ledger_pending", "Acknowledged deals in the write-ahead journal not loaded "
                                    "into DuckDB yet (the journal's lag): near 0; growing while DuckDB cannot "
                                    "write (a full disk).", namespace=namespace, registry=self.registry)
        self.ledger_faults = Gauge("ledger_storage_failing", "Ledger files that cannot be written now (a full or "
                                   "read-only disk), by what (journal, ledger, transaction log) and kind (write, "
                                   "load, spare): the failures since it began; no series once it works again. "
                                   "What bsp status lists in ledger.faults (degraded).", ["what", "kind"],
                                   namespace=namespace, registry=self.registry)

        self.audit_keyed = Gauge("audit_keyed", "1: the ledger's records are sealed with an audit key (tamper "
                                 "evidence, bsp audit verify); 0: written without one, not protected.",
                                 namespace=namespace, registry=self.registry)
        self.audit_break = Gauge("audit_break_recorded", "1: this engine's start found records cut from the ledger's "
                                 "audit chain while no writer had it open (edited, or an older copy put in its "
                                 "place: a restore) and recorded an `audit break` (bsp status ledger.audit).",
                                 namespace=namespace, registry=self.registry)

    def watch(self, engine: Any) -> None:
        self.engine = engine

    def render(self) -> bytes:
        self.refresh()
        return super().render()

    def refresh(self) -> None:
        eng = self.engine
        flags = getattr(getattr(eng, "observer", None), "open_flags", None)
        if flags is not None:
            n = flags.value
            self.flagged_open.set(float("nan") if n is None else n)
            self._flagged_by_route(flags, eng)
        dead = getattr(getattr(eng, "observer", None), "dead_letters", None)
        if dead is not None:
            kinds = dict(dead.by_kind) if dead.value is not None else {}
            for kind in self._dead_kinds - set(kinds):      # none of that kind left: 0, not gone (alerts resolve)
                kinds[kind] = 0
            for kind, n in kinds.items():
                self.dead_letters_new.labels(kind).set(n)
            self._dead_kinds |= set(kinds)
        if eng is None or eng.current is None:
            return
        gen = eng.current
        for name, br in gen.routes().items():
            self.route_in_flight.labels(name).set(br.limiter.borrowed)
        sampled: dict[int, int] = {}          # the running channels only: a reload's old ones are dropped
        accepted: dict[int, int] = {}
        tls_seen: dict[int, int] = {}
        refused_seen: dict[int, int] = {}
        reset_seen: dict[int, int] = {}
        joined_seen: dict[int, int] = {}
        outbound = {name for name, ch in gen.channels.items() if is_outbound(ch) or _reaches_out(ch)}
        for name in self._outbound - outbound:     # removed by a reload (or no longer outbound)
            for gauge in (self.channel_up, self.channel_circuit):
                try:
                    gauge.remove(name)
                except KeyError:
                    pass
        self._outbound = outbound
        for name, ch in gen.channels.items():
            if is_outbound(ch):
                health = outbound_health(ch)
                self.circuit(name, health["circuit"])
                self.channel_up.labels(name).set(1 if health["up"] else 0)
                connects = int(getattr(ch, "connects", 0))
                before = self._connects.get(id(ch))
                if before is None:
                    before = min(connects, 1)
                if connects > before:
                    self.channel_reconnects.labels(name).inc(connects - before)
                sampled[id(ch)] = connects
                resets = getattr(ch, "resets", None)
                if isinstance(resets, int):
                    _count_up(self.channel_resets, name, ch, resets, self._resets, reset_seen)
                joined = getattr(ch, "joined", None)
                if isinstance(joined, int):       # a MUX: reversals that shared one in flight (not errors)
                    _count_up(self.channel_reversals_joined, name, ch, joined, self._joined, joined_seen)
            elif name in outbound:               # an inbound channel that connects out (nats consume)
                self.channel_up.labels(name).set(1 if ch.status().get("up") else 0)
            self._sample_accepted(name, ch, accepted)
            self._sample_gate(name, ch, tls_seen, refused_seen)
        self._connects = sampled
        self._tls_failed, self._refused = tls_seen, refused_seen
        self._resets = reset_seen
        self._joined = joined_seen
        self._accepted = accepted
        self._sample_ledger(getattr(eng.ledger, "stats", None))
        self._sample_storage(eng.ledger)
        self._sample_reversals(getattr(eng, "saf", ()))
        for name, n in bookkeeping(eng).items():
            self.bookkeeping.labels(name).set(n)

    def _sample_accepted(self, name: str, ch: Any, seen: dict[int, int]) -> None:
        """``bsp_channel_connections`` / ``bsp_channel_accepted_total`` of a ``tcp listen`` channel: its open
        connections now, and the connections it accepted since the last sample (a channel a reload kept goes
        on counting; a new one starts from its own zero)."""
        total = getattr(ch, "connections", None)
        scopes = getattr(ch, "_read_scopes", None)
        if getattr(ch, "role", None) != "listen" or not isinstance(total, int) or scopes is None:
            return
        self.channel_connections.labels(name).set(len(scopes))
        _count_up(self.channel_accepted, name, ch, total, self._accepted, seen)

    def _sample_gate(self, name: str, ch: Any, tls_seen: dict[int, int], refused_seen: dict[int, int]) -> None:
        """``bsp_channel_tls_failures_total`` / ``bsp_channel_access_refused_total`` of a listening channel with
        TLS or an access list: what its gate (tcp listen: ``tcp_tls.Gate``; http listen: the channel) counted
        since the last sample (what ``bsp status`` shows as ``tls_failures`` / ``refused``); a series at 0
        from the start for an alert's increase()."""
        if getattr(ch, "role", None) != "listen":
            return
        gate = getattr(ch, "gate", None)
        counter = gate if gate is not None else ch
        tls, refused = getattr(counter, "tls_failures", None), getattr(counter, "refused", None)
        if not isinstance(tls, int) or (gate is None and getattr(ch, "ssl_context", None) is None):
            return                  # plain TCP (no gate), an http listen without TLS: nothing to count
        _count_up(self.channel_tls_failures, name, counter, tls, self._tls_failed, tls_seen)
        if isinstance(refused, int):
            _count_up(self.channel_access_refused, name, counter, refused, self._refused, refused_seen)

    def _flagged_by_route(self, flags: Any, eng: Any) -> None:
        """``bsp_deals_flagged_open_by_route{route}``: the routes of the running configuration (0 when none is
        open: an alert resolves) and those with open deals; bounded by the routes, not by the deals."""
        self.flagged_open_by_route.clear()
        if flags.value is None:
            return
        counts = dict.fromkeys(eng.current.routes() if eng is not None and eng.current is not None else (), 0)
        counts.update(flags.by_route())
        for route, n in counts.items():
            self.flagged_open_by_route.labels(route).set(n)

    def _sample_reversals(self, queues: Any) -> None:
        """``bsp_reversals_pending{channel,state}``: a series per channel and state that has reversals now
        (also a channel a reload removed: its stranded reversals are still owed to it)."""
        counts: dict[tuple[str, str], int] = {}
        for q in queues:
            for item in list(q.items.values()):
                if item.ack is None:
                    k = (item.target or "", item.state)
                    counts[k] = counts.get(k, 0) + 1
        self.reversals.clear()
        for (channel, state), n in counts.items():
            self.reversals.labels(channel, state).set(n)
        for q in queues:
            for channel, n in getattr(q, "not_approved_channels", {}).items():
                self.reversals_not_approved.labels(channel).set(n)

    def _sample_storage(self, ledger: Any) -> None:
        """``bsp_ledger_pending`` and ``bsp_ledger_storage_failing{what,kind}``: an alert on a full disk
        without reading the log or ``bsp status``; ``bsp_audit_keyed`` / ``bsp_audit_break_recorded``: the
        audit chain's (a ledger written without tamper evidence, a cut found at the start)."""
        from engine.ledger import audit_state, storage_faults
        audit = audit_state(ledger)
        if audit is not None:
            self.audit_keyed.set(1 if audit["keyed"] else 0)
            self.audit_break.set(1 if audit["break_at_start"] else 0)
        pending = getattr(ledger, "pending", None)
        if isinstance(pending, int):
            self.ledger_pending.set(pending)
        self.ledger_faults.clear()
        for fault in storage_faults(ledger):
            self.ledger_faults.labels(fault["what"], fault["kind"]).set(fault["failures"])

    def _sample_ledger(self, stats: Any) -> None:
        if stats is None:
            return
        b0, r0, ms0 = self._ledger_seen
        db, dr, dms = stats.batches - b0, stats.rows - r0, stats.total_commit_ms - ms0
        if db > 0:
            size, seconds = dr / db, dms / db / 1000.0
            for _ in range(min(db, 10000)):
                self.ledger_batch.observe(size)
                self.ledger_commit.observe(seconds)
        self._ledger_seen = (stats.batches, stats.rows, stats.total_commit_ms)


def _reaches_out(ch: Any) -> bool:
    """An inbound channel connected to a server of its own (``nats consume``): its ``status()`` says ``up``,
    and ``bsp_channel_up`` follows it (0 while it is cut off and receives nothing)."""
    own = getattr(ch, "status", None)
    return getattr(ch, "role", None) == "listen" and callable(own) and "up" in own()


def _count_up(counter: Any, name: str, ch: Any, total: int, before: dict[int, int], seen: dict[int, int]) -> None:
    """A channel's own running count (``total``) into the Prometheus counter labelled ``name``: what it
    counted since the last sample (``before``, by channel object: a channel a reload kept goes on counting,
    a new one starts from its own zero); the series exists from the start (0)."""
    done = before.get(id(ch), 0)
    if total > done:
        counter.labels(name).inc(total - done)
    else:
        counter.labels(name)
    seen[id(ch)] = total
