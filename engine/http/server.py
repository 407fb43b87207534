"""A small HTTP/1.1 server: h11 (sans-IO) driven over any trio stream.

    port = await nursery.start(serve_http, handler, "127.0.0.1", 0)          # plain
    port = await nursery.start(partial(serve_http, handler, host, port, ssl_context=ctx))

``handler`` is ``async (Request) -> Response`` (a ``Router`` is one).  Over
TLS the verified client certificate is ``request.peercert``; an ``access``
list refuses other peers with a 403 problem.  ``serve_connection(stream,
handler)`` runs one connection on any trio stream (an ``http listen``
channel, tests over memory streams).

Limits (``HTTPLimits``), all bounded:
  * ``max_header``: request line + headers; bigger -> 431 and close.
  * ``max_body``: declared or streamed body; bigger -> 413 and close
    (a declared length is refused before reading, also for ``Expect: 100-continue``).
  * ``idle_timeout``: keep-alive wait for the next request; closes quietly.
  * ``read_timeout``: from the first byte of a request to its last; -> 408 and close.
  * a chunked body's framing: the request's bytes at most ``2 * body + 2 * max_header + FRAMING_SLACK``
    (1-byte chunks, chunk extensions) -> 400 and close; a header folded onto the next line (obs-fold, a
    smuggling vector behind a proxy that does not unfold), or a head line ending in a bare LF -> 400 and close.
  * ``write_timeout``, ``handshake_timeout``, ``max_connections``: at the cap a new connection takes
    the slot of the connection longest in its TLS handshake, else of the one idle longest (waiting for its
    next request, or its first), with a warning; with none of those, it waits for one to end or fall idle
    (``room``: engine/channels/conn_room.py, the policy ``tcp listen`` has too; engine/http/room.py).
  * ``max_connections_per_client``: a connection from a client address already holding that many is closed
    as accepted, before a byte is read, and takes no slot (``clients``: engine/channels/per_client.py).

Retirement (``serve_http(..., retire=EVENT)``, an ``http listen`` channel a reload changed or removed, or a
drain): once ``EVENT`` is set the server stops accepting (the listening socket closes: a new listener can
bind the address) and each connection ends as a retired ``tcp listen`` connection does
(engine/channels/retire.py): one waiting for a request first reads what has already arrived (a request
the client sent as the retirement came: ``ARRIVED_WINDOW`` seconds at most; a request there is read to its
end and answered), else ends after that window; one reading a request reads it to
its end (``read_timeout`` at most), answers it; one running a request answers it; those answers carry
``Connection: close``, and requests the client pipelined behind are not read (not answered: the client
sends them again).  The connection then ends cleanly: a FIN after the last answer, and what the client
still sends is read and discarded (``limits.linger``) so that the kernel never answers it with a reset,
which would also destroy answers not yet delivered.  ``serve_http`` returns once every connection ended.

Over TLS every end the server chooses (``Connection: close``, an error answer, ``idle_timeout``, a
retirement) sends a TLS ``close_notify`` before the FIN (the ``SSLStream`` is spec-compliant, not
``https_compatible``); the whole close is bounded by ``limits.linger`` + 1s, so a peer that stopped
reading cannot hold the task.  A client's own close without a ``close_notify`` is read as its end.

``reply_headers(body) -> [(name, value), ...]``, when given, adds headers
computed over the body of every answer the connection sends, the server's own
errors (403, 404, 408, 413, ...) included: an ``http listen`` channel's
signature (``engine/http/signature.py``).
"""
from __future__ import annotations

import logging
import math
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import h11
import trio

from engine.access import AccessList
from engine.tls import ContextHolder, context_of
from engine.channels.retire import ARRIVED_WINDOW, GentleClose
from engine.channels.conn_room import Room
from engine.channels.per_client import ClientCap
from engine.channels.listen_handoff import ListenSockets
from engine.http.messages import REASONS, HTTPError, Request, Response
from engine.http.room import HttpSlot, http_room, peer_text
from engine.tls import peer_values

