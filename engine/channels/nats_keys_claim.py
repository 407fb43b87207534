"""Claiming deal keys in a shared deal-key store (``nats consume`` with ``keys``).

Each keyed deal's key is claimed in the bucket before the first call (``kv.create``); what is there
already is judged: a final state is a duplicate, another engine's moving claim is busy (the message is
deferred), one that has not moved for ``key_lease`` is taken over and flagged, and this engine's own
claim from before a restart is taken back (``engine.channels.nats_keys`` says why each is safe).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import trio

from engine.channels.nats_bridge import describe

if TYPE_CHECKING:
    from engine.channels.nats_keys import SharedKeys

log = logging.getLogger("bsp.channel.nats")


@dataclass
class Claim:
    """What claiming one deal key found: ``claimed`` (run it), ``done`` (a duplicate: ``value`` holds the
    stored answer), ``busy`` (not run here now: ``text`` says why) or ``flag`` (taken over from an engine
    that is gone: fail it for an operator, ``text`` names the engine and its deal)."""

    outcome: str
    value: dict[str, Any] | None = None
    text: str = ""


async def claim(keys: SharedKeys, items: list[tuple[str, str]], batch: int) -> list[Claim]:
    """Claim each ``(deal key, deal id)``; one round trip for all of them (pipelined)."""
    import asyncio

    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    kv = keys.kv
    wanted = [(keys.name(k), keys.claim_value(d, state="running")) for k, d in items]

    async def one(bk: str, value: dict[str, Any]) -> Any:
        try:
            return await kv.create(bk, orjson.dumps(value))
        except KeyWrongLastSequenceError:
            pass
        try:
            return await kv.get(bk)
        except KeyNotFoundError:            # gone in between (aged out): claim it again
            return await kv.create(bk, orjson.dumps(value))

    async def all_of() -> list[Any]:
        return await asyncio.gather(*(one(bk, v) for bk, v in wanted), return_exceptions=True)

    found: list[Any] = []
    if kv is None or not keys.link.connected:
        down = ConnectionError(keys.link.last_error or "not connected")
        return [await judge(keys, bk, v, down, batch) for bk, v in wanted]
    with trio.move_on_after(keys.timeout) as scope:
        try:
            found = await keys.link.aio(all_of)()
        except Exception as exc:
            found = [exc] * len(items)
    if scope.cancelled_caught:
        found = [TimeoutError(f"no answer in {keys.timeout:g}s")] * len(items)
    out = []
    for (bk, value), res in zip(wanted, found):
        out.append(await judge(keys, bk, value, res, batch))
    return out


async def judge(keys: SharedKeys, bk: str, value: dict[str, Any], res: Any, batch: int) -> Claim:
    if isinstance(res, int):
        # a final state still pending for this key is an earlier deal's whose write landed unanswered (a freed
        # key's release: the key was free for this create; or a key aged out): never written on this new claim
        keys.pending.pop(bk, None)
        keys.held[bk] = (res, value, batch)
        keys.claims += 1
        return Claim("claimed")
    if isinstance(res, BaseException):
        keys.busy += 1
        text = f"{keys.where()} unavailable: {describe(res)}"
        now = trio.current_time()
        if now - keys.warned >= 10:           # once per 10 s at most: an outage hands back every message
            keys.warned = now
            log.warning("channel %s: deal key not claimed, message deferred: kept and tried again (not run): %s",
                        keys.channel, text)
        return Claim("busy", text=text)
    try:
        have = orjson.loads(res.value)
    except Exception:
        have = {}
    if have.get("state") == "done":
        keys.seen.pop(bk, None)
        keys.duplicates += 1
        return Claim("done", have)
    owner = f"engine {have.get('engine', '?')} (deal {have.get('deal', '?')}, since {have.get('at', '?')})"
    if have.get("engine") == keys.engine and bk not in keys.held:
        return await take_back(keys, bk, value, res.revision, have, batch)
    now = trio.current_time()
    rev, first = keys.seen.get(bk, (None, now))
    if rev != res.revision:
        keys.seen[bk] = (res.revision, now)
        first = now
    if now - first < keys.lease:
        keys.busy += 1
        return Claim("busy", text=f"in flight on {owner}; not run here")
    # the owner has not renewed its claim for key_lease: it is gone; take the key over (compare-and-set
    # on the revision seen: an owner that renewed meanwhile wins) and flag the deal, never run it again
    taken = keys.claim_value(value["deal"], state="running", flagged=have.get("engine"))
    try:
        with trio.fail_after(keys.timeout):
            new = await keys.link.aio(keys.kv.update)(bk, orjson.dumps(taken), last=res.revision)
    except Exception as exc:
        keys.busy += 1
        return Claim("busy", text=f"in flight on {owner}; not taken over: {describe(exc)}")
    keys.seen.pop(bk, None)
    keys.held[bk] = (new, taken, batch)
    keys.flagged += 1
    return Claim("flag", text=f"in flight on {owner}, which has not renewed its claim for {keys.lease:g}s "
                              f"(key_lease): gone; not run again, flagged for an operator")


async def take_back(keys: SharedKeys, bk: str, value: dict[str, Any], revision: int, have: dict[str, Any],
                    batch: int) -> Claim:
    """A claim of this engine's previous run (same ledger, same id) that its log knows nothing of: the
    engine checks its own log before the bucket, and recovery resolved (and wrote here) every deal
    the log had in flight, so that run died between the claim and logging the deal, before any call.
    Claimed again (compare-and-set on the revision seen) and run here."""
    pending = {keys.name(k): deal for k, (deal, _) in keys.recovering.items()}
    if bk in pending:                 # recovery's final state for it is still to be written
        keys.busy += 1
        return Claim("busy", text=f"the final state of deal {pending[bk]} recovered on this engine "
                                  f"is not written to {keys.where()} yet")
    try:
        with trio.fail_after(keys.timeout):
            new = await keys.link.aio(keys.kv.update)(bk, orjson.dumps(value), last=revision)
    except Exception as exc:
        keys.busy += 1
        return Claim("busy", text=f"this engine's own claim from before a restart (deal {have.get('deal')}) "
                                  f"not taken back: {describe(exc)}")
    keys.seen.pop(bk, None)
    keys.held[bk] = (new, value, batch)
    keys.claims += 1
    keys.taken_back += 1
    log.info("channel %s: took back its own claim on a deal key in %s, left by its previous run (deal %s, "
             "since %s, never logged: no call made); the deal runs as %s", keys.channel, keys.bucket,
             have.get("deal"), have.get("at"), value["deal"])
    return Claim("claimed")


async def peek(keys: SharedKeys, deal_keys: list[str]) -> dict[str, dict[str, Any]]:
    """The final states (``done``) the bucket holds for ``deal_keys``, read only: nothing is claimed
    (``engine.txn.refused_repeat``: a request a step refused, whose key may be a deal another engine
    answered).  A key another engine runs now, one not there, and a bucket that cannot be read in
    ``keys.timeout`` give nothing."""
    import asyncio

    from nats.js.errors import KeyNotFoundError

    kv = keys.kv
    if kv is None or not keys.link.connected or not deal_keys:
        return {}
    names = [(k, keys.name(k)) for k in deal_keys]

    async def one(bk: str) -> Any:
        try:
            return await kv.get(bk)
        except KeyNotFoundError:
            return None

    async def all_of() -> list[Any]:
        return await asyncio.gather(*(one(bk) for _, bk in names), return_exceptions=True)

    found: list[Any] = []
    with trio.move_on_after(keys.timeout):
        try:
            found = await keys.link.aio(all_of)()
        except Exception as exc:
            log.warning("channel %s: a refused request's deal key not read from %s: %s; the refusal stands",
                        keys.channel, keys.where(), describe(exc))
            found = []
    out: dict[str, dict[str, Any]] = {}
    for (k, _), res in zip(names, found):
        if res is None or isinstance(res, BaseException):
            continue
        try:
            have = orjson.loads(res.value)
        except Exception:
            continue
        if isinstance(have, dict) and have.get("state") == "done":
            out[k] = have
    return out
