"""Hand one HTTP request to a channel's dispatcher and learn how its deal ended.

The ``ExchangeHandler`` contract gives back reply bytes only; an HTTP answer
also needs the outcome (rejected -> 422, failed -> 502, ...) and the route
should see the request's ``http`` values (params, query, headers).  Until the
runtime offers a per-request hook, this module works with the runtime's
``Dispatcher`` as it is: a shallow per-request copy whose base scope carries
``http`` and whose ``_record`` keeps the exchanges it records.  The handler
``bsp run`` gives channels (``engine.ops.generation.HandlerRef``, which forwards
to the current generation's dispatcher) offers ``handle_via``: the copy is made
of the dispatcher it forwards to.  Any other handler still works: it just
reports no outcome.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from dsl.peer import NO_PEER
from engine.runtime.exchange import Exchange, StepFailure


@dataclass
class Outcome:
    reply: bytes | None
    status: str                 # committed, rejected, failed, unknown
    kind: str | None = None     # error.kind when not committed
    code: str | None = None
    text: str | None = None
    detail: str | None = None
    recorded: bool = True       # False: the deal could not be written to the ledger (nothing acknowledged)
    field: str | None = None    # the request field the failure is about, when it knows it (StepFailure.field)


def _observed(disp: Any, seen: list[Any], extra_scope: dict[str, Any] | None) -> Any:
    """A per-call copy of ``disp`` whose base scope adds ``extra_scope`` and whose recorded exchanges
    go into ``seen`` too; None when ``disp`` is not a runtime dispatcher."""
    base = getattr(disp, "base_scope", None)
    record = getattr(disp, "_record", None)
    if not isinstance(base, dict) or record is None:
        return None
    d = copy.copy(disp)
    if extra_scope:
        d.base_scope = {**base, **extra_scope}

    async def keep(exs: list[Any]) -> None:
        seen.extend(exs)
        await record(exs)
    d._record = keep
    return d


async def _handle(handler: Any, conn: Any, frames: list[bytes],
                  extra_scope: dict[str, Any] | None) -> tuple[list[bytes | None], list[Any] | None]:
    """The replies, and the exchanges recorded for ``frames`` (None: the handler reports none)."""
    seen: list[Any] = []
    observed = False

    def wrap(disp: Any) -> Any:
        nonlocal observed
        d = _observed(disp, seen, extra_scope)
        observed = d is not None
        return disp if d is None else d

    via = getattr(handler, "handle_via", None)
    if via is not None:             # bsp run's forwarding handler: observe the dispatcher it forwards to
        replies = await via(conn, frames, wrap)
    else:
        replies = await wrap(handler).handle(conn, frames)
    if len(seen) > 1:       # a recording tap runs a batch's frames one by one: put them back in frame order
        seen.sort(key=_place)
    return replies, (seen if observed else None)


def _place(ex: Any) -> tuple[int, int]:
    """An exchange's place in the batch it came in (engine.replay.tap.frame_conns)."""
    extra = getattr(ex.conn, "extra", None) or {}
    return extra.get("batch_index", 0), ex.index


def _outcome(reply: bytes | None, ex: Any) -> Outcome:
    f = getattr(ex, "failure", None) if ex is not None else None
    if ex is None:
        return Outcome(reply, "unknown")
    recorded = not getattr(ex, "unrecorded", False)
    if f is None:
        repeats = getattr(ex, "repeats", None)
        if repeats is not None and repeats[0] in ("rejected", "failed"):
            # a repeat answered with the reply of an original that failed: the same answer, status included
            status, kind, code = repeats
            return Outcome(reply, status, kind, code, recorded=recorded)
        return Outcome(reply, "committed", recorded=recorded)
    return Outcome(reply, f.status, f.kind, f.code, f.text, f.detail, recorded=recorded,
                   field=getattr(f, "field", None))


async def dispatch_one(handler: Any, conn: Any, body: bytes, http_scope: dict[str, Any]) -> Outcome:
    (reply,), seen = await _handle(handler, conn, [body], {"http": http_scope})
    return _outcome(reply, seen[0] if seen else None)


async def refuse_one(handler: Any, conn: Any, body: bytes, http_scope: dict[str, Any] | None,
                     failure: StepFailure) -> Outcome:
    """A request the channel refused before any route could see it (its signature does not verify, its
    form body does not parse; a NATS message over ``max_message``, ``http_scope`` None: no ``http`` values):
    recorded as a deal with ``failure``'s kind, stored as a dead letter with the body as received
    (the dispatcher's ledger and transaction manager do both), answered with the channel's ``on error
    reply`` when it has one.  No route runs and nothing is decoded.  Any other handler: nothing is
    recorded, the outcome still says why."""
    via = getattr(handler, "with_dispatcher", None)
    if via is not None:             # bsp run's forwarding handler (or a recording tap): refuse through the
        # dispatcher it forwards to; ``refusing`` tells a tap the request's bytes and why it was refused
        return await via(lambda disp: refuse_one(disp, conn, body, http_scope, failure),
                         refusing=(conn, body, failure))
    record = getattr(handler, "_record", None)
    base = getattr(handler, "base_scope", None)
    if record is None or not isinstance(base, dict):
        return Outcome(None, failure.status, failure.kind, failure.code, failure.text, failure.detail)
    txn = getattr(handler, "txn", None)
    if txn is not None:
        await txn.ready(handler)            # deals left in flight by a crash are resolved first
    ex = Exchange(handler.channel, conn, body, datetime.now(timezone.utc), 0)
    who = getattr(conn, "who", None)
    ex.scope = {**base, "peer": who if who is not None else NO_PEER, "raw": body, "msg": None}
    if http_scope is not None:
        ex.scope["http"] = http_scope
    ex.fail(failure)
    if handler.error_reply is not None:
        handler._run_sync(handler.error_reply, ex, during_error=True)
    await record([ex])
    return Outcome(ex.reply, failure.status, failure.kind, failure.code, failure.text, failure.detail)


async def dispatch_batch(handler: Any, conn: Any, frames: list[bytes],
                         extra_scope: dict[str, Any] | None = None) -> list[Outcome]:
    """Like ``dispatch_one`` for a batch (a file's records): one Outcome per frame, in order."""
    replies, seen = await _handle(handler, conn, frames, extra_scope)
    seen = seen or []
    return [_outcome(reply, seen[i] if i < len(seen) else None) for i, reply in enumerate(replies)]
