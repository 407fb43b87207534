"""How many entries the live engine's per-exchange bookkeeping holds now (a leak shows as growth).

    sizes = bookkeeping(engine)      # {"txn.states": 0, "mux.pending": 3, ...}, a LiveEngine

Read on every ``/metrics`` scrape (``bsp_bookkeeping_entries{structure}``,
engine/ops/gauges.py) and by ``bench/soak.py``.  Every structure here should go
back to (about) zero when the engine is idle, or stay bounded by something
other than traffic: ``txn.log.ends`` is the key store, which holds every deal
key for the key retention (35 days by default) on purpose (counted whole; all
but the last compaction's are in the answers files on disk, engine/txn/answers.py,
not in memory); ``mux.sent`` /
``mux.seen`` are memos bounded by ``engine.channels.mux.MEMO_MAX``.  The set
of names is fixed, so the metric's label set does not grow.
"""
from __future__ import annotations

import sys
from typing import Any

import trio

STRUCTURES = (
    "generations.alive", "generations.retiring", "engine.stats_parts", "engine.task_scopes", "observer.route_tags",
    "metrics.channel_connects",
    "txn.states", "txn.light", "txn.light_sent", "txn.inflight_keys", "txn.queue", "txn.lazy",
    "txn.log.pending", "txn.log.accepted", "txn.log.unrecorded", "txn.log.ends",
    "routes.running", "calls.sent", "channels.objects",
    "mux.pending", "mux.fifo", "mux.sent", "mux.seen", "tcp.pending",
    "ledger.queue", "ledger.to_load", "trio.tasks", "python.blocks",
)


def _len(obj: Any, attr: str) -> int:
    value = getattr(obj, attr, None)
    try:
        return len(value) if value is not None else 0
    except TypeError:
        return 0


def bookkeeping(engine: Any) -> dict[str, int]:
    """The size of each structure in ``STRUCTURES``, over the running generation and every retired
    one still finishing its work (a structure the engine does not have counts 0)."""
    from engine.ops.generation import ALIVE
    from engine.txn.manager import existing_manager
    from engine.txn.plan import plan_of

    out = dict.fromkeys(STRUCTURES, 0)
    gens = ([engine.current] if engine.current is not None else []) + list(engine._retiring)
    out["generations.alive"] = len(ALIVE)         # freed ones leave it (cycles: at the next gc run)
    out["generations.retiring"] = len(engine._retiring)
    out["engine.stats_parts"] = len(engine._all_stats)
    out["engine.task_scopes"] = sum(len(s) for s in engine._scopes.values())
    observer = engine.observer
    out["observer.route_tags"] = _len(observer, "_tags")
    out["metrics.channel_connects"] = _len(getattr(observer, "metrics", None), "_connects")
    txn = existing_manager(engine.view)
    if txn is not None:
        out["txn.states"] = len(txn.states)
        out["txn.light"] = len(txn.light)
        out["txn.light_sent"] = len(txn.light_sent)
        out["txn.inflight_keys"] = len(txn._inflight)
        out["txn.queue"] = len(txn._queue)
        out["txn.lazy"] = len(txn._lazy)
        log = txn._log
        if log is not None:
            for name in ("pending", "accepted", "unrecorded", "ends"):
                out[f"txn.log.{name}"] = _len(log, name)
    seen_calls: set[int] = set()
    channels: dict[int, Any] = {}
    for gen in gens:
        for br in gen.routes().values():
            out["routes.running"] += len(br.running)
            try:
                calls = plan_of(br).calls.values()
            except Exception:          # noqa: BLE001 - a route without a plan has no call memo
                calls = ()
            for call in calls:
                if id(call) not in seen_calls:
                    seen_calls.add(id(call))
                    out["calls.sent"] += _len(call, "sent")
        for ch in gen.channels.values():
            channels[id(ch)] = ch
    out["channels.objects"] = len(channels)
    for ch in channels.values():
        if hasattr(ch, "_seen"):                          # tcp connect with pool / match (MUX)
            out["mux.pending"] += _len(ch, "_pending")
            out["mux.sent"] += _len(ch, "_sent")
            out["mux.seen"] += _len(ch, "_seen")
            for conn in getattr(getattr(ch, "pool", None), "conns", ()):
                out["mux.fifo"] += _len(conn, "fifo")
        elif hasattr(ch, "_pending"):
            out["tcp.pending"] += _len(ch, "_pending")
    ledger = engine.ledger
    out["ledger.queue"] = _len(ledger, "_queue")
    out["ledger.to_load"] = _len(ledger, "_to_load")
    try:
        out["trio.tasks"] = trio.lowlevel.current_statistics().tasks_living
    except RuntimeError:              # not in trio (a test reading a stopped engine)
        pass
    out["python.blocks"] = sys.getallocatedblocks()
    return out
