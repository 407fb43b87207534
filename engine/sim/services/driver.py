"""The request generator's client: drives one service's inbound channel over
several pipelined TCP connections and times every request.

Replies on a connection come back in order, so each reply is matched to the
oldest request still waiting on that connection (first in, first out).

``run(..., repeats=0.02)`` sends that share of the good requests to keyed routes
(``Service.keyed``) again, byte for byte, after the original's reply has come
back (engine.sim.repeats); each repeat is an ``Outcome`` of its own with
``repeat_of`` set, and must get the original's reply bytes.
"""
from __future__ import annotations

import math

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import trio

from engine.sim.framed import pipelined, split
from engine.sim.pacing import Pacer
from engine.sim.repeats import plan_sends
from engine.sim.services.model import Request, Service, run_tag


@dataclass
class Outcome:
    kind: str
    expect_code: str
    ref: str = ""
    code: str | None = None        # None: no reply
    reply: Any = None
    latency_ms: float | None = None
    raw: bytes | None = None                  # the reply's bytes
    repeat_of: "Outcome | None" = None        # a repeat: the original it was sent again for

    @property
    def repeat_differs(self) -> bool:
        """A repeat whose reply is not its original's, byte for byte (or is missing)."""
        return self.repeat_of is not None and (self.raw is None or self.raw != self.repeat_of.raw)


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

    @property
    def repeats(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.repeat_of is not None]


class ServiceClient:
    def __init__(self, service: Service, request_codec: Any, reply_codec: Any, *, seed: int = 7,
                 start: int = 1, run: str | None = None) -> None:
        self.service = service
        self.request_codec = request_codec
        self.reply_codec = reply_codec
        self.rng = random.Random(f"{service.name}:{seed}")
        self.seed = seed
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
                  progress: Callable[[int], None] | None = None, deadline: float = 30.0,
                  repeats: float = 0.0, rate: float | None = None, stall: float | None = None,
                  tls: Any = None) -> LoadResult:
        """Send ``total`` requests (or exactly ``kinds``, in order, on one connection); ``stall``: instead of
        the ``deadline``, give up on a connection only when its requests wait ``stall`` seconds for a reply
        (a slow machine is slow, not losing: ``bsp demo``); ``repeats``: the
        share of good requests to keyed routes sent again (not with ``kinds``), within ``total``; ``rate``:
        at most that many requests a second across the connections (engine.sim.pacing; None: unpaced); ``tls``:
        a client context (``engine.tls.client_context``, its ``server_hostname`` the name verified, else
        ``host``): every connection TLS, a refused handshake raised (``trio.BrokenResourceError`` from the
        ``ssl.SSLError``, ``engine.sim.framed.pipelined``)."""
        res = self.result
        pace = Pacer(rate).take if rate is not None else None
        if kinds is not None:
            plans = [[(k, None) for k in kinds]]
        else:
            keyed = self.service.keyed
            share = repeats if keyed is not None else 0.0
            rng = random.Random(f"{self.service.name}:{self.service.inbound}:{self.seed}:repeats")
            sends = plan_sends(split(total, connections), lambda: self.next_request(None),
                               lambda rp: rp[0].kind == "good" and bool(keyed and keyed(rp[0].values)),
                               rng, share, window)
            plans = [[(s.item, s.repeat_of) for s in plan] for plan in sends]
        t0 = time.perf_counter()

        async def one(plan: list[tuple[Any, int | None]]) -> None:
            if not plan:
                return
            waiting: deque[tuple[Outcome, float]] = deque()
            mine: list[Outcome] = []

            def payloads(sent: int, count: int) -> list[bytes]:
                now, batch = time.perf_counter(), []
                for item, repeat_of in plan[sent:sent + count]:
                    req, payload = self.next_request(item) if isinstance(item, str) or item is None else item
                    out = Outcome(req.kind, req.expect_code, req.ref)
                    if repeat_of is not None:
                        out.repeat_of = mine[repeat_of]
                        out.expect_code = mine[repeat_of].expect_code
                    mine.append(out)
                    res.outcomes.append(out)
                    waiting.append((out, now))
                    batch.append(payload)
                return batch

            def on_reply(frame: bytes, now: float) -> None:
                out, t_sent = waiting.popleft()
                out.latency_ms = (now - t_sent) * 1000.0
                out.raw = bytes(frame)
                try:
                    out.reply = self.reply_codec.decode(frame)
                    out.code = self.service.code_of(out.reply)
                except Exception as exc:  # noqa: BLE001 - an undecodable reply is a result too
                    out.reply, out.code = repr(exc), "??"
                if progress is not None:
                    progress(1)

            await pipelined(host, port, self.service.framing, len(plan), window, payloads=payloads,
                            on_reply=on_reply, pace=pace, tls=tls,
                            **({"deadline": deadline} if stall is None else {"deadline": math.inf, "reply_timeout": stall}))

        async with trio.open_nursery() as nursery:
            for plan in plans:
                nursery.start_soon(one, plan)
        res.elapsed = time.perf_counter() - t0
        return res
