"""Per-channel dispatch: a batch of frames in, one reply per frame out, every deal recorded.

For each frame: try the channel's routes in declaration order; decode with the
route's receive format (once per format per frame), evaluate ``when``; the
first match wins.  Then the route's steps run over all the batch's exchanges
of that route together (a ``call`` sends them in one write), failures go to
the route's ``on error`` steps or else the channel's ``on error reply``.
Finally every exchange becomes a DealRecord; replies are released only once
their deals are committed.
"""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from typing import Any, Callable


from engine.channels import file_end_calls
from engine.channels.base import ConnInfo
from engine.channels.file_origin import place_text
from engine.deal import DeadLetter, DealError, DealEvent, DealRecord, new_deal_ids
from engine.runtime.exchange import Exchange, StepFailure, preset_deal_id
from engine.runtime.internal_log import internal, new_faults, on_error_failed
from engine.runtime.limits import CountLimiter
from engine.runtime import chaining, counting
from engine.runtime.stepfail import input_failure, step_failure
from engine.sad import kept_raw
from engine.txn import manager_for
from engine.txn.shared_keys import DEFERRED, deferred
from dsl.compiler import split_path
from dsl.fileend import reads_file_end
from dsl.peer import NO_PEER
from dsl.eval_error import EvalError, InputError
from formats.classify import (classified_values, mask_card_numbers, mask_digit_runs, mask_text, safe_error_text,
                              tags_of)
from formats.errors import FormatError
from engine.runtime import unrouted_reversal
from formats.json_codec import JsonCodec
from formats.mac import MacError

log = logging.getLogger("bsp.dispatch")

_UTC = timezone.utc


class BoundRoute:
    """A Route with its codec, ``when`` and step runners built."""

    def __init__(self, route: Any, ctx: Any, build_step: Callable[[Any, Any], Any], limit: int) -> None:
        self.route = route
        self.ctx = ctx              # engine/txn builds a call's compensation with it
        self.name = route.name
        self.format = route.format
        self.codec = ctx.codec(route.format)
        self.when = ctx.expr(route.when) if route.when is not None else None
        # its `when` reads file.end: it takes a file watch channel's end-of-file messages, and only it does
        self.takes_end = reads_file_end(route.when)
        self.steps = [build_step(s, route) for s in route.steps]
        if self.takes_end:        # its calls that went through are not made again by a retry (file_end_calls)
            for step in self.steps:
                if hasattr(step, "end_route"):
                    step.end_route = True
        self.on_error = [build_step(s, route) for s in route.on_error]
        # steps with work to do off the loop before a batch runs them (``async before_batch()``: the index of a
        # dated screening list a new day brings, engine/steps/screen.py); awaited by ``Dispatcher.handle``
        self.before = [f for f in (getattr(s, "before_batch", None) for s in self.steps) if f is not None]
        self.limiter = CountLimiter(limit)
        self.running: dict[int, list[Any]] = {}     # id(group) -> its exchanges not yet recorded (drain report)
        self.where = str(route.pos) if route.pos is not None else route.name
        # JSON without classified fields: the deal's request column can take the raw bytes
        self.raw_json = isinstance(self.codec, JsonCodec) and not self.codec.classify
        # where an exchange of this route holds classified values (Exchange.classified): the request
        # (None: ``msg``) and each call's reply, with their formats' tags
        self.request_tags = tags_of(self.codec) if self.codec is not None else {}
        scopes = [(None, self.request_tags)]
        for step in self.steps:
            reply_codec = getattr(step, "reply_codec", None)
            if reply_codec is not None and isinstance(getattr(step, "name", None), str):
                scopes.append((step.name, tags_of(reply_codec)))
        self.classified_scopes = [(k, t) for k, t in scopes if t]
        # the reply field a committed deal's response_code is read from (``dsl.respcode``): its key when the
        # field is top level (one dict read per committed deal), else its path
        path = split_path(route.response_code) if getattr(route, "response_code", None) else ()
        self.code_key: str | None = path[0] if len(path) == 1 and isinstance(path[0], str) else None
        self.code_path: tuple[str | int, ...] | None = path if len(path) > 1 else None

    def code_of(self, values: Any) -> str | None:
        """The response code a committed reply carried: its code field's value (``values``: the reply's values
        as the reply step built them), as text; None when the route has no such field."""
        key = self.code_key
        if key is not None:
            v = values.get(key) if type(values) is dict else None
        elif self.code_path is not None:
            v = _at(values, self.code_path)
        else:
            return None
        return None if v is None or v == "" else v if type(v) is str else str(v)


