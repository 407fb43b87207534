"""A repeat of an answered deal that a step now refuses before admission: answered as a duplicate.

On a keyed route the deal key is checked at admission (before the first call; on a route without a
call, after its last step), and the steps before it (``validate``, a check, a ``lookup``) run first.  A
repeat of a request whose original was answered (the mainframe's retry after a time-out) could then be
refused by a rule that no longer holds: a cut-off passed between the original and its repeat, a table
reloaded.  The sender would read the refusal as the order's and believe it failed, although the
counterpart holds it.  So, for a keyed route, when a step refused an exchange before admission:

* its key is the one evaluated after the ``deal`` step; when the step that refused it came before the
  ``deal`` step, the key (and the deal's values, for the ``key_conflict`` check) are evaluated now in the
  scope at hand; when they cannot be, the refusal stands;
* the key is looked up where admission looks it up: a deal of another batch running it (waited for),
  the transaction log's ends (and those answered while the log could not be written), the ledger past
  the retention, a ``nats consume`` shared key store (read only: a refused request claims nothing);
* held by an answered deal: the exchange is that deal's duplicate, with its answer (``TxnManager._duplicate``,
  recorded ``duplicate``, the reason adding what refused it now), or ``key_conflict`` when its amount,
  currency or party differ (``TxnManager.conflicts``); a copy whose original is admitted in the same batch
  waits for its outcome as an ordinary copy does (``in_batch``, after admission);
* not held (a new request, or a repeat of one that was itself refused: its key was never taken): the
  refusal stands, as before.

Costs nothing on the success path: ``TxnManager.run_steps`` calls it only when a step failed an exchange
before admission (one length comparison per batch otherwise).
"""
from __future__ import annotations

from typing import Any

from engine.txn import fingerprint

# failures that are not a step's verdict on the request: the engine's own (a shared key store that defers)
_NOT_REFUSALS = frozenset({"deferred", "duplicate", "key_conflict"})
_DEAL_FIELDS = ("deal_type", "reference", "amount", "currency", "party")


def _refused(txn: Any, ex: Any) -> Any:
    """The state of ``ex`` when a step refused it before admission, else None."""
    f = ex.failure
    if f is None or f.kind in _NOT_REFUSALS:
        return None
    st = txn.states.get(ex)
    if st is None or st.admitted or st.duplicate_of is not None:
        return None
    return st


def _key(plan: Any, ex: Any, st: Any) -> str | None:
    """The deal key of a refused exchange: evaluated after the deal step, else now (None when it cannot
    be: the refusal stands)."""
    if st.keyed:
        return st.key
    try:
        v = plan.key(ex.scope)
    except Exception:
        return None
    return None if v is None else f"{plan.route.name}|{v}"


def _deal_values(plan: Any, ex: Any, st: Any) -> bool:
    """The deal's values (amount, currency, party: its fingerprint) of an exchange refused before its deal
    step ran: the deal step run now.  False when it fails (the refusal stands; the values as they were).
    A deal step that comes after the admission point has no values there for any repeat: nothing to do."""
    if st.keyed or plan.key_at is None or ex.route is None or plan.key_at >= (plan.admit_at or 0):
        return True
    saved = tuple(getattr(ex, name) for name in _DEAL_FIELDS)
    try:
        ex.route.steps[plan.key_at].run(ex)
    except Exception:
        for name, value in zip(_DEAL_FIELDS, saved):
            setattr(ex, name, value)
        return False
    return True


def _take(txn: Any, plan: Any, ex: Any, st: Any, key: str, fp: str | None) -> dict[str, Any] | None:
    """Make ``ex`` a repeat of ``key`` (whose original's fingerprint is ``fp``): its deal values, its key; the
    step's refusal set aside and returned as the note its duplicate record carries.  None, the refusal
    standing and the exchange as it was, when its deal values cannot be had, or when it lacks a value the
    original has (a request refused for its missing amount is refused for that, not called a conflict)."""
    saved, match = tuple(getattr(ex, name) for name in _DEAL_FIELDS), st.match
    if not _deal_values(plan, ex, st):
        return None
    try:
        if getattr(plan, "match", None) is not None:
            # the deal's `match` (a changed beneficiary account): compared with the original's as for any
            # repeat, so a refused repeat that names another account is a key conflict, never the original's answer
            st.match = txn.digests(plan.match(ex.scope))
        lacks = _lacks(txn, plan, fp, ex, st)
    except Exception:
        lacks = True                               # it cannot be had: the step's refusal stands
    if lacks:
        for name, value in zip(_DEAL_FIELDS, saved):
            setattr(ex, name, value)
        st.match = match
        return None
    f = ex.failure
    st.keyed, st.key = True, key
    ex.failure = None
    ex.scope["error"] = None                       # as before any failure (Dispatcher._route)
    return {"kind": f.kind, "code": f.code, "reason": f.detail}


