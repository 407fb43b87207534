"""Prometheus metrics for one engine, in a registry of its own (never the global one).

The runtime, channels, ledger and admin API call the small methods below;
``render()`` gives the Prometheus text exposition served at ``GET /metrics``.

Metric families (all prefixed ``bsp_``):

  route_received_total{route}              exchanges a route took
  route_outcomes_total{route,outcome}      outcome: committed, rejected, failed, duplicate
  route_flagged_total{route}               of those failed: flagged for an operator (engine/txn/flagging.py)
  route_key_conflicts_total{route}         of those rejected: a deal key repeated for another deal (kind key_conflict:
                                           another amount, currency or party; engine/txn/fingerprint.py)
  route_resolved_total{route}              flagged deals an operator resolved through the admin API (engine/deal_resolve.py)
  route_in_flight{route}                   exchanges being processed
  route_latency_seconds{route}             received -> answered (histogram)
  channel_received_total{channel}          frames received (inbound) or replies received (outbound calls)
  channel_sent_total{channel}              frames sent (inbound replies) or requests sent (outbound calls)
  channel_errors_total{channel,kind}       kind: framing, reply_not_sent (tcp listen), unreachable, timeout, lost
                                           (sent, the connection broke before the reply: in doubt), ...
  channel_evictions_total{channel,reason}  tcp/http listen at max_connections: connections closed to make room;
                                           reason: handshake, idle, unread (engine/channels/conn_room.py)
  channel_capped_total{channel}            tcp/http listen at max_connections: times accepting paused (none could go)
  channel_client_refused_total{channel}    tcp/http listen: connections closed as accepted, their client address
                                           at max_connections_per_client (engine/channels/per_client.py)
  channel_connections{channel}             tcp listen: connections open now (sampled at each scrape)
  channel_tls_failures_total{channel}      tcp/http listen with TLS: handshakes that failed (no or a refused client
                                           certificate, plain TCP, too slow: sampled, engine/channels/tcp_tls.py)
  channel_access_refused_total{channel}    tcp/http listen with an access list (`allow`): connections refused by it
  channel_accepted_total{channel}          tcp listen: connections accepted (sampled: a reconnect storm is its rate)
  channel_in_flight{channel}               outbound calls waiting for a reply
  channel_latency_seconds{channel}         outbound call round trip (histogram)
  channel_reconnects_total{channel}
  channel_resets_total{channel}            tcp connect without match: connections the engine closed after a call
                                           timed out (replies in order no longer to be trusted; sampled)
  channel_reversals_joined_total{channel}  ISO 8583 MUX: reversals not sent because the same one (key and DE 90)
                                           was already at the counterpart; they shared its answer (sampled;
                                           not an error)
  channel_circuit_state{channel}           0 closed, 1 half-open, 2 open
  channel_up{channel}                      outbound: 1 the counterpart answers (or not tried yet), 0 down;
                                           nats consume: 1 connected to its NATS server, 0 cut off
  event_loop_lag_seconds                   how late the event loop woke a task that asked to (histogram;
                                           engine/ops/looplag.py): high, every timeout waits with it
  ledger_batch_size                        deals per group commit (histogram)
  ledger_commit_seconds                    one group commit (histogram)
  reloads_total{result,source}             result: ok, failed; source: admin, watch, signal, ...
  admin_auth_failures_total{reason}        reason: missing, malformed, wrong, refused, forbidden (a token without the role)
  admin_requests_total{endpoint,status}
  config_info{version}                     1 for the running configuration
  tls_cert_expiry_timestamp_seconds{channel,role,subject}
                                           when a certificate expires (Unix time); role: server, client, ca
                                           (read when the configuration is bound), peer (the counterpart's, at
                                           each TLS connect); channel "admin API" for the admin API's
  calendar_days_left{table}                days until a business-day calendar a route uses runs out (the first
                                           day of a year its CSV lists no date for; 0: it has, and deals needing
                                           such a date fail); reckoned at each scrape (engine/calexpiry.py)
  calendar_warn_days                       days before a calendar runs out from which bsp warns (platform.yaml
                                           calendars.warn_days, 60 unless told): the alert rule's threshold

The series of a route or channel a reload removed go once the old
generation's last exchange is over (``forget``, called by engine/ops/live.py).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dsl.calendar_window import WARN_DAYS

CONTENT_TYPE = CONTENT_TYPE_LATEST
OUTCOMES = ("committed", "rejected", "failed", "duplicate")
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
AUTH_FAILURE_REASONS = ("missing", "malformed", "wrong", "refused", "forbidden")
# Counters an alert watches with increase() / rate(): each series is there, at 0, from the moment its route,
# channel or the engine is, not only from its first event.  A series that first appears at 1 is no increase
# to Prometheus (increase() needs a sample before the event), so without them the first failed reload after a
# start, the first burst of timeouts or the first refused admin request never fired the runbook's alerts.
RELOAD_RESULTS = ("ok", "failed")
RELOAD_SOURCES = ("admin", "signal", "watch")
OUTBOUND_ERROR_KINDS = ("unreachable", "timeout", "lost")       # the counterpart-outage kinds (docs/runbook.md)
EVICTION_REASONS = ("handshake", "idle", "unread")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class Metrics:
    def __init__(self, namespace: str = "bsp") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, ns = self.registry, namespace
        self.route_received = Counter("route_received", "Exchanges taken by a route.", ["route"],
                                      namespace=ns, registry=r)
        self.route_outcomes = Counter("route_outcomes", "Finished exchanges by outcome (committed, rejected, failed, duplicate).",
                                      ["route", "outcome"], namespace=ns, registry=r)
        self.route_flagged = Counter("route_flagged", "Failed deals flagged for an operator (a participant in doubt "
                                     "or whose compensation failed: something may stand at a counterpart).", ["route"],
                                     namespace=ns, registry=r)
        self.route_key_conflicts = Counter("route_key_conflicts", "Requests rejected because their deal key was "
                                           "already used for another deal (another amount, currency or party: "
                                           "kind key_conflict); an error or fraud signal, never a retry.",
                                           ["route"], namespace=ns, registry=r)
        self.route_resolved = Counter("route_resolved", "Flagged deals an operator resolved through the admin API "
                                      "(POST /deals/{id}/resolve; bsp deals resolve --live).", ["route"],
                                      namespace=ns, registry=r)
        self.route_statement_breaks = Counter("route_statement_breaks", "Statements posted that did not follow on "
                                              "from their account's last one (a `continuity` step: a gap, a repeat, "
                                              "opening != previous closing, a broken page chain, not adding up); "
                                              "each deal carries an event `statement break`.", ["route"],
                                              namespace=ns, registry=r)
        self.route_in_flight = Gauge("route_in_flight", "Exchanges a route is processing now.", ["route"],
                                     namespace=ns, registry=r)
        self.route_latency = Histogram("route_latency_seconds", "Time from receipt to answer, per route.",
                                       ["route"], buckets=LATENCY_BUCKETS, namespace=ns, registry=r)
        self.channel_received = Counter("channel_received", "Frames received on a channel.", ["channel"],
                                        namespace=ns, registry=r)
        self.channel_sent = Counter("channel_sent", "Frames sent on a channel.", ["channel"],
                                    namespace=ns, registry=r)
        self.channel_errors = Counter("channel_errors", "Channel errors by kind; of an outbound call: unreachable "
                                      "(not sent), timeout and lost (sent, no answer: in doubt; lost: the "
                                      "connection broke before the reply).", ["channel", "kind"],
                                      namespace=ns, registry=r)
        self.channel_evictions = Counter("channel_evictions", "tcp/http listen at max_connections: connections closed "
                                         "to make room for a new peer, by reason (handshake: still in its TLS "
                                         "handshake; idle; unread: its client took no reply for 10s).",
                                         ["channel", "reason"], namespace=ns, registry=r)
        self.channel_capped = Counter("channel_capped", "tcp/http listen at max_connections: times accepting paused "
                                      "because no connection could be closed to make room.", ["channel"],
                                      namespace=ns, registry=r)
        self.channel_client_refused = Counter("channel_client_refused", "tcp/http listen: connections closed as "
                                              "accepted because their client address already held "
                                              "max_connections_per_client.", ["channel"], namespace=ns, registry=r)
        self.channel_connections = Gauge("channel_connections", "tcp listen: connections open now.", ["channel"],
                                         namespace=ns, registry=r)
        self.channel_accepted = Counter("channel_accepted", "tcp listen: connections accepted (after the TLS "
                                        "handshake, when TLS): a peer reconnecting in a storm shows as a rate.",
                                        ["channel"], namespace=ns, registry=r)
        self.channel_tls_failures = Counter("channel_tls_failures", "tcp/http listen with TLS: handshakes that "
                                            "failed (no client certificate or one refused, a plain-TCP peer, too "
                                            "slow): a mainframe or partner that cannot connect any more.",
                                            ["channel"], namespace=ns, registry=r)
        self.channel_access_refused = Counter("channel_access_refused", "tcp/http listen with an access list "
                                              "(allow): connections refused by it.", ["channel"], namespace=ns,
                                              registry=r)
        self.channel_in_flight = Gauge("channel_in_flight", "Outbound calls waiting for a reply.", ["channel"],
                                       namespace=ns, registry=r)
        self.channel_latency = Histogram("channel_latency_seconds", "Outbound call round trip, per channel.",
                                         ["channel"], buckets=LATENCY_BUCKETS, namespace=ns, registry=r)
        self.channel_reconnects = Counter("channel_reconnects", "Reconnections of an outbound channel.",
                                          ["channel"], namespace=ns, registry=r)
        self.channel_resets = Counter("channel_resets", "tcp connect without match: connections the engine closed "
                                      "after a call timed out, its replies matched in order no longer to be trusted "
                                      "(the other calls waiting on it failed in doubt, kind lost).", ["channel"],
                                      namespace=ns, registry=r)
        self.channel_reversals_joined = Counter(
            "channel_reversals_joined", "ISO 8583 MUX (match = iso8583): reversals not sent because the same one "
            "(its key and original, DE 90) was already at the counterpart, the engine's own or a front end's; "
            "they shared its answer (or its time-out). Not an error: the counterpart applies one.", ["channel"],
            namespace=ns, registry=r)
        self.channel_circuit = Gauge("channel_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.",
                                     ["channel"], namespace=ns, registry=r)
        self.channel_up = Gauge("channel_up", "Outbound channel: 1 while its counterpart answers (or it has not "
                                "been tried), 0 while it is down (failed connects or calls without an answer); "
                                "nats consume: 1 while connected to its NATS server, 0 while cut off.",
                                ["channel"], namespace=ns, registry=r)
        self.loop_lag = Histogram("event_loop_lag_seconds", "How late the event loop woke a task that asked to "
                                  "(engine/ops/looplag.py): every timer and reply waits that long.",
                                  namespace=ns, registry=r,
                                  buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.ledger_batch = Histogram("ledger_batch_size", "Deals written per ledger group commit.",
                                      buckets=BATCH_BUCKETS, namespace=ns, registry=r)
        self.ledger_commit = Histogram("ledger_commit_seconds", "Duration of one ledger group commit.",
                                       buckets=LATENCY_BUCKETS, namespace=ns, registry=r)
        self.reloads = Counter("reloads", "Configuration reloads by result (ok, failed) and source.",
                               ["result", "source"], namespace=ns, registry=r)
        self.admin_auth_failures = Counter("admin_auth_failures", "Admin API requests refused authentication.",
                                           ["reason"], namespace=ns, registry=r)
        self.admin_requests = Counter("admin_requests", "Admin API requests by endpoint and status.",
                                      ["endpoint", "status"], namespace=ns, registry=r)
        self.config_info = Gauge("config_info", "The running configuration version (value 1).", ["version"],
                                 namespace=ns, registry=r)
        self.cert_expiry = Gauge("tls_cert_expiry_timestamp_seconds", "When a TLS certificate expires (Unix time; "
                                 "alert on it minus time()): role server / client (presented by bsp), ca (each "
                                 "certificate of a CA bundle), peer (the counterpart's, at its last handshake).",
                                 ["channel", "role", "subject"], namespace=ns, registry=r)
        self._own_certs: set[tuple[str, str, str]] = set()
        self.calendar_days_left = Gauge("calendar_days_left", "Days until a business-day calendar table the routes "
                                        "use runs out: the first day of a year its CSV lists no date for (0: it "
                                        "has; every deal needing such a date fails with 96). Alert at bsp_calendar_warn_days or below.",
                                        ["table"], namespace=ns, registry=r)
        self.calendar_warn_days = Gauge("calendar_warn_days", "Days before a business-day calendar runs out from "
                                        "which bsp warns (platform.yaml calendars.warn_days, 60 unless told): "
                                        "alert on bsp_calendar_days_left <= ignoring(table) group_left "
                                        "bsp_calendar_warn_days.", namespace=ns, registry=r)
        self.calendar_warn_days.set(WARN_DAYS)
        self._calendars: set[str] = set()
        for result in RELOAD_RESULTS:
            for source in RELOAD_SOURCES:
                self.reloads.labels(result, source)
        for reason in AUTH_FAILURE_REASONS:
            self.admin_auth_failures.labels(reason)
        # the families with a series per route / per channel, with their label names in order
        self._per: dict[str, tuple[tuple[Any, tuple[str, ...]], ...]] = {
            "route": ((self.route_received, ("route",)), (self.route_outcomes, ("route", "outcome")),
                      (self.route_flagged, ("route",)), (self.route_resolved, ("route",)),
                      (self.route_key_conflicts, ("route",)),
                      (self.route_statement_breaks, ("route",)),
                      (self.route_in_flight, ("route",)), (self.route_latency, ("route",))),
            "channel": ((self.channel_received, ("channel",)), (self.channel_sent, ("channel",)),
                        (self.channel_errors, ("channel", "kind")), (self.channel_in_flight, ("channel",)),
                        (self.channel_evictions, ("channel", "reason")), (self.channel_capped, ("channel",)),
                        (self.channel_client_refused, ("channel",)),
                        (self.channel_connections, ("channel",)), (self.channel_accepted, ("channel",)),
                        (self.channel_tls_failures, ("channel",)), (self.channel_access_refused, ("channel",)),
                        (self.channel_latency, ("channel",)), (self.channel_reconnects, ("channel",)),
                        (self.channel_resets, ("channel",)), (self.channel_reversals_joined, ("channel",)),
                        (self.channel_circuit, ("channel",)), (self.channel_up, ("channel",)),
                        (self.cert_expiry, ("channel", "role", "subject"))),
        }

    # ------------------------------------------------------------ routes
    def route_started(self, route: str) -> None:
        self.route_received.labels(route).inc()
        self.route_in_flight.labels(route).inc()

    def route_finished(self, route: str, outcome: str, seconds: float) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"route {route}: outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        self.route_in_flight.labels(route).dec()
        self.route_outcomes.labels(route, outcome).inc()
        self.route_latency.labels(route).observe(seconds)

    @contextmanager
    def track_route(self, route: str, clock: Callable[[], float] | None = None) -> Iterator["_Outcome"]:
        """``with metrics.track_route("bill_payment") as o: ...; o.outcome = "rejected"``.

        The outcome defaults to committed, and to failed when the block raises.
        ``clock`` defaults to ``time.perf_counter`` (pass ``trio.current_time`` under trio).
        """
        now = clock or time.perf_counter
        t0 = now()
        out = _Outcome()
        self.route_started(route)
        try:
            yield out
        except BaseException:
            self.route_finished(route, "failed", now() - t0)
            raise
        self.route_finished(route, out.outcome, now() - t0)

    # ------------------------------------------------------------ channels
    def channel_error(self, channel: str, kind: str) -> None:
        self.channel_errors.labels(channel, kind).inc()

    def call_started(self, channel: str) -> None:
        self.channel_sent.labels(channel).inc()
        self.channel_in_flight.labels(channel).inc()

    def call_finished(self, channel: str, seconds: float, error_kind: str | None = None) -> None:
        self.channel_in_flight.labels(channel).dec()
        if error_kind is None:
            self.channel_received.labels(channel).inc()
            self.channel_latency.labels(channel).observe(seconds)
        else:
            self.channel_error(channel, error_kind)

    def reconnected(self, channel: str) -> None:
        self.channel_reconnects.labels(channel).inc()

    def circuit(self, channel: str, state: str) -> None:
        if state not in CIRCUIT_STATES:
            raise ValueError(f"channel {channel}: circuit state {state!r} is not one of {', '.join(CIRCUIT_STATES)}")
        self.channel_circuit.labels(channel).set(CIRCUIT_STATES[state])

    # ------------------------------------------------------------ the configuration bound
    def bound(self, routes: Iterable[str] = (), outbound: Iterable[str] = (), capped: Iterable[str] = ()) -> None:
        """The routes and channels of the configuration now running: the counters an alert watches get their
        series at 0 (a series kept from an earlier configuration keeps its count).  ``outbound``: calling
        channels (``channel_errors_total`` of OUTBOUND_ERROR_KINDS); ``capped``: listening channels with a
        ``max_connections`` (``channel_capped_total``, ``channel_evictions_total``,
        ``channel_client_refused_total``)."""
        for route in routes:
            self.route_received.labels(route)
            for outcome in OUTCOMES:
                self.route_outcomes.labels(route, outcome)
            for family in (self.route_flagged, self.route_key_conflicts, self.route_statement_breaks):
                family.labels(route)
        for channel in outbound:
            for kind in OUTBOUND_ERROR_KINDS:
                self.channel_errors.labels(channel, kind)
        for channel in capped:
            self.channel_capped.labels(channel)
            self.channel_client_refused.labels(channel)
            for reason in EVICTION_REASONS:
                self.channel_evictions.labels(channel, reason)

    # ------------------------------------------------------------ certificates
    def certs_bound(self, entries: Iterable[Any]) -> None:
        """The certificates of the configuration now running (``engine.certexpiry.CertExpiry``, not
        peers): their series replace those of the previous configuration.  Two certificates with the same
        labels (a CA renewed under the same name, both in the bundle): the later expiry."""
        values: dict[tuple[str, str, str], float] = {}
        for e in entries:
            key = (e.channel, e.role, e.subject)
            values[key] = max(values.get(key, e.not_after), e.not_after)
        for key in self._own_certs - set(values):
            try:
                self.cert_expiry.remove(*key)
            except KeyError:
                pass
        for key, t in values.items():
            self.cert_expiry.labels(*key).set(t)
        self._own_certs = set(values)

    def peer_cert(self, entry: Any) -> None:
        """The certificate a counterpart presented in a TLS handshake (role peer)."""
        self.cert_expiry.labels(entry.channel, entry.role, entry.subject).set(entry.not_after)

    # ------------------------------------------------------------ calendars
    def calendars_bound(self, spans: Iterable[Any], today: Callable[[], Any], warn_days: int = WARN_DAYS) -> None:
        """The calendar tables of the configuration now running (``engine.calexpiry.CalendarSpan``): their
        series replace those of the previous configuration; each is reckoned from ``today()`` at a scrape.
        ``warn_days``: the engine's warning window (``bsp_calendar_warn_days``)."""
        self.calendar_warn_days.set(warn_days)
        spans = {s.table: s for s in spans}
        for name in self._calendars - set(spans):
            try:
                self.calendar_days_left.remove(name)
            except KeyError:
                pass
        for name, span in spans.items():
            self.calendar_days_left.labels(name).set_function(lambda span=span: span.days_left(today()))
        self._calendars = set(spans)

    # ------------------------------------------------------------ reloads
    def forget(self, routes: Iterable[str] = (), channels: Iterable[str] = ()) -> None:
        """Remove every series of these routes and channels (a reload removed them and their last
        exchange is over): ``/metrics`` no longer lists them; if they come back, they start from zero."""
        for label, names in (("route", set(routes)), ("channel", set(channels))):
            if not names:
                continue
            for family, labelnames in self._per[label]:
                drop = set()
                for metric in family.collect():
                    for sample in metric.samples:
                        if sample.labels.get(label) in names:
                            drop.add(tuple(sample.labels[n] for n in labelnames))
                for values in drop:
                    try:
                        family.remove(*values)
                    except KeyError:
                        pass

    # ------------------------------------------------------------ ledger, config, admin
    def ledger_committed(self, batch_size: int, seconds: float) -> None:
        self.ledger_batch.observe(batch_size)
        self.ledger_commit.observe(seconds)

    def reload_done(self, ok: bool, source: str) -> None:
        self.reloads.labels("ok" if ok else "failed", source).inc()

    def config_loaded(self, version: str) -> None:
        self.config_info.clear()
        self.config_info.labels(version).set(1)

    def auth_failed(self, reason: str) -> None:
        if reason not in AUTH_FAILURE_REASONS:
            raise ValueError(f"auth failure reason {reason!r} is not one of {', '.join(AUTH_FAILURE_REASONS)}")
        self.admin_auth_failures.labels(reason).inc()

    def admin_request(self, endpoint: str, status: int) -> None:
        self.admin_requests.labels(endpoint, str(status)).inc()

    # ------------------------------------------------------------ reading
    def render(self) -> bytes:
        """The Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's value by its full name (``bsp_route_received_total``); for tests and ``bsp status``."""
        return self.registry.get_sample_value(name, labels or {})


class _Outcome:
    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome = "committed"
