"""Deal keys shared by several engines (a ``nats consume`` channel with ``keys``): the manager's side.

The transaction log is each engine's own key store; a channel may bring a
store shared by the engines that take its messages (``conn.extra["keys"]``,
``engine.channels.nats_keys.SharedKeys``).  For a keyed deal on such a channel
``claim`` runs in ``TxnManager._admit``, after the engine's own checks (its log,
its deals in flight) and before the deal is admitted (before its first call):

    claimed   the deal runs as usual
    done      a duplicate, answered with the stored answer (``TxnManager._duplicate``); a repeat whose
              fingerprint differs from the stored one (``fp``: another amount, currency or party,
              ``engine.txn.fingerprint``) is refused, kind ``key_conflict`` (``TxnManager.conflicts``)
    busy      another engine runs it, or the store cannot be reached: the exchange is *deferred*:
              not run, not recorded, handed back to the channel, which keeps the message and runs it
              again later (``nats consume``: in-progress acks, no delivery counted)
    flag      its engine is gone: failed, kind ``in_doubt``, code 96, not run (as recovery flags a
              deal left in flight by a crash)

``finish`` (from ``TxnManager.after_commit``) writes the final state of the deals
claimed here (status, code, the reply sealed as in the log, the deal's fingerprint) before the
channel acknowledges the messages.

A restarted engine is the same engine: its id is kept next to its ledger (``engine_id``: made once,
``<ledger>.engine``; two engines never share a ledger, it is locked), so the claims it left behind are
its own.  Its recovery (``engine.txn.recovery``) hands the final state of each deal it resolved from
its log to the store (``recovered``: written over its old claim once the channel has bound the bucket),
and a claim of its own that its log knows nothing of (it died between the claim and the log record,
before any call) is taken back rather than waited for and flagged.
"""
from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any

from engine.runtime.exchange import StepFailure
from engine.txn import fingerprint

DEFERRED = "deferred"        # a failure kind: not run, not recorded, the message kept by the channel for later


def store_of(exs: list[Any]) -> Any:
    """The shared key store of the channel these exchanges came from, or None."""
    if not exs:
        return None
    extra = getattr(exs[0].conn, "extra", None)
    return extra.get("keys") if extra else None


def engine_id(ledger_path: str | Path) -> str:
    """This engine's id in shared key stores: ``HOST:RANDOM``, made once and kept in ``<ledger>.engine``
    (an engine is its ledger: a restart, or the ledger moved to another host, is the same engine; a copy
    of the ledger that brings this file along is refused while the original runs,
    ``engine.channels.nats_engine_id``)."""
    ledger = Path(ledger_path)
    path = ledger.with_name(ledger.name + ".engine")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    if text:
        return text
    text = f"{socket.gethostname()}:{secrets.token_hex(4)}"
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return text


def deferred(ex: Any) -> bool:
    return ex.failure is not None and ex.failure.kind == DEFERRED


async def claim(txn: Any, store: Any, plan: Any, live: list[Any], out: list[Any]) -> list[Any]:
    """Claim the keys of the exchanges ``_admit`` is about to admit (``out``, of ``live``); returns
    those that may run."""
    keyed = [ex for ex in out if txn.states[ex].key is not None]
    if not keyed:
        return out
    verdicts = await store.claim([(txn.states[ex].key, txn.states[ex].deal_id) for ex in keyed],
                                 getattr(keyed[0].conn, "number", 0))
    stopped: set[Any] = set()
    for ex, v in zip(keyed, verdicts):
        st = txn.states[ex]
        if v.outcome == "claimed":
            continue
        stopped.add(ex)
        if v.outcome == "flag":
            st.admitted, st.begin = True, None      # its end goes to the log, its final state to the store
            st.move("accepted", {"key": st.key})     # the deal of this key here (the ledger's deal_keys)
            st.move("flagged", {"reason": v.text})
            ex.fail(StepFailure("in_doubt", f"deal key {st.key!r}: {v.text}", code="96",
                                where=str(plan.route.pos)))
            continue
        ev = txn._inflight.pop(st.key, None)         # not running here: copies waiting for it look again
        if ev is not None:
            ev.set()
        if v.outcome == "done":
            if txn.conflicts(plan, ex, st, v.value.get("fp"), v.value.get("deal")):
                continue
            end = {"id": v.value.get("deal"), "status": v.value.get("status"), "code": v.value.get("code"),
                   "reply": v.value.get("reply")}
            try:
                txn.unseal(end["reply"], f"reply|{end['id']}")
            except Exception as exc:                 # sealed with a keyring this engine does not have
                ex.fail(StepFailure("internal", f"deal key {st.key!r}: the answer of deal {end['id']} in "
                                    f"{store.where()} cannot be read: {exc}; give every engine sharing the "
                                    f"consumer the same field keyring", where=str(plan.route.pos)))
                continue
            txn._duplicate(ex, st, end)
        else:
            ex.fail(StepFailure(DEFERRED, f"deal key {st.key!r}: {v.text}", where=str(plan.route.pos)))
    for ex in live:                                 # a copy in this batch of a deal that does not run here
        pending = txn.states[ex].duplicate_of
        if pending is not None and pending.get("pending") in stopped and deferred(pending["pending"]):
            ex.fail(StepFailure(DEFERRED, pending["pending"].failure.detail, where=str(plan.route.pos)))
    return [ex for ex in out if ex not in stopped]


async def finish(txn: Any, exs: list[Any], records: list[Any]) -> None:
    """After the commit, before the ack: the final state of each deal whose key this engine claimed.
    A deal resolved by recovery (its exchange carries ``recovered_keys``, the store of its channel) hands
    its final state to the store, which writes it over this engine's old claim once it can."""
    store = store_of(exs)
    extra = getattr(exs[0].conn, "extra", None) if exs else None
    recovered = extra.get("recovered_keys") if extra and store is None else None
    if store is None and recovered is None:
        return
    items = []
    for ex, rec in zip(exs, records):
        st = txn.states.get(ex)
        if st is None or not st.admitted or st.key is None or st.duplicate_of is not None:
            continue
        if st.freed and recovered is None:
            # nothing of it reached a counterpart (its key is free here): the claim is released, not finished,
            # so that the message a nak brings back runs again, on whichever engine (not a duplicate of a failure)
            items.append((st.key, {"freed": True}))
            continue
        end = {"status": rec.status, "code": rec.response_code, "reply": txn.seal(ex.reply, f"reply|{st.deal_id}")}
        fp = fingerprint.of(rec.amount, rec.currency, rec.party, st.match, txn.digests)
        if fp is not None:
            end["fp"] = fp
        items.append((st.key, st.deal_id, end) if recovered is not None else (st.key, end))
    if items and recovered is not None:
        recovered.recovered(items)
    elif items:
        await store.finish(items)


def recovered_ends(store: Any, ends: list[dict[str, Any]]) -> None:
    """Deals whose end the log holds but whose ledger row (and so whose final state in the store) a
    crash may have cut off (recovery writes their rows again): their final state, as logged."""
    items = [(e["key"], e["id"], {"status": e.get("status"), "code": e.get("code"), "reply": e.get("reply"),
                                  **({"fp": e["fp"]} if e.get("fp") else {})})
             for e in ends if e.get("key")]
    if store is not None and items:
        store.recovered(items)
