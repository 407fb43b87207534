"""The request generator's client: drives one service's inbound channel over
several pipelined TCP connections and times every request.

Replies on a connection come back in order, so each reply is matched to the
oldest request still waiting on that connection (first in, first out).
"""
from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import trio

from engine.sim.framed import pipelined, split
from engine.sim.services.model import Request, Service, run_tag


@dataclass
class Outcome:
    kind: str
    expect_code: str
    ref: str = ""
    code: str | None = None        # None: no reply
    reply: Any = None
    latency_ms: float | None = None


@dataclass
class LoadResult:
    service: str
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def replies(self) -> int:
        return sum(1 for o in self.outcomes if o.code is not None)

    @property
    def unexpected(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.code != o.expect_code]


class ServiceClient:
    def __init__(self, service: Service, request_codec: Any, reply_codec: Any, *, seed: int = 7,
                 start: int = 1, run: str | None = None) -> None:
        self.service = service
        self.request_codec = request_codec
        self.reply_codec = reply_codec
        self.rng = random.Random(f"{service.name}:{seed}")
        mix = service.mix
        self.kinds = [k for k in mix for _ in range(mix[k])]
        self.n = start - 1
        self.run_tag = run_tag() if run is None else run       # in every reference: unique per run
        self.result = LoadResult(service.name)

    def next_request(self, kind: str | None = None) -> tuple[Request, bytes]:
        self.n += 1
        req = self.service.make(kind or self.rng.choice(self.kinds), self.n, self.rng, self.run_tag)
        enc = self.service.encode
        payload = enc(self.request_codec, req.values) if enc else self.request_codec.encode(req.values)
        return req, payload

    async def run(self, port: int, *, total: int, connections: int = 2, window: int = 16,
                  kinds: list[str] | None = None, host: str = "127.0.0.1",
                  progress: Callable[[int], None] | None = None, deadline: float = 30.0) -> LoadResult:
        """Send ``total`` requests (or exactly ``kinds``, in order, on one connection)."""
        res = self.result
        if kinds is not None:
            plan = [list(kinds)]
        else:
            plan = [[None] * n for n in split(total, connections)]  # type: ignore[misc]
        t0 = time.perf_counter()

        async def one(conn_kinds: list[str | None]) -> None:
            if not conn_kinds:
                return
            waiting: deque[tuple[Outcome, float]] = deque()

            def payloads(sent: int, count: int) -> list[bytes]:
                now, batch = time.perf_counter(), []
                for k in conn_kinds[sent:sent + count]:
                    req, payload = self.next_request(k)
                    out = Outcome(req.kind, req.expect_code, req.ref)
                    res.outcomes.append(out)
                    waiting.append((out, now))
                    batch.append(payload)
                return batch

            def on_reply(frame: bytes, now: float) -> None:
                out, t_sent = waiting.popleft()
                out.latency_ms = (now - t_sent) * 1000.0
                try:
                    out.reply = self.reply_codec.decode(frame)
                    out.code = self.service.code_of(out.reply)
                except Exception as exc:  # noqa: BLE001 - an undecodable reply is a result too
                    out.reply, out.code = repr(exc), "??"
                if progress is not None:
                    progress(1)

            await pipelined(host, port, self.service.framing, len(conn_kinds), window, payloads=payloads,
                            on_reply=on_reply, deadline=deadline)

        async with trio.open_nursery() as nursery:
            for conn_kinds in plan:
                nursery.start_soon(one, conn_kinds)
        res.elapsed = time.perf_counter() - t0
        return res