log = logging.getLogger("bsp.http")

Handler = Callable[[Request], Awaitable[Response]]
ReplyHeaders = Callable[[bytes], "list[tuple[str, str]]"]     # headers computed over an answer's body
OnTLSFailure = Callable[[Any, BaseException], None]            # (peer, the SSLError or trio.TooSlowError)
OnBadRequest = Callable[[Any, int, str], None]                 # (peer, status, reason): a request refused unread
RECEIVE_SIZE = 65536
SERVER_HEADER = ("server", "bsp")
# a chunked body's framing (chunk sizes, extensions, trailers) may exceed the body's own size by this much at most
FRAMING_SLACK = 16 * 1024
_HEAD_END = re.compile(rb"\n\r?\n")
_OBS_FOLD = re.compile(rb"\n[ \t]")
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True)
class HTTPLimits:
    max_body: int = 1 << 20
    max_header: int = 16 * 1024
    idle_timeout: float = 60.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    handshake_timeout: float = 10.0
    linger: float = 1.0               # after an error answer: drain what the client still sends, then close
    max_connections: int = 512
    max_connections_per_client: int = 64     # one client address's at once; 0: no limit (engine/channels/per_client.py)


def _unquoted(exc: BaseException) -> str:
    """h11's reason without the bytes it quotes (``illegal header line: bytearray(b'...')``): the log never
    holds what a client sent in a line that could not be read (a token, a card number)."""
    return re.split(r": (?:bytearray\()?b['\"]", str(exc), maxsplit=1)[0][:200]


class _Close(Exception):
    """Stop serving this connection (after an answer, if one could be sent)."""


class _Retired(Exception):
    """The server retired while this connection waited for a request: it ends without reading one."""


def peer_of(stream: trio.abc.Stream) -> Any:
    inner: Any = stream
    while isinstance(inner, trio.SSLStream):
        inner = inner.transport_stream
    sock = getattr(inner, "socket", None)
    try:
        return sock.getpeername() if sock is not None else None
    except OSError:
        return None


def ragged_eof(exc: BaseException) -> bool:
    """A TLS peer that closed its connection without a close_notify (most HTTPS clients do)."""
    cause = exc.__cause__
    return isinstance(cause, (ssl.SSLEOFError, ssl.SSLSyscallError)) or \
        "UNEXPECTED_EOF_WHILE_READING" in str(cause or "")


async def receive_some(stream: trio.abc.Stream) -> bytes | bytearray:
    """``stream.receive_some``, with a TLS client's close without close_notify read as its end (b""): the
    ``SSLStream`` is spec-compliant (``https_compatible=False``) so that its ``aclose`` sends ours."""
    try:
        return await stream.receive_some(RECEIVE_SIZE)
    except trio.BrokenResourceError as exc:
        if isinstance(stream, trio.SSLStream) and ragged_eof(exc):
            return b""
        raise


class PlainHTTP(Exception):
    """A plain HTTP request on a TLS port (answered 400, no deal): given to ``on_tls_failure``."""

    def __init__(self, use: str) -> None:
        super().__init__(f"plain HTTP sent to the TLS port (the client speaks plain HTTP, not TLS): "
                         f"answered 400, use {use}")


def _raw_socket(stream: trio.abc.Stream) -> Any:
    inner: Any = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    while not hasattr(inner, "socket") and hasattr(inner, "inner"):
        inner = inner.inner
    return getattr(inner, "socket", None)


async def _plain_http(stream: trio.SSLStream) -> str | None:
    """Before the TLS handshake, a look (``MSG_PEEK``: nothing is consumed) at the client's first byte: a TLS
    ClientHello starts with 0x16, an HTTP request with its method's first letter.  Plain HTTP: the
    ``https://HOST:PORT`` to use (the address the client reached), else None (a memory stream: no look)."""
    sock = _raw_socket(stream)
    if sock is None or not hasattr(sock, "recv"):
        return None
    try:
        first = await sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return None
    if not first or not (0x41 <= first[0] <= 0x5A):       # A..Z: GET, POST, PUT, HEAD ...
        return None
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return "https://"
    return f"https://{f'[{host}]' if ':' in host else host}:{port}"


