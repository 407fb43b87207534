"""The deals waiting for an operator now: ``bsp_deals_flagged_open``, ``bsp status`` ``open_flags``.

    flags = OpenFlags()
    flags.events(deal_id, events)      # events written on a deal (its row's, or appended later)
    await load_open_flags(flags, ledger)    # once, at the start: the open flags already in the ledger
    flags.value                        # deals whose flag is open; None until loaded (or if the load failed)
    flags.by_route()                   # the same by route: {"bill_payment": 2, ...}; {} until loaded

A deal's flag is open while one of its flag events is (``engine.deal_resolve.flag_state``; the same rule
in SQL, ``engine.ledger_query.open_flag_events``, is what ``bsp deals --flagged`` lists).  The ledger is read
once, when the engine starts (after the journal is loaded into DuckDB, as the admin API's deal queries wait
for it): a flag raised in an earlier run, a resolution made offline (``bsp deals resolve`` on the ledger file
while the engine was stopped) are seen then.  From there the count follows the events the engine writes,
without reading the ledger again: a flag raised (``flagged`` with the deal's row, ``reversal flagged``
appended later) opens, a resolution through the admin API (``resolved``) closes the deal's flags, the
host's approving acknowledgement of a reversal (``reversed NAME``, ``approved``) closes the ``reversal
flagged`` of call NAME.  Each open flag is kept by deal and kind (``flagged``, ``reversed NAME`` for a
reversal of call NAME): a deal stays open while one is left.  The events written while the start's read
runs are kept and applied after it, in order, so none is lost nor counted twice.

Each open deal's route is kept with it (``bsp_deals_flagged_open_by_route{route}``): from its row for a deal
flagged as it is recorded (``events(..., route=)``), from the ledger at the start, and, for a reversal flagged
later (its events appended without a route), from ``note_route`` (``ObservedLedger.deal_flagged``, told by the
reversal's queue before it appends the flag).  One not known (an older caller) is counted under ``?``.  The
routes are those with open flags: the routes of the running configuration and, while their flags stay open,
routes a reload removed (bounded by the routes the ledger has, a handful, not by deals).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.deal_resolve import ACKED, FLAGGED_EVENTS, REVERSAL_FLAGGED, RESOLVED, approved, call_of

log = logging.getLogger("bsp.run")


def _get(e: Any, name: str) -> Any:
    return e.get(name) if isinstance(e, Mapping) else getattr(e, name, None)


def flag_key(to_state: str, call: str | None) -> str:
    """What closes a flag event: ``reversed NAME`` (its call's approving acknowledgement) for a ``reversal
    flagged`` of call NAME, else the event's own name (closed only by a resolution)."""
    return ACKED + call if to_state == REVERSAL_FLAGGED and call else to_state


class OpenFlags:
    def __init__(self) -> None:
        self.deals: dict[str, set[str]] = {}      # deal id -> its open flags (flag_key)
        self.routes: dict[str, str] = {}          # deal id -> its route, for the deals in ``deals``
        self._hints: dict[str, str] = {}          # deal id -> route, told before its flag is appended
        self.loaded = False
        self._early: list[tuple[str, list[Any], str | None]] | None = []   # written before the start's read ended

    @property
    def value(self) -> int | None:
        return len(self.deals) if self.loaded else None

    def by_route(self) -> dict[str, int]:
        """Open deals by route (``?``: a deal whose route was not told); {} until loaded."""
        out: dict[str, int] = {}
        if self.loaded:
            for deal_id in self.deals:
                route = self.routes.get(deal_id, "?")
                out[route] = out.get(route, 0) + 1
        return out

    def note_route(self, deal_id: str, route: str) -> None:
        """Deal ``deal_id`` of ``route`` is about to get a flag appended (a reversal flagged later)."""
        if deal_id in self.deals:
            self.routes[deal_id] = route
        elif len(self._hints) < 10_000:          # bounded: a hint whose append then failed is never used
            self._hints[deal_id] = route

    def events(self, deal_id: str, events: Iterable[Any], route: str | None = None) -> None:
        """Events written on deal ``deal_id`` (``DealEvent`` or dicts with ``to_state`` and ``detail``) of
        ``route`` (None: not told here)."""
        wanted = [e for e in events if _relevant(_get(e, "to_state"))]
        if not wanted:
            return
        if self._early is not None:
            self._early.append((deal_id, wanted, route))
        elif self.loaded:
            self._apply(deal_id, wanted, route)

    def resolved(self, deal_id: str) -> None:
        """The deal was resolved through the admin API: its flags are closed."""
        self.events(deal_id, [{"to_state": RESOLVED}])

    def load(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """The open flag events read at the start (``open_flag_events``: deal id, event, call, route), then the
        events written meanwhile."""
        for deal_id, to_state, call, *route in rows:
            self.deals.setdefault(deal_id, set()).add(flag_key(to_state, call))
            if route and route[0] is not None:
                self.routes[deal_id] = route[0]
        for deal_id, events, route in self._early or ():
            self._apply(deal_id, events, route)
        self._early = None
        self.loaded = True

    def failed(self) -> None:
        """The start's read failed: the count stays unknown (None) and nothing more is kept."""
        self._early = None
        self.deals.clear()
        self.routes.clear()
        self._hints.clear()

    def _apply(self, deal_id: str, events: list[Any], route: str | None = None) -> None:
        for e in events:
            state = str(_get(e, "to_state"))
            if state in FLAGGED_EVENTS:
                call = call_of({"to_state": state, "detail": _get(e, "detail")})
                self.deals.setdefault(deal_id, set()).add(flag_key(state, call))
                told = route if route is not None else self._hints.pop(deal_id, None)
                if told is not None:
                    self.routes[deal_id] = told
            elif state == RESOLVED:
                self.deals.pop(deal_id, None)
                self.routes.pop(deal_id, None)
            elif deal_id in self.deals and approved({"detail": _get(e, "detail")}):     # reversed NAME
                keys = self.deals[deal_id]
                keys.discard(state)
                if not keys:
                    del self.deals[deal_id]
                    self.routes.pop(deal_id, None)


def _relevant(state: Any) -> bool:
    return isinstance(state, str) and (state in FLAGGED_EVENTS or state == RESOLVED or state.startswith(ACKED))


async def load_open_flags(flags: OpenFlags, ledger: Any) -> None:
    """Read the ledger's open flags once, after the journal's acknowledged deals are in DuckDB."""
    from engine.ledger_query import open_flag_events
    from engine.ledger_store import LedgerError
    from engine.ops.ledger_reads import read_in_process

    try:
        wait = getattr(ledger, "wait_loaded", None)
        if wait is not None:
            await wait()
        rows = await read_in_process(open_flag_events, Path(ledger.path))
    except (LedgerError, OSError) as exc:
        flags.failed()
        log.error("%s; bsp status open_flags and bsp_deals_flagged_open stay unknown until the engine starts "
                  "again (the ledger is read for them once, at the start): stop the engine, check the file with "
                  "`bsp audit verify --ledger %s`, start it again; `bsp deals --flagged --live` lists the flagged "
                  "deals meanwhile", exc, ledger.path)
        return
    flags.load(rows)
