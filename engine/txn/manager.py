"""The transaction manager: route steps as participants, compensation, idempotency, durability.

One ``TxnManager`` per ledger (``manager_for(ledger)``), shared by the
dispatchers of a switchboard.  The dispatcher calls it at four points:

    await txn.ready(disp)                    # once: recover deals left in flight (engine.txn.recovery)
    await txn.run_route(disp, br, group)     # a transactional route's steps (instead of its own loop)
    await txn.fill(disp, exs, records)       # before the ledger commit: trace, events, tags, end records
    await txn.after_commit(disp, exs, records, errors)   # dead letters; wake waiting duplicates; late rows

For a transactional route (``engine.txn.plan``): every step is a participant
whose vote (``prepared`` / ``aborted`` / ``readonly``), outcome and duration
become one trace line; before the first call, the deal's business key is
checked (a repeated request gets the original answer, nothing runs again)
and the accepted request is logged durably (``engine.txn.log``) so that a
crash cannot lose it; when a step fails, the calls already done (and a call
left in doubt by a timeout) are compensated in reverse order, each at most
once per deal, except those made before a call that cannot be undone and went
through (the pivot, ``engine.txn.pivot``: they are kept and the deal flagged); an ISO 8583 0100/0200 left without an answer is reversed (in a running engine:
queued in the log and sent by the store-and-forward task, ``engine.txn.saf``, until acknowledged).

A *light* route (calls are its only side effects: ``RoutePlan.light``) runs its
steps like the dispatcher's own loop; before its first call one compact ``a``
entry per exchange (id, route, channel, raw; ISO 8583: the values as sent) goes
to the log in one group-committed append, and nothing else is written for it:
its ledger row is its end.  Only an ISO 8583 exchange that has to be reversed
becomes a full transaction (state, trace, ``end``).
"""
from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import trio

from dsl.eval_error import InputError
from engine.deal import DeadLetter, DealEvent, DealStep, new_deal_ids
from engine.faultlog import RESUMES, FaultLog
from engine.runtime import chaining, counting
from engine.runtime.exchange import StepFailure, preset_deal_id
from engine.runtime.stepfail import input_failure, step_failure
from engine.sad import kept_raw
from engine.totals import Holds
from engine.txn import (effects, fingerprint, flagging, keyhold, outcome, pivot, refused_repeat, reversal,
                       shared_keys)
from engine.txn.backlog import CATCH_UP_EVERY, LATER_BYTES, LATER_MAX, coalesce, log_fault, mib, size_of
from engine.journal import INLINE_MAX_MS
from engine.txn.late_record import LateRecords
from engine.txn.typed_values import tagged
from engine.txn.log import KEY_RETENTION, TxnLog, TxnLogError, log_path
from engine.txn.plan import REVERSIBLE, RoutePlan, plan_of
from engine.txn.safroute import target_of

log = logging.getLogger("bsp.txn")
_UTC = timezone.utc
SEALED = "$sealed"                               # a logged value encrypted with the field keyring
IN_DOUBT = frozenset({"timeout", "lost"})      # the counterpart may have done it


def _in_doubt(f: Any) -> bool:
    """A call failure after which the counterpart may have done it: a timeout, a lost connection,
    or an answer that cannot be trusted (a MAC or signature that does not verify)."""
    return f.kind in IN_DOUBT or getattr(f, "in_doubt", False)


@dataclass
class TxnState:
    """One exchange's transaction, kept until its deal is recorded."""

    deal_id: str
    key: str | None = None
    admitted: bool = False                 # logged as begun (owns its key)
    keyed: bool = False                    # ``key`` evaluated (after the deal step, or at admission)
    match: str | None = None               # the digest of the deal's ``match`` (engine.txn.fingerprint), at admission
    duplicate_of: dict[str, Any] | None = None
    trace: list[DealStep] = field(default_factory=list)
    events: list[DealEvent] = field(default_factory=list)
    done: list[int] = field(default_factory=list)       # call indexes to compensate, in order
    begin: dict[str, Any] | None = None                   # the begin entry, until it is written
    compensated: set[int] = field(default_factory=set)
    sent: dict[int, Any] = field(default_factory=dict)    # ISO 8583 call index -> request values sent
    logged: bool = False                   # its begin is durable in the log (its first call may go out)
    doubt: int | None = None               # a side-effect step that failed in doubt (engine.txn.effects)
    # what decides whether a failed deal keeps its key (engine.txn.keyhold): participants left in doubt and
    # calls refused with an answer (index -> failure kind), participants undone by a compensation that answered
    # and whose `expect` held on that answer
    doubted: dict[int, str] = field(default_factory=dict)
    answered: dict[int, str] = field(default_factory=dict)
    undone: set[int] = field(default_factory=set)
    unproven: set[int] = field(default_factory=set)   # compensations that answered without an `expect` to judge it
    # advices left in doubt that their call (``store and forward``) handed to store and forward: repeated
    # (0421) until the host acknowledges them (``error.forwarded``), not flagged for an operator
    forwarded: set[int] = field(default_factory=set)
    # participants whose compensation failed (index -> why): the deal is flagged for an operator
    # (``engine.txn.flagging``), as a plugin step left in doubt is
    undo_failed: dict[int, str] = field(default_factory=dict)
    # the saga pivot rule (``engine.txn.pivot``): the newest call without a compensation that went through,
    # and the undoable participants before it that were kept, not compensated (the deal is flagged)
    pivot: int | None = None
    kept: list[int] = field(default_factory=list)
    # the pivot is a call that nothing can undo left in doubt (``on doubt flag``, ``pivot.hold_doubt``): it
    # may have gone through, so the calls before it were kept, not a call known to have gone through
    doubt_pivot: bool = False
    recovered: bool = False                # resolved on restart (engine.txn.recovery): it always keeps its key
    freed: bool = False                    # ended with its key free (nothing of it stays at a counterpart)
    held: str | None = None                # ended failed with its key kept: why, and what the operator does
    state: str = "received"

    def move(self, to: str, detail: Any = None) -> None:
        self.events.append(DealEvent(datetime.now(_UTC), self.state, to, detail))
        self.state = to


# Every manager alive (for bookkeeping and tests); a weak set, so it keeps none of them alive.  The
# manager itself hangs on its ledger object (``_txn_manager``): a weak-keyed map from ledger to manager
# never freed either, as the manager holds its ledger (and with it the DuckDB store and the log's file).
LIVE: "weakref.WeakSet[TxnManager]" = weakref.WeakSet()
_ATTR = "_txn_manager"


def _idle(limiter: trio.CapacityLimiter) -> bool:
    """No other task is ready to run and no worker holds ``limiter``: a short blocking write
    (an fdatasync, ~0.1 ms here) on this thread costs nothing but saves a worker thread's
    round trip (~75 us)."""
    return limiter.borrowed_tokens == 0 and trio.lowlevel.current_statistics().tasks_runnable == 0


def _build_sent(call: Any, ex: Any) -> Any:
    """An ISO 8583 call's request values, built once before it leaves: the call step sends them
    (``call.sent``), the log keeps them so that a reversal copies them.  None when they cannot
    be built (the call step builds again and fails with the reason)."""
    try:
        values = call.build(ex.scope)
    except Exception:
        return None
    if values is not None:
        call.sent[id(ex.scope)] = values
    return values


def existing_manager(ledger: Any) -> "TxnManager | None":
    """The manager ``manager_for`` made for this very object (not one it wraps), or None."""
    try:
        return vars(ledger).get(_ATTR)
    except TypeError:           # an object without a __dict__ has none
        return None


def manager_for(ledger: Any) -> "TxnManager | None":
    """The manager of ``ledger`` (one per open ledger object); None without a ledger.  It lives as
    long as the ledger object does: the two are freed together."""
    if ledger is None:
        return None
    m = existing_manager(ledger)
    if m is None:
        m = TxnManager(ledger)
        setattr(ledger, _ATTR, m)
        LIVE.add(m)
    return m


