"""The running chains of ``continuity`` steps: each account's last statement, checked at intake.

One ``Chains`` per open ledger (``chains_for(ledger)``), shared by every generation as ``limit`` totals are
(engine/totals.py).  A chain is ``(name, key)``: ``name`` the step's (``continuity statements``), ``key`` the
text its ``key`` gave (the account's member number; a classified value is kept as a keyed digest, as a
``limit`` key is: engine/limit_key.py).  Its figure is the last statement committed (``confirmed``) and the
statements of deals still running (``pending``, in the order they were judged):

    links = chains.judge(name, [(key, head), ...])   # one Link per statement, its Finding against the chain
    chains.settle(links, committed)                   # at the deal's end: committed moves the chain on

All of it is synchronous on the trio thread: a batch's statements of one account are judged together, in
the order of their closing date, number and page (engine/reconcile/continuity.py ``check``), so a late 103
in the same batch as 104 makes no break; a statement of another batch running at the same time is judged
against the pending ones.

Durability: a committed deal of a ``continuity`` step carries one ledger event ``statement link`` (detail:
chain, key, number, page, opening, closing, currency, day, closing tag, last page, reference) in the same
transaction as its row, and one ``statement break`` when it did not follow on (detail: the kinds, the words,
the previous statement and this one); ``rebuild`` finds each chain's last link at the engine's start (and
``bsp ledger archive`` keeps the last link of each chain it moves out in ``archived_links``).  Routes without
a ``continuity`` step never touch any of this.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from engine.limit_key import LimitKeys
from engine.reconcile.continuity import FIRST, PASSED, Finding, Head, check

log = logging.getLogger("bsp.chains")
LINK = "statement link"       # the deal event of a committed statement: the chain's memory
BREAK = "statement break"     # the deal event of a committed statement that did not follow on
_ATTR = "_bsp_chains"


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def link_detail(name: str, key: str, h: Head) -> dict[str, Any]:
    return {"chain": name, "key": key, "number": h.number, "page": h.page, "opening": _s(h.opening),
            "opening_tag": h.opening_tag, "closing": _s(h.closing), "closing_tag": h.closing_tag,
            "currency": h.currency, "day": h.day.isoformat() if h.day else None, "last_page": h.last_page,
            "reference": h.label}


def head_of(d: dict[str, Any], place: str) -> Head:
    """The Head a ``statement link`` event's detail keeps (what the next statement is checked against)."""
    def dec(v: Any) -> Decimal | None:
        return None if v is None else Decimal(str(v))
    day = d.get("day")
    return Head(account=str(d.get("key") or ""), number=d.get("number"), page=d.get("page"),
                opening=dec(d.get("opening")), opening_tag=str(d.get("opening_tag") or ""),
                closing=dec(d.get("closing")), closing_tag=str(d.get("closing_tag") or ""),
                currency=str(d.get("currency") or ""), day=dt.date.fromisoformat(day) if day else None,
                total=Decimal(0), entries=0, label=str(d.get("reference") or ""), place=place,
                last_page=d.get("last_page"))


def order(h: Head) -> tuple[Any, ...]:
    """Later statements sort higher (``check``'s order): the chain's last is the highest committed."""
    return (h.day or dt.date.min, h.number or 0, h.page or 0)


@dataclass
class Link:
    """One statement judged against its chain: what ``settle`` confirms or drops."""
    name: str
    key: str
    head: Head
    finding: Finding
    previous: Head | None

    @property
    def chain(self) -> tuple[str, str]:
        return (self.name, self.key)

    @property
    def broken(self) -> bool:
        return self.finding.status not in PASSED

    def detail(self) -> dict[str, Any]:
        return link_detail(self.name, self.key, self.head)

    def break_detail(self) -> dict[str, Any]:
        """The ``statement break`` event: the account (key), the previous statement and its closing, this one."""
        p, h = self.previous, self.head
        return {"chain": self.name, "key": self.key,
                "kinds": [k for k, _ in self.finding.problems], "note": self.finding.note,
                "previous": None if p is None else {"statement": p.statement(), "reference": p.label,
                                                    "closing": _s(p.closing), "currency": p.currency,
                                                    "day": p.day.isoformat() if p.day else None},
                "statement": {"statement": h.statement(), "reference": h.label, "opening": _s(h.opening),
                              "closing": _s(h.closing), "currency": h.currency,
                              "day": h.day.isoformat() if h.day else None}}


