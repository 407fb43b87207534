"""Start service routes with their counterpart simulators, in one engine.

    async with running_services(program, registry, ledger, services) as rig:
        port = rig.port("fm_mainframe")
        result = await rig.load(service, total=100)

Every inbound channel (tcp.listen, http.listen) listens on an ephemeral loopback port (so tests and the
demo never collide with a running engine on the documented ports), every
counterpart simulator is started first and the route's tcp.connect channel is
pointed at it.  File channels (file.watch, file.write) get folders of their
own under ``work_dir`` (a temporary folder by default), without fsync.
Codecs come from the compiled program itself.

``rig.load(service, total=...)`` drives a service whichever way it is reached:
a ``ServiceClient`` over TCP, an ``HttpServiceClient`` posting to an http.listen
channel, or a ``BatchFileClient`` dropping batch files.
"""
from __future__ import annotations

import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable

import trio

from engine.runtime.binder import Binder
from engine.runtime.switchboard import Switchboard
from engine.sim.services.batch_files import BatchFileClient
from engine.sim.services.driver import LoadResult, ServiceClient
from engine.sim.services.http_client import HttpServiceClient
from engine.sim.services.model import Service
from engine.sim.services.sims import service_sims


@dataclass
class Rig:
    switchboard: Switchboard
    sims: dict[str, Any] = field(default_factory=dict)      # CounterpartSim, or a service's own host sim

    def port(self, channel: str) -> int:
        return int(self.switchboard.channel(channel).port)

    dirs: dict[str, Path] = field(default_factory=dict)     # file channel -> its folder

    def client(self, service: Service, *, seed: int = 7, run: str | None = None) -> ServiceClient:
        """``run``: the tag in every reference (default: a new ``run_tag()``, unique per run)."""
        ctx = self.switchboard.ctx
        return ServiceClient(service, ctx.codec(service.request_format), ctx.codec(service.reply_format), seed=seed,
                             run=run)

    def batch_client(self, service: Service, *, seed: int = 7, run: str | None = None) -> BatchFileClient:
        ctx = self.switchboard.ctx
        return BatchFileClient(service, ctx.codec(service.request_format), ctx.codec(service.reply_format),
                               inbox=self.dirs[service.inbound], outbox=self.dirs[service.ack_channel], seed=seed,
                               run=run)

    async def load(self, service: Service, *, total: int, kinds: list[str] | None = None, seed: int = 7,
                   connections: int = 2, window: int = 16, progress: Callable[[int], None] | None = None,
                   deadline: float = 30.0, repeats: float = 0.0, stall: float | None = None) -> LoadResult:
        """``repeats``: the share of good requests to keyed routes sent again (TCP services; batch files
        are not repeated).  ``deadline``: seconds the load may take; ``stall`` (instead): seconds without
        a reply before it gives up on the rest (a slow machine is slow, not losing: ``bsp demo``)."""
        if service.prepare is not None:
            await service.prepare(self.switchboard.ledger)
        if service.transport == "file":
            return await self.batch_client(service, seed=seed).run(total=total, kinds=kinds, progress=progress,
                                                                   deadline=deadline, stall=stall)
        if service.transport == "http":
            ctx = self.switchboard.ctx
            client = HttpServiceClient(service, ctx.codec(service.request_format), ctx.codec(service.reply_format),
                                       seed=seed)
            return await client.run(self.port(service.inbound), total=total, kinds=kinds, connections=connections,
                                    window=window, progress=progress, deadline=deadline, repeats=repeats,
                                    stall=stall)
        return await self.client(service, seed=seed).run(self.port(service.inbound), total=total, kinds=kinds,
                                                          connections=connections, window=window,
                                                          progress=progress, deadline=deadline, repeats=repeats,
                                                          stall=stall)


def listen_overrides(program: Any) -> dict[str, dict[str, Any]]:
    return {name: {"address": "127.0.0.1:0"} for name, decl in program.channels.items()
            if decl.kind in ("tcp.listen", "http.listen")}


def file_overrides(program: Any, work_dir: Path) -> dict[str, dict[str, Any]]:
    """Each file.watch / file.write channel gets ``work_dir/<channel>`` (file.write without fsync)."""
    out: dict[str, dict[str, Any]] = {}
    for name, decl in program.channels.items():
        if decl.kind == "file.watch":
            out[name] = {"dir": str(work_dir / name)}
        elif decl.kind == "file.write":
            out[name] = {"dir": str(work_dir / name), "fsync": False}
    return out


@asynccontextmanager
async def running_services(program: Any, registry: Any, ledger: Any, services: Iterable[Service], *,
                           extra_sims: dict[str, Any] | None = None,
                           call_timeout: str | None = None, work_dir: Path | None = None) -> AsyncIterator[Rig]:
    """``extra_sims``: channel name -> an object with ``serve`` and ``port`` (e.g. the bill payment biller);
    ``work_dir``: where the file channels' folders go (default: a temporary folder, removed at the end)."""
    binder = Binder(program, registry)
    overrides = listen_overrides(program)
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bsp-services-")
        work_dir = Path(tmp.name)
    files = file_overrides(program, Path(work_dir))
    overrides.update(files)
    dirs = {name: Path(o["dir"]) for name, o in files.items()}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    sims: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        for svc in services:
            for channel, sim in service_sims(svc, binder.codec):
                if channel in sims:             # two inbound sides of one service share a counterpart
                    continue
                await nursery.start(sim.serve)
                sims[channel] = sim
                overrides[channel] = {"address": f"127.0.0.1:{sim.port}"}
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
                yield Rig(sb, sims, dirs)
            finally:
                sb.drain()
        nursery.cancel_scope.cancel()
    if tmp is not None:
        tmp.cleanup()
