"""The request generator's client for a service reached over HTTP (an ``http listen`` channel): posts
each request's body to ``Service.http_path`` on several keep-alive connections, one request at a time
on each (HTTP/1.1 without pipelining), and times every request.

It gives the same ``LoadResult`` as ``driver.ServiceClient``: the reply code is read from the answer's
body with the service's reply format (``code_of``), whatever the HTTP status (the status follows the
deal: 200, 422, 502 ...); a reply that does not decode is code ``??``.  ``repeats`` sends that share of
the good requests to keyed routes again, byte for byte, after the original's answer (engine.sim.repeats;
one request at a time per connection, so any later send on the same connection is after it).
"""
from __future__ import annotations

import math
import ssl

import random
import time
from typing import Any, Callable

import httpx
import trio

from engine.sim.framed import split
from engine.sim.pacing import Pacer
from engine.sim.repeats import plan_sends
from engine.sim.services.driver import LoadResult, Outcome, ServiceClient


class HttpServiceClient(ServiceClient):
    async def run(self, port: int, *, total: int, connections: int = 2, window: int = 16,
                  kinds: list[str] | None = None, host: str = "127.0.0.1",
                  progress: Callable[[int], None] | None = None, deadline: float = 30.0,
                  repeats: float = 0.0, rate: float | None = None, stall: float | None = None,
                  tls: Any = None) -> LoadResult:
        """``stall``: instead of the ``deadline`` for the whole load, a request left unanswered ``stall``
        seconds is given up (a slow machine is slow, not losing: ``bsp demo``).  ``connections`` x ``window`` / 4 connections (at least ``connections``), as the TCP client keeps
        about that many requests in flight; exactly ``kinds``, in order, on one connection; ``rate``: at most
        that many requests a second across the connections (engine.sim.pacing; None: unpaced); ``tls``: a client
        context (``engine.tls.client_context``): https, the engine's certificate verified (as its
        ``server_hostname``, else ``host``), a client certificate in it sent; a TLS failure before any answer
        on a connection is raised (``trio.BrokenResourceError`` from the ``ssl.SSLError``), not counted lost."""
        res = self.result
        pacer = Pacer(rate) if rate is not None else None
        lanes = max(connections, connections * window // 4)
        if kinds is not None:
            plans: list[list[tuple[Any, int | None]]] = [[(k, None) for k in kinds]]
        else:
            keyed = self.service.keyed
            share = repeats if keyed is not None else 0.0
            rng = random.Random(f"{self.service.name}:{self.service.inbound}:{self.seed}:repeats")
            sends = plan_sends(split(total, lanes), lambda: self.next_request(None),
                               lambda rp: rp[0].kind == "good" and bool(keyed and keyed(rp[0].values)),
                               rng, share, 1)
            plans = [[(s.item, s.repeat_of) for s in plan] for plan in sends]
        url = f"{'https' if tls is not None else 'http'}://{host}:{port}{self.service.http_path}"
        t0 = time.perf_counter()

        async def one(plan: list[tuple[Any, int | None]]) -> None:
            mine: list[Outcome] = []
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            answered = False
            async with httpx.AsyncClient(timeout=deadline if stall is None else stall, limits=limits,
                                         **({"verify": tls} if tls is not None else {})) as client:
                for item, repeat_of in plan:
                    req, payload = self.next_request(item) if isinstance(item, str) or item is None else item
                    out = Outcome(req.kind, req.expect_code, req.ref)
                    if repeat_of is not None:
                        out.repeat_of = mine[repeat_of]
                        out.expect_code = mine[repeat_of].expect_code
                    if pacer is not None:
                        await pacer.take(1)
                    mine.append(out)
                    res.outcomes.append(out)
                    sent = time.perf_counter()
                    try:
                        answer = await client.post(url, content=payload,
                                                   headers={"content-type": "application/json"})
                    except httpx.HTTPError as exc:
                        refused = _ssl_error(exc) if tls is not None and not answered else None
                        if refused is not None:
                            raise trio.BrokenResourceError(str(refused)) from refused
                        continue                    # no reply: counted as lost
                    answered = True
                    out.latency_ms = (time.perf_counter() - sent) * 1000.0
                    out.raw = answer.content
                    try:
                        out.reply = self.reply_codec.decode(answer.content)
                        out.code = self.service.code_of(out.reply)
                    except Exception as exc:  # noqa: BLE001 - an undecodable reply is a result too
                        out.reply, out.code = f"HTTP {answer.status_code}: {exc!r}", "??"
                    if progress is not None:
                        progress(1)

        with trio.move_on_after(deadline if stall is None else math.inf):
            async with trio.open_nursery() as nursery:
                for plan in plans:
                    if plan:
                        nursery.start_soon(one, plan)
        res.elapsed = time.perf_counter() - t0
        return res


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` an httpx error was raised from (its causes and contexts), or None."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
