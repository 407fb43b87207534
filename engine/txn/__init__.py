"""Transactions: steps as participants with compensation, business-key idempotency,
crash durability and recovery, ISO 8583 reversals (docs/transactions.md).

Nothing is imported at package load: ``engine.runtime.dispatch`` imports
``manager_for`` from here while ``engine.runtime`` itself is loading.
"""
from __future__ import annotations

from typing import Any, Iterable


def manager_for(ledger: Any) -> Any:
    """The ``TxnManager`` of an open ledger (one per ledger), or None without a ledger."""
    from engine.txn.manager import manager_for as _manager_for
    return _manager_for(ledger)


async def recover(dispatchers: Iterable[Any]) -> None:
    """Resolve the deals a crash left in flight on these dispatchers' channels.

    Called at start-up, once the outbound channels run and before the inbound
    ones accept traffic (``Switchboard.run``, ``LiveEngine`` start and reload);
    a channel already recovered by this process is skipped.
    """
    dispatchers = list(dispatchers)
    for disp in dispatchers:
        # the running totals of `limit` steps first (engine/totals.py): as the ledger and the deals in flight
        # leave them, before recovery settles those deals' reservations, whatever channel they came on
        totals = getattr(disp, "totals", None)
        if totals is not None and not totals.loaded:
            from engine.runtime.counting import rebuild
            await rebuild(disp)
    for disp in dispatchers:
        txn = getattr(disp, "txn", None)
        if txn is not None:
            await txn.ready(disp)


__all__ = ["manager_for", "recover"]
