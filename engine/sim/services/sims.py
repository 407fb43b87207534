"""The simulators of the systems one service's routes call, made from its ``Service`` entry.

``service_sims(service, codec)`` gives ``(channel, simulator)`` for each ``Counterpart`` (a
``CounterpartSim`` speaking the route's own formats, ``codec(format name)``) and each ``hosts`` entry
(a simulator of its own, e.g. the card host ``engine.sim.iso_host.IsoHost``).  Each has
``serve(host, port, task_status=...)`` and, once listening, ``port``.  The in-process harness
(``bsp demo``, the service tests) and ``bsp sim counterparts`` both start these, so a simulator
behaves the same whichever started it.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from engine.sim.services.counterpart import CounterpartSim, FirstOf
from engine.sim.services.model import Service


def service_sims(service: Service, codec: Callable[[str], Any]) -> Iterator[tuple[str, Any]]:
    for cp in service.counterparts:
        request = codec(cp.request_format) if not cp.also else FirstOf([codec(f) for f in cp.request_formats])
        yield cp.channel, CounterpartSim(cp.channel, request, codec(cp.reply_format), cp.answer,
                                         framing=cp.framing, ref=cp.ref)
    for channel, factory in service.hosts:
        yield channel, factory()