async def _answer_plain(stream: trio.SSLStream, use: str, limits: HTTPLimits,
                        reply_headers: ReplyHeaders | None) -> None:
    """Answer a plain HTTP request on a TLS port as nginx does (400, ``Connection: close``) over the TCP
    stream, without reading it: the stream's close then sends a FIN and discards what the client still
    sends (``GentleClose``, bounded by ``limits.linger``), so the client reads the answer, not a reset."""
    body = Response.problem(400, f"this port speaks HTTPS: use {use}").body
    headers = [("content-type", "application/problem+json"), ("content-length", str(len(body))),
               SERVER_HEADER, ("connection", "close")]
    if reply_headers is not None:
        headers.extend((k.lower(), v) for k, v in reply_headers(body))
    head = "HTTP/1.1 400 Bad Request\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    raw = stream.transport_stream
    with trio.move_on_after(limits.write_timeout):
        try:
            await raw.send_all(head.encode("latin-1") + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
    with trio.move_on_after(limits.linger + 1):
        try:
            await raw.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


class _Connection:
    def __init__(self, stream: trio.abc.Stream, handler: Handler, limits: HTTPLimits,
                 peer: Any, peercert: dict[str, Any] | None, reply_headers: ReplyHeaders | None = None,
                 slot: HttpSlot | None = None, retire: trio.Event | None = None,
                 on_bad_request: OnBadRequest | None = None) -> None:
        self.stream = stream
        self.on_bad_request = on_bad_request
        self.retire = retire
        self.wait_scope: trio.CancelScope | None = None     # the wait for a request's first byte
        self.slot = slot
        self.reply_headers = reply_headers
        self.handler = handler
        self.limits = limits
        self.peer = peer
        self.peercert = peercert
        self.who = peer_values(peercert, peer_text(peer) if peer is not None else None)   # peer.* of its requests
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header)
        self.read_scope: trio.CancelScope | None = None
        self.started = False           # any byte of the current request seen
        self.head = bytearray()        # the current request's first bytes, its head among them (obs-fold check)
        self.wire = 0                  # bytes of the current request received so far
        self.body_len: int | None = None   # reading its body: the bytes of it so far (the framing bound)
        self.arrived_by: float | None = None   # retired while waiting: the wait for a request ends then

    # ---------------------------------------------------------------- reading
    async def _next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.body_len is not None and self.wire > 2 * self.body_len + 2 * self.limits.max_header + FRAMING_SLACK:
                # 1-byte chunks, or chunk extensions: the client's bytes cost parsing, not body (h11 reads each chunk
                # as an event); all bytes received are this request's (h11 has not finished it)
                raise h11.RemoteProtocolError(
                    f"the chunked body's framing (chunk sizes, extensions) takes {self.wire - self.body_len} bytes "
                    f"for {self.body_len} bytes of body; send larger chunks", error_status_hint=400)
            if self.started:
                data = await receive_some(self.stream)
            else:
                # waiting for a request: a retirement ends the wait once what already arrived is read (a
                # request under way is read to its end)
                with trio.CancelScope() as self.wait_scope:
                    if self.retiring:
                        self.wait_scope.deadline = self._arrived_by()
                    data = await receive_some(self.stream)
                scope, self.wait_scope = self.wait_scope, None
                if scope.cancelled_caught:
                    raise _Retired()
            if data and not self.started:
                self.started = True
                if self.slot is not None:
                    self.slot.wait_ends()
                assert self.read_scope is not None
                self.read_scope.deadline = trio.current_time() + self.limits.read_timeout
            self.wire += len(data)
            if self.conn.their_state is h11.IDLE and len(self.head) <= self.limits.max_header:
                self.head += data[:self.limits.max_header + 4]
            self.conn.receive_data(data)

    @property
    def retiring(self) -> bool:
        return self.retire is not None and self.retire.is_set()

    def _arrived_by(self) -> float:
        """Retired while waiting for a request: it may still come from the receive buffer (a client that
        sent it as the retirement came) until ``ARRIVED_WINDOW`` seconds after the retirement was seen."""
        if self.arrived_by is None:
            self.arrived_by = trio.current_time() + ARRIVED_WINDOW
        return self.arrived_by

    def on_retire(self) -> None:
        """The server retires: a wait for a request ends once what already arrived is read (``ARRIVED_WINDOW``
        at most); a request being read or run goes on."""
        if self.wait_scope is not None:
            self.wait_scope.deadline = min(self.wait_scope.deadline, self._arrived_by())

    async def read_request(self) -> Request | None:
        """The next whole request; None when the client closed or stayed idle, or the server retired.
        Once retired an answer carries ``Connection: close`` and ends the connection (``run``), so the
        requests pipelined behind it are not read; a request that arrived on a connection waiting for one
        when the retirement came is read and answered (``_arrived_by``)."""
        pending = self.conn.trailing_data[0]       # pipelined bytes already here
        self.started = bool(pending)
        self.head = bytearray(pending[:self.limits.max_header + 4])
        self.wire = len(pending)
        self.body_len = None
        self.instance: str | None = None          # the path, once the request line is read: a problem's instance
        timeout = self.limits.read_timeout if self.started else self.limits.idle_timeout
        now = trio.current_time()
        with trio.CancelScope(deadline=now + timeout) as scope:
            self.read_scope = scope
            if self.slot is not None and not self.started:
                self.slot.wait_starts(scope, now)      # idle: at max_connections it may make room
            try:
                return await self._read_request()
            except _Retired:
                return None
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                detail = (f"request line and headers exceed {self.limits.max_header} bytes"
                          if status == 431 else f"malformed HTTP request: {exc}")
                self._bad(status, detail if status == 431 else _unquoted(exc))
                await self.fail(Response.problem(status, detail))
            finally:
                if self.slot is not None:
                    self.slot.wait_ends()
        if scope.cancelled_caught:
            if self.started:
                self._bad(408, f"the request did not arrive within {self.limits.read_timeout:g}s")
                await self.fail(Response.problem(
                    408, f"the request did not arrive within {self.limits.read_timeout:g}s",
                    instance=self.instance))
            raise _Close()
        return None

    async def _read_request(self) -> Request | None:
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):     # pragma: no cover - h11 guarantees the order
            raise _Close()
        head_size = len(event.method) + len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
        if head_size > self.limits.max_header:     # h11 only bounds a head still incomplete
            self._bad(431, f"request line and headers exceed {self.limits.max_header} bytes")
            await self.fail(Response.problem(
                431, f"request line and headers exceed {self.limits.max_header} bytes ({head_size})"))
        self._refuse_ambiguous_head()
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
        request = Request(event.method.decode("ascii").upper(), event.target.decode("latin-1"), headers,
                          peer=self.peer, peercert=self.peercert, who=self.who,
                          http_version=event.http_version.decode("ascii"))
        self.instance = request.raw_path
        declared = request.header("content-length")
        if declared is not None and request.header("transfer-encoding") is not None:
            # h11 reads the chunked body and ignores Content-Length; a proxy in front may do the opposite
            # and see another request in the body (request smuggling): refuse and close (RFC 9112 6.1)
            self._bad(400, "both Content-Length and Transfer-Encoding")
            await self.fail(Response.problem(
                400, "the request has both Content-Length and Transfer-Encoding; send one of them"))
        if declared is not None and int(declared) > self.limits.max_body:
            self._bad(413, f"declared Content-Length {declared} over max_body {self.limits.max_body}")
            await self.fail(self._too_large(f"declared Content-Length {declared}"))
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        self.body_len = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                body += event.data
                self.body_len = len(body)
                if len(body) > self.limits.max_body:
                    self._bad(413, f"chunked body over max_body {self.limits.max_body}")
                    await self.fail(self._too_large("the chunked body"))
            elif isinstance(event, h11.EndOfMessage):
                request.body = bytes(body)
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    def _refuse_ambiguous_head(self) -> None:
        """A header continued on the next line (obsolete line folding): h11 joins it to the line before; a proxy in
        front may read it otherwise (``Transfer-Encoding:`` then `` chunked`` on its own line taken as no body:
        the chunked body would then be read here as the next request, request smuggling).  Refused (RFC 9112 5.2)."""
        end = _HEAD_END.search(self.head)
        head = self.head[:end.end()] if end is not None else self.head
        if _BARE_LF.search(head):
            # likewise: a proxy that ends lines at CRLF only reads "X: a\nTransfer-Encoding: chunked" as one header
            raise h11.RemoteProtocolError("a line of the request's head ends with a bare LF; end each line with "
                                          "CRLF", error_status_hint=400)
        if _OBS_FOLD.search(head):
            raise h11.RemoteProtocolError("a header line is folded onto the next one (obsolete line folding: a line "
                                          "starting with a space or tab); send each header on one line",
                                          error_status_hint=400)

    def _bad(self, status: int, reason: str) -> None:
        """A request refused before it was whole (malformed, too large, too slow): told to ``on_bad_request``
        (an ``http listen`` channel logs the first of each kind and counts the rest), else logged here at info."""
        if self.on_bad_request is not None:
            self.on_bad_request(self.peer, status, reason)
        else:
            log.info("http %s: request refused: %d %s", self.peer, status, reason)

    def _too_large(self, what: str) -> Response:
        return Response.problem(413, f"{what} exceeds the limit of {self.limits.max_body} bytes; "
                                     "send a smaller body or raise the server's max_body",
                                instance=self.instance, limit=self.limits.max_body)

    # ---------------------------------------------------------------- writing
    async def _send(self, data: bytes) -> None:
        with trio.move_on_after(self.limits.write_timeout) as scope:
            await self.stream.send_all(data)
        if scope.cancelled_caught:
            log.info("http %s: client did not take the answer within %gs", self.peer, self.limits.write_timeout)
            raise _Close()

    async def respond(self, response: Response, method: str = "GET", *, close: bool = False) -> None:
        if response.stream is not None:
            try:
                await self._respond_streamed(response, method, close)
            finally:
                with trio.CancelScope(shield=True):      # its clean-up (a temporary file) runs however we end
                    await response.stream.aclose()
            return
        headers = [(k.lower(), v) for k, v in response.headers]
        names = {k for k, _ in headers}
        if "content-length" not in names and response.status not in (204, 304):
            headers.append(("content-length", str(len(response.body))))
        if "server" not in names:
            headers.append(SERVER_HEADER)
        if (close or self.retiring) and "connection" not in names:
            headers.append(("connection", "close"))        # retired: the last answer on this connection
        if self.reply_headers is not None:
            headers.extend((k.lower(), v) for k, v in self.reply_headers(response.body))
        out = self.conn.send(h11.Response(status_code=response.status, headers=headers,
                                          reason=REASONS.get(response.status, "").encode()))
        if response.body and method != "HEAD":
            out += self.conn.send(h11.Data(data=response.body))
        out += self.conn.send(h11.EndOfMessage())
        await self._send(out)       # head and body leave in one write

    async def _respond_streamed(self, response: Response, method: str, close: bool) -> None:
        """The head, then the stream's chunks as they come (each within ``write_timeout``): with the
        handler's Content-Length when it gave one, else chunked.  A stream that fails midway ends the
        connection without the end of the message: the client sees a body cut short, never a whole one.
        ``reply_headers`` (computed over a whole body) are not added to a streamed answer."""
        assert response.stream is not None
        headers = [(k.lower(), v) for k, v in response.headers]
        names = {k for k, _ in headers}
        if "server" not in names:
            headers.append(SERVER_HEADER)
        if (close or self.retiring) and "connection" not in names:
            headers.append(("connection", "close"))
        await self._send(self.conn.send(h11.Response(status_code=response.status, headers=headers,
                                                     reason=REASONS.get(response.status, "").encode())))
        try:
            if method != "HEAD":
                async for chunk in response.stream.chunks():
                    if chunk:
                        await self._send(self.conn.send(h11.Data(data=chunk)))
            end = self.conn.send(h11.EndOfMessage())
        except (OSError, h11.LocalProtocolError) as exc:
            log.warning("http %s: streamed answer failed midway: %s", self.peer, exc)
            raise _Close() from None
        await self._send(end)

    async def fail(self, response: Response) -> None:
        """Answer an error (if the protocol still allows an answer) and stop."""
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                await self.respond(response, close=True)
            except (h11.LocalProtocolError, _Close):
                pass
        await self.linger()
        raise _Close()

    async def linger(self) -> None:
        """Half-close and read what the client still sends (bounded), so it sees our answer, not a reset."""
        with trio.move_on_after(self.limits.linger):
            try:
                if isinstance(self.stream, trio.abc.HalfCloseableStream):
                    await self.stream.send_eof()
                budget = self.limits.max_body + self.limits.max_header
                while budget > 0:
                    chunk = await receive_some(self.stream)
                    if not chunk:
                        break
                    budget -= len(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                pass

    # ---------------------------------------------------------------- serving
    async def answer(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except HTTPError as exc:
            return exc.to_response(instance=request.raw_path)
        except Exception:
            log.exception("http %s %s from %s: handler failed", request.method, request.raw_path, self.peer)
            return Response.problem(500, "the server failed while answering; the error is in the bsp log",
                                    instance=request.raw_path)

    async def run(self, refusal: str | None) -> None:
        while True:
            request = await self.read_request()
            if request is None:
                return
            if refusal is not None:
                # the client is told what of it was refused, not the rules (the log has them: on_refused)
                told = getattr(refusal, "told", refusal)
                await self.fail(Response.problem(403, f"access refused: {told}", instance=request.raw_path))
            response = await self.answer(request)
            await self.respond(response, request.method)
            if self.conn.our_state is h11.MUST_CLOSE:
                return
            self.conn.start_next_cycle()


async def serve_connection(
    stream: trio.abc.Stream,
    handler: Handler,
    *,
    limits: HTTPLimits = HTTPLimits(),
    access: AccessList | None = None,
    peer: Any = None,
    on_refused: Callable[[Any, str], None] | None = None,
    reply_headers: ReplyHeaders | None = None,
    on_tls_failure: OnTLSFailure | None = None,
    slot: HttpSlot | None = None,
    retire: trio.Event | None = None,
    live: "set[_Connection] | None" = None,
    on_bad_request: OnBadRequest | None = None,
) -> None:
    """Serve HTTP/1.1 on one stream until the client leaves (or ``retire`` is set: see the module's doc);
    always closes the stream.  ``live``: the server's open connections (each adds itself while it runs).

    ``on_refused(peer, reason)``, ``on_tls_failure(peer, exc)`` (a failed or too slow TLS handshake) and
    ``on_bad_request(peer, status, reason)`` (a request refused before it was whole: malformed, smuggling,
    too large, too slow; the reason never quotes the client's bytes) let the caller count and log those in its own words (an ``http listen`` names its channel); without
    them the server logs them itself.  ``slot``: the connection's in its server's ``max_connections``
    room (its handshake, then its waits for a request, may be ended to make room)."""
    peer = peer if peer is not None else peer_of(stream)
    try:
        peercert = None
        if isinstance(stream, trio.SSLStream):
            plain = None        # plain HTTP on this TLS port: the https:// address to use
            try:
                with trio.fail_after(limits.handshake_timeout):
                    with (slot.handshake if slot is not None else None) or trio.CancelScope():
                        plain = await _plain_http(stream)
                        if plain is None:   # (peek cancelled for room: plain stays None, the slot is evicted)
                            await stream.do_handshake()     # cancelled: closed for room at max_connections
                if plain is not None:
                    await _answer_plain(stream, plain, limits, reply_headers)
                    if on_tls_failure is not None:
                        on_tls_failure(peer, PlainHTTP(plain))
                    else:
                        log.info("http %s: %s", peer, PlainHTTP(plain))
                    return
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError) as exc:
                cause = exc if isinstance(exc, trio.TooSlowError) else (exc.__cause__ or exc)
                if on_tls_failure is not None:
                    on_tls_failure(peer, cause)
                elif isinstance(cause, trio.TooSlowError):
                    log.info("http %s: TLS handshake not done within %gs", peer, limits.handshake_timeout)
                else:
                    log.info("http %s: TLS handshake failed: %s", peer, cause)
                return
            if slot is not None and slot.evicted:       # (logged and counted by the room)
                await trio.aclose_forcefully(stream)
                return
            peercert = stream.getpeercert() or None
        refusal = None
        if access is not None:
            ok, reason = access.check(peer, peercert)
            if not ok:
                refusal = reason
                if on_refused is not None:
                    on_refused(peer, reason)
                else:
                    log.warning("http %s: access refused: %s", peer, reason)
        connection = _Connection(stream, handler, limits, peer, peercert, reply_headers, slot, retire,
                                 on_bad_request)
        if slot is not None:
            slot.connection = connection
            slot.served()
        if live is not None:
            live.add(connection)
        try:
            await connection.run(refusal)
        finally:
            if live is not None:
                live.discard(connection)
    except _Close:
        pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError) as exc:
        log.info("http %s: connection ended: %s", peer, exc.__cause__ or exc)
    finally:
        # under GentleClose (serve_http): FIN after the answers, then what the client still sends is discarded
        with trio.move_on_after(limits.linger + 1):
            try:
                await stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError):
                pass
        await trio.aclose_forcefully(stream)