class Chains:
    def __init__(self) -> None:
        self.confirmed: dict[tuple[str, str], Head] = {}
        self.pending: dict[tuple[str, str], list[Head]] = {}
        self.keys = LimitKeys()
        self.loaded = False
        self._loading: Any = None
        self.breaks: dict[str, int] = {}      # committed statements with a break since the start, by kind
        self.statements = 0                   # committed statements judged since the start

    # -- judge / settle --------------------------------------------------------
    def judge(self, name: str, items: list[tuple[str, Head]]) -> list[Link]:
        """Each statement against its chain: the last committed, the pending ones and the others of
        ``items`` of the same key, in ``check``'s order; each is then pending until ``settle``."""
        items = [(key, h if h.account == key else replace(h, account=key)) for key, h in items]   # one chain
        by_key: dict[str, list[int]] = {}
        for i, (key, _) in enumerate(items):
            by_key.setdefault(key, []).append(i)
        out: list[Link | None] = [None] * len(items)
        for key, idx in by_key.items():
            chain = (name, key)
            before = ([self.confirmed[chain]] if chain in self.confirmed else []) + self.pending.get(chain, [])
            heads = before + [items[i][1] for i in idx]
            found = check(heads)
            ranked = sorted(range(len(heads)), key=lambda j: (order(heads[j]), j))
            for n, i in enumerate(idx):
                j = len(before) + n
                f = found[j]
                at = ranked.index(j)
                prev = next((heads[ranked[k]] for k in range(at - 1, -1, -1)
                             if heads[ranked[k]].opening is not None and heads[ranked[k]].closing is not None), None)
                if prev is None and before and f.status == FIRST:
                    # earlier than every statement the chain holds: a late statement, not a first one
                    f.add("out_of_order", f"statement {items[i][1].statement()} comes before statement "
                                          f"{before[-1].statement()} ({before[-1].label or '?'}), which the chain "
                                          f"already holds")
                out[i] = Link(name, key, items[i][1], f, prev)
            self.pending.setdefault(chain, []).extend(items[i][1] for i in idx)
        return [x for x in out if x is not None]

    def settle(self, links: list[Link], committed: bool) -> None:
        for link in links:
            chain = link.chain
            held = self.pending.get(chain, [])
            if any(h is link.head for h in held):
                held[:] = [h for h in held if h is not link.head]
            if not held:
                self.pending.pop(chain, None)
            if committed:
                self.confirm(link)
        links.clear()

    def confirm(self, link: Link) -> None:
        self.statements += 1
        if link.broken:
            k = link.finding.status
            self.breaks[k] = self.breaks.get(k, 0) + 1
        self._move_on(link.chain, link.head)

    def _move_on(self, chain: tuple[str, str], h: Head) -> None:
        if h.opening is None or h.closing is None:
            return                                  # unchecked: no link of the chain
        last = self.confirmed.get(chain)
        if last is None or order(h) >= order(last):
            self.confirmed[chain] = h

    # -- the rebuild ------------------------------------------------------------
    async def rebuild(self, ledger: Any) -> None:
        """Each chain's last link from the ledger (its ``statement link`` events and the links ``bsp ledger
        archive`` carried forward).  Once per engine, before the first statement of a route with a
        ``continuity`` step; batches arriving meanwhile wait for it."""
        import trio

        while not self.loaded:
            if self._loading is not None:
                await self._loading.wait()
                continue
            self._loading = trio.Event()
            try:
                read = getattr(ledger, "statement_links", None)
                rows = await read() if read is not None else []
                for detail, place in rows:
                    d = detail if isinstance(detail, dict) else __import__("orjson").loads(detail)
                    self._move_on((str(d.get("chain")), str(d.get("key"))), head_of(d, place))
                self.loaded = True
                if rows:
                    log.info("chains: %d statement link(s) read from the ledger, %d account chain(s)",
                             len(rows), len(self.confirmed))
            finally:
                done, self._loading = self._loading, None
                done.set()

    # -- the admin's view -------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """What ``bsp status`` shows: statements judged and breaks since the start, chains held."""
        return {"chains": len(self.confirmed), "statements": self.statements,
                "breaks": sum(self.breaks.values()), "breaks_by_kind": dict(sorted(self.breaks.items())),
                "pending": sum(len(v) for v in self.pending.values())}


def _base(ledger: Any) -> Any:
    from engine.totals import _base as base
    return base(ledger)


def chains_for(ledger: Any) -> Chains:
    """The chains of ``ledger`` (one per open ledger; a fresh one, not durable, without a ledger)."""
    if ledger is None:
        c = Chains()
        c.loaded = True
        return c
    base = _base(ledger)
    c = vars(base).get(_ATTR) if hasattr(base, "__dict__") else None
    if c is None:
        c = Chains()
        c.keys = LimitKeys(getattr(base, "keyring", None))
        try:
            setattr(base, _ATTR, c)
        except AttributeError:
            pass
    return c


def existing_chains(ledger: Any) -> Chains | None:
    if ledger is None:
        return None
    base = _base(ledger)
    return vars(base).get(_ATTR) if hasattr(base, "__dict__") else None


__all__ = ["BREAK", "LINK", "Chains", "Link", "chains_for", "existing_chains", "head_of", "link_detail"]