class TxnManager:
    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self.keyring = getattr(ledger, "keyring", None)
        # the digests of a deal's party and match in its fingerprint: keyed with the field keyring
        self.digests = fingerprint.Digests(self.keyring)
        self._log: TxnLog | None = None
        self.states: dict[Any, TxnState] = {}          # Exchange -> state (identity)
        self.light: dict[Any, str] = {}                  # Exchange -> deal id (light routes, accepted)
        self.light_sent: dict[Any, Any] = {}             # Exchange -> ISO 8583 values as sent (light)
        self._inflight: dict[str, trio.Event] = {}       # key -> set when its deal is recorded
        self._recovered: set[str] = set()               # channels whose in-flight deals were resolved
        self.late = LateRecords()           # deals whose calls went out and whose row could not be written yet
        self.started = datetime.now(_UTC)   # letters claimed before this by a retry are a stopped process's
        self._recovering = trio.Lock() if _in_trio() else None
        self.limiter = trio.CapacityLimiter(1)
        self._lazy: list[dict[str, Any]] = []         # entries that ride along with the next write
        self._queued_lazy: list[dict[str, Any]] = []  # of the queued entries, those that were lazy
        # key -> the ``end`` of a deal answered while the log could not be written: repeats are answered
        # from it until it is durable (it rides along with the next write, ``_later``)
        self._unlogged: dict[str, dict[str, Any]] = {}
        # while the log cannot be written: (monotonic time of the last failed round, its error); entries waiting
        # in ``_lazy`` past ``later_max``, or past ``later_bytes`` of them, make new work be refused up front
        # (engine.txn.backlog; platform.yaml ledger.txn_backlog_entries / txn_backlog_bytes, set on the ledger)
        self.failing: tuple[float, TxnLogError] | None = None
        self.later_max = getattr(ledger, "txn_backlog_entries", None) or LATER_MAX
        self.later_bytes = getattr(ledger, "txn_backlog_bytes", None) or LATER_BYTES
        self._lazy_bytes = 0     # bytes of ``_lazy`` counted on the failure path (``_later``, ``_put_back``)
        self._behind: trio.Event | None = None         # set while failing (``backlog.keep_up`` waits on it)
        self._coalesce_at = 16                         # ``_lazy`` length at which it is coalesced next
        self._refusing = False                         # new work refused (the bound reached): said once
        self.monotonic = time.monotonic                # () -> seconds: the wait between two tries (tests)
        self.alarm = FaultLog(log, "transaction log")   # one line per fault, not per deal (engine/faultlog.py)
        # group commit: writes made while one is being synced share the next fdatasync
        self._queue: list[dict[str, Any]] = []
        self._open_round = 1                           # the round queued entries will be written in
        self._done_round = 0
        self._flushing = False
        self._round_end = trio.Event() if _in_trio() else None
        self._round_error: tuple[int, BaseException] | None = None
        self._last_ms = 0.0                            # the last write + fdatasync
        self.clock = time.time                         # epoch seconds: when a deal finished (key retention)
        self.saf: Any = None        # engine.txn.saf.Saf while an engine runs: reversals are stored and forwarded
        self.opening: Any = None    # engine.txn.keyopen.Opening: the log opened in a worker thread (key index rebuild)

    def log_exists(self) -> bool:
        return self._log is not None or log_path(self.ledger.path).exists()

    # ------------------------------------------------------------ the log
    @property
    def log(self) -> TxnLog:
        if self._log is None:
            if self.opening is not None:        # never two opens of one log (engine/txn/keyopen.py)
                raise RuntimeError(f"{log_path(self.ledger.path)}: the transaction log is being opened in a worker "
                                   f"thread (its key index is made again): await engine.txn.keyopen.open_log first")
            self._log = self.open_blocking(None)
        return self._log

    def open_blocking(self, rebuild: Any) -> TxnLog:
        """Open the log (blocking: the opening thread, or a worker thread, engine/txn/keyopen.py); ``rebuild``:
        an ``answers.Rebuild`` that follows and may stop a rebuild of the key index, or None."""
        # ``--ledger-sync none`` is not durable: nor are its accepted records
        # the key store's retention: ``bsp run --key-retention`` / platform.yaml ledger.key_retention
        opened = TxnLog(log_path(self.ledger.path), sync=getattr(self.ledger, "sync", "duckdb") != "none",
                        retention=getattr(self.ledger, "key_retention", KEY_RETENTION),
                        clock=lambda: self.clock(), rebuild=rebuild)
        from engine.txn.keycheck import check_keyring
        try:
            check_keyring(opened, self.keyring, opened.path)     # a keyring that cannot read it: refused
        except BaseException:
            opened.close()
            raise
        return opened

    @property
    def behind(self) -> trio.Event:
        """Set while entries wait because a write failed (``engine.txn.backlog.keep_up``)."""
        if self._behind is None:
            self._behind = trio.Event()
            if self.failing is not None:
                self._behind.set()
        return self._behind

    def waiting(self) -> int:
        """How many entries wait for the next write."""
        return len(self._lazy)

    async def catch_up(self) -> None:
        """Write the entries that wait, alone (``backlog.keep_up``); a failure is counted, not raised."""
        if self._lazy:
            try:
                await self.write([], catch_up=True)
            except TxnLogError:
                pass

    async def write(self, entries: list[dict[str, Any]], *, catch_up: bool = False) -> None:
        """Append ``entries`` durably (with any lazy ones); returns once they are fdatasync'ed.

        Group commit: while one round is being written, later writers queue and the
        first of them writes all queued entries in the next round (one fdatasync).

        A round that cannot be written (a full disk) raises ``TxnLogError`` in each of its
        writers (``logged``: the fault is reported once here, ``engine.faultlog``); its lazy
        entries (``done`` / ``recorded`` marks) go back to ride along with the next write.
        While ``later_max`` entries or ``later_bytes`` bytes or more wait that way, a write is refused up
        front (new work is not admitted: its entries would join them), but for one a second, which carries them.
        """
        if not entries and not catch_up:
            return
        if self._log is None and self.opening is not None:     # its key index is made again: waits for it
            from engine.txn.keyopen import open_log
            await open_log(self)
        failing = self.failing
        if failing is not None and not catch_up and self._over() \
                and self.monotonic() - failing[0] < CATCH_UP_EVERY:
            raise self._refused(failing[1])
        if self._lazy:
            self._queued_lazy.extend(self._lazy)
            entries, self._lazy = self._lazy + entries, []
            self._lazy_bytes = 0
        if not entries:
            return
        self._queue.extend(entries)
        ticket = self._open_round
        if self._round_end is None:
            self._round_end = trio.Event()
        while self._done_round < ticket:
            if self._flushing:
                await self._round_end.wait()
                continue
            self._flushing = True
            # let the other tasks ready now queue their entries first: they join this round
            await trio.lowlevel.cancel_shielded_checkpoint()
            batch, self._queue = self._queue, []
            lazy, self._queued_lazy = self._queued_lazy, []
            number = self._open_round
            self._open_round += 1
            try:
                log_ = self.log
                data = log_.frame(batch)
                t0 = time.perf_counter()
                if log_.fits(len(data)) and self._last_ms < INLINE_MAX_MS and _idle(self.limiter):
                    log_.append(batch, data)    # nothing else to run: no worker thread round trip (~75 us)
                else:
                    await trio.to_thread.run_sync(log_.append, batch, data, limiter=self.limiter)
                self._last_ms = (time.perf_counter() - t0) * 1000.0     # a slow disk: threads until it is quick
            except Exception as exc:
                err = self._failed(exc, len(batch))
                self._round_error = (number, err)
                self.failing = (self.monotonic(), err)
                self.behind.set()
                if lazy:
                    self._put_back(lazy)
            except BaseException as exc:       # cancelled: its writers see it as a failure too
                self._round_error = (number, exc)
                if lazy:
                    self._put_back(lazy)
                raise
            else:
                if self.failing is not None:
                    self.failing = None
                    self._behind = None
                if self._refusing:
                    self._refusing = False
                    log.warning("transaction log: the entries that waited are written (%d in this write); new "
                                "requests are taken again", len(batch))
                if self.alarm.failing("write"):
                    self.alarm.recovered("write")
                if self._unlogged:
                    for e in batch:
                        if e.get("t") == "end" and e.get("key") is not None:
                            self._unlogged.pop(e["key"], None)
            finally:
                self._flushing = False
                self._done_round = number
                ended, self._round_end = self._round_end, trio.Event()
                ended.set()
        err = self._round_error
        if err is not None and err[0] == ticket:
            exc = err[1]
            if isinstance(exc, TxnLogError):
                raise exc
            raise TxnLogError(f"{log_path(self.ledger.path)}: entries not written: {exc}") from exc

    def _failed(self, exc: BaseException, n: int) -> TxnLogError:
        """A round that could not be written, as its writers see it; reported once (the alarm)."""
        text = str(exc) if isinstance(exc, TxnLogError) else f"{log_path(self.ledger.path)}: {exc}"
        err = TxnLogError(text)
        err.__cause__ = exc
        self.alarm.failed("write", f"{text}; {n} entr{'y' if n == 1 else 'ies'} not written: requests not "
                                   f"sent yet fail (error reply, a failed deal, a dead letter), answers and marks "
                                   f"of calls already made are written with the next write; {RESUMES}")
        err.logged = True          # type: ignore[attr-defined]   # not again per deal
        return err

    async def write_or_later(self, entries: list[dict[str, Any]]) -> TxnLogError | None:
        """``write``; when the log cannot be written, the entries ride along with the next write that
        works (``_later``: what already happened must reach the log) and the error is returned."""
        try:
            await self.write(entries)
        except TxnLogError as exc:
            self._later(entries)
            return exc
        return None

    def _later(self, entries: list[dict[str, Any]]) -> None:
        """Entries a failed write could not make durable and that must still reach the log (what a call
        already sent, a compensation done, a deal's answer): they ride along with the next write."""
        self._lazy.extend(entries)
        self._lazy_bytes += size_of(entries)
        self._keep_small()

    def _put_back(self, lazy: list[dict[str, Any]]) -> None:
        """The lazy entries of a round that failed, back in front of those that came since."""
        self._lazy[:0] = lazy
        self._lazy_bytes += size_of(lazy)     # those of a served deal (``done``, ``recorded``) counted here
        self._keep_small()

    def _keep_small(self) -> None:
        """Drop the waiting entries a later one makes useless (``backlog.coalesce``); amortised: each time
        the list has doubled."""
        if len(self._lazy) >= self._coalesce_at:
            self._lazy = coalesce(self._lazy)
            self._lazy_bytes = size_of(self._lazy)
            self._coalesce_at = max(16, 2 * len(self._lazy))

    def waiting_bytes(self) -> int:
        """The bytes of the entries that wait, as counted when a write failed."""
        return self._lazy_bytes

    def _over(self) -> bool:
        """The waiting entries are at either bound (``later_max`` entries, ``later_bytes`` bytes)."""
        return len(self._lazy) >= self.later_max or self._lazy_bytes >= self.later_bytes

    def _refused(self, err: TxnLogError) -> TxnLogError:
        """New work refused up front: ``later_max`` entries, or ``later_bytes`` bytes of them, wait for a log
        that cannot be written.  The reason names the bound reached and how to raise it."""
        n, size = len(self._lazy), self._lazy_bytes
        over, keys = [], []
        if n >= self.later_max:
            over.append(f"at most {self.later_max}")
            keys.append("ledger.txn_backlog_entries")
        if size >= self.later_bytes:
            over.append(f"{mib(size)} of them, at most {mib(self.later_bytes)}")
            keys.append("ledger.txn_backlog_bytes")
        bound = f"{'; '.join(over)} before new work is refused: {' / '.join(keys)} in platform.yaml"
        text = (f"{log_path(self.ledger.path)}: {n} entries wait to be written to the transaction log ({bound}, "
                f"raise it if the engine's memory allows) since it cannot be written ({err}); not tried again "
                f"for {CATCH_UP_EVERY:g}s")
        if not self._refusing:
            self._refusing = True
            log.error("transaction log: %d entries wait to be written (%s): new requests that need the log are "
                      "refused (error reply, failed deal, dead letter) until it can be written again; %s",
                      n, bound, RESUMES)
        refused = TxnLogError(text)
        refused.logged = True      # type: ignore[attr-defined]
        return refused

    def seal(self, data: bytes | None, what: str) -> Any:
        """Bytes as logged: hex, or a keyring token when a field keyring is configured."""
        if data is None:
            return None
        if self.keyring is not None:
            return {"k": self.keyring.encrypt(bytes(data), what.encode())}
        return bytes(data).hex()

    def seal_values(self, value: Any, what: str) -> Any:
        """Decoded values as logged (an ISO 8583 request as sent, a call's reply: they hold the PAN,
        track data, names): as they are, or ``{"$sealed": <keyring token>}`` when a field keyring
        is configured, like raw bytes (``seal``)."""
        if value is None or self.keyring is None:
            return value
        from engine.txn.log import _default
        plain = orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
        return {SEALED: self.keyring.encrypt(plain, what.encode())}

    def unseal_values(self, value: Any, what: str) -> Any:
        if isinstance(value, dict) and len(value) == 1 and SEALED in value:
            if self.keyring is None:
                raise RuntimeError(f"{self.log.path}: {what} is encrypted; give the engine its field keyring (ledger.field_keys in platform.yaml, or BSP_FIELD_KEYS(_FILE)) to read it")
            return orjson.loads(self.keyring.decrypt(value[SEALED], what.encode()))
        return value

    def unseal(self, value: Any, what: str) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, dict):
            if self.keyring is None:
                raise RuntimeError(f"{self.log.path}: {what} is encrypted; give the engine its field keyring (ledger.field_keys in platform.yaml, or BSP_FIELD_KEYS(_FILE)) to read it")
            return self.keyring.decrypt(value["k"], what.encode())
        return bytes.fromhex(value)

    # ------------------------------------------------------------ hooks
    def takes(self, br: Any) -> bool:
        return plan_of(br).active

    async def ready(self, disp: Any) -> None:
        """Resolve the deals this channel left in flight (once per channel, before new traffic); first the log
        is opened (its key index made again in a worker thread when lost: engine/txn/keyopen.py)."""
        if disp.channel in self._recovered:
            return
        if self._log is None:
            from engine.txn.keyopen import open_log, start
            if start(self) is not None:
                await open_log(self)
        if self._recovering is None:
            self._recovering = trio.Lock()
        async with self._recovering:
            if disp.channel in self._recovered:
                return
            from engine.txn.recovery import recover_channel
            if any(plan_of(br).active for br in disp.routes) or log_path(self.ledger.path).exists():
                await recover_channel(self, disp)
            # dead letters a retry stopped midway left claimed: settled from what the ledger now knows
            from engine.txn.retry_settle import settle_retries
            await settle_retries(self, disp.channel, self.started)
            self._recovered.add(disp.channel)

    async def run_route(self, disp: Any, br: Any, group: list[Any]) -> None:
        if plan_of(br).light:
            await self.run_light(disp, br, group)
            return
        taken = await br.limiter.acquire(len(group))
        try:
            await self.run_steps(disp, br, group, 0)
            failed = [ex for ex in group if ex.failure is not None]
            await self.compensate(br, failed)
            outcome.tell(self.states, failed)     # error.undone / error.flagged, before `on error` answers
            await disp.run_on_error(br, group)
        finally:
            br.limiter.release(taken)

    async def run_steps(self, disp: Any, br: Any, group: list[Any], start: int) -> None:
        """Run ``br``'s steps from ``start`` over ``group``: prepare/vote per participant, trace."""
        plan = plan_of(br)
        for ex in group:
            if ex not in self.states:
                self.states[ex] = TxnState(preset_deal_id(ex) or new_deal_ids(1)[0])
        live = list(group)
        # a keyed route: a request a step refuses before admission may repeat a deal already answered
        # (engine.txn.refused_repeat); looked at only when one was refused, never on the success path
        repeats = plan.key is not None and start <= plan.admit_at
        for i in range(start, len(br.steps)):
            step = br.steps[i]
            if i == plan.admit_at and start <= i:
                held = await refused_repeat.answer(self, plan, group) if len(live) < len(group) else None
                repeats = False
                live = await self._admit(plan, live)
                if held:
                    refused_repeat.in_batch(self, plan, group, held)
            if not live:
                break
            name = plan.step_name(i, step)
            call = plan.calls.get(i)
            acts = i in plan.effects                 # a plugin step that acts outside bsp: like a call
            started = datetime.now(_UTC)
            if call is not None or acts:
                if acts:
                    await effects.acting(self, plan, i, name, live)
                else:
                    await self._calling(plan, i, live)
                refused = [ex for ex in live if ex.failure is not None]
                if refused:                          # the log could not be written: not sent
                    for ex in refused:
                        self._vote(ex, name, _kind(step), started, 0.0, True)
                    live = [ex for ex in live if ex.failure is None]
                    if not live:
                        break
            t0 = time.perf_counter()
            if step.batch:
                try:
                    await step.run_batch(live)
                except Exception as exc:    # logged with its deals, one line per kind (engine/runtime/internal_log.py)
                    for ex in live:
                        ex.fail(step_failure(step, exc, f"{type(exc).__name__}: {exc}"))
                ms = (time.perf_counter() - t0) * 1000.0
                for ex in live:
                    self._vote(ex, name, _kind(step), started, ms, (call is not None and not call.readonly) or acts)
            else:
                for ex in live:
                    s0 = time.perf_counter()
                    disp._run_sync(step, ex)
                    self._vote(ex, name, _kind(step), started, (time.perf_counter() - s0) * 1000.0, acts)
            if call is not None:
                await self._called(plan, call, live)
            elif acts:
                effects.acted(self, plan, i, name, live)
            live = [ex for ex in live if ex.failure is None]
            if i == plan.key_at:
                self._key(plan, live)               # in the scope the deal step saw
                live = [ex for ex in live if ex.failure is None]
                if plan.counts:
                    self._answered(live)
        held = await refused_repeat.answer(self, plan, group) if repeats and len(live) < len(group) else None
        if live and plan.admit_at == len(br.steps) and start <= plan.admit_at:
            await self._admit(plan, live)           # a keyed route without a call: after its last step
        if held:
            refused_repeat.in_batch(self, plan, group, held)

    # ------------------------------------------------------------ the light path
    async def run_light(self, disp: Any, br: Any, group: list[Any]) -> None:
        """A light route: the dispatcher's loop, plus one ``a`` record per exchange before the first
        call (durable before it leaves); an ISO 8583 call left in doubt (or followed by a failure) is
        reversed with the values as sent."""
        plan = plan_of(br)
        first = plan.first_call
        call = plan.calls[first]
        made: list[Any] = []                      # ISO 8583: exchanges whose call may have happened
        left: dict[Any, list[str]] = {}           # failed: the calls that went through (or may have): error.undone
        pivots: dict[Any, int] = {}               # a later call (no compensation) went through: not reversed
        doubts: dict[Any, int] = {}               # a call left in doubt that nothing undoes: flagged
        taken = await br.limiter.acquire(len(group))
        try:
            live = group
            for i, step in enumerate(br.steps):
                if i == first:
                    await self._accept_light(plan, call, live)
                    live = [ex for ex in live if ex.failure is None]
                    if not live:
                        break
                await disp.run_step(br, step, live)
                if i > first and made and i in plan.calls and not plan.calls[i].readonly:
                    # a later call of a light route has no compensation: once it went through it is the
                    # deal's pivot (engine.txn.pivot), and the ISO 8583 first call is no longer reversed
                    for ex in live:
                        if ex.failure is None:
                            pivots[ex] = i
                if i == first and call.iso:
                    sent = call.sent
                    for ex in live:
                        sent.pop(id(ex.scope), None)          # values a failing call step did not take
                        f = ex.failure
                        if f is None or _in_doubt(f):
                            made.append(ex)
                still = [ex for ex in live if ex.failure is None]
                if len(still) != len(live) and i >= first:
                    for ex in live:
                        f = ex.failure
                        if f is not None:
                            doubt = i in plan.calls and _in_doubt(f) and not plan.calls[i].readonly
                            left[ex] = [c.name for j, c in plan.calls.items()
                                        if not c.readonly and (j < i or (j == i and doubt))]
                            if doubt and not (i == first and call.iso):
                                doubts[ex] = i       # no compensation on a light route: flagged (below)
                live = still
                if not live:
                    break
            if made:
                await self._reverse_light(plan, call, [ex for ex in made if ex.failure is not None], pivots,
                                          doubts)
            for ex, i in doubts.items():
                if ex not in self.states:            # not made a full transaction by a reversal
                    self._flag_light(plan, ex, i)
            outcome.tell(self.states, group, left)   # error.undone / error.flagged, before `on error` answers
            await disp.run_on_error(br, group)
        finally:
            br.limiter.release(taken)

    async def _accept_light(self, plan: RoutePlan, call: Any, live: list[Any]) -> None:
        """One ``a`` entry per exchange, all in one group-committed append, before the call leaves."""
        route, name, iso, seal, seal_values = plan.route.name, call.name, call.iso, self.seal, self.seal_values
        ids = new_deal_ids(len(live))
        entries: list[dict[str, Any]] = []
        at_of: dict[int, str] = {}
        light = self.light
        plain = self.keyring is None        # ``seal`` is the bytes' hex: no context text to build per entry
        for ex, did in zip(live, ids):
            did = preset_deal_id(ex) or did
            at = at_of.get(id(ex.received_at))
            if at is None:
                at = at_of[id(ex.received_at)] = ex.received_at.isoformat()
            raw = ex.raw
            e = {"t": "a", "id": did, "r": route, "c": ex.channel, "at": at,
                 "raw": (None if raw is None else bytes(raw).hex()) if plain else seal(raw, f"raw|{did}"), "s": name}
            values = _build_sent(call, ex) if iso else None
            if values is not None:
                self.light_sent[ex] = values
                e["v"] = seal_values(values, f"values|{did}|{name}")
            light[ex] = did
            entries.append(e)
        try:
            await self.write(entries)
        except TxnLogError as exc:
            for ex in live:
                light.pop(ex, None)
                self.light_sent.pop(ex, None)
                call.sent.pop(id(ex.scope), None)
                ex.fail(log_fault(exc, f"request not sent to {name}", str(plan.route.pos)))

    async def _reverse_light(self, plan: RoutePlan, call: Any, failed: list[Any],
                             pivots: dict[Any, int] | None = None, doubts: dict[Any, int] | None = None) -> None:
        """ISO 8583 exchanges of a light route to reverse: they become full transactions.  One whose later
        call went through (``pivots``: a call without a compensation, engine.txn.pivot) is not reversed
        but flagged for an operator; so is one whose later call was left in doubt (``doubts``: nothing on a
        light route undoes it) under ``on doubt flag`` (the default: it may have gone through); under ``on
        doubt compensate`` that one is reversed and flagged for the call in doubt (engine.txn.flagging), as is
        one whose reversal fails."""
        for ex in failed:
            did = self.light.pop(ex, None)
            if did is None:
                continue
            f = ex.failure
            st = self._light_state(ex, did, call, None if f is not None and (ex in (doubts or {})) else f)
            values = self.light_sent.pop(ex, None)
            st.done = [call.index]
            if f is not None and _in_doubt(f) and ex not in (doubts or {}):
                st.doubted[call.index] = f.kind
            if values is not None:
                st.sent[call.index] = values
            p = (pivots or {}).get(ex)
            if p is not None:
                st.done.append(p)
                st.pivot = p
                pivot.split(plan, st)            # the first call is kept, not reversed
                flagging.flag(plan, st)
                continue
            d = (doubts or {}).get(ex)
            if d is not None:                    # a later call in doubt (it has no undo on a light route)
                self._doubt_light(plan, ex, st, d)
                if pivot.hold_doubt(plan, st):   # `on doubt flag` (the default): the 0200 is kept, not reversed
                    pivot.split(plan, st)
                    flagging.flag(plan, st)
                    continue
            # `on doubt compensate`: the later call in doubt is no pivot, the 0200 is reversed
            await self.compensate_step(plan, call.index, ex, st)
            flagging.flag(plan, st)              # a call in doubt nothing undoes, a reversal that failed

    def _flag_light(self, plan: RoutePlan, ex: Any, i: int) -> None:
        """A light deal whose call ``i`` was left in doubt (no compensation undoes it): a full transaction,
        flagged for an operator (``engine.txn.flagging``), before its ``on error`` steps."""
        did = self.light.pop(ex, None)
        if did is None:
            return
        self.light_sent.pop(ex, None)
        first = plan.calls[plan.first_call]
        st = self._light_state(ex, did, first, None if i != first.index else ex.failure)
        st.done = [] if first.readonly else [first.index]
        self._doubt_light(plan, ex, st, i)
        flagging.flag(plan, st)

    def _light_state(self, ex: Any, did: str, call: Any, f: Any) -> TxnState:
        """The transaction state of a light deal made a full one: accepted, its first call's trace line
        (``f``: its failure, None when it went through)."""
        st = self.states[ex] = TxnState(did, admitted=True, logged=True)
        st.move("accepted")
        st.move(f"calling {call.name}")
        now = datetime.now(_UTC)        # no per-step timing on the light path: the time since receipt
        st.trace.append(DealStep(call.name, "call", f.kind if f is not None else "ok", ex.received_at,
                                 round((now - ex.received_at).total_seconds() * 1000.0, 3),
                                 "aborted" if f is not None else "prepared",
                                 None if f is None else {"code": f.code, "reason": f.detail}))
        return st

    def _doubt_light(self, plan: RoutePlan, ex: Any, st: TxnState, i: int) -> None:
        """Light deal ``st``: its calls after the first up to call ``i``, which was left in doubt."""
        f = ex.failure
        first = plan.first_call
        for j, c in sorted(plan.calls.items()):
            if first < j <= i:
                if not c.readonly:
                    st.done.append(j)
                st.move(f"calling {c.name}")
                st.trace.append(DealStep(c.name, "call", f.kind if j == i else "ok", ex.received_at,
                                         round((datetime.now(_UTC) - ex.received_at).total_seconds() * 1000.0, 3),
                                         "aborted" if j == i else "readonly" if c.readonly else "prepared",
                                         {"code": f.code, "reason": f.detail} if j == i else None))
        st.doubted[i] = f.kind

    def _vote(self, ex: Any, name: str, kind: str, started: datetime, ms: float, side_effect: bool) -> None:
        st = self.states[ex]
        f = ex.failure
        if f is None:
            vote, outcome = ("prepared" if side_effect else "readonly"), "ok"
        else:
            vote, outcome = "aborted", f.kind
        detail = None if f is None else {"code": f.code, "reason": f.detail}
        st.trace.append(DealStep(name, kind, outcome, started, round(ms, 3), vote, detail))

    # ------------------------------------------------------------ idempotency + durability
    async def _admit(self, plan: RoutePlan, live: list[Any]) -> list[Any]:
        """Before the first call: drop duplicates (answered from the key store) and log the rest."""
        out: list[Any] = []
        batch_keys: dict[str, Any] = {}
        past: dict[str, dict[str, Any]] = {}
        if plan.key is not None:
            self._key(plan, [ex for ex in live if not self.states[ex].keyed])   # a deal step after this point
            self._match(plan, live)
            live = [ex for ex in live if ex.failure is None]
            self._prefetch(live)
            past = await self._past_keys(live)
        for ex in live:
            st = self.states[ex]
            key = st.key
            if key is not None:
                while key in self._inflight and key not in batch_keys:
                    await self._inflight[key].wait()     # the original is running in another batch
                end = self.log.ends.get(key)
                if end is None and self._unlogged:
                    end = self._unlogged.get(key)
                if end is not None:
                    if not self.conflicts(plan, ex, st, end.get("fp"), end["id"]):
                        self._duplicate(ex, st, end)
                    continue
                old = past.get(key)
                if old is not None and key not in batch_keys:
                    if not self.conflicts(plan, ex, st, old.get("fp"), old["deal_id"]):
                        self._duplicate_past(ex, st, old)
                    continue
                if key in batch_keys:
                    first = batch_keys[key]
                    if not self.conflicts(plan, ex, st, fingerprint.of_exchange(first, self.states[first].match,
                                                                                  self.digests),
                                          self.states[first].deal_id):
                        st.duplicate_of = {"pending": first}
                    continue
                batch_keys[key] = ex
                self._inflight[key] = trio.Event()
            out.append(ex)
        store = shared_keys.store_of(out) if plan.key is not None else None
        if store is not None:                       # keys shared by the engines of one consumer
            out = await shared_keys.claim(self, store, plan, live, out)
        now = datetime.now(_UTC).isoformat()
        marked = [plan.step_name(i, r) for i, r in sorted(plan.effects.items())]
        for ex in out:
            st = self.states[ex]
            st.admitted = True
            st.move("accepted", {"key": st.key} if st.key else None)
            st.begin = {"t": "begin", "id": st.deal_id, "route": plan.route.name, "channel": ex.channel,
                        "key": st.key, "at": ex.received_at.isoformat(), "logged": now,
                        "raw": self.seal(ex.raw, f"raw|{st.deal_id}")}
            if marked:               # a `running` mark precedes each of these steps: recovery may trust its absence
                st.begin["effects"] = marked
            if st.match is not None:  # the deal's match digest: a deal resolved on restart keeps it in its fp
                st.begin["m"] = st.match
            if ex.holds:             # its `limit` reservations: reserved again at a restart (engine/totals.py)
                st.begin["holds"] = [h.detail() for h in ex.holds]
        return out

    def _key(self, plan: RoutePlan, live: list[Any]) -> None:
        """Evaluate the deal key of each exchange (once: right after the keyed deal step, or at
        admission when the deal step comes later)."""
        if plan.key is None:
            return
        for ex in live:
            st = self.states[ex]
            st.keyed = True
            try:
                v = plan.key(ex.scope)
            except InputError as exc:      # the key read from a request value of the wrong shape
                ex.fail(input_failure(exc, str(plan.route.pos)))
                continue
            except Exception as exc:
                ex.fail(StepFailure("internal", f"deal key: {exc}", where=str(plan.route.pos)))
                continue
            st.key = None if v is None else f"{plan.route.name}|{v}"

    def _answered(self, live: list[Any]) -> None:
        """A deal whose key the key store holds answered (its original ended keeping it) is a duplicate at
        admission, or a key conflict: neither counts, so its ``limit`` steps reserve nothing (engine/steps/
        limit.py) and take no room from the deals beside it while it waits for its admission.  Only then: a
        copy of a deal still running reserves until the original ends (the original may fail and free its key,
        and the copy then runs as a deal of its own), as does a key looked up in the ledger past the key
        store's retention (read at admission).  A duplicate is never admitted, so no ``begin`` would have
        carried the reservation: nothing of the transaction log's crash guarantees changes."""
        ends, unlogged = self.log.ends, self._unlogged
        self._prefetch(live)
        for ex in live:
            key = self.states[ex].key
            if key is not None and ex.holds is None and (key in ends or key in unlogged):
                ex.holds = Holds()
                ex.holds.repeat = True

    def _prefetch(self, live: list[Any]) -> None:
        """The batch's keys looked up in the key store's answers files at once (``KeyStore.prefetch``: one query
        a batch, nothing while the files hold nothing); the look-ups that follow are then in memory."""
        prefetch = getattr(self.log.ends, "prefetch", None)
        if prefetch is not None:
            prefetch([self.states[ex].key for ex in live])

    def _match(self, plan: RoutePlan, live: list[Any]) -> None:
        """The digest of each keyed exchange's ``deal { match = ... }``, when the key is looked up (after the
        route's rules, so that a request they refuse is refused with their words); never kept in clear."""
        if plan.match is None:
            return
        for ex in live:
            st = self.states[ex]
            if st.key is None or ex.failure is not None:
                continue
            try:
                st.match = self.digests(plan.match(ex.scope))
            except InputError as exc:      # read from a request value of the wrong shape
                ex.fail(input_failure(exc, str(plan.route.pos)))
            except Exception as exc:
                ex.fail(StepFailure("internal", f"deal match: {exc}", where=str(plan.route.pos)))

    async def _past_keys(self, live: list[Any]) -> dict[str, dict[str, Any]]:
        """Keys the key store no longer holds (dropped after the retention) but the ledger does:
        one lookup per batch, and only once the log has dropped keys (``horizon``); keys held
        in the store or running now are not looked up."""
        if self.log.horizon is None:
            return {}
        ends, inflight = self.log.ends, self._inflight
        keys = sorted({k for ex in live if (k := self.states[ex].key) is not None
                       and k not in ends and k not in inflight})
        lookup = getattr(self.ledger, "deals_by_key", None)
        if not keys or lookup is None:
            return {}
        return await lookup(keys, self.digests)

    @staticmethod
    def raw_of(plan: RoutePlan, ex: Any) -> Any:
        """A repeat's own party or match value, for a fingerprint whose digests were made otherwise than
        this engine's now (``fingerprint.differs``): the match evaluated again only then."""
        def raw(field: str) -> Any:
            if field == "party":
                return ex.party
            return plan.match(ex.scope) if getattr(plan, "match", None) is not None else None
        return raw

    def conflicts(self, plan: RoutePlan, ex: Any, st: TxnState, fp: str | None, original: str) -> bool:
        """A repeat of a deal key whose deal is not the original's (``engine.txn.fingerprint``: another amount,
        currency or party): refused with kind ``key_conflict``, not answered with the original's answer nor
        run; the original is untouched.  ``fp``: the original's fingerprint (None for a key recorded before
        fingerprints were: no verdict, a plain duplicate).  Costs nothing for a key seen for the first time."""
        if fp is None:
            return False
        diffs = fingerprint.differs(fp, fingerprint.of_exchange(ex, st.match, self.digests),
                                    self.raw_of(plan, ex), self.digests)
        if not diffs:
            return False
        fields = [d[0] for d in diffs]
        # a keyed route without a call checks its key after its steps: the answer its own `reply` step built
        # is not sent (nothing of it was done); its `on error` answers, else the channel's error reply
        ex.reply = ex.reply_values = ex.reply_json = None
        st.move("key_conflict", {"original": original, "key": st.key, "fields": fields})
        ex.fail(StepFailure(
            "key_conflict",
            f"deal key {st.key!r} was used by deal {original} for another deal: {fingerprint.describe(diffs)}; "
            f"not run, and not answered with deal {original}'s answer (which stays as it was). A repeat must "
            f"carry the same amount, currency and party (and the deal's match): the sender reused the key for a different request; "
            f"send it with a new key (or the original request again)",
            code="12", text=f"deal key already used for another deal ({', '.join(fields)} "
                            f"{'differs' if len(fields) == 1 else 'differ'})",
            where=str(plan.route.pos)))
        return True

    def _duplicate_past(self, ex: Any, st: TxnState, old: dict[str, Any], refused: dict[str, Any] | None = None
                        ) -> None:
        """A repeat of a deal whose key is past the retention: the ledger has the deal but not its
        reply bytes, so it is not run again and fails with kind ``duplicate`` (code 94).  ``refused``: what a
        step refused the repeat with before admission (``engine.txn.refused_repeat``)."""
        st.duplicate_of = {"id": old["deal_id"], "status": old["status"], "code": "94", "reply": None,
                          "past": True}
        detail = {"original": old["deal_id"], "key": st.key, "past_retention": True}
        if refused is not None:
            st.duplicate_of["refused"] = detail["refused"] = refused
        st.move("duplicate", detail)
        ex.fail(StepFailure("duplicate", f"repeats deal {old['deal_id']} (key {st.key!r}, {old['status']} "
                            f"{old['finished_at']}), whose answer is past the key store's retention; "
                            f"not run again", code="94"))

    def _duplicate(self, ex: Any, st: TxnState, end: dict[str, Any]) -> None:
        st.duplicate_of = end
        reply = self.unseal(end.get("reply"), f"reply|{end['id']}")
        ex.reply = reply
        ex.repeats = (end.get("status"), end.get("kind"), end.get("code"))
        ex.reply_values = ex.reply_json = None      # a reply step that ran before: its answer is not sent
        refused = end.get("refused")                # a step refused the repeat (engine.txn.refused_repeat)
        st.move("duplicate", {"original": end["id"], "key": st.key} if refused is None else
                {"original": end["id"], "key": st.key, "refused": refused})
        if reply is None:
            # the original's code when it failed; a committed original's (00 ...) is no answer to a repeat it
            # cannot repeat: 94
            code = end.get("code") if end.get("status") != "committed" else None
            ex.fail(StepFailure("duplicate", f"repeats deal {end['id']} (key {st.key!r}), which ended "
                                f"{end['status']} without an answer to repeat", code=code or "94"))

    async def _calling(self, plan: RoutePlan, i: int, live: list[Any]) -> None:
        """Durable before the call leaves: the begin records (first call) and 'sending' marks."""
        entries: list[dict[str, Any]] = []
        call = plan.calls[i]
        name = call.name
        for ex in live:
            st = self.states[ex]
            values = _build_sent(call, ex) if call.iso else None
            if values is not None:
                st.sent[i] = values
            if st.admitted:
                if st.begin is not None:
                    entries.append(st.begin)
                    st.begin = None
                entry = {"t": "step", "id": st.deal_id, "step": name, "phase": "sending"}
                if values is not None:
                    entry["values"] = self.seal_values(_jsonable(values), f"values|{st.deal_id}|{name}")
                entries.append(entry)
                if not call.readonly:      # an enquiry changes nothing: never compensated, never left standing
                    st.done.append(i)      # from now on it may have happened: compensate on failure
        try:
            await self.write(entries)
        except TxnLogError as exc:
            self._not_sent(plan, i, live, exc)
            return
        for ex in live:
            st = self.states[ex]
            if st.admitted:
                st.logged = True
                st.move(f"calling {name}")

    def _not_sent(self, plan: RoutePlan, i: int, live: list[Any], exc: TxnLogError) -> None:
        """The log refused the marks written before call ``i`` leaves: it is not sent.  A deal whose begin
        was in that write left nothing anywhere: it fails and its key is free again (a repeat runs as a
        new deal).  One whose earlier calls went out fails too, and they are compensated as usual."""
        call = plan.calls[i]
        for ex in live:
            st = self.states[ex]
            call.sent.pop(id(ex.scope), None)
            st.sent.pop(i, None)
            if not st.admitted:
                continue
            if i in st.done:
                st.done.remove(i)
            if not st.logged:
                self._unadmit(st)
            ex.fail(log_fault(exc, f"request not sent to {call.name}", str(plan.route.pos)))

    def _unadmit(self, st: TxnState) -> None:
        """A deal of which nothing reached the log nor left the engine: not admitted after all, its key
        free again (its ledger row names no key: no ``accepted`` event)."""
        st.admitted, st.begin = False, None
        st.events = [e for e in st.events if e.to_state != "accepted"]
        if st.events:
            st.state = st.events[-1].to_state
        else:
            st.state = "received"
        if st.key is not None:
            ev = self._inflight.pop(st.key, None)
            if ev is not None:
                ev.set()

    async def _called(self, plan: RoutePlan, call: Any, live: list[Any]) -> None:
        entries = []
        eager = False
        if call.sent:
            for ex in live:                # values the call step did not take (it failed before)
                call.sent.pop(id(ex.scope), None)
        for ex in live:
            st = self.states[ex]
            if not st.admitted:
                continue
            f = ex.failure
            if call.forward and self.saf is not None and (f is None or (not _in_doubt(f) and f.kind != keyhold.NOT_SENT)):
                self._acknowledges_queued(call, ex, st)
            if f is None:
                entries.append({"t": "step", "id": st.deal_id, "step": call.name, "phase": "done",
                                "reply": self.seal_values(_typed(ex.scope.get(call.name)),
                                                          f"reply|{st.deal_id}|{call.name}")})
                if pivot.is_pivot(plan, call.index):
                    # a pivot (engine.txn.pivot): the calls before it are no longer compensated, so its
                    # `done` must be durable before a later step can fail; else a crash would leave it
                    # `sending` (in doubt) and a restart under `compensate` would undo them
                    eager = eager or any(pivot.undoable(plan, j) for j in st.done if j < call.index)
                    st.pivot = call.index
            elif not _in_doubt(f):
                if call.index in st.done:
                    st.done.remove(call.index)   # refused / unreachable: nothing to undo
                entries.append({"t": "step", "id": st.deal_id, "step": call.name, "phase": "failed"})
                if f.kind != keyhold.NOT_SENT:   # it reached the counterpart (answered): the key stays taken
                    st.answered[call.index] = f.kind
            elif not call.readonly:              # an enquiry in doubt left nothing at the counterpart
                st.doubted[call.index] = f.kind
        # 'done' marks need no fsync of their own: they reach the disk with the next write (a pivot's do)
        if eager:
            await self.write_or_later(entries)
        else:
            self._lazy.extend(entries)

    def _acknowledges_queued(self, call: Any, ex: Any, st: TxnState) -> None:
        """A ``store and forward`` advice the host answered: the same reversal queued for another deal (the
        engine's own, waiting between its attempts) is acknowledged by that answer (``Saf.acknowledged_by``)."""
        values = st.sent.get(call.index)
        answer = ex.scope.get(call.name)
        if values is None or not reversal.is_advice(values.get("t")) or not isinstance(answer, dict) \
                or answer.get("39") is None:
            return
        item = self.saf.acknowledged_by(target_of(call.runner), values, st.deal_id, answer)
        if item is not None:
            st.move("queued reversal acknowledged", {"call": call.name, "deal": item.deal_id, "deal_call": item.step,
                                                     "response_code": reversal.response_code(answer)})

    # ------------------------------------------------------------ compensation
    async def compensate(self, br: Any, failed: list[Any]) -> None:
        """Undo, in reverse order, the calls each failed exchange made (and those left in doubt)."""
        plan = plan_of(br)
        for ex in failed:
            st = self.states.get(ex)
            if st is None or not st.done:
                continue
            # the saga pivot rule (engine.txn.pivot): only what was made after the newest call that cannot
            # be undone and went through (or, under `on doubt flag`, may have: left in doubt) is compensated;
            # what it kept flags the deal
            pivot.hold_doubt(plan, st)
            for i in reversed(pivot.split(plan, st)):
                await self.compensate_step(plan, i, ex, st)
            # a plugin step left in doubt and not undone, any participant whose compensation failed, or one
            # the pivot rule kept
            flagging.flag(plan, st)

    async def compensate_step(self, plan: RoutePlan, i: int, ex: Any, st: TxnState) -> None:
        """Run one participant's compensation; a second run for the same deal and step does nothing."""
        if i in st.compensated:
            return
        if i in plan.effects:                    # a plugin step with side effects: its own undo hook
            await effects.undo(self, plan, i, ex, st)
            return
        call = plan.calls[i]
        if call.iso and call.compensation is None:
            values = st.sent.get(i) or _iso_values(call, ex)
            # ``call ... store and forward``: an advice left in doubt (sent, no answer) is repeated as itself
            # (0421) until acknowledged; one answered (or never sent) has nothing to undo or to repeat
            forward = call.forward and i in st.doubted and values is not None and reversal.is_advice(values.get("t"))
            if values is None or (str(values.get("t")) not in REVERSIBLE and not forward):
                return
            saf = self.saf
            if forward:
                st.forwarded.add(i)
            if saf is not None:
                # store and forward: durably queued now, sent by the SAF task until acknowledged
                st.compensated.add(i)
                if saf.queued(st.deal_id, call.name):
                    return
                other = saf.same(target_of(call.runner), values) if forward else None
                if other is not None:
                    # the same reversal (key and original) is queued already, another deal's (the engine's own
                    # reversal of the purchase, which the front end's reversal reuses the STAN of): joined, not
                    # queued twice; that deal's story tells its attempts and acknowledgement
                    st.move("reversal queued", {"call": call.name, "mti": item_mti(values, forward),
                                                "store_and_forward": True, "forwarded": True,
                                                "joined": other.deal_id, "joined_call": other.step})
                    saf.join(other, st.deal_id, call.name)     # its acknowledgement is told to this deal too
                    return
                entry, item = saf.entry(st.deal_id, call.name, plan.route.name, ex.channel, values, call.runner,
                                        sent=1 if forward else 0)
                entries = [entry, {"t": "step", "id": st.deal_id, "step": call.name, "phase": "reversing"}]
                detail = {"call": call.name, "mti": item.mti, "store_and_forward": True}
                if forward:
                    detail["forwarded"] = True       # the call's own advice, repeated: not a reversal of it
                # queued all the same (the call may have happened): sent while the engine runs, in
                # the log with the next write that works; a crash before then leaves it to recovery
                exc = await self.write_or_later(entries)
                if exc is not None:
                    detail["not_logged"] = str(exc)
                saf.add(item)
                st.move("reversal queued", detail)
                return
            attempts = await reversal.reverse(values, call.runner, sent=1 if forward else 0)
            for n, a in enumerate(attempts):
                st.trace.append(DealStep(f"{call.name}.reversal" + (".repeat" if n or forward else ""), "reversal",
                                         a.outcome, a.started_at, round(a.duration_ms, 3), None,
                                         {"mti": a.mti, "detail": a.detail}))
                st.move(f"reversal {a.mti}", {"outcome": a.outcome, "detail": a.detail,
                                              **({"response_code": a.code, "approved": a.approved}
                                                 if a.outcome == "acknowledged" else {})})
            ok = bool(attempts) and attempts[-1].outcome == "acknowledged"
            if ok and forward:
                st.move(f"reversed {call.name}", {"attempts": len(attempts) + 1, "mti": attempts[-1].mti,
                                                  "response_code": attempts[-1].code,
                                                  "approved": attempts[-1].approved, "forwarded": True})
            elif ok:
                st.undone.add(i)
            else:                                # not reversed: flagged for an operator (engine.txn.flagging)
                last = attempts[-1] if attempts else None
                st.undo_failed[i] = (f"its reversal was not acknowledged after {len(attempts)} attempt(s)"
                                     + (f", the last {last.mti} {last.outcome}: {last.detail}" if last else ""))
        elif call.compensation is not None:
            comp = call.compensation
            # durable before it leaves, like a call's ``sending``: a crash while it runs leaves the call
            # ``compensating``, which recovery never sends again (it may have reached the counterpart); a
            # call still ``done`` / ``sending`` was not being compensated, and recovery compensates it once.
            # The write also carries the lazy ``failed`` mark of the call that made the deal fail.  A log that
            # cannot be written does not hold the compensation back: the mark follows with the next write
            await self.write_or_later([{"t": "step", "id": st.deal_id, "step": call.name, "phase": "compensating"}])
            saved, saved_error = ex.failure, ex.scope.get("error")
            # its `expect` reads the call's name as the compensation's own answer (docs/transactions.md); the
            # steps after (`on error`) see the call's answer again
            missing = object()
            answer = ex.scope.get(call.name, missing)
            ex.failure = None                    # a compensation runs like a call: see its own outcome
            started = datetime.now(_UTC)
            t0 = time.perf_counter()
            try:
                await comp.run_batch([ex])
            finally:
                if answer is missing:
                    ex.scope.pop(call.name, None)
                else:
                    ex.scope[call.name] = answer
            cf, ex.failure = ex.failure, saved
            ex.scope["error"] = saved_error      # `on error` steps see the deal's failure, not this one
            ok = cf is None
            st.trace.append(DealStep(comp.name, "compensate", "ok" if ok else cf.kind, started,
                                     round((time.perf_counter() - t0) * 1000.0, 3), None,
                                     None if ok else {"code": cf.code, "reason": cf.detail}))
            st.move(f"compensated {call.name}" if ok else f"compensation of {call.name} failed",
                    None if ok else cf.detail)
            # undone (the deal may free its key, engine.txn.keyhold) only when its `expect` held on its own
            # answer: an answer alone (no `expect`) does not say the counterpart accepted the cancel
            if ok:
                (st.undone if comp.expect is not None else st.unproven).add(i)
            else:
                st.undo_failed[i] = f"{cf.kind}: {cf.detail}"
        else:
            return
        st.compensated.add(i)
        mark = {"t": "step", "id": st.deal_id, "step": call.name,
                "phase": "compensated" if ok else "compensation_failed"}
        await self.write_or_later([mark])      # it happened: the mark follows with the next write that works

    # ------------------------------------------------------------ recording
    async def fill(self, disp: Any, exs: list[Any], records: list[Any]) -> None:
        """Complete the deal records (ids, trace, events, tags) and make the answers durable."""
        entries: list[dict[str, Any]] = []
        ended: list[tuple[int, TxnState, dict[str, Any]]] = []
        for k, (ex, rec) in enumerate(zip(exs, records)):
            br = ex.route
            if br is not None:
                plan = plan_of(br)
                if plan.request_tags:
                    rec.request_tags = plan.request_tags
                if plan.response_tags and rec.response is not None:
                    rec.response_tags = plan.response_tags
            did = self.light.get(ex)
            if did is not None:                 # a light deal: its id is the one its ``a`` entry names
                rec.deal_id = did
            st = self.states.get(ex)
            if st is None:
                if ex.failure is not None:
                    rec.events = [DealEvent(rec.finished_at, "received", rec.status,
                                            {"kind": ex.failure.kind})]
                continue
            rec.deal_id = st.deal_id
            dup = st.duplicate_of
            if dup is not None and "pending" in dup:        # its original ran in this batch
                original = self.states.get(dup["pending"])
                orig_ex = dup["pending"]
                end = {"id": original.deal_id if original else "?", "status": orig_ex.status,
                       "reply": self.seal(orig_ex.reply, "reply|x") if orig_ex.reply is not None else None,
                       "code": orig_ex.code}
                ex.reply = orig_ex.reply
                refused = dup.get("refused")                # a step refused this copy (engine.txn.refused_repeat)
                detail = {"original": end["id"], "key": st.key}
                if refused is not None:
                    end["refused"] = detail["refused"] = refused
                st.duplicate_of = end
                st.move("duplicate", detail)
                rec.response = orig_ex.reply_values
                rec.response_json = orig_ex.reply_json if orig_ex.reply is not None else None
            if st.duplicate_of is not None:
                rec.status = "duplicate"
                held = st.duplicate_of.get("held")
                rec.reason = (f"duplicate of deal {st.duplicate_of['id']} (key {st.key!r}); "
                              + ("past the key store's retention: not run again, no answer to repeat (94)"
                                 if st.duplicate_of.get("past") else
                                 "original answer repeated" if st.duplicate_of.get("reply") is not None else
                                 f"not run again; the original ended {st.duplicate_of.get('status')} without "
                                 f"an answer to repeat")
                              + (f"; its key stays taken: {held}" if held else "")
                              + _refused_note(st.duplicate_of.get("refused")))
                # the code answered: the original's, repeated with its answer; without an answer to repeat, the
                # repeat's own failure's (the original's failure code, or 94)
                f = ex.failure
                rec.response_code = f.code if f is not None and f.kind == "duplicate" \
                    else st.duplicate_of.get("code")
            else:
                rec.reason = flagging.reason_note(st, rec.reason)     # a participant not undone: say so
                st.move(rec.status, self._settle_key(ex, st, rec.status))
            rec.steps = st.trace
            rec.events = st.events
            if st.admitted:
                ended.append((k, st, {"t": "end", "id": st.deal_id, "key": None if st.freed else st.key,
                                "status": rec.status,
                                "code": rec.response_code, "reason": rec.reason,
                                "reply": self.seal(ex.reply, f"reply|{st.deal_id}"),
                                "route": rec.route, "channel": rec.channel, "version": rec.config_version,
                                "at": rec.received_at.isoformat(), "type": rec.deal_type,
                                "ref": rec.reference, "amount": rec.amount, "currency": rec.currency,
                                "party": rec.party, "fin": self.clock()}))
                if st.key is not None and not st.freed:
                    # what the deal is about, kept with its key: a repeat must be the same deal (key_conflict)
                    fp = fingerprint.of(rec.amount, rec.currency, rec.party, st.match, self.digests)
                    if fp is not None:
                        ended[-1][2]["fp"] = fp
                if st.held:
                    ended[-1][2]["held"] = st.held
                if ex.holds and counting.counts(rec):
                    # what it counts in `limit` totals, should a crash come before its row (``recovery._rerecord``)
                    ended[-1][2]["holds"] = [h.detail() for h in ex.holds]
                if ex.links and rec.status == "committed":
                    # its statement links (and breaks), should a crash come before its row (``recovery._rerecord``)
                    ended[-1][2]["links"] = chaining.logged(ex.links)
                if rec.status in ("rejected", "failed") and self.ledger is not None:
                    # its dead letter, should a crash come before its row (``recovery._rerecord``): dropped
                    # from the log with the rest of the entry once the row is recorded (``log._answer_only``)
                    d = dead_letter_of(ex, rec)
                    ended[-1][2].update(raw=self.seal(d.raw, f"raw|{st.deal_id}"), kind=d.error_kind,
                                        dcode=d.error_code)
                entries.append(ended[-1][2])
        try:
            await self.write(entries)
        except TxnLogError as exc:
            await self._answers_not_logged(disp, exs, records, ended, exc)

    def _settle_key(self, ex: Any, st: TxnState, status: str) -> dict[str, Any] | None:
        """Whether the finished deal keeps its key (``engine.txn.keyhold``).  Kept: ``st.held`` says why, for
        its duplicates.  Free (it failed and nothing of it stays at a counterpart): its ``end`` names no key,
        so a repeat (a ``bsp dead retry``) runs as a new deal; its ``accepted`` event names the key as
        ``key_freed`` (not in the ledger's deal key index either: a repeat past the retention runs too) and the
        final event's detail, returned, says so."""
        if st.key is None or not st.admitted or ex.route is None:
            return None
        held = keyhold.held(plan_of(ex.route), st, status)
        if held is not None:
            st.held = held or None
            return None
        st.freed = True
        for n, e in enumerate(st.events):
            if e.to_state == "accepted" and isinstance(e.detail, dict) and e.detail.get("key") == st.key:
                st.events[n] = DealEvent(e.at, e.from_state, e.to_state, {"key_freed": st.key})
        return {"key_freed": st.key, "why": "nothing of the deal reached a counterpart, or all that did was "
                                            "undone: a repeat or a retry runs as a new deal"}

    async def _answers_not_logged(self, disp: Any, exs: list[Any], records: list[Any],
                            ended: list[tuple[int, TxnState, dict[str, Any]]], exc: TxnLogError) -> None:
        """The ``end`` entries of a batch could not be written.  A deal whose calls may have gone out
        keeps its outcome (it is what happened): its end rides along with the next write that works and
        answers repeats meanwhile, and its ledger row says so (a restart before then finds the row:
        ``engine.txn.recovery``).  A deal of which nothing left the engine fails instead, its key free."""
        for k, st, end in ended:
            ex, rec = exs[k], records[k]
            if st.logged or st.done or _acts(ex.route):
                self._later([end])
                if end.get("key") is not None:
                    self._unlogged[end["key"]] = end
                if st.events:
                    last = st.events[-1]
                    note: dict[str, Any] = {"answer_not_logged": f"{exc}; written with the next write that works"}
                    if (ex.reply is not None and ex.reply_json is not None and rec.response_json == ex.reply_json
                            and not rec.response_tags):
                        # the row's response column is the reply as sent: a restart before the log takes the
                        # end answers a repeat from it (``recovery._answered_rows``)
                        note["reply_in_row"] = True
                    st.events[-1] = DealEvent(last.at, last.from_state, last.to_state, note)
                continue
            self._unadmit(st)
            ex.reply = ex.reply_values = ex.reply_json = None
            ex.failure = None
            where = str(plan_of(ex.route).route.pos) if ex.route is not None else None
            ex.fail(log_fault(exc, "the deal's answer could not be logged, so nothing was done and it failed", where))
            if ex.route is not None:
                await disp.run_on_error(ex.route, [ex])     # the route's `on error reply`, as for any failure
            if ex.reply is None and disp.error_reply is not None:
                disp._run_sync(disp.error_reply, ex, during_error=True)
            new = disp._deal(ex, rec.finished_at, st.deal_id)
            new.request_tags = rec.request_tags
            if new.response is not None:
                new.response_tags = rec.response_tags
            st.events.clear()
            st.state = "received"
            st.move(new.status)
            new.steps, new.events = st.trace, st.events
            records[k] = new

    def attach_dead_letters(self, exs: list[Any], records: list[Any]) -> None:
        """Give each rejected or failed record its dead letter before it is committed: the ledger stores it
        in the deal's own transaction (and journal record), so a crash after the deal is durable never
        loses its dead letter (it was written after the commit, on its own, until bench/chaos.py found
        deals a SIGKILL had left without one)."""
        if self.ledger is None:
            return
        for ex, rec in zip(exs, records):
            if rec.status in ("rejected", "failed"):
                rec.dead_letter = dead_letter_of(ex, rec)

    async def after_commit(self, disp: Any, exs: list[Any], records: list[Any],
                           errors: list[BaseException | None] | None = None) -> dict[int, str]:
        """Returns, for each deal whose calls went out and whose row the ledger could not take (kept for a late
        write), ``id(exchange)`` -> ``late_record.LOGGED`` or ``MEMORY``: whether its end is durable in the log."""
        await shared_keys.finish(self, exs, records)     # before the channel acknowledges
        letters = []
        done_ids, done_keys = [], []
        late: list[tuple[Any, Any, str | None, BaseException, bool]] = []
        light = self.light
        for ex, rec, err in zip(exs, records, errors or [None] * len(records)):
            logged = False          # something of it is in the log: its calls may have gone out
            if light and light.pop(ex, None) is not None:
                logged = True
                if self.light_sent:
                    self.light_sent.pop(ex, None)
                if err is None:
                    done_ids.append(rec.deal_id)      # its row is its end: the ``a`` entry can go
            st = self.states.pop(ex, None)
            if err is not None and (logged or (st is not None and st.admitted)):
                # its row could not be written (a full disk): its end made durable in the log, and the row
                # written as soon as the ledger can (engine/txn/late_record.py), not only at the next start
                full = st is not None and st.admitted
                late.append((ex, rec, st.key if full and not st.freed else None, err, not full))
            if st is not None and st.admitted and err is None:
                done_ids.append(st.deal_id)
                if st.key is not None and not st.freed:
                    done_keys.append(st.key)
            if st is not None and st.admitted and st.key is not None:
                ev = self._inflight.pop(st.key, None)
                if ev is not None:
                    ev.set()
            if rec.status in ("rejected", "failed") and self.ledger is not None and rec.dead_letter is None:
                letters.append(dead_letter_of(ex, rec))     # a record committed without one (not through the dispatcher)
        saf = self.saf
        if saf is not None and (saf.unrecorded or saf.joining):     # their reversals' story may now be added
            for rec, err in zip(records, errors or [None] * len(records)):
                if rec.deal_id in saf.unrecorded or rec.deal_id in saf.joining:
                    saf.recorded(rec.deal_id, err is None,
                                 flagged=any(e.to_state == "flagged" for e in rec.events or ()))
        if done_ids:   # no fsync of its own: reaches the disk with the next record
            self._lazy.append({"t": "recorded", "ids": done_ids, "keys": done_keys})
        held = await self.late.hold(self, late) if late else {}
        if letters:
            async with trio.open_nursery() as n:
                for letter in letters:
                    n.start_soon(self._dead_letter, letter)
        return held

    def forget(self, exs: list[Any]) -> None:
        """A batch that failed before its deals were recorded (``Dispatcher.handle`` raised, e.g. a
        log write failed): drop its exchanges' state.  A key whose deal never reached the log is free
        again (a repeat runs as a new deal: nothing of the original left the engine); one whose begin
        is in the log stays taken (a repeat waits) until a restart's recovery settles that deal."""
        pending = self._log.pending if self._log is not None else {}
        for ex in exs:
            self.light.pop(ex, None)
            self.light_sent.pop(ex, None)
            if ex.route is not None and ex.scope is not None:
                for call in plan_of(ex.route).calls.values():
                    call.sent.pop(id(ex.scope), None)
            st = self.states.pop(ex, None)
            if st is not None and self.saf is not None and st.deal_id in self.saf.joining:
                self.saf.not_joined(st.deal_id)      # no row for it: nothing to tell it of the joined reversal
            if st is not None and st.admitted and st.key is not None and st.deal_id not in pending:
                ev = self._inflight.pop(st.key, None)
                if ev is not None:
                    ev.set()

    async def _dead_letter(self, letter: DeadLetter) -> None:
        try:
            await self.ledger.dead_letter(letter)
        except Exception as exc:   # the deal row holds the story; a lost dead letter is logged
            if not getattr(exc, "logged", False):       # a full disk: the ledger reported it once
                log.error("dead letter for deal %s not stored: %s", letter.id, exc)


