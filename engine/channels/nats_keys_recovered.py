"""Final states recovered on restart, written to a shared deal-key store (``nats consume`` with ``keys``).

After a restart, the deals this engine's recovery resolved from its log are written over the claims its
previous run left in the bucket (``SharedKeys.recovered`` lists them; ``write_recovered`` runs at set-up
and every ``keep`` round until each is written).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
import trio

from engine.channels.nats_bridge import describe

if TYPE_CHECKING:
    from engine.channels.nats_keys import SharedKeys

log = logging.getLogger("bsp.channel.nats")


async def write_recovered(keys: SharedKeys) -> None:
    """Write the recovered final states (from ``setup`` and ``keep``; what fails is tried again).  A key
    still claimed by this engine (its previous run) or absent gets the final state; one finished
    already is left as it is; one another engine took over meanwhile (this engine was gone for longer
    than key_lease) is two deals for an operator, logged."""
    import asyncio

    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    kv = keys.kv
    if not keys.recovering or kv is None or keys.names is None or not keys.link.connected:
        return
    todo = [(key, keys.name(key), rec) for key, rec in keys.recovering.items()]

    async def one(bk: str, deal: str, end: dict[str, Any]) -> str:
        final = orjson.dumps(keys.claim_value(deal, state="done", **end))
        try:
            entry = await kv.get(bk)
        except KeyNotFoundError:
            await kv.create(bk, final)
            return "written"
        have = orjson.loads(entry.value) if entry.value else {}
        if have.get("state") == "done":
            return "done"
        if have.get("engine") != keys.engine:
            return f"engine {have.get('engine', '?')} (deal {have.get('deal', '?')})"
        await kv.update(bk, final, last=entry.revision)
        return "written"

    async def all_of() -> list[Any]:
        return await asyncio.gather(*(one(bk, d, e) for _, bk, (d, e) in todo), return_exceptions=True)

    with trio.move_on_after(keys.timeout * 2) as scope:
        try:
            results = await keys.link.aio(all_of)()
        except Exception as exc:
            results = [exc] * len(todo)
    if scope.cancelled_caught:
        return
    written = 0
    for (key, bk, (deal, end)), res in zip(todo, results):
        if isinstance(res, KeyWrongLastSequenceError):
            continue                         # moved in between: read again at the next round
        if isinstance(res, BaseException):
            log.debug("channel %s: recovered final state of deal %s: %s", keys.channel, deal, describe(res))
            continue
        del keys.recovering[key]
        if res == "written":
            written += 1
        elif res != "done":
            log.error("channel %s: deal %s, resolved on restart from this engine's log (%s), had been taken "
                      "over in %s by %s while this engine was gone (longer than key_lease %gs): that engine "
                      "flagged its copy; two deals for one key for an operator to reconcile", keys.channel,
                      deal, end.get("status"), keys.bucket, res, keys.lease)
    if written:
        log.info("channel %s: wrote the final state of %d deal(s) resolved on restart to %s", keys.channel,
                 written, keys.bucket)
