"""What the engine counts and logs about deals, observed at the ledger's door.

    obs = Observer(metrics)
    ledger_view = obs.ledger(ledger)      # give this to the dispatchers instead of the ledger
    obs.learn(generation)                 # classification tags of its routes, for masking

Every deal passes ``commit_many`` exactly once, so wrapping the ledger sees
each deal with its route, outcome, timing and configuration version without
touching the dispatcher: per-route counters and latency go to ``Metrics``,
and one ``bsp.deal`` log line per deal is written at info level with the
request masked by its format's classification (``formats.classify``).
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from engine.ops.deadcount import NewDeadLetters
from engine.ops.openflags import OpenFlags
from formats.classify import mask, tags_of

deal_log = logging.getLogger("bsp.deal")

MAX_LOGGED_REQUEST = 2000       # characters of the (masked) request shown in a deal line
MAX_LOGGED_VALUE = 200          # characters of a sender's reference or code shown in a deal line


class RouteCounts:
    __slots__ = ("received", "committed", "rejected", "failed", "duplicate", "unrecorded", "flagged", "resolved",
                 "statement_breaks", "latency_sum")

    def __init__(self) -> None:
        self.received = 0
        self.committed = 0
        self.rejected = 0
        self.failed = 0
        self.duplicate = 0          # a repeated deal key, answered with the original reply (engine/txn)
        self.unrecorded = 0         # the ledger could not store the deal (a full disk): no reply was sent
        self.flagged = 0            # of the failed: flagged for an operator (event ``flagged``: engine.txn.flagging)
        self.resolved = 0           # flagged deals an operator resolved through this engine (engine.deal_resolve)
        self.statement_breaks = 0   # of the committed: statements that did not follow on (engine/statement_chains.py)
        self.latency_sum = 0.0

    def as_dict(self) -> dict[str, Any]:
        done = self.committed + self.rejected + self.failed + self.duplicate + self.unrecorded
        return {"received": self.received, "committed": self.committed, "rejected": self.rejected,
                "failed": self.failed, "duplicate": self.duplicate, "unrecorded": self.unrecorded,
                "flagged": self.flagged,
                "resolved": self.resolved,
                "statement_breaks": self.statement_breaks,
                "avg_latency_ms": round(1000 * self.latency_sum / done, 3) if done else None}


class Observer:
    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics
        self.routes: dict[str, RouteCounts] = {}
        self.channel_frames_in: Counter[str] = Counter()
        self.channel_frames_out: Counter[str] = Counter()
        self.unrecorded = 0
        self._tags: dict[tuple[str, str], dict[str, str]] = {}
        self.open_flags = OpenFlags()     # deals whose flag is open now (engine/ops/openflags.py)
        self.dead_letters = NewDeadLetters()   # dead letters waiting now (engine/ops/deadcount.py)

    # ------------------------------------------------------------ wiring
    def ledger(self, ledger: Any) -> "ObservedLedger":
        return ObservedLedger(ledger, self)

    def learn(self, gen: Any) -> None:
        """Remember the classification tags of every route of a generation (by version and route)."""
        for name, br in gen.routes().items():
            tags = tags_of(br.codec) if br.codec is not None else {}
            self._tags[(gen.version, name)] = tags

    def keep_versions(self, versions: set[str]) -> None:
        """Forget the tags of every version not in ``versions`` (those of generations still running)."""
        for key in [k for k in self._tags if k[0] not in versions]:
            del self._tags[key]

    def forget(self, routes: set[str], channels: set[str]) -> None:
        """A reload removed these routes and channels and their last exchange is over: their counts
        (``bsp status``) and metric series go; if they come back, they start from zero."""
        for name in routes:
            self.routes.pop(name, None)
        for name in channels:
            self.channel_frames_in.pop(name, None)
            self.channel_frames_out.pop(name, None)
        forget = getattr(self.metrics, "forget", None)
        if forget is not None:
            forget(routes=routes, channels=channels)

    # ------------------------------------------------------------ channel events (HandlerRef)
    def frames_in(self, channel: str, n: int) -> None:
        self.channel_frames_in[channel] += n
        self.metrics.channel_received.labels(channel).inc(n)

    def frames_out(self, channel: str, n: int) -> None:
        if n:
            self.channel_frames_out[channel] += n
            self.metrics.channel_sent.labels(channel).inc(n)

    def channel_error(self, channel: str, kind: str) -> None:
        self.metrics.channel_error(channel, kind)

    # ------------------------------------------------------------ deals
    def deals(self, records: list[Any], errors: list[BaseException | None]) -> None:
        m = self.metrics
        by_outcome: Counter[tuple[str, str]] = Counter()
        logging_on = deal_log.isEnabledFor(logging.INFO)
        for rec, err in zip(records, errors):
            route = rec.route
            c = self.routes.get(route)
            if c is None:
                c = self.routes[route] = RouteCounts()
            c.received += 1
            if err is not None:         # not stored, so not answered: whatever the route's outcome was
                status = "unrecorded"
            else:
                status = rec.status if rec.status in ("committed", "rejected", "duplicate") else "failed"
            setattr(c, status, getattr(c, status) + 1)
            seconds = max((rec.finished_at - rec.received_at).total_seconds(), 0.0)
            c.latency_sum += seconds
            by_outcome[(route, status)] += 1
            if status == "committed" and rec.events and any(e.to_state == "statement break" for e in rec.events):
                c.statement_breaks += 1         # a `continuity` step's break (engine/statement_chains.py)
                m.route_statement_breaks.labels(route).inc()
            if status != "committed" and rec.events:
                states = [e.to_state for e in rec.events]
                if "flagged" in states:
                    c.flagged += 1
                    m.route_flagged.labels(route).inc()
                if status == "rejected" and "key_conflict" in states:    # engine.txn.fingerprint
                    m.route_key_conflicts.labels(route).inc()
            m.route_latency.labels(route).observe(seconds)
            if err is not None:
                self.unrecorded += 1
            elif rec.events:
                self.open_flags.events(rec.deal_id, rec.events, route)
            if logging_on:
                self._log(rec, err, seconds)
        received: Counter[str] = Counter()
        for (route, status), n in by_outcome.items():
            m.route_outcomes.labels(route, status).inc(n)
            received[route] += n
        for route, n in received.items():
            m.route_received.labels(route).inc(n)

    def flagged_later(self, route: str) -> None:
        """A deal already recorded (counted as failed, not flagged) was flagged for an operator since: an
        ISO 8583 reversal stored and forwarded not acknowledged after its attempts (engine.txn.saf, event
        ``reversal flagged``).  Counted now in the route's ``flagged`` and ``bsp_route_flagged_total``."""
        c = self.routes.get(route)
        if c is None:
            c = self.routes[route] = RouteCounts()
        c.flagged += 1
        self.metrics.route_flagged.labels(route).inc()

    def resolved(self, route: str, deal_id: str | None = None) -> None:
        """An operator resolved a flagged deal of ``route`` through the admin API (``POST /deals/{id}/resolve``):
        counted in the route's ``resolved`` and ``bsp_route_resolved_total``.  ``flagged`` stays as it was: it
        counts flags raised since the engine started, not open ones; the deal leaves ``open_flags``."""
        if deal_id is not None:
            self.open_flags.resolved(deal_id)
        c = self.routes.get(route)
        if c is None:
            c = self.routes[route] = RouteCounts()
        c.resolved += 1
        self.metrics.route_resolved.labels(route).inc()

    def _log(self, rec: Any, err: BaseException | None, seconds: float) -> None:
        # the record's own classification first: a request no route took ("(unrouted)") carries the tags
        # of the format that read it, which no route name leads to
        tags = rec.request_tags or self._tags.get((rec.config_version, rec.route), {})
        request = rec.request
        if isinstance(request, (bytes, bytearray)):
            request = f"<{len(request)} bytes>"      # undecoded bytes are never logged
        elif tags:
            request = mask(request, tags)
        text = _short(request)
        fields = {
            "deal_id": rec.deal_id, "route": rec.route, "deal_type": rec.deal_type, "channel": rec.channel,
            "status": rec.status, "reference": _clip(rec.reference),
            "amount": str(rec.amount) if rec.amount is not None else None, "currency": rec.currency,
            "response_code": _clip(rec.response_code), "config_version": rec.config_version,
            "latency_ms": round(seconds * 1000, 3), "request": text,
        }
        if rec.reason:
            fields["reason"] = rec.reason
        if err is not None:
            fields["not_recorded"] = str(err)
        deal_log.info("deal %s %s %s ref=%s code=%s %.3fms v=%s request=%s", rec.deal_id, rec.route, rec.status,
                      fields["reference"], fields["response_code"], seconds * 1000, rec.config_version, text,
                      extra={"bsp": fields})