def _lacks(txn: Any, plan: Any, fp: str | None, ex: Any, st: Any) -> bool:
    """The refused repeat lacks a value in which it differs from its original (no amount where the original
    has one): its own refusal says what is wrong with it; only values present on both sides make a conflict."""
    missing = {"amount": ex.amount is None, "currency": ex.currency is None, "party": ex.party is None,
               "match": st.match is None}
    return any(missing.get(name) for name, _, _ in fingerprint.differs(
        fp, fingerprint.of_exchange(ex, st.match, txn.digests), txn.raw_of(plan, ex), txn.digests))


async def answer(txn: Any, plan: Any, group: list[Any]) -> list[tuple[Any, Any, str]]:
    """Before admission: answer each exchange of ``group`` refused by a step whose key an answered deal
    holds (see the module).  Returns the refused ones whose key was found nowhere, for ``in_batch``."""
    found: list[tuple[Any, Any, str]] = []
    for ex in group:
        st = _refused(txn, ex)
        if st is not None:
            key = _key(plan, ex, st)
            if key is not None:
                found.append((ex, st, key))
    if not found:
        return []
    left: list[tuple[Any, Any, str]] = []
    inflight = txn._inflight
    prefetch = getattr(txn.log.ends, "prefetch", None)
    if prefetch is not None:                       # the answers files: one query for the batch's keys
        prefetch([key for _, _, key in found])
    for ex, st, key in found:
        while key in inflight:                     # its original runs in another batch: wait for its answer
            await inflight[key].wait()
        end = txn.log.ends.get(key)
        if end is None and txn._unlogged:
            end = txn._unlogged.get(key)
        if end is None:
            left.append((ex, st, key))
            continue
        note = _take(txn, plan, ex, st, key, end.get("fp"))
        if note is not None and not txn.conflicts(plan, ex, st, end.get("fp"), end["id"]):
            txn._duplicate(ex, st, {**end, "refused": note})
    if left and txn.log.horizon is not None:       # past the retention: the ledger's deal key index
        lookup = getattr(txn.ledger, "deals_by_key", None)
        past = await lookup(sorted({k for _, _, k in left}), txn.digests) if lookup is not None else {}
        still = []
        for ex, st, key in left:
            old = past.get(key)
            if old is None:
                still.append((ex, st, key))
                continue
            note = _take(txn, plan, ex, st, key, old.get("fp"))
            if note is not None and not txn.conflicts(plan, ex, st, old.get("fp"), old["deal_id"]):
                txn._duplicate_past(ex, st, old, note)
        left = still
    if left:
        left = await _shared(txn, plan, left)
    return left


async def _shared(txn: Any, plan: Any, left: list[tuple[Any, Any, str]]) -> list[tuple[Any, Any, str]]:
    """A ``nats consume`` shared key store: a key another engine finished is answered from it.  Read only
    (a refused request claims nothing); a store that cannot be read leaves the refusal standing."""
    from engine.txn import shared_keys

    store = shared_keys.store_of([ex for ex, _, _ in left])
    peek = getattr(store, "peek", None)
    if peek is None:
        return left
    done = await peek(sorted({k for _, _, k in left}))
    still = []
    for ex, st, key in left:
        v = done.get(key)
        if v is None:
            still.append((ex, st, key))
            continue
        end = {"id": v.get("deal"), "status": v.get("status"), "code": v.get("code"), "reply": v.get("reply")}
        try:
            txn.unseal(end["reply"], f"reply|{end['id']}")
        except Exception:                          # sealed with another keyring: the refusal stands
            still.append((ex, st, key))
            continue
        note = _take(txn, plan, ex, st, key, v.get("fp"))
        if note is not None and not txn.conflicts(plan, ex, st, v.get("fp"), end["id"]):
            txn._duplicate(ex, st, {**end, "refused": note})
    return still


def in_batch(txn: Any, plan: Any, group: list[Any], left: list[tuple[Any, Any, str]]) -> None:
    """After admission: a refused exchange whose key a deal admitted in this same batch holds is a copy of
    it, answered with its outcome (``TxnManager.fill``), as a copy that passed its steps is."""
    firsts = {}
    for ex in group:
        st = txn.states.get(ex)
        if st is not None and st.admitted and st.key is not None:
            firsts.setdefault(st.key, ex)
    for ex, st, key in left:
        first = firsts.get(key)
        if first is None or ex.failure is None:
            continue
        fp = fingerprint.of_exchange(first, txn.states[first].match, txn.digests)
        note = _take(txn, plan, ex, st, key, fp)
        if note is None:
            continue
        if not txn.conflicts(plan, ex, st, fp, txn.states[first].deal_id):
            ex.reply = ex.reply_values = ex.reply_json = None
            st.duplicate_of = {"pending": first, "refused": note}
