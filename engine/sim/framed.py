"""The loops the loopback simulators share.

``FramedServer``: a TCP server that answers each framed request in order, the
replies to one received chunk in one write (``reply_frame`` is the per-request
part a simulator writes).  ``listen``: start ``trio.serve_tcp`` and return the
port.  ``connect``: a client connection, plain TCP or TLS (mutual TLS when the
context holds a client certificate).  ``pipelined``: one client connection
sending ``n`` framed requests with at most ``window`` unanswered, for the load
drivers.
"""
from __future__ import annotations

import argparse
import functools
import ssl
import time
from typing import Any, Awaitable, Callable

import trio

from formats.framing import make_framer

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


async def listen(nursery: trio.Nursery, handler: Callable[[trio.SocketStream], Any], host: str, port: int) -> int:
    """Serve ``handler`` on host:port in ``nursery``; the port actually listened on."""
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, port, host=host))
    return listeners[0].socket.getsockname()[1]


async def connect(host: str, port: int, tls: ssl.SSLContext | None = None,
                  server_name: str | None = None) -> trio.abc.Stream:
    """A connection to host:port: plain TCP, or TLS with ``tls`` (verifying the server as ``server_name``,
    default ``host``), the handshake done before it is returned (``trio.BrokenResourceError`` from the
    ``ssl.SSLError`` when it fails)."""
    tcp = await trio.open_tcp_stream(host, port)
    if tls is None:
        return tcp
    stream = trio.SSLStream(tcp, tls, server_hostname=server_name or host)
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream


