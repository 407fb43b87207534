"""Running totals for ``limit`` steps: reserve at admission, confirm at commit, release otherwise.

One ``Totals`` per open ledger (``totals_for(ledger)``), shared by every generation, so a reload keeps
the running figures.  A total is a bucket ``(name, key, currency, day)``: ``key`` the text the step's
``key`` gave (an investor, an issue), ``currency`` the deal's (never added across currencies), ``day`` the
business day for a ``per = "day"`` total (``""`` otherwise).  Its figure is ``confirmed + reserved``:

    holds = totals.reserve(bucket, amount, cap)   # None when amount would pass the cap (nothing taken)
    totals.settle(holds, counted)                 # counted: confirmed (the deal committed or stands
                                                  # flagged); else released

All of it is synchronous and runs on the trio thread, so a check and its reservation are one step: two
deals at a cap's edge cannot both pass.  Money is Decimal.

Durability: a deal that counts carries one ledger event ``counted`` per total (``detail``: total, key,
currency, day, amount) in the same transaction as its row, so ``rebuild`` finds the confirmed figures
after a restart (SIGKILL included); an operator resolving a flagged deal as not applied or undone appends
one event ``released`` per ``counted`` (engine/deal_resolve.py), which ``rebuild`` subtracts and the
running engine applies at once (``uncount``); a deal in flight at a crash carries its holds in its transaction
log ``begin`` entry (``engine.txn.manager``): they are reserved again at the rebuild and settled when
recovery resolves the deal.  Routes without a ``limit`` never touch any of this.
"""
from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from dsl import clock
from engine.limit_key import LimitKeys, version
from engine.reports.businessday import BusinessDay, business_day

log = logging.getLogger("bsp.totals")
COUNTED = "counted"         # the deal event a counted deal carries per total (deal_events.to_state)
# the deal event that says a total counted under another digest of the deal's classified key (before keyed
# digests, or under a field key since rotated) was moved into its current digest's bucket (``Totals.carry``):
# detail total, key (the current digest), from (the other), currency, day, amount
REKEYED = "rekeyed"
_ATTR = "_bsp_totals"
_ZERO = Decimal(0)


class Hold:
    """One reservation: what ``settle`` confirms or releases.  ``day``: the business day's ISO date, "" for a
    total without a day; ``bucket``: (total, key, currency, day)."""
    __slots__ = ("total", "key", "currency", "day", "amount", "bucket")

    def __init__(self, total: str, key: str, currency: str, day: str, amount: Decimal) -> None:
        self.total, self.key, self.currency, self.day, self.amount = total, key, currency, day, amount
        self.bucket = (total, key, currency, day)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hold) and (self.bucket, self.amount) == (other.bucket, other.amount)

    def __repr__(self) -> str:
        return f"Hold({self.total!r}, {self.key!r}, {self.currency!r}, {self.day!r}, {self.amount!r})"

    def detail(self) -> dict[str, Any]:
        return {"total": self.total, "key": self.key, "currency": self.currency, "day": self.day,
                "amount": str(self.amount)}

    @classmethod
    def of(cls, d: dict[str, Any]) -> "Hold":
        return cls(str(d["total"]), str(d["key"]), str(d.get("currency") or ""), str(d.get("day") or ""),
                   Decimal(str(d["amount"])))


class Holds(list):
    """An exchange's holds (``Exchange.holds``).  ``recovered``: rebuilt from the transaction log for a deal
    recovery resolves (reserved at the rebuild): its ``limit`` steps, run again, take nothing more.
    ``repeat``: a repeat of a deal key already answered (``TxnManager._answered``), a duplicate at its
    admission: its ``limit`` steps reserve nothing."""
    recovered = False
    repeat = False


