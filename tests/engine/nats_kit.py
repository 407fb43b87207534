"""Shared bits of the NATS channel tests: a registry with the nats kinds, waiting for a condition."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio

from engine.registry import default_registry

NATS_MODULES = ("engine.channels.nats_publish", "engine.channels.nats_consume")


def nats_registry() -> Any:
    reg = default_registry().clone()
    for mod in NATS_MODULES:
        if reg.get("channel", mod.rsplit(".", 1)[1].replace("nats_", "nats.")) is None:
            reg.register_module(mod)
    return reg


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    """Poll ``probe`` until it returns a true value (bounded); fail naming ``what``."""
    last: Any = None
    with trio.move_on_after(timeout):
        while True:
            last = await probe()
            if last:
                return last
            await trio.sleep(0.02)
    raise AssertionError(f"not within {timeout:g}s: {what} (last probe: {last!r})")
