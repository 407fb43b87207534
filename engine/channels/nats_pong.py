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

Two more for the channel's auth and TLS (engine/channels/nats_auth.py): with ``requires_tls`` (a ``tls://``
url or a TLS option) a server that did not take the connection to TLS is refused before CONNECT, which
carries the credentials, is sent (nats-py goes TLS only when the server asks for it); and a server's
``-ERR 'Authorization Violation'`` on an open connection (its accounts reloaded) makes nats-py close the
client for good: here it reconnects, reading the secret again, as after a lost connection.  An attempt
refused so has its socket closed (nats-py's reconnect loop left it to the garbage collector), and
dropped: after a refused TLS handshake nats-py waited for ever for that socket to close.
"""
from __future__ import annotations

import asyncio

from nats import errors
from nats.aio.client import Client as _Client


class Client(_Client):
    requires_tls = False

    def _connect_command(self) -> bytes:
        if self.requires_tls and not self._server_info.get("tls_required"):
            raise errors.Error("nats: the server does not offer TLS and the channel requires it (a tls:// url or "
                               "a tls_* option); the credentials were not sent")
        return super()._connect_command()

    async def _process_connect_init(self) -> None:
        # an attempt the server refused (its credentials, TLS): nats-py's reconnect loop drops the transport
        # without closing it, one socket left to the garbage collector per attempt
        try:
            await super()._process_connect_init()
        except BaseException as exc:
            if self._transport is not None:
                self._transport.close()
                # and dropped, so that nothing waits for it to close: after a failed TLS upgrade (the server's
                # certificate refused) the socket's protocol is asyncio's TLS one, and the plain stream nats-py
                # keeps never hears of the close, its wait_closed() never returns. nats-py's connect awaited it
                # after each such attempt: the attempt lasted until connect_timeout cancelled it, and a
                # cancellation lost in Python 3.11's asyncio.wait_for (it came as the handshake failed) left it
                # waiting for ever, and the channel's stop with it. The next attempt makes a new transport.
                self._transport = None
                if isinstance(exc, Exception):      # not a cancellation: let the loop run the close callback
                    await asyncio.sleep(0)          # now (closing is a call_soon; a loop stopped before it ran
                    await asyncio.sleep(0)          # left the socket to the garbage collector: ResourceWarning)
            raise

    async def _process_err(self, err_msg: str) -> None:
        low = err_msg.lower()
        if self.is_connected and ("authorization violation" in low or "authentication expired" in low):
            await self._error_cb(errors.AuthorizationError())
            await self._process_op_err(errors.AuthorizationError())
            return
        await super()._process_err(err_msg)

    async def _process_pong(self) -> None:
        pongs = getattr(self, "_pongs", None)
        if pongs and pongs[0].done():       # its flush gave up (timed out or cancelled): this is its PONG
            pongs.pop(0)
            self._pongs_received += 1
            self._pings_outstanding = 0
            return
        await super()._process_pong()
