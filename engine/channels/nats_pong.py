"""The nats-py client of a NATS channel, letting a PONG that comes after its flush gave up pass.

nats-py (read in 2.16, the version installed here) queues one future per PING it sends and pops one
per PONG.  ``flush(timeout)`` cancels its future when no PONG came in time but leaves it queued, and the
PONG that comes later sets a result on the cancelled future: ``InvalidStateError``, which ends the
client's read loop (logged by nats-py as ``nats: encountered error``).  The connection then reads nothing
more (no message, no reply, no PONG: a consume channel fetches nothing, a flush "succeeds" without a round
trip) until nats-py's ping interval (2 min, two outstanding) declares it stale and reconnects, up to
6 minutes later.  A server that stalls for longer than the flush timeout (``connect_timeout``, at least
1 s: ``engine.channels.nats_acks``) and then goes on is enough.  Here such a PONG is counted and dropped,
as the PONG of that flush.
"""
from __future__ import annotations

from nats.aio.client import Client as _Client


class Client(_Client):
    async def _process_pong(self) -> None:
        pongs = getattr(self, "_pongs", None)
        if pongs and pongs[0].done():       # its flush gave up (timed out or cancelled): this is its PONG
            pongs.pop(0)
            self._pongs_received += 1
            self._pings_outstanding = 0
            return
        await super()._process_pong()