class Dispatcher:
    """The ``ExchangeHandler`` of one inbound channel."""

    def __init__(self, channel: str, routes: list[BoundRoute], error_reply: Any, *,
                 ledger: Any, version: str, base_scope: dict[str, Any],
                 stats: "DispatchStats", faults: Any = None) -> None:
        self.channel = channel
        self.routes = routes
        self.error_reply = error_reply
        self.ledger = ledger
        self.version = version
        self.base_scope = base_scope
        self.stats = stats
        # internal errors and failed on error steps, one line per kind (engine/runtime/internal_log.py): the
        # switchboard's, which writes the summaries when due and at the stop
        self.faults = faults if faults is not None else new_faults()
        # transactions, idempotency, recovery, dead letters, trace (engine/txn, docs/transactions.md)
        self.txn = manager_for(ledger)
        # the running totals its routes' `limit` steps count into (engine/totals.py); None: no route counts,
        # and nothing below costs anything
        self.totals = counting.totals_of(routes)
        # the statement chains its routes' `continuity` steps check against (engine/statement_chains.py)
        self.chains = chaining.chains_of(routes)
        # requests read and waiting to run: for the key store's log (its index made again in a worker thread,
        # engine/txn/keyopen.py), the recovery of the deals in flight, the totals; not yet in ``running``.
        # A drain that stops the rebuild of the key index says how many it cancelled (``keyopen.stop_all``)
        self.waiting = 0

    # -- ExchangeHandler ----------------------------------------------------
    async def handle(self, conn: ConnInfo, frames: list[bytes]) -> list[bytes | None]:
        txn = self.txn
        self.waiting += len(frames)
        try:
            if self.totals is not None and not self.totals.loaded:
                await counting.rebuild(self)    # the totals as the ledger and the deals in flight leave them
            if self.chains is not None and not self.chains.loaded:
                await self.chains.rebuild(self.ledger)      # each account's last statement, from the ledger
            if txn is not None:
                await txn.ready(self)           # deals left in flight by a crash are resolved first
        finally:
            self.waiting -= len(frames)
        now = datetime.now(_UTC)
        exs = [Exchange(self.channel, conn, raw, now, i) for i, raw in enumerate(frames)]
        heads = conn.extra.get("headers") if conn.extra else None
        if heads is not None and len(heads) == len(exs):     # a framing header (TPDU) per frame
            for ex, h in zip(exs, heads):
                ex.header = header_view(h)
        groups: dict[int, list[Exchange]] = {}
        for ex in exs:
            r = self._route(ex)
            if r is not None:
                groups.setdefault(r, []).append(ex)
        for ri, group in groups.items():
            self.routes[ri].running[id(group)] = group
        try:
            for ri, group in groups.items():
                br = self.routes[ri]
                for before in br.before:        # (a new day's screening list: indexed in a worker thread)
                    await before()
                if txn is not None and txn.takes(br):
                    await txn.run_route(self, br, group)
                else:
                    await self._run_route(br, group)
            for ex in exs:
                if ex.error_route is not None and ex.reply is None:     # unauthenticated: the route's on error
                    await self.run_on_error(ex.error_route, [ex])
            for ex in exs:
                if ex.failure is not None and ex.reply is None and self.error_reply is not None \
                        and not deferred(ex):
                    self._run_sync(self.error_reply, ex, during_error=True)
            await self._record(exs)
        except BaseException:
            if txn is not None:
                txn.forget(exs)           # a failed batch leaves no state behind (engine/txn/manager.py)
            if self.totals is not None:
                counting.release(self.totals, exs)      # nothing of it was recorded: nothing counts
            if self.chains is not None:
                chaining.release(self.chains, exs)
            raise
        finally:
            for ri, group in groups.items():
                self.routes[ri].running.pop(id(group), None)
        return [ex.reply for ex in exs]

    async def framing_error(self, conn: ConnInfo, err: FormatError) -> bytes | None:
        ex = Exchange(self.channel, conn, b"", datetime.now(_UTC), 0)
        who = conn.who if conn is not None else None      # the channel's `on error reply` reads the tables, peer.*
        ex.scope = {**self.base_scope, "raw": ex.raw, "msg": None, "peer": who if who is not None else NO_PEER}
        where = f" at stream byte {err.offset}" if err.offset is not None else ""
        ex.fail(StepFailure("malformed", f"bad frame{where}: {err.message}; connection closed",
                            where=f"connection {conn.number} from {conn.peer}"))
        if self.error_reply is not None:
            self._run_sync(self.error_reply, ex, during_error=True)
        await self._record([ex])
        return ex.reply

    async def reply_not_sent(self, conn: ConnInfo, unsent: list[tuple[str, str]]) -> int:
        """Deals recorded whose reply the channel did not send (``engine.channels.base.tell_not_sent``: a reply
        the framing cannot carry, and those behind it on the connection): an event ``reply_not_sent`` on
        each, after its own (``append_story``; the deal's status stays: what it did at a counterpart
        happened), detail ``{"reason", "channel", "connection"}``.  Returns how many were written."""
        if self.ledger is None:
            return 0
        now = datetime.now(_UTC)
        where = f"{conn.number} from {conn.peer}"
        written = 0
        for deal_id, why in unsent:
            event = DealEvent(now, None, "reply_not_sent", {"reason": why, "channel": self.channel,
                                                             "connection": where})
            try:
                written += bool(await self.ledger.append_story(deal_id, [], [event]))
            except Exception as exc:      # LedgerError: the log line names the deal already
                log.error("deal %s: its reply was not sent (%s), and the event saying so could not be written "
                          "to the ledger: %s", deal_id, why, exc)
        return written

    # -- routing ------------------------------------------------------------
    def _route(self, ex: Exchange) -> int | None:
        scope = dict(self.base_scope)
        scope["raw"] = ex.raw
        scope["msg"] = None
        scope["error"] = None
        who = ex.conn.who if ex.conn is not None else None
        scope["peer"] = who if who is not None else NO_PEER     # peer.* (dsl/peer.py): read-only, per connection
        if ex.header is not None:
            scope["header"] = ex.header
        origin = _origin(ex)
        if origin is not None:                 # a batch file's record: file.name, file.line, ...
            scope.update(origin.scope)
        ex.scope = scope
        decoded: dict[str | None, Any] = {}
        first_error: str | None = None
        first_where: str | None = None     # the place of the format that gave ``first_error`` (StepFailure.where)
        mac_error: str | None = None       # a format that read the message but not its MAC: unauthenticated
        mac_where: str | None = None
        unverified: Any = None
        mac_route: BoundRoute | None = None
        not_object: InputError | None = None   # a `when` read fields of a message that is no object
        first_field: str | None = None         # the field the first format error names, if it does
        partial: Any = None                    # what the first format error's decoder read before it failed
        # a file's end message is offered to the routes whose `when` reads file.end, and only to them; a record
        # never to them (dsl/fileend.py)
        end = getattr(origin, "end", False) is True
        for i, br in enumerate(self.routes):
            if end is not br.takes_end:
                continue
            fmt = br.format
            if fmt in decoded:
                msg = decoded[fmt]
            elif br.codec is None:
                msg = decoded[fmt] = ex.raw
            else:
                try:
                    msg = br.codec.decode(ex.raw)
                except FormatError as exc:
                    # a file's record: the offset counts from the file's start and the error names its line
                    msg = exc if origin is None else origin.relocate(exc, ex.raw)
                except Exception as exc:  # a codec bug: treat as undecodable, keep serving
                    msg = FormatError(f"{type(exc).__name__}: {exc}")
                decoded[fmt] = msg
            if isinstance(msg, FormatError):
                if first_error is None or isinstance(msg, MacError):
                    # it may quote the request's bytes: no classified value, no card number in it
                    text = mask_digit_runs(safe_error_text(msg, br.request_tags, raw=ex.raw))
                if first_error is None:
                    first_error, first_where = f"not a valid {fmt}: {text}", br.where
                    first_field = msg.field
                    partial = msg.partial
                if isinstance(msg, MacError) and mac_route is None:
                    if mac_error is None:
                        mac_error, mac_where = f"{fmt}: {text}", br.where
                    plain = _without_mac(br.codec, ex.raw)
                    if plain is not None and _takes(br, scope, plain):
                        mac_error, mac_where = f"{fmt}: {text}", br.where
                        unverified, mac_route = plain, br
                continue
            scope["msg"] = msg
            if br.when is not None:
                try:
                    ok = br.when(scope)
                except Exception as exc:
                    if not_object is None and isinstance(exc, InputError) and exc.root:
                        not_object = exc
                    if log.isEnabledFor(logging.DEBUG):     # the error may quote a classified value
                        log.debug("route %s: when failed: %s", br.name,
                                  mask_text(str(exc), classified_values(msg, br.request_tags, min_len=1)))
                    ok = False
                if not ok:
                    continue
            ex.route = br
            ex.msg = ex.raw_msg = msg
            return i
        if mac_error is not None and all(isinstance(v, FormatError) for v in decoded.values()):
            # the route whose `when` takes the message read without its MAC check answers it with its
            # `on error` steps, which may echo fields (DE 11, 41); nothing else uses the unverified values:
            # no step runs, and the deal keeps the raw bytes, as for a malformed request
            scope["msg"] = unverified
            ex.error_route = mac_route
            ex.fail(StepFailure("unauthenticated", f"request of {len(ex.raw)} bytes on channel {self.channel}: "
                                f"{mac_error}", where=mac_where))
        elif first_error is not None and all(isinstance(v, FormatError) for v in decoded.values()):
            failure = StepFailure("malformed", f"request of {len(ex.raw)} bytes on channel {self.channel}: "
                                  f"{first_error}", where=first_where)
            failure.field = first_field or None
            # the channel's `on error reply` reads what could be read (ISO 8583: the MTI and the fields before
            # the bad one, docs/formats-iso8583.md#answering-what-cannot-be-read); null when nothing could
            scope["msg"] = partial
            ex.fail(failure)
        else:
            ex.msg = scope["msg"]           # the request as decoded by the last format tried
            took = next((r for r in reversed(self.routes) if r.format in decoded and decoded[r.format] is ex.msg),
                        None)
            ex.request_tags = (took.request_tags or None) if took is not None else None
            ex.request_codec = took.codec if took is not None else None
            names = ", ".join(r.name for r in self.routes) or "none"
            if not_object is not None:      # a JSON list or text where the routes read an object's fields
                ex.fail(input_failure(not_object))
                return None
            detail = f"no route of channel {self.channel} takes this request (routes tried: {names}; none matched its `when`)"
            if unrouted_reversal.is_reversal(ex.msg, ex.request_codec):
                # acknowledged 25 (the acquirer stops repeating), kept and flagged: engine/runtime/unrouted_reversal.py
                note = unrouted_reversal.flagged_note(self.channel, ex.msg)
                ex.notes = [note, *(ex.notes or ())]
                ex.fail(StepFailure("unrouted", f"{detail}; flagged for an operator: {note[1]['why']}",
                                    code=unrouted_reversal.CODE))
                return None
            ex.fail(StepFailure("unrouted", detail))
        return None

    # -- steps --------------------------------------------------------------
    async def _run_route(self, br: BoundRoute, group: list[Exchange]) -> None:
        taken = await br.limiter.acquire(len(group))
        try:
            live = group
            for step in br.steps:
                await self.run_step(br, step, live)
                live = [ex for ex in live if ex.failure is None]
                if not live:
                    break
            await self.run_on_error(br, group)
        finally:
            br.limiter.release(taken)

    async def run_step(self, br: BoundRoute, step: Any, live: list[Exchange]) -> None:
        """One step over ``live``: a batch step once for all of them, any other per exchange; a step
        that raises fails its exchanges (kind ``internal``) and the engine goes on."""
        if step.batch:
            try:
                await step.run_batch(live)
            except Exception as exc:      # logged with its deals, one line per kind (_record_kept)
                for ex in live:
                    ex.fail(step_failure(step, exc, _failure_text(exc)))
        else:
            for ex in live:
                self._run_sync(step, ex)

    async def run_on_error(self, br: BoundRoute, group: list[Exchange]) -> None:
        """The route's ``on error`` steps over the exchanges of ``group`` that failed (but a request that is
        not of the shape the route reads: answered as one that could not be decoded, by the channel)."""
        failed = [ex for ex in group if ex.failure is not None and not deferred(ex) and not ex.failure.not_object]
        for step in br.on_error:
            if not failed:
                break
            if step.batch:
                try:
                    await step.run_batch(failed)
                except Exception as exc:
                    for ex in failed:
                        on_error_failed(self.faults, f"route {br.name}", step.where,
                                        mask_text(_failure_text(exc), ex.classified()), exc)
            else:
                for ex in failed:
                    self._run_sync(step, ex, during_error=True)

    def _run_sync(self, step: Any, ex: Exchange, during_error: bool = False) -> None:
        try:
            step.run(ex)
        except StepFailure as f:
            if during_error:
                ex.reply = None
                self._on_error_failed(step, ex, f.detail, f.__cause__)
            else:
                ex.fail(step_failure(step, f, f.detail))
        except Exception as exc:
            text = _failure_text(exc)
            if during_error:
                ex.reply = None
                self._on_error_failed(step, ex, text, exc)
            else:
                ex.fail(step_failure(step, exc, text))

    def _on_error_failed(self, step: Any, ex: Exchange, text: str, exc: BaseException | None) -> None:
        br = ex.route if ex.route is not None else ex.error_route
        subject = f"route {br.name}" if br is not None else f"channel {self.channel}"
        on_error_failed(self.faults, subject, step.where, mask_text(text, ex.classified()), exc)

    # -- the ledger ---------------------------------------------------------
    async def _record(self, exs: list[Exchange]) -> None:
        """One DealRecord per exchange, committed with one wait for the batch (group commit).  An exchange
        deferred by a shared key store (its deal runs on another engine) gets no record: its message is
        handed back to the channel (``engine.txn.shared_keys``)."""
        if any(deferred(ex) for ex in exs):
            kept = [ex for ex in exs if not deferred(ex)]
            if self.totals is not None:      # handed back: another engine runs its deal
                counting.release(self.totals, [ex for ex in exs if deferred(ex)])
            if self.chains is not None:
                chaining.release(self.chains, [ex for ex in exs if deferred(ex)])
            if self.txn is not None:
                for ex in exs:
                    if deferred(ex):
                        self.txn.states.pop(ex, None)
            await self._record_kept(kept, exs)
            return
        await self._record_kept(exs, exs)

    async def _record_kept(self, exs: list[Exchange], every: list[Exchange]) -> None:
        if not exs:
            _report_outcomes(every, exs, [], None)
            return
        finished = datetime.now(_UTC)
        ids = new_deal_ids(len(exs))
        records = [self._deal(ex, finished, preset_deal_id(ex) or i) for ex, i in zip(exs, ids)]
        s = self.stats
        if self.txn is not None:
            await self.txn.fill(self, exs, records)
            self.txn.attach_dead_letters(exs, records)     # stored with their deals, in one transaction
        if self.totals is not None:
            counting.mark(exs, records, finished)          # a `counted` event per total on the deals that count
        if self.chains is not None:
            chaining.mark(exs, records, finished)          # a `statement link` (and `statement break`) event
        for ex, rec in zip(exs, records):                 # events the steps gave (a screening hit)
            if ex.notes:
                rec.events[:0] = [DealEvent(finished, None, to, detail) for to, detail in ex.notes]
            if ex.failure is not None and ex.route is not None and ex.route.takes_end:
                # a file's end message failed: the calls that went through, not made again by its retry
                file_end_calls.note(ex, rec, finished, self.txn is not None and self.txn.takes(ex.route))
        for ex, rec in zip(exs, records):    # the record's status: the transaction manager marks duplicates
            s.count(rec.status)
            f = ex.failure
            if f is not None and (f.kind == "internal" or f.raised):   # a bug: logged once per kind, then counted
                internal(self.faults, rec.route, f, rec.deal_id, rec.reason, self.channel)
        if self.ledger is None:
            if self.totals is not None:
                counting.settle(self.totals, exs, records)
            if self.chains is not None:
                chaining.settle(self.chains, exs, records)
            _report_outcomes(every, exs, records, None)
            return
        try:
            # the runtime guarantees the field types (names, str/Decimal from steps): no per-field check
            errors = await self.ledger.commit_many(records, validate=False)
        except Exception as exc:   # LedgerError (closed): answer nothing we cannot prove was stored
            errors = [exc] * len(records)
        told: set[int] = set()
        refused: list[DeadLetter] = []
        for ex, rec, err in zip(exs, records, errors):
            if err is not None:
                # one line per distinct error (a failed journal write is one error for its whole batch),
                # none for one the journal has reported itself (a full disk: engine/faultlog.py)
                if isinstance(err, DealError):
                    refused.append(_refused_letter(ex, rec, err))
                    log.error("deal not recorded, reply withheld: %s; its message is kept as dead letter %s",
                              mask_text(str(err), ex.classified()), rec.deal_id)
                elif id(err) not in told and not getattr(err, "logged", False):
                    told.add(id(err))
                    log.error("deal not recorded, reply withheld: %s", err)
                s.unrecorded += 1
                ex.reply = None
                ex.unrecorded = True
        for letter in refused:      # the ledger refused the deal's row (and the dead letter it carried)
            try:
                await self.ledger.dead_letter(letter)
            except Exception as exc:    # noqa: BLE001 - logged; the reply is withheld all the same
                log.error("dead letter %s not stored either: %s", letter.id, exc)
        if self.totals is not None:
            counting.settle(self.totals, exs, records)
        if self.chains is not None:
            chaining.settle(self.chains, exs, records, errors)
        held: dict[int, str] = {}
        try:
            if self.txn is not None:
                # a deal whose calls went out and whose row was refused for storage: kept for a late write,
                # its end durable in the transaction log (engine/txn/late_record.py), which the channel hears
                held = await self.txn.after_commit(self, exs, records, errors)
        finally:
            _report_outcomes(every, exs, records, errors, held)

    def _deal(self, ex: Exchange, finished: datetime, deal_id: str) -> DealRecord:
        br = ex.route
        f = ex.failure
        if br is None:
            kind = (f.record_kind or f.kind) if f is not None else None      # a file refused whole: the record's
            route = f"({kind})" if kind in ("unrouted", "unauthenticated") else "(malformed)"
            deal_type = route.strip("()").upper()
            request_json = None
        else:
            route = br.name
            deal_type = ex.deal_type or br.name
            # a JSON request as received is stored as is (not rendered again)
            request_json = (ex.raw.decode("utf-8") if br.raw_json and ex.msg is ex.raw_msg
                            and ex.msg is not None else None)
        # positional (in ``_RECORD_FIELDS`` order): matching 19 keyword arguments costs ~1 us a deal
        return DealRecord(
            deal_type, route, self.version, self.channel, ex.status, ex.received_at, finished,
            ex.reference, ex.amount, ex.currency, ex.party, ex.code,
            _reason(f, ex) if f is not None else None,                          # reason
            ex.msg if ex.msg is not None else ex.raw,                           # request
            ex.reply_values,                                                    # response
            deal_id, [], [],                                                    # deal_id, steps, events
            ex.request_tags if br is None and ex.msg is not None else None,     # request_tags
            None,                                                               # response_tags
            request_json,
            ex.reply_json if ex.reply is not None else None,                    # response_json
        )