def dead_letter_of(ex: Any, rec: Any) -> DeadLetter:
    """The dead letter of a rejected or failed exchange: its raw bytes, the deal's reason and code, id = the deal's
    id.  Its ``error_code`` is the deal's (``response_code``: the failed rule's, the counterpart's refusal's, the
    kind's default) whether or not a reply was sent: a file's record, a NATS message without a reply subject and
    a request whose reply was withheld have one too (before 2026-11-28 only a letter answered had a code)."""
    f = ex.failure
    return DeadLetter(
        route=rec.route if ex.route is not None else None, channel=rec.channel,
        reason=rec.reason or "failed", raw=kept_raw(ex), config_version=rec.config_version,
        error_kind=f.kind if f is not None else None,
        error_code=rec.response_code or (f.code if f is not None else None),
        id=rec.deal_id)


def item_mti(values: dict[str, Any], forward: bool) -> str:
    """The MTI a queued reversal goes as next: an advice's repeat (0421) when its call sent it once."""
    try:
        return reversal.reversal_of(values, repeat=forward)["t"]
    except ValueError:
        return str(values.get("t"))


def _refused_note(refused: dict[str, Any] | None) -> str:
    """What a duplicate's reason adds when a step refused the repeat before its key was checked."""
    if refused is None:
        return ""
    code = f" {refused['code']}" if refused.get("code") else ""
    return (f"; a step refused the repeat ({refused.get('kind')}{code}: {refused.get('reason')}), but its key is "
            f"the original's, answered: the original's answer stands")


def _acts(br: Any) -> bool:
    """Whether route ``br`` has a plugin step that sends or books something (it keeps no log marks)."""
    return br is not None and any(getattr(s, "side_effects", False) for s in br.steps)


def _kind(step: Any) -> str:
    s = getattr(step, "step", None)
    if s is not None and getattr(s, "kind", None):
        return s.kind
    return type(step).__name__.removesuffix("Step").lower() or "step"


def _jsonable(value: Any) -> Any:
    from engine.deal import jsonable
    try:
        return jsonable(value)
    except TypeError:
        return None


def _typed(value: Any) -> Any:
    """A call's answer as logged: its Decimals, dates and bytes tagged (engine/txn/typed_values.py), so that
    a deal completed after a crash reads them back as the running engine had them."""
    try:
        return tagged(value)
    except (TypeError, ValueError):
        return None


def _iso_values(call: Any, ex: Any) -> dict[str, Any] | None:
    try:
        return (call.build or call.runner.build_values)(ex.scope)
    except Exception:
        return None


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
        return True
    except RuntimeError:
        return False
