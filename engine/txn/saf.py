"""Store and forward (SAF) of ISO 8583 reversals, as card switches do it.

A 0100 / 0200 left without an answer is reversed (``engine.txn.reversal``).  In a
running engine the deal does not wait for that: its reversal is *queued* (a ``rev``
entry in the transaction log, fdatasync'ed with the group commit) and the deal is
answered and recorded at once, with a ``reversal queued`` event.  This module's task
(one per transaction manager, started by ``Switchboard.run`` and ``LiveEngine.run``)
then sends the 0400 / 0420, and repeats it as 0401 / 0421 with a growing pause
(the call's timeout, doubled each time up to ``backoff_cap``, then drawn between half
and all of it: jitter, so that reversals queued together do not repeat in step)
**until the host acknowledges** (0410 / 0430), whatever the answer's DE 39 says: the code
is kept on the deal (``response_code``, ``approved``), and one that is not an approval
(``engine.txn.approval.APPROVED``) is counted (``not_approved``) and logged, never repeated.  It never gives up: after
``alert_after`` attempts the reversal is flagged for an operator (an error in the log,
a ``reversal flagged`` event on the deal, ``bsp status``; the deal then counts as flagged: its route's
``flagged``, ``bsp deals --flagged``) and it goes on.  One kept
waiting for a place (below) is flagged, while the channel's attempts fail, once the time
its ``alert_after`` attempts take on their schedule has passed (``Saf.window``), even
with fewer attempts: the length of the queue ahead of it does not delay its flag.

The queue is worked by one task per outbound channel (a ``Lane``): the reversals
sleeping their pause wait in a heap ordered by the time of their next attempt; those
due go oldest first (by the time they were queued), at most ``reversal_in_flight``
(the ``tcp connect`` channel's option, default ``REVERSAL_IN_FLIGHT``) attempts in
flight at the host at a time, so a host back from an outage is not hit by every
reversal queued during it at once (bench/bench_saf.py).  An attempt's task lives only
while it is in flight and its line is written: ten thousand queued reversals are ten
thousand small ``Item`` objects, not ten thousand sleeping tasks.

Each attempt, its outcome and the acknowledgement are appended to the deal in the
ledger afterwards (``deal_steps`` ``NAME.reversal`` / ``NAME.reversal.repeat``,
``deal_events`` ``reversal 0420`` / ``reversal 0421`` / ``reversed NAME``), through the
ledger's writer, so the audit chain continues; group-committed there (``Ledger.append_stories``):
the lines of the attempts that end while one ledger transaction is written go in the next one.  In the log each attempt is marked
before it leaves (``revtry``: after a restart the next one is a repeat), the
acknowledgement once it came (``revack``: never sent again), and ``revrec`` once it is
on the deal (the entry is dropped).  On start the queue is rebuilt from the log.

**A reload** may take away the call a reversal goes by.  A reversal belongs to the counterpart its
original was sent to: the outbound channel, by name (``Item.target``, ``o`` in the ``rev`` entry).  Each
attempt goes by the running configuration's ISO 8583 call on that channel (``Resolver``): the same route's
call of the same name when it still calls it, else any route's call on it (a route renamed, the channel's
options changed: the new channel object).  When the running configuration has no call on that channel
(a reload removed it) the reversal is **stranded**: kept queued, in the log as before, but not sent (the
channel it went by is stopped), with a ``reversal stranded`` event on the deal saying so, ``stranded`` in
``status()`` (``bsp status`` shows the engine degraded), and ``bsp_reversals_pending{state="stranded"}``.
``reconfigured`` (called by ``LiveEngine`` after each reload) sends the stranded reversals the new
configuration has a call for again (a ``reversal resumed`` event, due at once) and strands those it has
none for; ``would_strand`` tells ``bsp reload --dry-run`` how many a configuration would strand.

Route tests and replays run without this task: their reversals run inline, as before
(``TxnManager.saf`` is None), so a test can script and expect them in call order.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import trio

from engine.channels.options import REVERSAL_IN_FLIGHT   # tcp connect ``reversal_in_flight``'s default
from engine.deal import DealEvent, DealStep
from engine.txn import reversal, safcancel
from engine.txn.safroute import Resolver, label as _label, stranded_why as _stranded_why, target_of

log = logging.getLogger("bsp.txn.saf")
_UTC = timezone.utc

ALERT_AFTER = 5           # attempts after which a reversal is flagged for an operator (it goes on)
BACKOFF_CAP = 60.0        # seconds: the longest pause between two attempts
FLAGS_PRUNE = 64          # a lane's flag heap is pruned of reversals done once it doubled (at least this many)
JOIN_ROW_WAIT = 60.0      # seconds an acknowledgement waits for the row of a deal that joined the reversal
SWEEP_EVERY = 1.0         # seconds: a lane flags the reversals kept waiting past their time at most this often


@dataclass
class Item:
    """One queued reversal."""

    deal_id: str
    step: str                 # the call's name
    route: str
    channel: str              # the channel the deal came in on
    values: dict[str, Any]    # the original request as sent
    queued_at: str
    n: int = 0                # attempts made (also before a restart)
    runner: Any = None        # the call step (its channel, codec, timeout); None: resolved by name
    ack: dict[str, Any] | None = None
    flagged: bool = False
    last: str | None = None   # the last attempt's outcome and detail
    recorded: trio.Event = field(default_factory=trio.Event)
    has_row: bool = True      # the deal's ledger row was committed (else nothing is appended)
    deal_flagged: bool = False     # its deal's row has the event ``flagged``: already counted as flagged
    seq: int = 0              # the order it was queued in (after queued_at: oldest first)
    flag_at: float | None = None   # trio time its ``alert_after`` attempts take on their schedule (``Saf.window``)
    flag_lane: str | None = None   # the lane whose flag heap holds it
    busy: bool = False        # an attempt is in flight
    held: bool = False        # it was due once while its lane's ``reversal_in_flight`` places were all taken
    ready_tick: int | None = None  # in its lane's heap of those due since this turn of the lane's loop
    target: str | None = None      # the outbound channel the original went to (None: a log entry older than it)
    ticket: int = 0           # its live entry in a lane's heaps (older entries are skipped; 0: in none)
    stranded: str | None = None    # why it is not sent: no call for its channel in the running configuration
    checked: bool = True      # False: left by a previous run, not sent before its deal's resolution is asked
    paused: bool = False      # an operator's resolution of its deal is being recorded: not sent meanwhile
    cancel: dict[str, Any] | None = None   # the resolution that cancelled it (in flight then: dropped after)
    dropped: bool = False     # cancelled and out of the queue (engine.txn.safcancel.drop): once only
    joined: list["Joiner"] = field(default_factory=list)   # deals whose advice joined it in this run (``Saf.join``)
    loaded: bool = False      # left by a previous run: the deals that joined it then are asked of the ledger

    @property
    def key(self) -> str:
        return f"{self.deal_id}|{self.step}"

    @property
    def mti(self) -> str:
        return reversal.reversal_of(self.values, repeat=self.n > 0)["t"]

    @property
    def state(self) -> str:
        """``stranded`` (kept, not sent), ``flagged`` (for an operator, still sent) or ``queued``."""
        return "stranded" if self.stranded is not None else "flagged" if self.flagged else "queued"

    def status(self) -> dict[str, Any]:
        return {"deal_id": self.deal_id, "route": self.route, "call": self.step, "channel": self.target,
                "state": self.state, "attempts": self.n, "queued_at": self.queued_at, "flagged": self.flagged,
                "stranded": self.stranded, "last": self.last}


@dataclass
class Joiner:
    """A deal whose ``store and forward`` advice joined a queued reversal instead of being queued again
    (``Saf.join``): told of that reversal's acknowledgement once its own row is committed."""

    deal_id: str
    call: str
    recorded: trio.Event = field(default_factory=trio.Event)
    has_row: bool = True