# DealRecord's fields as ``Dispatcher._deal`` passes them, by position: a field added or moved in DealRecord
# stops the import here instead of filling the wrong column
_RECORD_FIELDS = ("deal_type", "route", "config_version", "channel", "status", "received_at", "finished_at",
                  "reference", "amount", "currency", "party", "response_code", "reason", "request", "response",
                  "deal_id", "steps", "events", "request_tags", "response_tags", "request_json", "response_json")
if tuple(f.name for f in dataclasses.fields(DealRecord))[:len(_RECORD_FIELDS)] != _RECORD_FIELDS:
    raise ImportError("engine.deal.DealRecord's fields changed order: update Dispatcher._deal and _RECORD_FIELDS "
                      "(engine/runtime/dispatch.py)")


def _refused_letter(ex: Exchange, rec: DealRecord, err: DealError) -> DeadLetter:
    """The dead letter of an exchange whose deal row the ledger refused (``DealError``: a value it cannot
    store): its raw bytes and why, so that the message is never lost although no deal row tells its story.
    The route ran (its calls may have been applied); no reply was sent."""
    what = f"the route's outcome: {rec.status}" + (f" ({rec.reason})" if rec.reason else "")
    why = mask_text(str(err).removeprefix(f"deal {rec.deal_id}: "), ex.classified())
    reason = (f"unrecorded: deal {rec.deal_id} (route {rec.route}, channel {rec.channel}) was not recorded and "
              f"no reply was sent: the ledger refused its row: {why}; {what}; "
              f"its calls may have been applied at the counterparts: check there before a retry (a retry "
              f"runs the message again)")
    return DeadLetter(route=rec.route if ex.route is not None else None, channel=rec.channel, reason=reason,
                      raw=kept_raw(ex), config_version=rec.config_version, error_kind="unrecorded",
                      id=rec.deal_id)