def _clip(value: Any) -> Any:
    """A sender's reference as logged: at most ``MAX_LOGGED_VALUE`` characters (a 900 KB claim id made a
    900 KB log line; the ledger keeps it whole)."""
    if isinstance(value, str) and len(value) > MAX_LOGGED_VALUE:
        return value[:MAX_LOGGED_VALUE] + f"...({len(value)} characters)"
    return value


def _short(value: Any) -> str:
    import orjson
    try:
        text = orjson.dumps(value, default=str).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= MAX_LOGGED_REQUEST else text[:MAX_LOGGED_REQUEST] + "..."


class ObservedLedger:
    """The ledger, with every ``commit_many`` reported to the observer (other calls pass through)."""

    def __init__(self, ledger: Any, observer: Observer) -> None:
        self._ledger = ledger
        self._observer = observer

    async def commit_many(self, records: list[Any], **kw: Any) -> list[BaseException | None]:
        errors: list[BaseException | None]
        try:
            errors = await self._ledger.commit_many(records, **kw)
        except Exception as exc:
            errors = [exc] * len(records)
            self._observer.deals(records, errors)
            raise
        self._observer.deals(records, errors)
        return errors

    async def append_story(self, deal_id: str, steps: list[Any], events: list[Any],
                           unless: str | None = None) -> bool:
        """The ledger's ``append_story``; the events written are seen by the open-flags count."""
        wrote = await self._ledger.append_story(deal_id, steps, events, unless)
        if wrote:
            self._observer.open_flags.events(deal_id, events)
        return wrote

    async def append_stories(self, stories: list[tuple[str, list[Any], list[Any], str | None]]
                             ) -> list[bool | BaseException]:
        """The ledger's ``append_stories``; the events written are seen by the open-flags count."""
        results = await self._ledger.append_stories(stories)
        for (deal_id, _steps, events, _unless), r in zip(stories, results):
            if r is True:
                self._observer.open_flags.events(deal_id, events)
        return results

    def deal_flagged(self, route: str) -> None:
        """A deal of ``route`` recorded earlier was flagged for an operator since (engine.txn.saf)."""
        self._observer.flagged_later(route)

    def flag_route(self, deal_id: str, route: str) -> None:
        """A flag is about to be appended to deal ``deal_id`` of ``route`` (engine.txn.saf): the open-flags
        count puts it under that route (``bsp_deals_flagged_open_by_route``)."""
        self._observer.open_flags.note_route(deal_id, route)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