async def serve_http(
    handler: Handler,
    host: str | None,
    port: int,
    ssl_context: ssl.SSLContext | ContextHolder | None = None,
    *,
    limits: HTTPLimits = HTTPLimits(),
    access: AccessList | None = None,
    on_refused: Callable[[Any, str], None] | None = None,
    reply_headers: ReplyHeaders | None = None,
    on_tls_failure: OnTLSFailure | None = None,
    on_bad_request: OnBadRequest | None = None,
    retire: trio.Event | None = None,
    room: Room | None = None,
    sockets: ListenSockets | None = None,
    clients: ClientCap | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host:port`` (port 0: any free one) until cancelled, or until ``retire`` is set and every
    connection has ended (see the module's doc).

    ``task_status.started(port)`` fires once listening, with the bound port.
    With ``host=None`` (every interface) and port 0 the IPv4 and IPv6
    listeners may get different ports; the first one's is returned, so give
    a host when asking for a free port.

    ``ssl_context``: a context, or an ``engine.tls.ContextHolder`` read for each connection accepted (a
    context swapped in applies to new connections; open ones keep theirs; the socket stays bound).

    ``room``: the ``max_connections`` slots (engine/http/room.py ``http_room``: an ``http listen`` channel's
    names it and counts in its metrics); by default one of ``limits.max_connections``.

    ``sockets``: the listening sockets (an ``http listen`` channel's: a reload hands them over to the channel
    replacing it on the same address, engine/channels/listen_handoff.py); by default bound here and closed
    when accepting stops.

    ``clients``: the per-client counts (``max_connections_per_client``, engine/channels/per_client.py: an
    ``http listen`` channel's counts and names it); by default one of ``limits.max_connections_per_client``
    logging through the room's ``FaultLog``.
    """
    sockets = sockets if sockets is not None else ListenSockets()
    try:
        await _serve_on(sockets, handler, host, port, ssl_context, limits=limits, access=access,
                        on_refused=on_refused, reply_headers=reply_headers, on_tls_failure=on_tls_failure,
                        on_bad_request=on_bad_request, retire=retire, room=room, clients=clients,
                        task_status=task_status)
    finally:
        sockets.close_now()                 # a failure, a cancellation: nothing stays open (unless handed over)


async def _serve_on(sockets: ListenSockets, handler: Handler, host: str | None, port: int, ssl_context: Any, *,
                    limits: HTTPLimits, access: AccessList | None, on_refused: Any, reply_headers: Any,
                    on_tls_failure: Any, on_bad_request: Any, retire: trio.Event | None, room: Room | None,
                    clients: ClientCap | None, task_status: Any) -> None:
    listeners: list[Any] = await sockets.open(host, port)
    bound = listeners[0].socket.getsockname()[1]
    room = room if room is not None else http_room(limits.max_connections)
    room.address = room.address or f"{host}:{bound}"
    counts = clients if clients is not None else ClientCap(limits.max_connections_per_client, room.faults,
                            hint="if its clients need more connections at once, raise its max_connections_per_client")
    if clients is None and room.channel is None:
        room.faults.what = room.who         # the admin API's own FaultLog: named by its address
    live: set[_Connection] = set()

    async def one(sock: trio.SocketStream, client: str) -> None:
        slot = None
        try:
            # a clean end (FIN, then discard) instead of a reset when the client's requests are unread
            gentle = GentleClose(sock, channel=f"{host}:{bound}", linger=limits.linger)
            stream: trio.abc.Stream = gentle
            peer = peer_of(sock)
            slot = room.arrive(peer_text(peer), gentle, HttpSlot)
            context = context_of(ssl_context)      # read per connection: a holder's may have been swapped
            if context is not None:
                # spec-compliant, not https_compatible: its aclose ends the connection with a close_notify
                # (bounded: serve_connection); a client's close without one is read as its end (receive_some)
                stream = trio.SSLStream(stream, context, server_side=True)
            await serve_connection(stream, handler, limits=limits, access=access, peer=peer,
                                   on_refused=on_refused, reply_headers=reply_headers,
                                   on_tls_failure=on_tls_failure, slot=slot, retire=retire, live=live,
                                   on_bad_request=on_bad_request)
        finally:
            room.leave(slot)
            counts.leave(client)

    async def accept_loop(listener: Any, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:     # EMFILE and friends: back off, keep listening
                log.warning("http %s:%s: accept failed: %s", host, bound, exc)
                await trio.sleep(0.1)
                continue
            # a client over its own cap: closed at once, unread, taking no slot (engine/channels/per_client.py)
            client = counts.enter(peer_of(stream))
            if client is None:
                await trio.aclose_forcefully(stream)
                continue
            try:
                # at the cap one connection makes room (conn_room); at most one accepted connection
                # per listener waits here
                await room.take()
            except BaseException:
                counts.leave(client)
                await trio.aclose_forcefully(stream)
                raise
            nursery.start_soon(one, stream, client)

    async with trio.open_nursery() as nursery:            # the connections
        async with trio.open_nursery() as accepting:
            for listener in listeners:
                accepting.start_soon(accept_loop, listener, nursery)
            log.info("http listening on %s:%s%s%s", host, bound, " (TLS)" if ssl_context else "",
                     " (the socket handed over by the channel it replaces)" if sockets.adopted else "")
            task_status.started(bound)
            if retire is None:
                await trio.sleep(math.inf)
            await retire.wait()
            accepting.cancel_scope.cancel()
        # the listening sockets close, or stay open for the channel replacing this one on the same address
        await sockets.release()
        for connection in list(live):
            connection.on_retire()
        # the nursery waits for the connections to end