def _at(values: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` (``XferRsp.Code``) in a reply's nested values, or None."""
    v = values
    for p in path:
        if isinstance(p, int):
            v = v[p] if isinstance(v, list) and -len(v) <= p < len(v) else None
        else:
            v = v.get(p) if isinstance(v, dict) else None
        if v is None:
            return None
    return v


def _takes(br: BoundRoute, scope: dict[str, Any], msg: Any) -> bool:
    """Whether ``br``'s ``when`` takes ``msg`` (evaluated in ``scope``, whose ``msg`` is put back)."""
    if br.when is None:
        return True
    before = scope["msg"]
    scope["msg"] = msg
    try:
        return bool(br.when(scope))
    except Exception:        # noqa: BLE001 - a `when` that cannot tell does not take it
        return False
    finally:
        scope["msg"] = before


def _without_mac(codec: Any, raw: bytes) -> Any:
    """``raw`` decoded without its MAC check (for an error reply to echo), or None."""
    plain = getattr(codec, "without_mac", None)
    if plain is None:
        return None
    try:
        return plain().decode(raw)
    except Exception:        # noqa: BLE001 - not readable either: the error reply sees no msg
        return None


def _reason(f: StepFailure, ex: Exchange) -> str:
    """The deal's reason (and its dead letter's): a batch file's record also says where it is in its file,
    so ``bsp dead list`` and ``bsp deals`` name the file, record, line and byte offset to look at."""
    where = place_text(_origin(ex))
    return f.reason() if where is None else f"{f.reason()}; {where}"


def _origin(ex: Exchange) -> Any:
    """The frame's place in a batch file (``conn.extra["origins"]``, one per frame of the batch:
    ``engine.channels.file_origin``), or None.  A recording tap hands a batch's frames one by one,
    each with the batch's list and its place in it (``batch_index``)."""
    extra = ex.conn.extra if ex.conn is not None else None
    origins = extra.get("origins") if extra else None
    if not origins:
        return None
    i = extra.get("batch_index", 0) + ex.index
    return origins[i] if 0 <= i < len(origins) else None


def header_view(h: bytes) -> dict[str, str]:
    """A framing header as the route sees it: ``header.hex``, and for a 5-byte ISO 8583 TPDU
    ``header.id``, ``header.dest`` and ``header.src`` (hex, e.g. "60", "0003", "0000")."""
    view = {"hex": h.hex().upper()}
    if len(h) == 5:
        view["id"], view["dest"], view["src"] = h[:1].hex().upper(), h[1:3].hex().upper(), h[3:5].hex().upper()
    return view


def _report_outcomes(every: list[Exchange], exs: list[Exchange], records: list[Any],
                     errors: list[Any] | None, held: dict[int, str] | None = None) -> None:
    """A channel that acknowledges per message (nats consume) puts a list in ``conn.extra["outcomes"]``;
    it receives ``(deal status, recorded)`` per exchange of ``every``, in frame order, once the ledger has
    answered.  The status is the deal record's: the transaction manager marks a repeated key ``duplicate``
    (settled, acked) where the exchange itself may have failed (kind duplicate: no answer to repeat).  An
    exchange not recorded (``exs`` holds those that were) is ``("deferred", False)``: handed back.
    ``recorded``: True (the row is stored), False (it is not, and nothing of the deal left the engine, or the
    ledger refused it for good) or, for a deal whose calls went out and whose row the ledger could not take
    (``held``, engine/txn/late_record.py), ``"logged"`` (its end is durable in the transaction log: the row is
    written once the ledger can, or by the next start) or ``"memory"`` (the log cannot be written either).
    A caller that wants to name the deal (``bsp dead retry``, and every ``tcp listen`` batch: a reply it cannot
    send is told to its deal, ``engine.channels.base.tell_not_sent``) also puts a list in ``conn.extra["deals"]``:
    it receives ``(deal id, reason)`` per exchange of ``every`` (the reason as the ledger stores it, masked;
    ``(None, None)`` for one not recorded)."""
    extra = getattr(every[0].conn, "extra", None) if every else None
    if not extra:
        return
    sink, named = extra.get("outcomes"), extra.get("deals")
    if named is not None:
        if len(exs) == len(every):      # every exchange recorded (the common case: a tcp listen batch)
            for rec in records:
                named.append((rec.deal_id, rec.reason))
        else:
            by_id = {id(ex): (rec.deal_id, rec.reason) for ex, rec in zip(exs, records)}
            named.extend(by_id.get(id(ex), (None, None)) for ex in every)
    if sink is None:
        return
    held = held or {}
    got = zip(exs, records, errors if errors is not None else [None] * len(exs))
    said = [(rec.status, True if err is None else held.get(id(ex), False)) for ex, rec, err in got]
    if len(exs) == len(every):
        sink.extend(said)
        return
    by_ex = {id(ex): s for ex, s in zip(exs, said)}
    sink.extend(by_ex.get(id(ex), (DEFERRED, False)) for ex in every)


class DispatchStats:
    """Counts by outcome (all channels), for progress displays and tests."""

    def __init__(self) -> None:
        self.committed = 0
        self.rejected = 0
        self.failed = 0
        self.duplicate = 0          # a repeated deal key, answered with the original reply
        self.unrecorded = 0

    def count(self, status: str) -> None:
        if status == "committed":
            self.committed += 1
        elif status == "rejected":
            self.rejected += 1
        elif status == "duplicate":
            self.duplicate += 1
        else:
            self.failed += 1

    @property
    def total(self) -> int:
        return self.committed + self.rejected + self.failed + self.duplicate


def _failure_text(exc: Exception) -> str:
    """A step's exception as a deal's reason: an expression's or a codec's error speaks for itself (it
    names its place); anything else is a bug, named by its class, and its text, which bsp did not write and
    cannot classify (a plugin's), has its card numbers masked, as the log's scrubber masks them."""
    if isinstance(exc, (EvalError, FormatError)):
        return str(exc)
    return mask_card_numbers(f"{type(exc).__name__}: {exc}")
