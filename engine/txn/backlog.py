"""The entries waiting for the transaction log while it cannot be written (a full disk): kept small, bounded,
and written as soon as it works again.

While ``<ledger>.txn`` refuses writes, what already happened must still reach it (``TxnManager._later``: a
deal's ``end``, the marks of calls made and compensations done, a reversal's ``rev`` and the store and forward
task's ``revtry`` / ``revack`` / ``revrec``; the lazy ``done`` and ``recorded`` marks): it waits in the
manager's ``_lazy`` list and rides along with the next write that works.  Three things keep that list from
growing without end (docs/transactions.md, "When the log cannot be written for long"):

* ``coalesce``: entries a later one makes useless are dropped (each attempt of a reversal to a silent host
  added a ``revtry``: one per attempt, for ever; now one per reversal), ``recorded`` marks merge into one;
* a bound in entries and one in bytes (``LATER_MAX`` entries, ``TxnManager.later_max``; ``LATER_BYTES``,
  ``TxnManager.later_bytes``; platform.yaml ``ledger.txn_backlog_entries`` / ``ledger.txn_backlog_bytes``):
  past either the manager refuses new work up front (``TxnManager.write``): no request is admitted, so no
  new entry can join, until a write works again.  The bytes are the entries' size as the log would write
  them (``size_of``), counted only on the failure path (``TxnManager._later`` / ``_put_back``, when a write
  failed): a served request pays nothing for them;
* ``keep_up``: a task that writes the list alone, once a second while it waits, so the log catches up as
  soon as there is room, with or without traffic (and once more when the engine stops).  ``keep_all_up``
  starts one per manager wherever a ``TxnManager`` serves: ``Switchboard.run`` (``bsp run`` with route
  files, ``bsp test`` and ``bsp replay``, whose isolated engine is a running switchboard), ``LiveEngine.run``
  (``bsp run``, ``POST /dead-letters/{id}/retry``) and ``bsp dead retry`` in its own process, which feeds its
  switchboard's dispatchers without running it.
"""
from __future__ import annotations

from typing import Any, Iterable

import orjson
import trio

from engine.runtime.exchange import StepFailure

LATER_MAX = 20_000      # entries waiting for the log past which new work is refused (~9 MB of typical ends; docs)
LATER_BYTES = 64 << 20  # bytes of them (as the log writes them) past which new work is refused (docs/ledger.md)
CATCH_UP_EVERY = 1.0    # seconds between two tries of a log that cannot be written


# ``error.text`` of a deal failed because the log cannot be written or refused it up front (what a reply field
# or an HTTP problem's detail shows): short, without the log's path nor the OS error, which stay in the deal's
# reason and the engine's log
LOG_DOWN = "transaction log unavailable"


def size_of(entries: Iterable[dict[str, Any]]) -> int:
    """The bytes ``entries`` take in a log record (each as orjson writes it, and its comma)."""
    from engine.txn.log import _default
    dumps, opt = orjson.dumps, orjson.OPT_NON_STR_KEYS
    return sum(len(dumps(e, default=_default, option=opt)) + 1 for e in entries)


def mib(n: int) -> str:
    """``n`` bytes for a reader: ``64 MiB``, ``1.5 MiB``, ``900 KiB``, ``12 bytes``."""
    if n >= 1 << 20:
        return f"{n / (1 << 20):.4g} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.4g} KiB"
    return f"{n} bytes"


def log_fault(exc: BaseException, what: str, where: str | None) -> StepFailure:
    """The failure of a request the transaction log could not take (``exc``: a failed write, or new work
    refused past the bound): kind ``internal`` (96), the whole reason for the deal row, ``LOG_DOWN`` for
    the client."""
    failure = StepFailure("internal", f"{exc}; {what}", where=where, text=LOG_DOWN)
    failure.logged = True      # the transaction log's own alarm reports it (engine/faultlog.py), not each deal
    return failure


def coalesce(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` (in log order) without those a later entry makes useless, as the log would read them:
    of a reversal's ``revtry`` marks only the last; a reversal whose ``revrec`` is there loses its ``revtry``
    and ``revack`` (and, when its ``rev`` is there too, never reached the log: all of it goes); every
    ``recorded`` mark merged into one, where the last one was."""
    recrec: set[str] = set()
    revs: set[str] = set()
    last_try: dict[str, int] = {}
    last_rec = -1
    for n, e in enumerate(entries):
        t = e.get("t")
        if t == "recorded":
            last_rec = n
        elif t in ("rev", "revtry", "revrec"):
            k = f"{e.get('id')}|{e.get('step')}"
            if t == "rev":
                revs.add(k)
            elif t == "revrec":
                recrec.add(k)
            else:
                last_try[k] = n
    ids: list[str] = []
    keys: list[str] = []
    out: list[dict[str, Any]] = []
    for n, e in enumerate(entries):
        t = e.get("t")
        if t == "recorded":
            ids += e.get("ids", ())
            keys += e.get("keys", ())
            if n == last_rec:
                out.append({"t": "recorded", "ids": list(dict.fromkeys(ids)), "keys": list(dict.fromkeys(keys))})
            continue
        if t in ("rev", "revtry", "revack", "revrec"):
            k = f"{e.get('id')}|{e.get('step')}"
            if k in recrec and (t in ("revtry", "revack") or k in revs):
                continue
            if t == "revtry" and last_try.get(k) != n:
                continue
        out.append(e)
    return out


def managers(dispatchers: Iterable[Any]) -> list[Any]:
    """The transaction managers of these dispatchers, once each."""
    out: list[Any] = []
    for disp in dispatchers:
        mgr = getattr(disp, "txn", None)
        if mgr is not None and all(m is not mgr for m in out):
            out.append(mgr)
    return out


def keep_all_up(nursery: trio.Nursery, dispatchers: Iterable[Any]) -> None:
    """Start ``keep_up`` in ``nursery`` for each transaction manager of these dispatchers (one per ledger)."""
    from engine.txn.late_record import keep_recording

    for mgr in managers(dispatchers):
        nursery.start_soon(keep_up, mgr)
        nursery.start_soon(keep_recording, mgr)     # deals whose row the ledger could not take yet


async def keep_up(mgr: Any) -> None:
    """Run until cancelled: while entries wait because a write failed, write them alone every
    ``CATCH_UP_EVERY`` seconds (the manager reports the fault once and its end).  Cancelled (the engine
    stops), one last try, at most a second: what it writes is not lost to a restart."""
    try:
        while True:
            await mgr.behind.wait()
            await trio.sleep(CATCH_UP_EVERY)
            await mgr.catch_up()
    finally:
        if mgr.failing is not None and mgr.waiting():
            with trio.CancelScope(shield=True), trio.move_on_after(CATCH_UP_EVERY):
                await mgr.catch_up()
