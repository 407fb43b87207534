"""Start service routes with their counterpart simulators, in one engine.

    async with running_services(program, registry, ledger, services) as rig:
        port = rig.port("fm_mainframe")
        client = rig.client(service)

Every inbound channel listens on an ephemeral loopback port (so tests and the
demo never collide with a running engine on the documented ports), every
counterpart simulator is started first and the route's tcp.connect channel is
pointed at it.  Codecs come from the compiled program itself.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable

import trio

from engine.runtime.binder import Binder
from engine.runtime.switchboard import Switchboard
from engine.sim.services.counterpart import CounterpartSim
from engine.sim.services.driver import ServiceClient
from engine.sim.services.model import Service


@dataclass
class Rig:
    switchboard: Switchboard
    sims: dict[str, Any] = field(default_factory=dict)      # CounterpartSim, or a service's own host sim

    def port(self, channel: str) -> int:
        return int(self.switchboard.channel(channel).port)

    def client(self, service: Service, *, seed: int = 7) -> ServiceClient:
        ctx = self.switchboard.ctx
        return ServiceClient(service, ctx.codec(service.request_format), ctx.codec(service.reply_format), seed=seed)


def listen_overrides(program: Any) -> dict[str, dict[str, Any]]:
    return {name: {"address": "127.0.0.1:0"} for name, decl in program.channels.items()
            if decl.kind == "tcp.listen"}


@asynccontextmanager
async def running_services(program: Any, registry: Any, ledger: Any, services: Iterable[Service], *,
                           extra_sims: dict[str, Any] | None = None,
                           call_timeout: str | None = None) -> AsyncIterator[Rig]:
    """``extra_sims``: channel name -> an object with ``serve`` and ``port`` (e.g. the bill payment biller)."""
    binder = Binder(program, registry)
    overrides = listen_overrides(program)
    sims: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        for svc in services:
            for cp in svc.counterparts:
                if cp.channel in sims:          # two inbound sides of one service share a counterpart
                    continue
                sim =  CounterpartSim(cp.channel, binder.codec(cp.request_format), binder.codec(cp.reply_format),
                                     cp.answer, framing=cp.framing)
                await nursery.start(sim.serve)
                sims[cp.channel] = sim
                overrides[cp.channel] = {"address": f"127.0.0.1:{sim.port}"}
            for channel, factory in svc.hosts:
                if channel in sims:
                    continue
                host = factory()
                await nursery.start(host.serve)
                sims[channel] = host
                overrides[channel] = {"address": f"127.0.0.1:{host.port}"}
        for channel, sim in (extra_sims or {}).items():
            await nursery.start(sim.serve)
            overrides[channel] = {"address": f"127.0.0.1:{sim.port}"}
        unknown = [c for c in overrides if c not in program.channels]
        if unknown:
            raise ValueError(f"simulators for channels the program does not declare: {', '.join(unknown)}")
        sb = Switchboard(program, registry, ledger=ledger, overrides=overrides, grace=2.0)
        async with trio.open_nursery() as engine:
            await engine.start(sb.run)
            try:
                yield Rig(sb, sims)
            finally:
                sb.drain()
        nursery.cancel_scope.cancel()
