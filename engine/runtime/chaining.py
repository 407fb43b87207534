"""The dispatcher's side of ``continuity`` steps (engine/statement_chains.py): rebuild, mark, settle, release.

Called only by a dispatcher one of whose routes has a ``continuity`` step (``Dispatcher.chains`` is not None).
A committed statement carries a ``statement link`` event (and a ``statement break`` one when it did not follow
on), in the same ledger transaction as its row, and moves its chain on; any other deal (rejected, failed, a
duplicate) drops its pending link.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.deal import DealEvent
from engine.statement_chains import BREAK, LINK, Chains


def chains_of(routes: list[Any]) -> Chains | None:
    for br in routes:
        for step in br.steps:
            c = getattr(step, "chains", None)
            if isinstance(c, Chains):
                return c
    return None


def mark(exs: list[Any], records: list[Any], at: datetime) -> None:
    for ex, rec in zip(exs, records):
        links = ex.links
        if links and rec.status == "committed":
            events = []
            for link in links:
                events.append(DealEvent(at, None, LINK, link.detail()))
                if link.broken:
                    events.append(DealEvent(at, None, BREAK, link.break_detail()))
            rec.events[:0] = events


def settle(chains: Chains, exs: list[Any], records: list[Any], errors: list[Any] | None = None) -> None:
    """After the ledger answered: a committed deal the ledger stored moves its chain on; any other drops its link."""
    for i, (ex, rec) in enumerate(zip(exs, records)):
        if ex.links:
            stored = errors is None or errors[i] is None
            chains.settle(ex.links, rec.status == "committed" and stored)


def release(chains: Chains, exs: list[Any]) -> None:
    for ex in exs:
        if ex.links:
            chains.settle(ex.links, False)


def logged(links: list[Any]) -> list[list[Any]]:
    """The events of a committed deal's links as its transaction log ``end`` keeps them (``[state, detail]``),
    for a row written again from the log after a crash (engine/txn/recovery.py ``_rerecord``)."""
    out: list[list[Any]] = []
    for link in links:
        out.append([LINK, link.detail()])
        if link.broken:
            out.append([BREAK, link.break_detail()])
    return out


def rerecorded(chains: Chains | None, ends: list[dict[str, Any]]) -> None:
    """Rows written again from the log after the chains were read: their links move the chains on."""
    if chains is None or not chains.loaded:
        return          # read with the ledger's rows when the chains are rebuilt
    from engine.statement_chains import head_of

    for e in ends:
        for state, d in e.get("links") or ():
            if state == LINK:
                chains._move_on((str(d.get("chain")), str(d.get("key"))), head_of(d, f"deal {e['id']}"))