class FramedServer:
    """Answers every frame of a connection in order; ``stall=True`` reads and never answers.  ``tls`` (a
    server context, ``engine.tls.server_context``) serves TLS: each connection's handshake first, one that
    fails counted in ``tls_failures`` (its reason in ``tls_reasons``, the last few) and closed."""

    framing = "length4"
    port = 0
    stall = False
    tls: ssl.SSLContext | None = None
    tls_failures = 0
    tls_reasons: tuple[str, ...] = ()

    def reply_frame(self, payload: bytes) -> bytes:
        raise NotImplementedError

    async def _conn(self, stream: trio.SocketStream) -> None:
        framer = make_framer(self.framing)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except _GONE:
                    return
                if not data:
                    return
                frames = framer.feed(data)
                if self.stall:
                    continue
                out = b"".join(framer.frame(self.reply_frame(p)) for p in frames)
                if out:
                    try:
                        await stream.send_all(out)
                    except _GONE:
                        return

    async def _tls_conn(self, stream: trio.SocketStream) -> None:
        assert self.tls is not None
        s = trio.SSLStream(stream, self.tls, server_side=True)
        try:
            await s.do_handshake()
        except _GONE as exc:
            self.tls_failures += 1
            cause = exc.__cause__
            reason = getattr(cause, "reason", None) or (type(cause).__name__ if cause is not None else "closed")
            self.tls_reasons = (*self.tls_reasons[-4:], str(reason))
            await trio.aclose_forcefully(stream)
            return
        await self._conn(s)      # type: ignore[arg-type]

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        handler = self._tls_conn if self.tls is not None else self._conn
        async with trio.open_nursery() as nursery:
            self.port = await listen(nursery, handler, host, port)
            task_status.started(self.port)


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` of a simulator's command line (argparse ``type``)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:7001")
    return host, int(port)


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as can be (the first ones get the remainder)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


CLOSED = "closed"        # why ``pipelined`` stopped before every reply came
TIMED_OUT = "timeout"


async def pipelined(host: str, port: int, framing: str, n: int, window: int, *,
                    payloads: Callable[[int, int], list[bytes]], on_reply: Callable[[bytes, float], None],
                    deadline: float, drain_deadline: float | None = None,
                    reply_timeout: float | None = None, tls: ssl.SSLContext | None = None,
                    server_name: str | None = None,
                    pace: Callable[[int], Awaitable[int]] | None = None) -> str | None:
    """Send ``n`` requests on one connection, at most ``window`` unanswered.

    ``payloads(sent, count)`` gives the next ``count`` request payloads (unframed);
    ``on_reply(frame, now)`` sees each reply, ``now`` from ``time.perf_counter``
    at its chunk's arrival.  No batch starts after ``deadline`` seconds (one being written then is
    written whole: what is counted sent has left); waiting for the replies to what was sent ends
    ``drain_deadline`` seconds later (None: at ``deadline``).
    ``pace(room)``: waits until requests may leave and says how many of ``room`` may
    (engine.sim.pacing.Pacer.take); None sends as fast as the window allows.

    Returns None, or why it stopped with requests unanswered before a deadline:
    ``CLOSED`` the server closed (or reset) the connection, ``TIMED_OUT`` no reply
    came for ``reply_timeout`` seconds while requests were waiting (None: no such limit).
    ``tls``/``server_name``: a TLS connection (``connect``); a TLS alert before the first reply (the
    server refused our client certificate) is raised (``trio.BrokenResourceError`` from the ``ssl.SSLError``).
    """
    stream = await connect(host, port, tls, server_name)
    tx, rx = make_framer(framing), make_framer(framing)
    sent = got = 0
    more = trio.Event()
    stopped: str | None = None
    last = trio.current_time()        # the last reply, or the last send while none was waiting
    def refused(exc: BaseException) -> None:
        """With TLS 1.3 a server refuses our client certificate (or the lack of one) after the handshake,
        with an alert at the first read: before any reply that is a TLS failure, raised as such."""
        if tls is not None and got == 0 and isinstance(exc.__cause__, ssl.SSLError):
            raise exc

    async with stream:
        async with trio.open_nursery() as nursery:
            def stop(why: str) -> None:
                nonlocal stopped
                if stopped is None and got < n:
                    stopped = why
                nursery.cancel_scope.cancel()

            async def reader() -> None:
                nonlocal got, last
                while got < n:
                    try:
                        data = await stream.receive_some(65536)
                    except _GONE as exc:
                        refused(exc)
                        data = b""
                    if not data:
                        stop(CLOSED)
                        return
                    now = time.perf_counter()
                    last = trio.current_time()
                    for frame in rx.feed(data):
                        got += 1
                        on_reply(frame, now)
                    more.set()

            async def watchdog(limit: float) -> None:
                nonlocal last
                while True:
                    await trio.sleep_until(last + limit)
                    if sent == got:
                        last = trio.current_time()
                    elif trio.current_time() >= last + limit:
                        stop(TIMED_OUT)
                        return

            async def drain() -> None:
                nonlocal more
                while got < sent:
                    more = trio.Event()
                    await more.wait()

            nursery.start_soon(reader)
            if reply_timeout is not None:
                nursery.start_soon(watchdog, reply_timeout)
            # The deadline stops new batches; it never cancels a write: a batch counted as sent is on the wire.
            end = trio.current_time() + deadline
            while sent < n and trio.current_time() < end:
                room = min(window - (sent - got), n - sent)
                if room <= 0:
                    with trio.move_on_at(end):
                        more = trio.Event()
                        await more.wait()
                    continue
                if pace is not None:
                    with trio.move_on_at(end) as paced:
                        room = await pace(room)
                    if paced.cancelled_caught:
                        break
                batch = [tx.frame(p) for p in payloads(sent, room)]
                if sent == got:
                    last = trio.current_time()
                sent += room
                try:
                    await stream.send_all(b"".join(batch))
                except _GONE as exc:
                    refused(exc)
                    stop(CLOSED)
                    break
            if not nursery.cancel_scope.cancel_called:
                # also when the deadline ended the sending: the requests already sent get their replies
                with trio.move_on_at(end if drain_deadline is None else trio.current_time() + drain_deadline):
                    await drain()
            nursery.cancel_scope.cancel()
    return stopped
