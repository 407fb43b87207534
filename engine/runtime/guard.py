"""A channel's task (``serve`` or ``run``) that fails after it has started stops alone.

Before ``task_status.started()`` an exception propagates: the channel could not
start (its port is taken, say) and ``bsp run`` says so and exits.  After it, a
bug in the channel (a plugin's, typically) is logged once with the channel's
name and kind and that channel stops taking traffic; the engine, its other
channels and the deals in flight go on.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import trio

log = logging.getLogger("bsp.channel")


class _Status:
    def __init__(self, task_status: Any) -> None:
        self._task_status = task_status
        self.started_ = False

    def started(self, value: Any = None) -> None:
        self.started_ = True
        self._task_status.started(value)


def channel_label(name: str, kind: str, registry: Any) -> str:
    """``channel front (udp listen, from plugin bsp-kvtools 0.1.0 (entry point ...))``."""
    origin = registry.origin("channel", kind) if hasattr(registry, "origin") else None
    return f"channel {name} ({kind.replace('.', ' ')}" + (f", from {origin})" if origin else ")")


def failure_text(exc: BaseException) -> str:
    """``RuntimeError: socket closed``; the leaves of an exception group, joined."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(failure_text(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


async def guarded(task: Callable[..., Awaitable[Any]], *args: Any, what: str,
                  on_failure: Callable[[str], Any] | None = None,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """``await task(*args, task_status=...)``; once it has started, an ``Exception`` it raises is logged
    naming ``what`` (e.g. "channel front (udp listen, plugin bsp-kvtools 0.1.0 ...)") and swallowed."""
    status = _Status(task_status)
    try:
        await task(*args, task_status=status)
    except Exception as exc:
        if not status.started_:
            raise
        text = failure_text(exc)
        log.error("%s stopped: %s; it takes no more traffic until the engine restarts (or a reload changes it); "
                  "the other channels go on", what, text, exc_info=exc)
        if on_failure is not None:
            on_failure(text)