class Lane:
    """The reversals of one outbound channel: those waiting for their next attempt (a heap by due time),
    those due (a heap by age: oldest first), and the attempts in flight (at most ``limit``)."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        # (due, seq, ticket, item), (queued_at, seq, ticket, item): an entry whose ticket is not the item's
        # is stale (the item was stranded, or pushed again) and skipped
        self.waiting: list[tuple[float, int, int, Item]] = []
        self.ready: list[tuple[str, int, int, Item]] = []
        self.in_flight = 0
        self.peak = 0
        self.wake = trio.Event()
        self.started = False
        self.flags: list[tuple[float, int, Item]] = []        # (flag_at, seq, item): not flagged yet
        self.failing = False      # the channel's last attempt that ended was not acknowledged
        self.tick = 0             # turns of the lane's loop
        self.swept = -math.inf    # trio time of its last ``Saf._sweep``
        self.flags_kept = 0       # entries ``flags`` kept at its last pruning (``Saf._prune_flags``)

    def push(self, item: Item, due: float) -> None:
        heapq.heappush(self.waiting, (due, item.seq, item.ticket, item))
        self.wake.set()

    def release(self) -> None:
        self.in_flight -= 1
        self.wake.set()


class Saf:
    """The reversal queue of one transaction manager, and the tasks that work it (one per channel)."""

    def __init__(self, mgr: Any, resolve: Callable[[Item], Any] | None = None, *,
                 alert_after: int | None = None, backoff_cap: float | None = None,
                 backoff_first: float | None = None) -> None:
        self.mgr = mgr
        self.resolve = resolve
        ledger = mgr.ledger
        self.alert_after = alert_after or getattr(ledger, "reversal_alert_after", None) or ALERT_AFTER
        self.backoff_cap = backoff_cap if backoff_cap is not None else \
            (getattr(ledger, "reversal_backoff_cap", None) or BACKOFF_CAP)
        self.backoff_first = backoff_first    # None: the call's timeout
        self.random = random.Random()         # the jitter of the pauses
        self.lanes: dict[str, Lane] = {}      # outbound channel name -> its lane
        self._seq = itertools.count(1)
        self._tickets = itertools.count(1)
        self.stranded: dict[str, Item] = {}   # key -> the items not sent: no call for their channel (a reload)
        self._later: list[tuple[Item, DealEvent]] = []   # events to write once the task runs
        self._done: list[Item] = []           # acknowledged before a restart: only their story and revrec left
        self.items: dict[str, Item] = {}
        self.unrecorded: dict[str, list[Item]] = {}   # deal id -> its items whose deal row is not committed yet
        self.joining: dict[str, list[Joiner]] = {}    # deal id -> its joins whose deal row is not committed yet
        self._joins_loaded: dict[str, list[dict[str, Any]]] | None = None   # the ledger's joins to loaded items
        self._joins_lock = trio.Lock()
        self.attempts = 0
        self.acknowledged = 0
        self.flagged = 0                      # reversals flagged for an operator (since the start)
        self.flagged_deals: set[str] = set()  # deals counted as flagged (route's flagged) by a reversal's flag
        self.not_approved = 0                 # acknowledged with a DE 39 not approved (since the start)
        self.not_approved_channels: dict[str, int] = {}   # the same, per outbound channel
        self.cancelled = 0                    # dropped by an operator's resolution of their deal (since the start)
        self.joined_flagged = 0               # deals that joined a reversal so cancelled, flagged (safcancel.flag_joined)
        self._unchecked: list[Item] = []      # left by a previous run: sent once the ledger says not resolved
        self._nursery: trio.Nursery | None = None
        self._empty = trio.Event()
        self._empty.set()
        # channel objects an attempt is waiting on now (id -> attempts): a reload closes a channel object it
        # replaced only once none waits on it (``done_with``), so the host's answer is read, not cut off
        self.sending: dict[int, int] = {}
        self._sent = trio.Event()

    # ------------------------------------------------------------ queueing
    def entry(self, deal_id: str, step: str, route: str, channel: str, values: dict[str, Any],
              runner: Any, *, sent: int = 0) -> tuple[dict[str, Any], Item]:
        """The log entry of a new reversal and its queue item (queued with ``add`` once the entry
        is durable).  ``sent``: attempts already made (1: an advice its call sent and got no answer to,
        ``call ... store and forward``; the queue's first attempt is its repeat, 0421, also after a restart)."""
        from engine.txn.manager import _jsonable
        now = datetime.now(_UTC).isoformat()
        values = reversal.kept(values)        # no track 2, PIN block or chip data kept while queued
        e = {"t": "rev", "id": deal_id, "step": step, "r": route, "c": channel, "at": now,
             "values": self.mgr.seal_values(_jsonable(values), f"values|{deal_id}|{step}")}
        target = target_of(runner)
        if target is not None:
            e["o"] = target                  # the counterpart (outbound channel) it is owed to
        if sent:
            e["n"] = sent
        return e, Item(deal_id, step, route, channel, values, now, n=sent, runner=runner, target=target)

    def queued(self, deal_id: str, step: str) -> bool:
        return f"{deal_id}|{step}" in self.items

    def same(self, target: str | None, values: dict[str, Any]) -> Item | None:
        """A reversal queued for outbound channel ``target``, not acknowledged nor cancelled, that is the same
        reversal as the one ``values`` would be sent as: the same MUX key (MTI class, DE 11, DE 41) and the same
        original (DE 90).  A front end's reversal of a purchase whose own reversal the engine is repeating (it
        reuses the purchase's STAN) is not queued a second time: it joins that one (``TxnManager.compensate_step``),
        so the host gets one reversal of the original, repeated until acknowledged.  A scan of the queue, made
        only when an advice is handed to store and forward."""
        if target is None:
            return None
        want = _identity(values)
        if want is None:
            return None
        for item in self.items.values():
            if item.target == target and item.ack is None and item.cancel is None and not item.dropped \
                    and _identity(item.values) == want:
                return item
        return None

    def join(self, item: Item, deal_id: str, call: str) -> None:
        """Deal ``deal_id``'s advice (call ``call``) joined ``item`` (the same reversal, queued already): when
        ``item`` is acknowledged, that deal gets the acknowledgement too (``_joined_story``)."""
        j = Joiner(deal_id, call)
        item.joined.append(j)
        self.joining.setdefault(deal_id, []).append(j)

    def not_joined(self, deal_id: str) -> None:
        """Deal ``deal_id``'s batch failed before its row was written (``TxnManager.forget``): its joins wait no more."""
        for j in self.joining.pop(deal_id, ()):
            j.has_row = False
            j.recorded.set()

    def acknowledged_by(self, target: str | None, values: dict[str, Any], deal_id: str,
                        answer: dict[str, Any]) -> Item | None:
        """A forwarded advice (``call ... store and forward``, deal ``deal_id``) that the host answered
        (``answer``, any DE 39) and that is the same reversal (MUX key and DE 90) as one queued here, waiting
        between its attempts: the host has that reversal now, so the queued one is acknowledged by this answer
        and not repeated (its deal's story says through which deal).  A front end often sends its own reversal
        of a purchase whose reversal the engine is repeating (the purchase's STAN again); before, the engine's
        0421 followed later all the same.  One with an attempt at the host (``busy``) is left alone: the MUX
        joins the two there (``joined``); so is one being cancelled, or left by a previous run and not yet
        checked against its deal's resolution.  Returns the item acknowledged, or None."""
        if self._nursery is None:
            return None
        item = self.same(target, values)
        if item is None or item.deal_id == deal_id or item.busy or item.paused or not item.checked:
            return None
        item.ticket = 0                       # its lane entries are stale: never sent again
        item.ready_tick = None
        code = reversal.response_code(answer)
        mti = str(answer.get("t") or "")
        a = reversal.Attempt(mti, datetime.now(_UTC), 0.0, "acknowledged", f"{mti} response code {code!r}", code)
        item.ack = {"mti": mti, "detail": f"answered to deal {deal_id}'s {values.get('t')} (the same reversal, "
                                          f"forwarded by the front end)", "at": a.started_at.isoformat(),
                    "response_code": code, "approved": a.approved, "by_deal": deal_id}
        item.last = f"{mti} acknowledged through deal {deal_id}"
        self.acknowledged += 1
        if not a.approved:
            self._not_approved(item, a)
        self._nursery.start_soon(self._acknowledged_elsewhere, item)
        return item

    async def _acknowledged_elsewhere(self, item: Item) -> None:
        """``acknowledged_by``'s marks: ``revack`` in the log, ``reversed STEP`` on the deal, then done."""
        ack = item.ack or {}
        await self._log({"t": "revack", "id": item.deal_id, "step": item.step, "n": item.n, **ack})
        await self._append(item, [], [DealEvent(datetime.now(_UTC), None, f"reversed {item.step}",
                                                {"attempts": item.n, **ack})], None)
        ack["on_deal"] = True
        await self._finish(item)

    def add(self, item: Item) -> None:
        if item.key in self.items:
            return
        self.items[item.key] = item
        item.seq = next(self._seq)
        if not item.recorded.is_set():
            self.unrecorded.setdefault(item.deal_id, []).append(item)
        self._empty = trio.Event() if self._empty.is_set() else self._empty
        if item.ack is not None:                # acknowledged before a restart: never sent again
            if self._nursery is not None:
                self._nursery.start_soon(self._finish, item)
            else:
                self._done.append(item)
            return
        if not item.checked:                    # left by a previous run: not before its deal is known
            self._unchecked.append(item)        # not resolved by an operator (engine.txn.safcancel)
            if self._runner(item) is None:
                self._strand(item)              # said at once; sent (or dropped) only once checked
            if self._nursery is not None and len(self._unchecked) == 1:
                self._nursery.start_soon(safcancel.check_loaded, self)
            return
        self._schedule(item, -math.inf)         # due at once (behind the older ones due)

    def recorded(self, deal_id: str, ok: bool, flagged: bool = False) -> None:
        """The deal's ledger row was committed (``ok``) or refused: its reversals' story may follow.
        ``flagged``: the row has the event ``flagged`` (the deal is counted as flagged already)."""
        for item in self.unrecorded.pop(deal_id, ()):
            item.has_row = ok
            item.deal_flagged = flagged
            item.recorded.set()
        for j in self.joining.pop(deal_id, ()):
            j.has_row = ok
            j.recorded.set()

    def load(self) -> int:
        """The reversals the log holds (a previous run's, not acknowledged or not yet on the deal)."""
        n = 0
        for e in list(self.mgr.log.reversals.values()):
            key = f"{e['id']}|{e['step']}"
            if key in self.items:
                continue
            values = self.mgr.unseal_values(e.get("values"), f"values|{e['id']}|{e['step']}")
            item = Item(e["id"], e["step"], e.get("r") or "?", e.get("c") or "?", values or {},
                        e.get("at") or "", n=int(e.get("n") or 0), ack=e.get("ack"), target=e.get("o"),
                        checked=False, loaded=True)
            item.flagged = item.n >= self.alert_after     # flagged by then (its deal has the event): not again
            item.recorded.set()       # its deal's row was written (or written again on restart) before
            self.add(item)
            n += 1
        if n:
            log.warning("store and forward: %d reversal(s) left by the previous run resumed", n)
        return n

    async def done_with(self, channels: Iterable[Any]) -> None:
        """Return once no attempt waits for its answer on any of ``channels`` (objects a reload replaced,
        which it then closes): at most the channel's timeout, as an attempt waits no longer."""
        ids = {id(ch) for ch in channels}
        while ids & self.sending.keys():
            await self._sent.wait()

    async def wait_empty(self) -> None:
        """Return once every queued reversal is acknowledged and on its deal (tests, drain reports)."""
        while self.items:
            await self._empty.wait()

    def status(self) -> dict[str, Any]:
        items = sorted(self.items.values(), key=lambda i: i.queued_at)
        stranded: dict[str, int] = {}
        for i in self.stranded.values():
            stranded[_label(i)] = stranded.get(_label(i), 0) + 1
        return {"pending": len(items), "flagged": sum(1 for i in items if i.flagged),
                "stranded": len(self.stranded), "stranded_channels": stranded,
                "attempts": self.attempts, "acknowledged": self.acknowledged, "flagged_total": self.flagged,
                "not_approved": self.not_approved, "not_approved_channels": dict(self.not_approved_channels),
                "cancelled": self.cancelled, "alert_after": self.alert_after,
                "in_flight": {n: {"now": ln.in_flight, "limit": ln.limit, "peak": ln.peak}
                              for n, ln in self.lanes.items()},
                "reversals": [i.status() for i in items]}

    # ------------------------------------------------------------ the tasks
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Work the queue until cancelled (the engine's drain): what is left stays in the log."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for lane in self.lanes.values():
                    self._start(lane)
                done, self._done = self._done, []
                for item in done:
                    nursery.start_soon(self._finish, item)
                later, self._later = self._later, []
                for item, event in later:
                    nursery.start_soon(self._append, item, [], [event], None)
                if self._unchecked:
                    nursery.start_soon(safcancel.check_loaded, self)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    def backoff(self, n: int, wait: float) -> float:
        """The longest pause after attempt ``n`` (1, 2, ...): the first pause (the call's timeout), doubled
        each time, at most ``backoff_cap``."""
        first = self.backoff_first if self.backoff_first is not None else wait
        return min(self.backoff_cap, first * math.pow(2, min(n - 1, 30)))

    def window(self, wait: float) -> float:
        """How long ``alert_after`` attempts take on their own, on their schedule: each waits ``wait`` (the
        call's timeout), with the longest pause (``backoff``) between two.  A reversal not acknowledged
        that long after it was queued is flagged even if the ``reversal_in_flight`` places kept it from
        having all its attempts (``_sweep``)."""
        n = self.alert_after
        return n * wait + sum(self.backoff(k, wait) for k in range(1, n))

    def pause(self, n: int, wait: float) -> float:
        """The pause after attempt ``n``: between half and all of ``backoff`` (jitter), so that reversals
        queued in the same seconds do not repeat at the same instants."""
        return self.backoff(n, wait) * (0.5 + 0.5 * self.random.random())

    def _runner(self, item: Item) -> Any:
        """The call ``item``'s next attempt goes by: the running configuration's (``Resolver``; None when it
        has no call on the item's channel, never the retired call of a configuration a reload replaced)."""
        if self.resolve is None:
            return item.runner
        runner = self.resolve(item)
        if runner is not None and item.target is None:
            item.target = target_of(runner)        # a log entry older than ``o``: its channel, from now on
        return runner

    def _schedule(self, item: Item, due: float) -> None:
        """Queue ``item``'s next attempt at ``due`` (trio time) in the lane of its call's channel; strand it
        when the running configuration has no call on that channel."""
        runner = self._runner(item)
        if runner is None:
            self._strand(item)
            return
        name = str(getattr(runner.channel, "name", "?"))
        limit = getattr(runner.channel, "reversal_in_flight", None)
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = Lane(name, int(limit or REVERSAL_IN_FLIGHT))
        elif limit:
            lane.limit = int(limit)            # a reload may have changed it
        if item.flag_at is None:
            item.flag_at = trio.current_time() + self.window(reversal.wait_of(runner)) - _age(item.queued_at)
        self._watch(lane, item)
        item.ticket = next(self._tickets)
        lane.push(item, due)
        if self._nursery is not None and not lane.started:
            self._start(lane)

    # ------------------------------------------------------------ reloads
    def _strand(self, item: Item) -> None:
        """Keep ``item`` queued without sending it: the running configuration has no call on its channel."""
        item.ticket = 0                       # its lane entries, if any, are stale
        item.ready_tick = None
        item.held = False
        first = item.stranded is None
        item.stranded = _stranded_why(item)
        self.stranded[item.key] = item
        if not first:
            return
        log.warning("store and forward: the reversal of deal %s (route %s, call %s) is stranded: %s",
                    item.deal_id, item.route, item.step, item.stranded)
        self._event(item, "reversal stranded", {"channel": item.target, "call": item.step, "attempts": item.n,
                                                "why": item.stranded})

    def _event(self, item: Item, name: str, detail: dict[str, Any]) -> None:
        """One event on ``item``'s deal, written by a task of its own (or once ``run`` starts)."""
        event = DealEvent(datetime.now(_UTC), None, name, detail)
        if self._nursery is not None:
            self._nursery.start_soon(self._append, item, [], [event], None)
        else:
            self._later.append((item, event))

    def reconfigured(self) -> dict[str, int]:
        """A reload swapped the configuration: the stranded reversals it has a call for are sent again (due
        at once, a ``reversal resumed`` event), those queued whose channel it took away are stranded now
        (one in flight on the old channel is, once that attempt ends).  Returns the reversals resumed and
        stranded per channel (``{"resumed": n, "stranded": m}``)."""
        forget = getattr(self.resolve, "forget", None)
        if forget is not None:
            forget()
        resumed = 0
        for item in list(self.stranded.values()):
            if self.items.get(item.key) is not item:
                self.stranded.pop(item.key, None)
                continue
            runner = self._runner(item)
            if runner is None or not item.checked:      # (unchecked: queued by safcancel.check_loaded)
                item.stranded = _stranded_why(item)     # (its wording may name the channel now)
                continue
            del self.stranded[item.key]
            item.stranded = None
            resumed += 1
            log.warning("store and forward: the reversal of deal %s (route %s, call %s) resumed on channel %s "
                        "(a reload brought a call on it back)", item.deal_id, item.route, item.step, _label(item))
            self._event(item, "reversal resumed", {"channel": item.target, "call": item.step, "by": runner.name,
                                                   "attempts": item.n})
            self._schedule(item, -math.inf)
        before = len(self.stranded)
        for item in list(self.items.values()):
            if item.ticket and not item.busy and item.stranded is None and item.ack is None \
                    and self._runner(item) is None:
                self._strand(item)
        return {"resumed": resumed, "stranded": len(self.stranded) - before}

    def would_strand(self, dispatchers: Callable[[], Iterable[Any]]) -> dict[str, int]:
        """Per channel, the reversals not acknowledged that a configuration with these dispatchers would
        leave without a call (``bsp reload --dry-run``, and the reload's own warning)."""
        resolve = Resolver(dispatchers)
        out: dict[str, int] = {}
        for item in self.items.values():
            if item.ack is None and resolve(item) is None:
                out[_label(item)] = out.get(_label(item), 0) + 1
        return out

    def _start(self, lane: Lane) -> None:
        assert self._nursery is not None
        lane.started = True
        self._nursery.start_soon(self._lane, lane)

    async def _lane(self, lane: Lane) -> None:
        """One channel's reversals: those due, oldest first, at most ``lane.limit`` attempts in flight."""
        nursery = self._nursery
        assert nursery is not None
        while True:
            lane.wake = trio.Event()
            lane.tick += 1
            now = trio.current_time()
            while lane.waiting and lane.waiting[0][0] <= now:
                _, seq, ticket, item = heapq.heappop(lane.waiting)
                if ticket != item.ticket:
                    continue                # stranded by a reload (or queued again) since
                heapq.heappush(lane.ready, (item.queued_at, seq, ticket, item))
                item.ready_tick = lane.tick
                self._watch(lane, item)
            while lane.ready and lane.in_flight < lane.limit:
                _, _, ticket, item = heapq.heappop(lane.ready)
                if ticket != item.ticket:
                    continue
                item.ticket = 0             # taken: its attempt queues it again (or strands it)
                if item.paused:
                    continue                # its deal's resolution is being recorded (safcancel.resume)
                if item.ready_tick != lane.tick:
                    item.held = True        # it waited for a place: its attempts come later than scheduled
                item.ready_tick = None
                lane.in_flight += 1
                lane.peak = max(lane.peak, lane.in_flight)
                item.busy = True
                nursery.start_soon(self._attempt, lane, item)
            if lane.failing and now >= lane.swept + SWEEP_EVERY:
                lane.swept = now
                self._sweep(lane, now)
            if lane.flags and not (lane.waiting or lane.ready or lane.in_flight):
                self._prune_flags(lane)     # idle: what the heap holds is done (or queued elsewhere)
            next_due = lane.waiting[0][0] if lane.waiting else math.inf
            if lane.failing and lane.flags:
                next_due = min(next_due, max(lane.flags[0][0], lane.swept + SWEEP_EVERY))
            with trio.move_on_at(next_due):
                await lane.wake.wait()

    def _watch(self, lane: Lane, item: Item) -> None:
        """Put ``item`` in ``lane``'s heap of reversals to flag by time (``_sweep``), unless it is there."""
        if item.flagged or item.flag_at is None or item.flag_lane == lane.name:
            return
        item.flag_lane = lane.name
        heapq.heappush(lane.flags, (item.flag_at, item.seq, item))
        if len(lane.flags) >= 2 * max(lane.flags_kept, FLAGS_PRUNE):
            self._prune_flags(lane)

    def _prune_flags(self, lane: Lane) -> None:
        """Drop ``lane.flags``' entries of reversals done (acknowledged, flagged, ended, moved to another lane).
        ``_sweep`` pops entries only while the channel's attempts fail: with a channel that acknowledges, every
        reversal stayed in the heap for good, and with it its call step, which holds its generation's whole
        configuration (bench/soak.py: one configuration kept per reload).  Run when the heap doubled since the
        last pruning (amortised O(1) a push) and when the lane has nothing waiting, due or in flight."""
        keep = []
        for entry in lane.flags:
            item = entry[2]
            if item.flag_lane != lane.name:
                continue                    # moved to another lane (a reload): its entry there counts
            if item.flagged or item.ack is not None or self.items.get(item.key) is not item:
                item.flag_lane = None       # done: nothing to flag (``_watch`` puts it back if it is queued again)
                continue
            keep.append(entry)
        heapq.heapify(keep)
        lane.flags = keep
        lane.flags_kept = len(keep)

    def _sweep(self, lane: Lane, now: float) -> None:
        """While the channel's attempts fail: flag the reversals kept waiting by the ``reversal_in_flight``
        places (waiting for one now, or held before) that are not acknowledged ``window`` after they were
        queued, as their own attempts would have flagged them by then.  At most once a second
        (``SWEEP_EVERY``), one error line for all it flags (a silent host with thousands queued does not
        write thousands of lines).  One
        in flight is left to its attempt's end; one never held, sleeping its pause, to its next attempt
        (its flag heap entry comes back when it is due again: ``_watch``)."""
        due: list[Item] = []
        while lane.flags and lane.flags[0][0] <= now:
            _, _, item = heapq.heappop(lane.flags)
            if item.flag_lane != lane.name:
                continue                    # moved to another channel's lane (a reload): flagged from there
            item.flag_lane = None
            if item.flagged or item.busy or item.ack is not None or item.stranded is not None \
                    or self.items.get(item.key) is not item:
                continue
            if not (item.held or item.ready_tick is not None):
                continue
            item.flagged = True
            due.append(item)
        if not due:
            return
        self.flagged += len(due)
        assert self._nursery is not None
        names = ", ".join(i.deal_id for i in due[:5]) + (f" and {len(due) - 5} more" if len(due) > 5 else "")
        log.error("store and forward: %d reversal(s) on channel %s not acknowledged within the time their %d "
                  "attempts take (deals %s), waiting their turn behind reversal_in_flight = %d while the "
                  "channel's attempts fail; flagged for an operator (bsp status), still repeated",
                  len(due), lane.name, self.alert_after, names, lane.limit)
        self._nursery.start_soon(self._flag_stories, due)

    async def _flag_stories(self, items: list[Item]) -> None:
        """The ``reversal flagged`` event of reversals flagged while waiting their turn, on their deals."""
        now = datetime.now(_UTC)
        batch = []
        for item in items:
            await item.recorded.wait()
            self._count_flag(item)
            if item.has_row:
                batch.append((item, [DealEvent(now, None, "reversal flagged", self._why(item, waiting=True))]))
        await self._append_many(batch)

    async def _attempt(self, lane: Lane, item: Item) -> None:
        """One attempt of ``item`` (it holds one of ``lane``'s places until the host answered or the
        wait ran out), its line on the deal, then its next attempt queued or the reversal done."""
        runner = self._runner(item)
        if runner is None:                  # a reload took its channel away while it waited for its turn
            item.busy = False
            lane.release()
            if item.cancel is not None:
                safcancel.drop(self, item, item.cancel)
            else:
                self._strand(item)
            return
        via = id(getattr(runner, "channel", None))
        self.sending[via] = self.sending.get(via, 0) + 1
        try:
            repeat = item.n > 0
            item.n += 1
            await self._log({"t": "revtry", "id": item.deal_id, "step": item.step, "n": item.n})
            a = await reversal.attempt(item.values, runner, repeat=repeat)
            wait = reversal.wait_of(runner)
        finally:
            item.busy = False
            lane.release()
            left = self.sending.pop(via) - 1
            if left:
                self.sending[via] = left
            done, self._sent = self._sent, trio.Event()
            done.set()
        self.attempts += 1
        if a.outcome != "acknowledged" and self.resolve is not None and self._runner(item) is None:
            # in flight when a reload took its channel away (``lost: engine stopping`` once it closed)
            a.detail += (f"; channel {_label(item)} is no longer in the running configuration (a reload): "
                         f"the reversal is kept queued, not sent, until it is back")
        item.last = f"{a.mti} {a.outcome}: {a.detail}"
        lane.failing = a.outcome != "acknowledged"
        if a.outcome == "acknowledged":
            # acknowledged whatever its DE 39 says (the host has the reversal; a repeat would get the same
            # answer), but the code is kept on the deal and one that is not approved is counted and logged
            item.ack = {"mti": a.mti, "detail": a.detail, "at": datetime.now(_UTC).isoformat(),
                        "response_code": a.code, "approved": a.approved}
            await self._log({"t": "revack", "id": item.deal_id, "step": item.step, "n": item.n, **item.ack})
            self.acknowledged += 1
            if not a.approved:
                self._not_approved(item, a)
        # flagged after ``alert_after`` attempts, or once they would have been made (``window``) when the
        # ``reversal_in_flight`` places kept it waiting: the flag does not depend on the queue ahead of it
        flag = a.outcome != "acknowledged" and not item.flagged and item.cancel is None and (
            item.n >= self.alert_after or (
            item.held and item.flag_at is not None and trio.current_time() >= item.flag_at))
        if flag:
            item.flagged = True
            self.flagged += 1
        await self._story(item, a, flag)
        if item.ack is not None:
            await self._finish(item)
            return
        if item.cancel is not None:         # its deal was resolved while this attempt was at the host
            safcancel.drop(self, item, item.cancel)
            return
        if flag:
            log.error("store and forward: the reversal of deal %s (route %s, call %s) is not acknowledged "
                      "after %d attempt(s) (last: %s); flagged for an operator, still repeated",
                      item.deal_id, item.route, item.step, item.n, item.last)
        self._schedule(item, trio.current_time() + self.pause(item.n, wait))

    def _not_approved(self, item: Item, a: reversal.Attempt) -> None:
        """An acknowledgement whose DE 39 is not an approval: counted (``bsp status`` reversals
        ``not_approved``, ``bsp_reversals_not_approved``) and logged, for an operator; not repeated."""
        self.not_approved += 1
        self.not_approved_channels[_label(item)] = self.not_approved_channels.get(_label(item), 0) + 1
        log.warning("store and forward: the reversal of deal %s (route %s, call %s) was acknowledged: the answer to its "
                    "%s has response code %r, not an approval (the host may not have found the original, or "
                    "declined the reversal); not repeated (a repeat gets the same answer): check the original "
                    "with the host", item.deal_id, item.route, item.step, a.mti, a.code)

    async def _finish(self, item: Item) -> None:
        """An acknowledged reversal: its story on the deal (once), then dropped from the log."""
        if item.n and item.ack is not None and not _stories_done(item):
            await self._acked_story(item)          # acknowledged before a restart: its line, once
        if item.ack is not None and (item.joined or item.loaded):
            await self._joined_story(item)         # before ``revrec``: a crash before then tells them again
        await self._log({"t": "revrec", "id": item.deal_id, "step": item.step})
        self.items.pop(item.key, None)
        self.stranded.pop(item.key, None)
        if item.deal_id in self.flagged_deals and not any(i.deal_id == item.deal_id for i in self.items.values()):
            self.flagged_deals.discard(item.deal_id)   # its last reversal is done: no flag of it left to count
        if not self.items:
            self._empty.set()

    async def _log(self, entry: dict[str, Any]) -> None:
        """A mark in the log; when the log cannot be written (a full disk, reported once by the manager)
        the reversal goes on and the mark follows with the next write that works (a crash before then:
        the next start repeats the attempt, 0401 / 0421, which the host answers as a repeat)."""
        await self.mgr.write_or_later([entry])

    async def _story(self, item: Item, a: reversal.Attempt, flag: bool) -> None:
        """The attempt (and its acknowledgement, or the operator flag) appended to the deal."""
        name = f"{item.step}.reversal" + (".repeat" if a.mti.endswith("1") else "")
        steps = [DealStep(name, "reversal", a.outcome, a.started_at, round(a.duration_ms, 3), None,
                          {"mti": a.mti, "attempt": item.n, "detail": a.detail})]
        now = datetime.now(_UTC)
        detail: dict[str, Any] = {"outcome": a.outcome, "attempt": item.n, "detail": a.detail}
        if a.outcome == "acknowledged":
            detail.update(response_code=a.code, approved=a.approved)
        events = [DealEvent(now, None, f"reversal {a.mti}", detail)]
        if item.ack is not None:
            events.append(DealEvent(now, None, f"reversed {item.step}", {"attempts": item.n, **item.ack}))
            item.ack["on_deal"] = True
        if flag:
            events.append(DealEvent(now, None, "reversal flagged", self._why(item, waiting=False)))
            await item.recorded.wait()
            self._count_flag(item)
        await self._append(item, steps, events, None)

    def _count_flag(self, item: Item) -> None:
        """The reversal's flag flags its deal for an operator, already recorded as failed and not flagged: counted
        now, once per deal, in its route's ``flagged`` (``bsp status`` ``flagged_deals``,
        ``bsp_route_flagged_total``) through the engine's observed ledger (``deal_flagged``; none in route
        tests and a bare ``Switchboard``).  ``bsp deals --flagged`` finds it by its ``reversal flagged``
        event (engine.ledger_query).  A deal flagged with its row (event ``flagged``) is counted already."""
        told = getattr(self.mgr.ledger, "flag_route", None)      # the open-flags gauge's route (engine/ops/observe.py)
        if told is not None:
            told(item.deal_id, item.route)
        if item.deal_flagged or item.deal_id in self.flagged_deals:
            return
        self.flagged_deals.add(item.deal_id)
        note = getattr(self.mgr.ledger, "deal_flagged", None)
        if note is not None:
            note(item.route)

    def _why(self, item: Item, *, waiting: bool) -> dict[str, Any]:
        """The ``reversal flagged`` event's detail: ``why`` names the call, its reversal and what to do, as
        a deal flagged with its row says it (``engine.txn.flagging``); read back as the end of the deal's
        reason and its dead letter's ("...; flagged for an operator: WHY", ``engine.ledger_query``), since
        the row, written before, is chained and never changed."""
        original = str(item.values.get("t") or "request")
        try:
            rev = reversal.reversal_of(item.values)["t"]
        except ValueError:
            rev = item.mti if item.values.get("t") else "reversal"
        to = f" to channel {item.target}" if item.target else ""
        if item.n >= self.alert_after and not waiting:
            late = f"is not acknowledged after {item.n} attempts"
        else:
            late = (f"is not acknowledged within the time {self.alert_after} attempts take on their schedule "
                    f"({item.n} made: the channel's other reversals held its reversal_in_flight places)")
        if reversal.is_advice(original):     # the call's own advice (``call ... store and forward``), repeated
            why = (f"call {item.step} (ISO 8583 {original}{to}, store and forward) got no answer it can trust and "
                   f"its repeats ({original[:3]}1) {late.replace('is not', 'are not')}: the host may not have the "
                   f"{original}; ask the host whether it holds it and settle it there; it is still repeated until "
                   f"the host acknowledges it (event `reversed {item.step}` on the deal)")
            return {"attempts": item.n, "why": why, "not_undone": [item.step]}
        why = (f"call {item.step} (ISO 8583 {original}{to}) got no answer it can trust and its reversal ({rev}) "
               f"{late}: the host may have applied the {original} (the customer charged) and not have its "
               f"reversal; ask the host whether it holds the {original} and its reversal and settle it there; "
               f"the reversal is still repeated until the host acknowledges it (event `reversed {item.step}` "
               f"on the deal)")
        return {"attempts": item.n, "why": why, "not_undone": [item.step]}

    async def _acked_story(self, item: Item) -> None:
        ack = item.ack or {}
        events = [DealEvent(datetime.now(_UTC), None, f"reversed {item.step}",
                            {"attempts": item.n, **{k: v for k, v in ack.items() if k != "on_deal"},
                             "recovered": "acknowledged before a restart"})]
        await self._append(item, [], events, f"reversed {item.step}")

    async def _joined_story(self, item: Item) -> None:
        """The acknowledgement of ``item`` on each deal whose advice joined it (``join``; those of a previous run
        asked of the ledger: ``LedgerStore.joins_to``): a trace line ``CALL.reversal`` (``.repeat`` when the
        acknowledged message was a repeat), outcome ``acknowledged``, and the event ``reversed CALL`` with the
        acknowledgement (``mti``, ``response_code``, ``approved``, ``at``), ``joined`` / ``joined_call`` the deal
        and call whose reversal it was.  Once per deal (``unless``: a restart before ``revrec`` tells again)."""
        found: list[tuple[str, str, Joiner | None]] = [(j.deal_id, j.call, j) for j in item.joined]
        if item.loaded:
            try:
                found += [(j["deal_id"], str(j["call"]), None) for j in await self._loaded_joins(item)]
            except Exception as exc:     # noqa: BLE001 - the reversal is done all the same; said, not hidden
                log.error("store and forward: cannot ask the ledger which deals joined the reversal of deal %s "
                          "(call %s) to record its acknowledgement on them: %s; find them by their event "
                          "`reversal queued` naming it in `joined`", item.deal_id, item.step, exc)
        ack = {k: v for k, v in (item.ack or {}).items() if k != "on_deal"}
        mti = str(ack.get("mti") or "")
        batch: list[tuple[str, list[Any], list[Any], str | None]] = []
        seen: set[tuple[str, str]] = set()
        for deal_id, call, j in found:
            if (deal_id, call) in seen or deal_id == item.deal_id:
                continue
            seen.add((deal_id, call))
            if j is not None:
                with trio.move_on_after(JOIN_ROW_WAIT):
                    await j.recorded.wait()
                if not j.recorded.is_set():
                    log.warning("store and forward: deal %s joined the reversal of deal %s; its row was not written "
                                "within %gs of the acknowledgement, which is not recorded on it", deal_id,
                                item.deal_id, JOIN_ROW_WAIT)
                    continue
                if not j.has_row:
                    log.warning("store and forward: deal %s joined the reversal of deal %s but has no ledger row; "
                                "the acknowledgement is not recorded on it", deal_id, item.deal_id)
                    continue
            at = datetime.now(_UTC)
            said = (f"acknowledged through deal {item.deal_id}'s reversal (call {item.step}), which this deal's "
                    f"advice joined: {ack.get('detail')}")
            step = DealStep(f"{call}.reversal" + (".repeat" if mti.endswith("1") else ""), "reversal", "acknowledged",
                            at, 0.0, None, {"mti": mti, "joined": item.deal_id, "joined_call": item.step,
                                            "detail": said})
            event = DealEvent(at, None, f"reversed {call}", {"attempts": item.n, **ack, "joined": item.deal_id,
                                                            "joined_call": item.step})
            batch.append((deal_id, [step], [event], f"reversed {call}"))
        if not batch:
            return
        try:
            results = await self.mgr.ledger.append_stories(batch)
        except Exception as exc:     # noqa: BLE001
            results = [exc] * len(batch)
        for (deal_id, _, _, _), r in zip(batch, results):
            if isinstance(r, BaseException):
                log.error("store and forward: deal %s joined the reversal of deal %s (call %s), acknowledged; the "
                          "acknowledgement is not recorded on it: %s", deal_id, item.deal_id, item.step, r)

    async def _loaded_joins(self, item: Item) -> list[dict[str, Any]]:
        """The deals that joined ``item`` (left by a previous run) before the restart: asked of the ledger once for
        every reversal the log held (``joins_to``; a ledger without it: ``joined_to``, per reversal)."""
        many = getattr(self.mgr.ledger, "joins_to", None)
        if many is None:
            one = getattr(self.mgr.ledger, "joined_to", None)
            return [] if one is None else list(await one(item.deal_id, item.step))
        if self._joins_loaded is None:
            async with self._joins_lock:
                if self._joins_loaded is None:
                    ids = sorted({i.deal_id for i in [*self.items.values(), item] if i.loaded})
                    self._joins_loaded = await many(ids)
        return self._joins_loaded.pop(item.key, [])

    async def _append_many(self, batch: list[tuple[Item, list[DealEvent]]]) -> None:
        """Events on several deals in one ledger transaction (their rows are committed)."""
        if not batch:
            return
        try:
            results = await self.mgr.ledger.append_stories([(i.deal_id, [], ev, None) for i, ev in batch])
        except Exception as exc:
            results = [exc] * len(batch)
        for (item, events), r in zip(batch, results):
            if isinstance(r, BaseException):
                log.error("store and forward: deal %s: %s not recorded on the deal: %s", item.deal_id,
                          ", ".join(e.to_state for e in events), r)

    async def _append(self, item: Item, steps: list[DealStep], events: list[DealEvent], unless: str | None) -> None:
        await item.recorded.wait()
        if not item.has_row:
            log.warning("store and forward: deal %s has no ledger row; its reversal's %s not recorded on it",
                        item.deal_id, ", ".join(e.to_state for e in events))
            return
        try:
            await self.mgr.ledger.append_story(item.deal_id, steps, events, unless=unless)
        except Exception as exc:     # the reversal goes on; the story line is lost, and said so
            log.error("store and forward: deal %s: %s not recorded on the deal: %s", item.deal_id,
                      ", ".join(e.to_state for e in events), exc)


def _age(queued_at: str) -> float:
    """Seconds since ``queued_at`` (ISO 8601; 0 when unreadable or in the future)."""
    try:
        at = datetime.fromisoformat(queued_at)
    except ValueError:
        return 0.0
    if at.tzinfo is None:
        at = at.replace(tzinfo=_UTC)
    return max(0.0, (datetime.now(_UTC) - at).total_seconds())


def _stories_done(item: Item) -> bool:
    return bool(item.ack and item.ack.get("on_deal"))


def attach(dispatchers: Callable[[], Iterable[Any]]) -> list[Saf]:
    """Give the transaction manager of each of these dispatchers (once per manager) a ``Saf`` and
    rebuild its queue from the log.  From then on reversals are queued, not run inline.  Call it
    before the recovery of deals in flight (that may queue reversals), then ``run`` each (``serve``)
    once the outbound channels run."""
    out: list[Saf] = []
    for disp in list(dispatchers()):
        mgr = getattr(disp, "txn", None)
        if mgr is None or mgr.saf is not None:
            continue
        saf = mgr.saf = Saf(mgr, Resolver(dispatchers))
        if mgr.log_exists():
            from engine.txn.keyopen import start
            if mgr._log is not None or start(mgr) is None:
                saf.load()
            # else: the log is opened in a worker thread (its key index made again): loaded once it is open
        out.append(saf)
    return out


async def serve(saf: Saf) -> None:
    """Run ``saf`` until cancelled; then reversals are run inline again (what is queued stays in the log)."""
    try:
        await saf.run()
    finally:
        if saf.mgr.saf is saf:
            saf.mgr.saf = None
        if saf.items:
            log.warning("store and forward stopped with %d reversal(s) not acknowledged (%d stranded: no call for "
                        "their channel); they stay in %s and resume at the next start (the stranded ones once the configuration has a call "
                        "for their channel)", len(saf.items),
                        len(saf.stranded), saf.mgr.log.path)


def _identity(values: dict[str, Any]) -> tuple[Any, ...] | None:
    """What makes two reversals the same at the host: the MUX key of the reversal (MTI class, DE 11, DE 41) and
    its DE 90 (the original); None when it cannot be told (no key fields, no DE 90)."""
    from formats.iso8583.mux import mux_key
    try:
        rev = reversal.reversal_of(values)
        de90 = rev.get("90")
        return None if de90 in (None, "") else (*mux_key(rev), str(de90))
    except Exception:       # noqa: BLE001 - an MTI that is not reversible, a key field missing: not comparable
        return None