class Totals:
    def __init__(self) -> None:
        self.confirmed: dict[tuple[str, str, str, str], Decimal] = {}
        self.reserved: dict[tuple[str, str, str, str], Decimal] = {}
        self.clock: BusinessDay = business_day()      # UTC calendar days unless the deployment says otherwise
        self.loaded = False
        self._loading: Any = None                     # a trio.Event while the first rebuild reads the ledger
        self.today: str = ""                          # the newest day seen: older days' buckets are dropped
        self._span: tuple[datetime, datetime, str] | None = None    # [start, end) of the day found last
        self.keys = LimitKeys()                       # classified keys' digests (engine/limit_key.py)
        self.versions: set[str] = set()               # how the classified keys of the buckets were digested
        # bucket -> the bucket its confirmed figure was moved into (``carry``): what an operator gives back
        # later for a deal counted under the old digest is taken from where the figure went
        self.moved: dict[tuple[str, str, str, str], tuple[str, str, str, str]] = {}

    # -- the business day ---------------------------------------------------
    def set_business_day(self, tz: str | None, cutoff: str | None) -> None:
        self.clock = business_day(tz, cutoff)
        self._span = None

    def day_of(self, at: datetime) -> str:
        span = self._span
        if span is not None and span[0] <= at < span[1]:     # the day of the deal before, mostly
            return span[2]
        day = self.clock.day_of(at)
        d = day.isoformat()
        self._span = (self.clock.start(day), self.clock.end(day), d)
        if d > self.today:
            self._new_day(d)
        return d

    def _new_day(self, d: str) -> None:
        """Buckets of days before yesterday are dropped (a deal in flight across the cut-off settles
        yesterday's bucket); a total without a day is kept."""
        self.today = d
        keep = (date.fromisoformat(d).toordinal() - 1)
        for table in (self.confirmed, self.reserved):
            for b in [b for b in table if b[3] and date.fromisoformat(b[3]).toordinal() < keep]:
                del table[b]

    # -- reserve / settle ---------------------------------------------------
    def used(self, bucket: tuple[str, str, str, str]) -> Decimal:
        return self.confirmed.get(bucket, _ZERO) + self.reserved.get(bucket, _ZERO)

    def reserve(self, hold: Hold, cap: Decimal | None, also: tuple[tuple[str, str, str, str], ...] = ()) -> bool:
        """Take ``hold`` unless it would pass ``cap`` (None: no check, a recovered deal's).  ``also``: buckets
        of the same key digested otherwise (before keyed digests, another key id), counted with it."""
        b = hold.bucket
        if cap is not None and self.used(b) + sum((self.used(a) for a in also), _ZERO) + hold.amount > cap:
            return False
        self.reserved[b] = self.reserved.get(b, _ZERO) + hold.amount
        self._seen(b)
        return True

    def _seen(self, b: tuple[str, str, str, str]) -> None:
        if b[1][:1] == "#":
            v = version(b[1])
            if v is not None:
                self.versions.add(v)

    def others(self, total: str, key: str, currency: str, day: str) -> tuple[tuple[str, str, str, str], ...]:
        """The buckets of classified ``key`` digested otherwise than now (``reserve``'s ``also``); none, for
        nothing, when every bucket is digested as now."""
        if not self.versions or self.versions == {self.keys.current}:
            return ()
        out = []
        for v in self.versions:
            if v != self.keys.current and (k := self.keys.like(total, key, v)) is not None:
                out.append((total, k, currency, day))
        return tuple(out)

    def carry(self, bucket: tuple[str, str, str, str],
              also: tuple[tuple[str, str, str, str], ...]) -> list[dict[str, Any]]:
        """Move what the buckets ``also`` (the same classified key digested otherwise: ``others``) hold
        confirmed into ``bucket`` (the key's current digest), and return one ``rekeyed`` event detail per
        bucket moved, for the deal's row: the ledger then says the figure is the current digest's, so it
        still counts after the old field key leaves the keyring (a digest cannot be turned into another
        without the key in clear, which only a deal of that key brings).  The sum the cap is checked against
        does not change.  Reservations under the old digest stay there (``reserve``'s ``also`` adds them)."""
        out: list[dict[str, Any]] = []
        for a in also:
            v = self.confirmed.pop(a, None)
            if v is None or v <= 0:
                continue
            self.confirmed[bucket] = self.confirmed.get(bucket, _ZERO) + v
            self.moved[a] = bucket
            out.append({"total": bucket[0], "key": bucket[1], "from": a[1], "currency": bucket[2],
                        "day": bucket[3], "amount": str(v)})
        if out:
            self._seen(bucket)
        return out

    def settle(self, holds: list[Hold], counted: bool) -> None:
        for h in holds:
            b = h.bucket
            left = self.reserved.get(b, _ZERO) - h.amount
            if left > 0:                # never below nothing: a reservation that was not made frees none
                self.reserved[b] = left
            else:
                self.reserved.pop(b, None)
            if counted:
                self.confirmed[b] = self.confirmed.get(b, _ZERO) + h.amount
        holds.clear()        # settled once, whatever path sees it next

    def confirm(self, holds: list[Hold]) -> None:
        """Count ``holds`` that were never reserved here (deals whose rows recovery writes again, a deal an
        operator's resolution counts again): nothing for a day before yesterday (its bucket is dropped)."""
        oldest = date.fromordinal(date.fromisoformat(self.today).toordinal() - 1).isoformat() if self.today else ""
        for h in holds:
            if h.day and h.day < oldest:
                continue
            self.confirmed[h.bucket] = self.confirmed.get(h.bucket, _ZERO) + h.amount
            self._seen(h.bucket)

    def uncount(self, holds: list[Hold]) -> None:
        """Give back ``holds`` that were confirmed (an operator resolved the deal as not applied or undone:
        engine/deal_resolve.py): never below nothing, and nothing for a day's bucket already dropped."""
        for h in holds:
            self._take(h.bucket, h.amount)

    def _take(self, b: tuple[str, str, str, str], amount: Decimal) -> None:
        """``amount`` less in bucket ``b``; what ``b`` lacks is taken from the bucket its figure was moved
        into (``carry``), and so on; never below nothing."""
        for _ in range(8):            # a chain of moves: one per rotation of the field key
            left = self.confirmed.get(b, _ZERO) - amount
            if left > 0:
                self.confirmed[b] = left
                return
            self.confirmed.pop(b, None)
            to = self.moved.get(b)
            if left == 0 or to is None:
                return
            b, amount = to, -left

    # -- the rebuild ----------------------------------------------------------
    async def rebuild(self, ledger: Any, in_flight: list[dict[str, Any]]) -> None:
        """The confirmed figures from the ledger's ``counted`` events (today's and yesterday's for daily
        totals, all for others), and ``in_flight`` (holds of deals the transaction log has in flight) as
        reserved.  Once per engine, before the first deal of a route with a limit.

        Batches that arrive while the first one reads the ledger (connections of a channel, or the first
        batches after a reload that brings a ``limit``) wait for the figures; none checks a cap against a
        total not read yet (they counted from nothing, so concurrent first deals passed the cap).  A read
        that fails leaves the totals unloaded: the next batch reads again."""
        import trio

        while not self.loaded:
            if self._loading is not None:
                await self._loading.wait()
                continue
            self._loading = trio.Event()
            saved = dict(self.confirmed), dict(self.reserved), dict(self.moved), set(self.versions)
            try:
                await self._read(ledger, in_flight)
                self.loaded = True
            except BaseException:           # nothing half read stays: the next read starts from the same point
                self.confirmed, self.reserved, self.moved, self.versions = saved
                raise
            finally:
                done, self._loading = self._loading, None
                done.set()

    async def _read(self, ledger: Any, in_flight: list[dict[str, Any]]) -> None:
        today = self.day_of(clock.now())        # the engine's clock (bsp run --at), as the steps read it
        since = date.fromordinal(date.fromisoformat(today).toordinal() - 1).isoformat()
        read = getattr(ledger, "counted_totals", None)
        rows = await read(since) if read is not None else []
        for total, key, currency, day, amount, *into in rows:     # a `released` one's amount is negative
            b = (total, key, currency or "", day or "")
            self.confirmed[b] = self.confirmed.get(b, _ZERO) + Decimal(str(amount))
            self._seen(b)
            if into and into[0] is not None:        # a `rekeyed` event's old digest: moved into `into`
                self.moved[b] = (total, into[0], currency or "", day or "")
        for b, to in self.moved.items():            # given back after its figure was moved: taken from where
            short = self.confirmed.get(b, _ZERO)    # it went (``_take``)
            if short < 0:
                self.confirmed[b] = _ZERO
                self._take(to, -short)
        for b in [b for b, v in self.confirmed.items() if v <= 0]:
            del self.confirmed[b]
        self._dropped_keys()
        for d in in_flight:
            self.reserve(Hold.of(d), None)
        if rows or in_flight:
            log.info("totals: %d counted deal total(s) read from the ledger, %d reservation(s) of deals in flight",
                     len(rows), len(in_flight))

    def _dropped_keys(self) -> None:
        """Say so when totals are counted under a field key id the keyring no longer holds: no deal can match
        them to its key any more, so they count for nobody (a customer's figure is that much lower)."""
        held = set(self.keys.macs) | {""}
        lost: dict[str, list[Decimal]] = {}
        for b, v in self.confirmed.items():
            kid = version(b[1]) if b[1][:1] == "#" else None
            if kid is not None and kid not in held:
                lost.setdefault(kid, []).append(v)
        for kid, vs in sorted(lost.items()):
            log.warning("totals: %d `limit` total(s) (%s in all) were counted under field key %r, which the field "
                        "keyring no longer holds: they count for no customer now, until the key is put back in "
                        "the ring (as an old key, not the current one); keep a rotated field key until the "
                        "periods of its totals end (docs/language.md#limit-a-running-total-with-a-cap)",
                        len(vs), sum(vs, _ZERO), kid)

    # -- the admin's view -----------------------------------------------------
    def view(self, most: int = 100) -> dict[str, Any]:
        """What ``bsp status`` shows: the ``most`` fullest buckets (confirmed + reserved, largest first) and
        how many there are."""
        buckets = set(self.confirmed) | set(self.reserved)
        top = sorted(buckets, key=lambda b: (-self.used(b), b))[:most]
        return {"day": self.today or None, "business_day": self.clock.describe(), "buckets": len(buckets),
                "fullest": [{"total": b[0], "key": b[1], "currency": b[2] or None, "day": b[3] or None,
                             "confirmed": str(self.confirmed.get(b, _ZERO)),
                             "reserved": str(self.reserved.get(b, _ZERO))} for b in top]}


def _base(ledger: Any) -> Any:
    """The ledger under its wrappers (the observer's view of it, ``engine.ops.observe``): the engine's totals
    belong to the ledger, whichever view of it a generation, ``bsp run`` or the admin API holds."""
    for _ in range(8):
        inner = vars(ledger).get("_ledger") if hasattr(ledger, "__dict__") else None
        if inner is None:
            break
        ledger = inner
    return ledger


def totals_for(ledger: Any) -> Totals:
    """The totals of ``ledger`` (one per open ledger; a fresh one, not durable, without a ledger)."""
    if ledger is None:
        return Totals()
    base = _base(ledger)
    t = vars(base).get(_ATTR) if hasattr(base, "__dict__") else None
    if t is None:
        t = Totals()
        t.keys = LimitKeys(getattr(base, "keyring", None))     # keyed with the ledger's field keyring
        try:
            setattr(base, _ATTR, t)
        except AttributeError:
            pass
    return t


def existing_totals(ledger: Any) -> Totals | None:
    if ledger is None:
        return None
    base = _base(ledger)
    return vars(base).get(_ATTR) if hasattr(base, "__dict__") else None


__all__ = ["COUNTED", "REKEYED", "Hold", "Holds", "Totals", "totals_for", "existing_totals"]
