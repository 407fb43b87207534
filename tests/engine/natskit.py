"""Kit for the NATS channel tests (tests/engine/test_channels_nats*.py).  The server and the client are
engine/testing/nats_server.py's (a real ``nats-server -js`` on a free loopback port, always stopped);
this adds what the tests around them share: the waits on a channel, an engine's ``book`` channel pointed
at a real counterpart, a subscription that collects what arrives, and two engines on one consumer."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

import trio

from engine.testing.nats_server import eventually, nats_client, nats_registry, nats_server
from kit import json_counterpart, running

__all__ = ["ack_delivery", "book", "bound", "collect", "consumer_set_up", "eventually", "settled", "nats_client", "nats_registry", "nats_server",
           "two_engines", "value"]


async def value(v: object) -> object:
    """``v`` as an awaitable probe for ``eventually``: ``eventually(lambda: value(ch.acked == 1), ...)``."""
    return v


async def settled(nc: Any, stream: str = "ORDERS", consumer: str = "bsp-orders") -> bool:
    """A probe for ``eventually``: the consumer has nothing pending nor waiting for an ack.  The server
    takes an ack apart from the flush that confirmed it, so a consumer read at once may still count it."""
    info = await nc.consumer(stream, consumer)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def bound(ch: Any, what: str | None = None) -> None:
    """Wait until the channel ``ch`` is connected and bound to its stream's consumer (``ch.ready``)."""
    await eventually(lambda: value(ch.ready.is_set()), what or f"channel {ch.name} connected with its consumer")


async def consumer_set_up(nc: Any, stream: str, durable: str, what: str) -> None:
    """Wait until the server holds ``stream`` and its durable consumer ``durable``: what ``bound`` is for an
    engine in another process (``bsp run``).  An engine serves at once and sets its stream and consumer up
    in the background: a message published before the stream is there has nowhere to go (the publish
    fails with NoStreamResponseError)."""
    from nats.js.errors import NotFoundError

    async def there() -> object:
        try:
            return await nc.consumer(stream, durable)
        except NotFoundError:               # no such stream, or no such consumer on it, yet
            return None

    await eventually(there, what, timeout=20)


def ack_delivery(subject: str) -> tuple[int, int]:
    """(stream sequence, delivery count) of a JetStream ack subject, to which an engine sends a message's
    ``+ACK``, ``-NAK``, ``+TERM`` or ``+WPI`` ($JS.ACK.<stream>.<consumer>.<delivered>.<sseq>..., or the form
    with a domain and an account hash before the stream): a test subscribed to them sees what it sends."""
    t = subject.split(".")
    return (int(t[5]), int(t[4])) if len(t) == 9 else (int(t[7]), int(t[6]))


def book(port: int) -> dict:
    """The ``overrides`` that point a route's ``book`` channel at a counterpart on 127.0.0.1:``port``."""
    return {"book": {"address": f"127.0.0.1:{port}"}}


def collect(into: list) -> Callable[[Any], Any]:
    """A subscription callback appending each message's data to ``into``."""
    async def cb(msg: Any) -> None:
        into.append(bytes(msg.data))
    return cb


@asynccontextmanager
async def two_engines(tmp_path: Path, nursery: trio.Nursery, programs: Sequence[Any],
                      answers: Sequence[Callable[[dict], Any]], registry: Any) -> AsyncIterator[tuple[Any, Any]]:
    """Engines one and two (ledgers ``one.duckdb``, ``two.duckdb``) running ``programs``, each with its
    ``book`` at its own counterpart answering by ``answers``; yields their ``orders`` channels once both
    are bound to the consumer."""
    ports = [await json_counterpart(nursery, answer) for answer in answers]
    async with running(programs[0], tmp_path / "one.duckdb", registry=registry, overrides=book(ports[0])) as sb1, \
            running(programs[1], tmp_path / "two.duckdb", registry=registry, overrides=book(ports[1])) as sb2:
        ch1, ch2 = sb1.channel("orders"), sb2.channel("orders")
        for ch in (ch1, ch2):
            await bound(ch, f"{ch.name} bound to its consumer")
        yield ch1, ch2
