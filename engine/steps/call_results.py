"""What a ``call`` makes of an outbound channel that breaks its contract (a plugin's, typically).

``request_many(payloads, timeout)`` returns one result per payload, in order: the reply (bytes) or a
``ChannelError``.  A channel that raises instead, returns too few or too many results, or (a plugin's
channel) something that is neither, has a bug: the requests it was handed may have left, so each of
their exchanges fails **in doubt** (kind ``in_doubt``, code 96, compensated and flagged as after a
call that timed out), its reason naming the channel, its kind and plugin, and what it did.  Until
2026-11-26 a short list committed the deals it left out as if answered, and an exception failed them
as ``internal`` without naming the channel.
"""
from __future__ import annotations

import logging
import traceback
from typing import Any

from engine.channels.base import ChannelError
from engine.runtime.exchange import StepFailure
from engine.runtime.guard import channel_label
from engine.runtime.stepfail import IN_DOUBT_TEXT
from formats.classify import mask_text

log = logging.getLogger("bsp.call")

_DOUBT = "the request may have left: its outcome is unknown; this is a bug in the channel, not the counterpart's answer"


def label_for(ctx: Any, channel: str) -> tuple[str, bool]:
    """(``channel core (line connect, from plugin ...)``, whether the kind is a plugin's)."""
    program, registry = getattr(ctx, "program", None), getattr(ctx, "registry", None)
    decl = program.channels.get(channel) if program is not None else None
    if decl is None or registry is None:
        return f"channel {channel}", False
    origin = registry.origin("channel", decl.kind) if hasattr(registry, "origin") else None
    return channel_label(channel, decl.kind, registry), origin is not None


def contract_problem(results: Any, count: int, strict: bool) -> str | None:
    """Why ``results`` is not one reply or ``ChannelError`` per request; None when it is."""
    if not isinstance(results, (list, tuple)):
        return f"request_many returned {type(results).__name__}, not a list"
    if len(results) != count:
        return f"request_many returned {len(results)} result(s) for {count} request(s)"
    if strict:
        for i, r in enumerate(results, 1):
            if not isinstance(r, (bytes, bytearray, ChannelError)):
                return (f"request_many returned a {type(r).__name__} for request {i} of {count}, "
                        f"not bytes or a ChannelError")
    return None


def fail_in_doubt(call: str, label: str, why: str, exs: list[Any], where: Any,
                  exc: BaseException | None = None, faults: Any = None) -> None:
    """Fail each exchange of ``exs`` in doubt, and log it (the traceback's frames for an exception): once
    per batch, or through ``faults`` (the engine's ``FaultLog``) once per kind (the call, its place, the
    exception's type or the broken contract), the deals of the batches after it counted and summed up."""
    known: dict[str, str] = {}
    for ex in exs:
        known.update(ex.classified() if hasattr(ex, "classified") else {})
    text = mask_text(why, known)

    def full() -> str:
        frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip("\n") if exc is not None else ""
        return f"{label} {text}; {len(exs)} deal(s) failed in doubt" + (
            f"\nTraceback (most recent call last):\n{frames}" if frames else "")

    if faults is None:
        log.error("call %s (at %s): %s", call, where, full())
    else:
        what = type(exc).__name__ if exc is not None else "its results"
        kind = ("in doubt", call, str(where), what)
        noun = f"deals failed in doubt ({label} {'raised ' + what if exc is not None else 'broke its contract'})"
        for _ in exs:          # counted per deal, as the deals are
            faults.occurred(kind, full, noun=noun, reason=text, level=logging.ERROR, logger=log,
                            what=f"call {call} (at {where})")
    for ex in exs:
        ex.fail(StepFailure("in_doubt", f"call {call}: {label} {why}; {_DOUBT}", code="96", where=where,
                            text=IN_DOUBT_TEXT, in_doubt=True))
